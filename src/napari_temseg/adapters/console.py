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
