"""Prediction outputs on the napari side: the arrays the docks and api.predict fill, the
layers that show them, and re-thresholding (shared by ``api.py`` and the Predict dock)."""

from __future__ import annotations

from typing import Any

import numpy as np

from .layers import CLASSES_KEY, TAG, put_layer

IN_MEMORY_BYTES = 1 << 30  # outputs above this go to zarr stores in a temporary folder


def output_arrays(shape: tuple[int, ...], cfg: Any, limit: int | None = None, k: int = 2) -> tuple:
    """Preallocated (probability, labels, uncertainty or None, folder or None) of ``shape``.

    Shapes and dtypes are the core's (``core/inference/outputs.py``: the PredictConfig
    ``cfg`` and the model's ``k`` classes decide). Small outputs are numpy arrays; larger
    ones zarr arrays (one chunk per slice and class) in a temporary folder, so a huge stack
    never becomes one giant allocation.
    """
    from ..core.inference.outputs import output_specs

    specs = [(o.name, o.shape, o.dtype) for o in output_specs(shape, cfg, k)]
    nbytes = sum(int(np.prod(sh)) * dt.itemsize for _, sh, dt in specs)
    if nbytes <= (IN_MEMORY_BYTES if limit is None else limit):
        arrays = [np.zeros(sh, dt) for _, sh, dt in specs]
        folder = None
    else:
        import tempfile

        import zarr

        folder = tempfile.mkdtemp(prefix="napari-temseg-")
        arrays = [
            zarr.open_array(
                f"{folder}/{name}.zarr",
                mode="w",
                shape=sh,
                chunks=(1,) * (len(sh) - 2) + sh[-2:] if len(sh) > 2 else sh,
                dtype=dt,
                fill_value=0,
            )
            for name, sh, dt in specs
        ]
    unc = arrays[2] if len(arrays) > 2 else None
    return arrays[0], arrays[1], unc, folder


def class_view(prob: Any, c: int) -> Any:
    """The probability of class ``c`` from a (Z, K, Y, X) / (K, Y, X) array, without a copy
    (numpy view, or a lazy dask view of a zarr array)."""
    index = (slice(None),) * (prob.ndim - 3) + (c,)
    if isinstance(prob, np.ndarray):
        return prob[index]
    import dask.array as da

    return da.from_array(prob, chunks=prob.chunks)[index]


def labels_colormap(classes: Any) -> dict:
    """{label value: colour} of predicted class ids: the class table's colours, background
    transparent (the image shows through), 'unsure' (K) white."""
    colors = classes.color_dict(unsure=True)
    return {None: "transparent", **colors, 0: "transparent"}


def prob_limits(prob: Any) -> tuple[float, float]:
    """Contrast limits of a probability array (uint8 stores 0..255)."""
    return (0.0, 255.0) if np.dtype(prob.dtype) == np.uint8 else (0.0, 1.0)


def show_outputs(
    viewer: Any,
    source: str,
    prob: Any,
    labels: Any,
    unc: Any = None,
    classes: Any = None,
    **tr: Any,
) -> dict:
    """Add (or refill) ``<source> probability`` / ``prediction`` / ``uncertainty`` layers.

    A K-class model (``classes``, a ClassTable with K >= 3) gets one hidden probability
    layer per class (``<source> P(<class>)``, views of the one (Z, K, Y, X) array) and a
    prediction coloured from the class table."""
    multi = classes is not None and not classes.binary
    _drop_stale(viewer, source, multi)
    out = _probability_layers(viewer, source, prob, classes if multi else None, tr)
    colors = {"colormap": labels_colormap(classes)} if multi else {}
    out["labels_layer"] = put_layer(
        viewer,
        "labels",
        labels,
        role="prediction",
        source=source,
        name=f"{source} prediction",
        opacity=0.5,
        **colors,
        **tr,
    )
    if multi:
        out["labels_layer"].metadata[CLASSES_KEY] = classes.to_dict()
    if unc is not None:
        out["unc_layer"] = put_layer(
            viewer,
            "image",
            unc,
            role="uncertainty",
            source=source,
            name=f"{source} uncertainty",
            colormap="viridis",
            blending="additive",
            contrast_limits=(0.0, 0.25),
            opacity=0.6,
            **tr,
        )
    return out


def _probability_layers(viewer: Any, source: str, prob: Any, classes: Any, tr: dict) -> dict:
    """``<source> probability``, or one hidden ``<source> P(<class>)`` per class."""
    style = dict(colormap="magma", blending="additive", contrast_limits=prob_limits(prob), **tr)
    if classes is None:
        layer = put_layer(
            viewer,
            "image",
            prob,
            role="probability",
            source=source,
            name=f"{source} probability",
            opacity=0.6,
            **style,
        )
        return {"prob_layer": layer}
    layers = [
        put_layer(
            viewer,
            "image",
            class_view(prob, c),
            role=f"probability {c}",
            source=source,
            name=f"{source} P({name})",
            visible=False,
            **style,
        )
        for c, name in enumerate(classes.names)
    ]
    return {"prob_layer": layers[0], "prob_layers": layers}


