"""Prediction outputs on the napari side: the arrays the docks and api.predict fill, the
layers that show them, and re-thresholding (shared by ``api.py`` and the Predict dock)."""

from __future__ import annotations

from typing import Any

import numpy as np

from .layers import put_layer

IN_MEMORY_BYTES = 1 << 30  # outputs above this go to zarr stores in a temporary folder


def output_arrays(shape: tuple[int, ...], cfg: Any, limit: int | None = None) -> tuple:
    """Preallocated (probability, labels, uncertainty or None, folder or None) of ``shape``.

    dtypes follow the PredictConfig ``cfg`` (probability ``prob_dtype``, labels uint8 or
    uint32 for instances, uncertainty float32 with ``uncertainty``). Small outputs are numpy
    arrays; larger ones zarr arrays (one chunk per slice) in a temporary folder, so a huge
    stack never becomes one giant allocation.
    """
    specs = [
        ("probability", np.dtype(cfg.prob_dtype)),
        ("labels", np.dtype(np.uint32 if cfg.instances else np.uint8)),
    ]
    if cfg.uncertainty:
        specs.append(("uncertainty", np.dtype(np.float32)))
    n = int(np.prod(shape))
    if n * sum(dt.itemsize for _, dt in specs) <= (IN_MEMORY_BYTES if limit is None else limit):
        arrays = [np.zeros(shape, dt) for _, dt in specs]
        folder = None
    else:
        import tempfile

        import zarr

        folder = tempfile.mkdtemp(prefix="napari-temseg-")
        chunks = (1, *shape[1:]) if len(shape) == 3 else shape
        arrays = [
            zarr.open_array(
                f"{folder}/{name}.zarr",
                mode="w",
                shape=shape,
                chunks=chunks,
                dtype=dt,
                fill_value=0,
            )
            for name, dt in specs
        ]
    unc = arrays[2] if len(arrays) > 2 else None
    return arrays[0], arrays[1], unc, folder


def prob_limits(prob: Any) -> tuple[float, float]:
    """Contrast limits of a probability array (uint8 stores 0..255)."""
    return (0.0, 255.0) if np.dtype(prob.dtype) == np.uint8 else (0.0, 1.0)


def show_outputs(
    viewer: Any, source: str, prob: Any, labels: Any, unc: Any = None, **tr: Any
) -> dict:
    """Add (or refill) ``<source> probability`` / ``prediction`` / ``uncertainty`` layers."""
    out = {
        "prob_layer": put_layer(
            viewer,
            "image",
            prob,
            role="probability",
            source=source,
            name=f"{source} probability",
            colormap="magma",
            blending="additive",
            contrast_limits=prob_limits(prob),
            opacity=0.6,
            **tr,
        )
    }
    out["labels_layer"] = put_layer(
        viewer,
        "labels",
        labels,
        role="prediction",
        source=source,
        name=f"{source} prediction",
        opacity=0.5,
        **tr,
    )
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


def rethreshold(prob: Any, labels: Any, threshold: float, cfg: Any) -> Any:
    """Generator: ``labels[z]`` = post-processed ``prob[z] >= threshold``, slice by slice.

    The same post-processing (``cfg``: min_size, fill_holes, instances) as the prediction;
    yields Progress.
    """
    from ..core.postprocess import postprocess
    from ..core.progress import Progress

    thr = threshold * 255 if np.dtype(prob.dtype) == np.uint8 else threshold
    post = dict(min_size=cfg.min_size, fill_holes=cfg.fill_holes, instances=cfg.instances)
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
