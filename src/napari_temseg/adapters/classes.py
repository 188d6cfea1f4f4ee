"""The class table of a mask layer: stored in the layer metadata, shown as napari colours.

A mask layer's table lives under ``layer.metadata["temseg_classes"]`` as
``{"names": [...], "colors": [...]}`` (``core.config.classes.ClassTable.to_dict``); a layer without
one is binary (``background``, ``foreground``). The binary default keeps the colours masks
always had: napari's own label colours when dense, magenta / cyan scribbles when sparse.

Editing never gives painted pixels a new meaning behind the user's back: classes are added
and removed at the end only, a class with painted pixels cannot be removed, and where the
sparse background value (K) moves with K, its scribbles are moved too and the caller is told.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..core.config.classes import PALETTE, ClassTable, default_colors, default_names
from ..core.errors import InputError
from .layers import CLASSES_KEY

SPARSE_COLORS = {0: "transparent", 1: "magenta", 2: "cyan", None: "transparent"}
DENSE_HINT = "Dense mask: paint label 1 = foreground; unpainted = background. Paint whole slices."
SPARSE_HINT = (
    "Sparse scribbles: label 1 = foreground, label 2 = background, "
    "0 = unlabelled (ignored). Switch with the label box or the - / = keys."
)
SPARSE_LABEL = "Sparse scribbles (1 = foreground, 2 = background)"


# --- the table on a layer ---------------------------------------------------------------------
def table_of(layer: Any) -> ClassTable:
    """The layer's class table (the binary default when it has none or a broken one)."""
    meta = getattr(layer, "metadata", None)
    d = meta.get(CLASSES_KEY) if isinstance(meta, dict) else None
    if d:
        try:
            return ClassTable.from_dict(d)
        except (ValueError, TypeError):
            pass
    return ClassTable.default(2)


def has_table(layer: Any) -> bool:
    meta = getattr(layer, "metadata", None)
    return isinstance(meta, dict) and bool(meta.get(CLASSES_KEY))


def store(layer: Any, table: ClassTable) -> None:
    layer.metadata[CLASSES_KEY] = table.to_dict()


# --- what the dock shows ----------------------------------------------------------------------
def default_look(table: ClassTable) -> bool:
    """A binary table with the default colours keeps the colours masks always had."""
    return table.binary and table.colors == default_colors(2)


def color_dict(table: ClassTable, sparse: bool) -> dict | None:
    """{label value: colour} for the napari colormap (None: napari's default label colours).

    Dense background (0) stays transparent so that the image shows; sparse unlabelled (0)
    is transparent and sparse background (K) gets the background class colour."""
    if default_look(table):
        return dict(SPARSE_COLORS) if sparse else None
    return {None: "transparent", **table.color_dict(sparse), 0: "transparent"}


def apply_colors(layer: Any, table: ClassTable, sparse: bool) -> None:
    """Set the layer's napari colormap from the table."""
    from napari.utils.colormaps import DirectLabelColormap, label_colormap

    colors = color_dict(table, sparse)
    layer.colormap = (
        label_colormap(49, 0.5, background_value=0)  # napari's default for a new Labels layer
        if colors is None
        else DirectLabelColormap(color_dict=colors)
    )


def shown_colors(table: ClassTable, sparse: bool) -> tuple[str, ...]:
    """The colour napari shows for each class ('#rrggbb'; the swatches of the class list)."""
    if not default_look(table):
        return table.colors
    if sparse:
        return ("#00ffff", "#ff00ff")  # SPARSE_COLORS: 2 = background cyan, 1 = magenta
    from napari.utils.colormaps import label_colormap

    rgb = label_colormap(49, 0.5, background_value=0).map(np.array([1]))[0][:3]
    return (table.colors[0], "#" + "".join(f"{round(float(v) * 255):02x}" for v in rgb))


def item_text(table: ClassTable, c: int, sparse: bool) -> str:
    """'3: matrix (background)' - the label value that paints class ``c`` and its name."""
    return f"{table.value(c, sparse)}: {table.names[c]}" + (" (background)" if c == 0 else "")


def hint(table: ClassTable, sparse: bool) -> str:
    if table.names == default_names(2):
        return SPARSE_HINT if sparse else DENSE_HINT
    if sparse:
        return f"Sparse scribbles: {table.describe(True)} (ignored)."
    paint = ", ".join(f"{c} = {table.names[c]}" for c in range(1, table.k))
    bg = table.names[0] + ("" if table.names[0] == "background" else " (background)")
    return f"Dense mask: paint {paint}; unpainted = {bg}. Paint whole slices."