def _drop_stale(viewer: Any, source: str, multi: bool) -> None:
    """Remove our probability layers of the other kind (binary <-> per class) for ``source``."""
    from .layers import is_ours

    for layer in list(viewer.layers):
        meta = layer.metadata.get(TAG) if is_ours(layer) else None
        if not isinstance(meta, dict) or meta.get("source") != source:
            continue
        role = str(meta.get("role", ""))
        if (multi and role == "probability") or (not multi and role.startswith("probability ")):
            viewer.layers.remove(layer)


def show_preview(
    viewer: Any, layer: Any, ca: Any, name: str, prob: Any, z: int, classes: Any = None
) -> Any:
    """The training live preview of slice ``z`` over ``layer``: the probability (binary,
    magma) or the class map in the class colours ((K, Y, X) probabilities)."""
    from .layers import transform

    tr = transform(layer, ca)
    multi = prob.ndim == 3
    data = np.argmax(prob, axis=0).astype(np.uint8) if multi else prob
    translate = list(tr["translate"])
    if len(tr["scale"]) == 3:  # a one-slice layer placed at z
        data, translate[0] = data[None], translate[0] + z * tr["scale"][0]
    tr["translate"] = tuple(translate)  # scale, units: the image's
    if multi:
        from ..core.config.classes import ClassTable

        table = classes if classes is not None else ClassTable.default(prob.shape[0])
        style = dict(colormap=labels_colormap(table), opacity=0.6)
    else:
        style = dict(colormap="magma", blending="additive", contrast_limits=(0.0, 1.0), opacity=0.7)
    return put_layer(
        viewer,
        "labels" if multi else "image",
        data,
        role="preview",
        source=name,
        name=f"{name} preview",
        **tr,
        **style,
    )


def new_labels_layer(viewer: Any, r: dict) -> None:
    """A fresh prediction labels layer for the Predict dock's result ``r`` (its
    ``labels`` / ``labels_layer`` entries are replaced; the old layer is left as it is)."""
    from .layers import transform

    source = r["prob_layer"].metadata[TAG]["source"]
    r["labels"] = zeros_like(r["labels"])
    tr = transform(r["prob_layer"])  # scale, translate, units
    if not r["classes"].binary:
        tr["colormap"] = labels_colormap(r["classes"])
    r["labels_layer"] = put_layer(
        viewer,
        "labels",
        r["labels"],
        role="prediction",
        source=source,
        name=f"{source} prediction",
        opacity=0.5,
        **tr,
    )


def rethreshold(prob: Any, labels: Any, threshold: float, cfg: Any) -> Any:
    """Generator: ``labels[z]`` = post-processed ``prob[z] >= threshold``, slice by slice.

    The same post-processing (``cfg``: ``postprocess.post_options``) as the prediction;
    yields Progress.
    """
    from ..core.inference.postprocess import post_options, postprocess
    from ..core.progress import Progress

    thr = threshold * 255 if np.dtype(prob.dtype) == np.uint8 else threshold
    post = post_options(cfg)
    n = prob.shape[0] if prob.ndim == 3 else 1
    next_label = 1
    for z in range(n):
        p = np.asarray(prob[z] if prob.ndim == 3 else prob)
        lab, next_label = postprocess(p >= thr, first_label=next_label, dtype=labels.dtype, **post)
        if prob.ndim == 3:
            labels[z] = lab
        else:
            labels[...] = lab
        yield Progress("threshold", z + 1, n)


def relabel(prob: Any, labels: Any, min_confidence: float, cfg: Any) -> Any:
    """Generator: the class ids of a K-class prediction again from its stored (Z, K, Y, X)
    probabilities with another minimum confidence (and ``cfg``'s min_size / fill_holes),
    slice by slice; yields Progress. Nothing is predicted again."""
    from ..core.inference.postprocess import class_labels, post_options
    from ..core.progress import Progress

    post = {**post_options(cfg, prob.shape[-3]), "min_confidence": min_confidence}
    n = prob.shape[0] if prob.ndim == 4 else 1
    for z in range(n):
        if prob.ndim == 4:
            labels[z] = class_labels(np.asarray(prob[z]), **post)
        else:
            labels[...] = class_labels(np.asarray(prob), **post)
        yield Progress("relabel", z + 1, n)


def zeros_like(a: Any) -> Any:
    """A new zero-filled array like ``a``: numpy in memory, zarr (one chunk per slice) on disk."""
    if isinstance(a, np.ndarray):
        return np.zeros_like(a)
    import tempfile

    import zarr

    folder = tempfile.mkdtemp(prefix="napari-temseg-")
    return zarr.open_array(
        f"{folder}/labels.zarr",
        mode="w",
        shape=a.shape,
        chunks=a.chunks,
        dtype=a.dtype,
        fill_value=0,
    )
