"""Helpers of the console API (``api.py``): layers or arrays in, what the core takes out;
the option keywords in ``help(api.train)``. napari is never imported here."""

from __future__ import annotations

import inspect
import os
from typing import Any

from ..core.config.options import all_options
from .layers import classes_of, is_layer


def layers_in(x: Any) -> list | None:
    """The layer(s) in ``x`` (one layer or a list of layers), else None."""
    if is_layer(x):
        return [x]
    if isinstance(x, (list, tuple)) and x and all(is_layer(i) for i in x):
        return list(x)
    return None


def image_input(image: Any, channel_axis: int | None) -> tuple[Any, Any, bool]:
    """(image for the core, first layer or None, is 2D)."""
    from . import layers as L

    layers = layers_in(image)
    if layers is None:
        if isinstance(image, (list, tuple)):
            return list(image), None, False
        return image, None, len(getattr(image, "shape", ())) == 2
    vol = L.image_volume(layers, channel_axis)
    return vol, layers[0], L.is_2d(layers, channel_axis if len(layers) == 1 else None)


def mask_input(mask: Any) -> Any:
    if isinstance(mask, (list, tuple)):
        return [mask_input(m) for m in mask]
    return data_of(mask)


def data_of(x: Any) -> Any:
    from .layers import layer_data

    return layer_data(x) if is_layer(x) else x


def class_table(classes: Any, layer: Any) -> Any:
    """The ClassTable meant by ``classes`` (a ClassTable, a TrainedModel, a list of names),
    or, when None, the one recorded on ``layer`` (Annotate dock; None if it has none)."""
    from ..core.config.classes import ClassTable

    if classes is None:
        return classes_of(layer)
    if isinstance(classes, ClassTable):
        return classes
    if hasattr(classes, "classes") and isinstance(classes.classes, ClassTable):
        return classes.classes  # a TrainedModel
    return ClassTable(tuple(classes))


def mask_classes(mask: Any, options: dict) -> Any:
    """The mask layer's class table, unless the options choose the classes
    (``classes`` / ``class_names``): then None."""
    if options.get("classes") is not None or options.get("class_names") is not None:
        return None
    return classes_of(mask)


def training_arrays(images: Any, masks: Any) -> tuple[Any, Any]:
    """(images, masks) from two folders (read lazily) or two lists of layers / arrays."""
    from ..core.data.read import read_training_set

    if isinstance(images, (str, os.PathLike)):
        return tuple(read_training_set(images, masks)[:2])
    return [data_of(x) for x in images], [data_of(x) for x in masks]


def sparse_from_layer(mask: Any) -> bool:
    """What the Annotate dock recorded on a mask layer (scribbles or dense)."""
    meta = mask.metadata.get("napari_temseg") if is_layer(mask) else None
    return bool(meta.get("sparse")) if isinstance(meta, dict) else False


def with_options(fn: Any, classes: tuple) -> None:
    """Give ``fn`` a signature and docstring listing every option with its default."""
    sig = inspect.signature(fn)
    params = [p for p in sig.parameters.values() if p.kind is not p.VAR_KEYWORD]
    opts = all_options(*classes)
    params += [
        inspect.Parameter(
            o.name,
            inspect.Parameter.KEYWORD_ONLY,
            default=o.default,
            annotation=o.kind.__name__ + (" | None" if o.optional else ""),
        )
        for o in opts
    ]
    fn.__signature__ = sig.replace(parameters=params)
    lines = [f"    {o.name}={o.default!r}: {o.help}" for o in opts]
    fn.__doc__ = (fn.__doc__ or "").rstrip() + "\n\n" + "\n".join(lines) + "\n"


def _paths(image: Any) -> Any:
    """``image`` as a path or a list of paths when it names files, else None."""
    if isinstance(image, (str, os.PathLike)):
        return image
    paths = isinstance(image, (list, tuple)) and image
    if paths and all(isinstance(p, (str, os.PathLike)) for p in image):
        return list(image)
    return None


def file_input(
    image: Any, output: Any, labels_output: Any, viewer: Any, channel_axis: int | None
) -> tuple[Any, Any]:
    """(files, None) when api.predict writes files - ``image`` a folder, a list of paths, or
    one file with ``output`` -, else (None, the image in memory; one image file is read)."""
    from ..core.data.read import is_image_folder, read_image
    from ..core.errors import InputError

    files = _paths(image)
    if files is not None and (
        output is not None or isinstance(files, list) or is_image_folder(files)
    ):
        if output is None:
            raise InputError("predicting a folder or a list of files writes them: pass output=")
        if viewer is not None:
            raise InputError(
                "viewer= shows arrays; predicting files writes them: leave viewer out and "
                "open the outputs in napari"
            )
        return files, None
    if output is not None or labels_output is not None:
        raise InputError(
            "output= writes the results of image files: give the image as a path, a folder or "
            "a list of paths (or leave output out and save the returned arrays)"
        )
    return None, (image if files is None else read_image(files, channel_axis))


def predict_into_files(
    model: Any,
    files: Any,
    output: Any,
    cfg: Any,
    channel_axis: Any,
    slices: Any,
    stop: Any,
    verbose: bool,
    run: dict,
) -> Any:
    """api.predict on files: ``temseg predict``'s one core call, driven here; a FolderResult."""
    from ..core.inference.folder import predict_files
    from ..core.interop.bioimageio.load import load_any_model
    from ..core.progress import drive

    model_file = None if hasattr(model, "input_spec") else model
    if model_file is not None and run.get("scheduler") is None:
        model = load_any_model(model_file)  # a cluster's workers load the file themselves
    gen = predict_files(
        model,
        files,
        output,
        cfg,
        channel_axis=channel_axis,
        slices=slices,
        stop=stop,
        model_file=model_file,
        **run,
    )
    try:
        return drive(gen, stop, quiet=not verbose)
    finally:  # an error or a second Ctrl-C outside the generator: its clean-up runs now
        gen.close()


def predict_arrays(
    model: Any,
    image: Any,
    cfg: Any,
    viewer: Any,
    channel_axis: Any,
    slices: Any,
    name: Any,
    stop: Any,
    verbose: bool,
) -> tuple:
    """api.predict on one image in memory (arrays or layers): (probability, labels[,
    uncertainty]), shown in ``viewer`` when given."""
    from ..core.data.volume import as_volume, check_channels
    from ..core.errors import InputError
    from ..core.inference.outputs import check_options
    from ..core.inference.predict import predict_stack
    from ..core.progress import drive
    from . import layers as L
    from . import outputs as O

    img, layer, two_d = image_input(image, channel_axis)
    if isinstance(img, list):
        raise InputError("predict takes one image (or a list of layers used as its channels)")
    vol = as_volume(img, channel_axis=None if layer is not None else channel_axis)
    check_channels(model.channels, vol.shape[1])
    check_options(model, cfg)
    prob, labels, unc, _ = O.output_arrays(L.spatial_shape(vol, two_d), cfg, k=model.classes.k)
    gen = predict_stack(
        model,
        vol,
        cfg,
        prob_out=prob,
        labels_out=labels,
        uncertainty_out=unc,
        slices=slices,
        stop=stop,
    )
    drive(gen, stop, quiet=not verbose)
    if viewer is not None:
        src = name or (layer.name if layer is not None else "image")
        tr = L.transform(layer, channel_axis) if layer is not None else {}
        O.show_outputs(viewer, src, prob, labels, unc, classes=model.classes, **tr)
    return (prob, labels) if unc is None else (prob, labels, unc)
