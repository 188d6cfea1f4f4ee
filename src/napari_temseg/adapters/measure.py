"""Measuring layers: a Labels layer (+ image layers) -> the objects table, in the layers'
physical units (their scale and units), shared by ``api.measure`` and the Measure dock."""

from __future__ import annotations

from typing import Any

import numpy as np

from .layers import is_layer, layer_data


def layer_unit(layer: Any) -> tuple[tuple[float, float] | None, str | None]:
    """(pixel size (y, x), unit) from a layer's scale and units; None where it has none."""
    size = None
    if tuple(float(s) for s in layer.scale[-2:]) != (1.0, 1.0):
        size = tuple(float(s) for s in layer.scale[-2:])
    units = getattr(layer, "units", None)
    if units is None or str(units[-1]) in ("pixel", "px"):
        return size, None
    try:  # a pint unit (napari >= 0.6): its short form, "nm"
        return size, f"{units[-1]:~}"
    except (TypeError, ValueError):
        return size, str(units[-1])


def _intensity(image: Any) -> np.ndarray | None:
    """One layer/array, or several same-shape layers as channels (Z, C, Y, X)."""
    if image is None:
        return None
    items = image if isinstance(image, (list, tuple)) else [image]
    arrays = [np.asarray(layer_data(x) if is_layer(x) else x) for x in items]
    return arrays[0] if len(arrays) == 1 else np.stack(arrays, axis=-3)


def measure_layers(
    labels: Any,
    image: Any = None,
    *,
    pixel_size: Any = None,
    unit: str | None = None,
    classes: bool | None = None,
    class_names: Any = None,
) -> Any:
    """The objects table (a pandas DataFrame) of a Labels layer or array; see
    ``core.evaluation.measure.measure``. A layer's scale / units and class table fill in what is not
    given."""
    import pandas as pd

    from ..core.evaluation.measure import measure
    from .classes import table_of

    if is_layer(labels):
        size, u = layer_unit(labels)
        pixel_size = size if pixel_size is None else pixel_size
        unit = u if unit is None else unit
        if class_names is None and classes is not False:
            table = table_of(labels)
            class_names = None if table is None or table.binary else table.names
        labels = layer_data(labels)
    t = measure(
        np.asarray(labels),
        _intensity(image),
        pixel_size=pixel_size,
        unit=unit,
        classes=classes,
        class_names=class_names,
    )
    return pd.DataFrame(t)


__all__ = ["measure_layers", "layer_unit"]