def sparse_label(table: ClassTable) -> str:
    if table.names == default_names(2):
        return SPARSE_LABEL
    return f"Sparse scribbles ({table.k} = {table.names[0]}, 0 = unlabelled)"


# --- edits ------------------------------------------------------------------------------------
def with_class(table: ClassTable, name: str | None = None, color: str | None = None) -> ClassTable:
    """The table with one more class at the end (a free 'class K' name, the next colour)."""
    k = table.k
    if name is None:
        i = k
        while f"class {i}" in table.names:
            i += 1
        name = f"class {i}"
    color = color or PALETTE[k % len(PALETTE)]
    return ClassTable((*table.names, name), (*table.colors, color))


def renamed(table: ClassTable, c: int, name: str) -> ClassTable:
    names = list(table.names)
    names[c] = name
    return ClassTable(tuple(names), table.colors)


def recolored(table: ClassTable, c: int, color: str) -> ClassTable:
    colors = list(table.colors)
    colors[c] = color
    return ClassTable(table.names, tuple(colors))


def without_last(table: ClassTable) -> ClassTable:
    return ClassTable(table.names[:-1], table.colors[:-1])


def painted(data: Any, value: int) -> int:
    """How many pixels hold ``value``."""
    return int(np.count_nonzero(np.asarray(data) == value))


def move_value(layer: Any, old: int, new: int) -> int:
    """Relabel ``old`` -> ``new`` in the layer's data in place; the number of pixels moved."""
    data = layer.data
    if not isinstance(data, np.ndarray):
        raise InputError(
            f"the mask '{layer.name}' is not an in-memory array: its label {old} cannot be "
            "moved; copy it into a new mask first"
        )
    hit = data == old
    n = int(np.count_nonzero(hit))
    if n:
        data[hit] = new
        layer.refresh()
    return n


def add_class(layer: Any, sparse: bool) -> tuple[ClassTable, str]:
    """Add a class to the layer's table: (new table, what was done)."""
    table = table_of(layer)
    new = with_class(table)
    msg = f"Added class {new.value(new.k - 1, sparse)}: {new.names[-1]}."
    if sparse:  # background scribbles move from K to K + 1 (no pixel can hold K + 1 yet)
        top = painted(layer.data, new.k)
        if top:
            raise InputError(
                f"the mask already holds label {new.k} ({top} pixels), which the new class "
                f"would take; labels run 0..{table.k} with {table.k} classes"
            )
        n = move_value(layer, table.k, new.k)
        if n:
            msg += f" Background scribbles ({n} px) moved from label {table.k} to {new.k}."
    store(layer, new)
    return new, msg


def remove_class(layer: Any, c: int, sparse: bool) -> tuple[ClassTable, str]:
    """Remove class ``c`` - the last one, with nothing painted: (new table, what was done)."""
    table = table_of(layer)
    if c == 0:
        raise InputError("the background class cannot be removed")
    if table.binary:
        raise InputError("a segmentation needs at least two classes: nothing was removed")
    value = table.value(c, sparse)
    if c != table.k - 1:
        last = table.k - 1
        raise InputError(
            f"only the last class ({table.value(last, sparse)}: {table.names[last]}) can be "
            f"removed: removing {value} ({table.names[c]}) would renumber the classes after it"
        )
    n = painted(layer.data, value)
    if n:
        raise InputError(
            f"class {value} ({table.names[c]}) has {n} painted pixels: erase them first "
            "(or paint them with another class), then remove the class"
        )
    new = without_last(table)
    msg = f"Removed class {value}: {table.names[c]}."
    if sparse:  # background scribbles move from K to K - 1 (just checked to be free)
        moved = move_value(layer, table.k, new.k)
        if moved:
            msg += f" Background scribbles ({moved} px) moved from label {table.k} to {new.k}."
    store(layer, new)
    return new, msg


__all__ = [
    "CLASSES_KEY",
    "SPARSE_COLORS",
    "add_class",
    "apply_colors",
    "color_dict",
    "has_table",
    "hint",
    "item_text",
    "move_value",
    "painted",
    "recolored",
    "remove_class",
    "renamed",
    "shown_colors",
    "sparse_label",
    "store",
    "table_of",
    "with_class",
    "without_last",
]
