"""Annotate dock: make a mask layer for an image, edit its classes, paint, switch to sparse
scribbles, see progress.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
from magicgui.widgets import CheckBox, Container, Label, PushButton

from ..adapters import classes as C
from ..adapters import layers as L
from ..core.errors import InputError
from . import annotate_parts as P
from .common import channel_axis_value, follow_layers, guarded, layer_combo
from .live import LivePanel
from .suggest import SuggestPanel

if TYPE_CHECKING:
    import napari

FULL_SCAN_VOXELS = 64_000_000  # above this, a paint stroke re-checks only the slices it touched


def brush_size(shape_yx: tuple[int, int]) -> int:
    """A brush about 1/40 of the smaller image side (2..60 px)."""
    return int(np.clip(round(min(shape_yx) / 40), 2, 60))


def touched_slices(item: Any) -> set[int] | None:
    """Z indices a paint event changed (None when they cannot be told: recount all)."""
    zs: set[int] = set()
    try:
        for atom in item:
            if hasattr(atom, "slice_key"):
                s = atom.slice_key[0]
                zs.update(range(s.start or 0, s.stop))
            else:
                zs.update(np.unique(np.asarray(atom[0][0])).tolist())
    except (TypeError, IndexError, AttributeError):
        return None
    return zs


def summarize(zs: list[int], limit: int = 12) -> str:
    text = ", ".join(str(z) for z in zs[:limit])
    return text + (f", ... (+{len(zs) - limit})" if len(zs) > limit else "")


class AnnotateWidget(Container):
    """Make ``<image> mask``, edit its class table and keep track of annotated slices."""

    def __init__(self, viewer: napari.viewer.Viewer):  # napari passes the viewer (by annotation)
        super().__init__(labels=True)
        self.viewer = viewer
        self.image = layer_combo(viewer, "image", "image")
        self.channel_axis = P.channel_combo()
        self.new_mask = PushButton(text="New mask")
        self.mask = layer_combo(viewer, "labels", "mask", nullable=True)
        self.classes, self.class_list, buttons = P.class_editor()
        self.add_class, self.rename_class, self.color_class, self.remove_class = buttons
        self.sparse = CheckBox(text=C.SPARSE_LABEL)
        self.hint = Label(value=C.DENSE_HINT)
        self.status = Label(value="No mask yet.")
        self.hint.native.setWordWrap(True)
        self.status.native.setWordWrap(True)
        self.extend([self.image, self.channel_axis, self.new_mask, self.mask, self.classes])
        self.extend([self.sparse, self.hint, self.status])
        self.live = LivePanel(viewer, self)
        self.append(self.live)
        self.suggest = SuggestPanel(viewer, self)
        self.append(self.suggest)
        self.table = C.table_of(None)  # the class table shown (the watched mask's)
        self._painted: dict[int, bool] = {}
        self._watched: Any = None
        self._pending: set[int] | None = set()  # slices to re-check; None = all
        self._timer = P.single_shot(30, self._flush)
        self.new_mask.clicked.connect(self._on_new_mask)
        self.sparse.changed.connect(self._on_sparse)
        self.mask.changed.connect(self._watch)
        self.class_list.currentRowChanged.connect(self._on_row)
        slots = (self._on_add, self._on_rename, self._on_color, self._on_remove)
        for button, slot in zip(buttons, slots, strict=True):
            button.clicked.connect(slot)
        viewer.dims.events.current_step.connect(self._on_step)
        follow_layers(viewer, self)
        self._watch()
        self._show_classes()

    # --- actions ------------------------------------------------------------------------------
    @guarded("New mask")
    def _on_new_mask(self, *_: Any) -> None:
        image = self.image.value
        if image is None:
            raise InputError(
                "no image layer: open an image or load a sample "
                "(File > Open Sample > napari-temseg) first"
            )
        ca = channel_axis_value(self.channel_axis.value)
        layer = L.make_mask(self.viewer, image, ca)
        if not C.has_table(layer):
            C.store(layer, C.table_of(layer))  # the binary default
        shape_yx = L.layer_data(layer).shape[-2:]
        self.reset_choices()
        self.mask.value = layer
        self.viewer.layers.selection.active = layer
        layer.brush_size = brush_size(shape_yx)
        layer.selected_label = 1
        layer.mode = "paint"
        self._on_sparse()

    def _on_sparse(self, *_: Any) -> None:
        sparse, layer = bool(self.sparse.value), self.mask.value
        c = self.class_list.currentRow()
        if layer is not None:
            if L.is_ours(layer):
                layer.metadata[L.TAG]["sparse"] = sparse
            C.apply_colors(layer, self.table, sparse)
            layer.selected_label = self.table.value(c if 0 <= c < self.table.k else 1, sparse)
        self._show_classes()

    # --- the class table ----------------------------------------------------------------------
    def _target(self, need_row: bool = True) -> tuple[Any, int]:
        layer, c = self.mask.value, self.class_list.currentRow()
        if layer is None:
            raise InputError("no mask layer: pick one or click 'New mask' first")
        if need_row and not 0 <= c < self.table.k:
            raise InputError("select a class in the list first")
        return layer, c

    def _changed(self, layer: Any, select: int, msg: str = "", table: Any = None) -> None:
        if table is not None:
            C.store(layer, table)
        self.table = C.table_of(layer)
        sparse = bool(self.sparse.value)
        C.apply_colors(layer, self.table, sparse)
        layer.selected_label = self.table.value(select, sparse)
        self._show_classes()
        if msg:
            from napari.utils.notifications import show_info

            show_info(msg)

    @guarded("Add class")
    def _on_add(self, *_: Any) -> None:
        layer, _c = self._target(need_row=False)
        table, msg = C.add_class(layer, bool(self.sparse.value))
        self._changed(layer, table.k - 1, msg)

    @guarded("Rename class")
    def _on_rename(self, *_: Any) -> None:
        layer, c = self._target()
        from qtpy.QtWidgets import QInputDialog

        old = self.table.names[c]
        name, ok = QInputDialog.getText(self.native, "Rename class", "Class name:", text=old)
        if ok and name.strip():
            self._changed(layer, c, table=C.renamed(self.table, c, name.strip()))

    @guarded("Class colour")
    def _on_color(self, *_: Any) -> None:
        layer, c = self._target()
        from qtpy.QtGui import QColor
        from qtpy.QtWidgets import QColorDialog

        color = QColorDialog.getColor(QColor(self.table.colors[c]), self.native, "Class colour")
        if color.isValid():
            self._changed(layer, c, table=C.recolored(self.table, c, color.name()))

    @guarded("Remove class")
    def _on_remove(self, *_: Any) -> None:
        layer, c = self._target()
        table, msg = C.remove_class(layer, c, bool(self.sparse.value))
        self._changed(layer, min(c, table.k - 1), msg)

    def _show_classes(self) -> None:
        table, sparse = self.table, bool(self.sparse.value)
        was = self.class_list.blockSignals(True)  # no label change while the rows are rebuilt
        self.class_list.clear()
        for c, color in enumerate(C.shown_colors(table, sparse)):
            self.class_list.addItem(P.class_item(color, C.item_text(table, c, sparse)))
        self.class_list.blockSignals(was)
        self.hint.value = C.hint(table, sparse)
        self.sparse.text = C.sparse_label(table)
        self._follow_label()

    def _follow_label(self, *_: Any) -> None:
        """Select the class that napari's label box paints (none: a value outside the table)."""
        layer, row = self._watched, -1
        if layer is not None:
            c = self.table.class_of(int(layer.selected_label), bool(self.sparse.value))
            row = c if c is not None and 0 <= c < self.table.k else -1
        self.class_list.setCurrentRow(row)  # -> _on_row: the same label again, a no-op

    def _on_row(self, row: int) -> None:
        layer = self._watched
        if layer is None or not 0 <= row < self.table.k:
            return
        layer.selected_label = self.table.value(row, bool(self.sparse.value))

    # --- annotated-slice bookkeeping ----------------------------------------------------------
    def _watch(self, *_: Any) -> None:
        old, new = self._watched, self.mask.value
        if old is new:
            return
        if old is not None:
            old.events.paint.disconnect(self._on_paint)
            old.events.data.disconnect(self._recount)
            old.events.selected_label.disconnect(self._follow_label)
        self._watched = new
        self.table = C.table_of(new)
        if new is not None:
            new.events.paint.connect(self._on_paint)
            new.events.data.connect(self._recount)
            new.events.selected_label.connect(self._follow_label)
            meta = new.metadata.get(L.TAG) if L.is_ours(new) else None
            if isinstance(meta, dict) and "sparse" in meta:
                with self.sparse.changed.blocked():  # the mask's own colours and label stay
                    self.sparse.value = bool(meta["sparse"])
        self._show_classes()
        self._recount()

    def _recount(self, *_: Any) -> None:
        layer = self._watched
        self._painted = {}
        if layer is not None:
            data = L.layer_data(layer)
            stack = data if data.ndim == 3 else data[None]
            self._painted = {z: bool(np.any(np.asarray(stack[z]))) for z in range(stack.shape[0])}
        self._show()

    def _update(self, zs: Any) -> None:
        layer = self._watched
        data = L.layer_data(layer)
        stack = data if data.ndim == 3 else data[None]
        for z in zs:
            if 0 <= z < stack.shape[0]:
                self._painted[z] = bool(np.any(np.asarray(stack[z])))
        self._show()

    def _on_paint(self, event: Any) -> None:
        # napari emits the paint event before it writes the data: check a moment later
        zs = touched_slices(event.value) if self._watched.ndim == 3 else {0}
        if zs is None and self._watched.data.size > FULL_SCAN_VOXELS:
            zs = {self._current_mask_z()}
        if zs is None or self._pending is None:
            self._pending = None
        else:
            self._pending |= zs
        self._timer.start()

    def _flush(self) -> None:
        pending, self._pending = self._pending, set()
        if self._watched is None:
            return
        self._recount() if pending is None else self._update(pending)
        self.live.stroke()

    def _on_step(self, *_: Any) -> None:  # cheap: the slice now in view (catches undo / redo)
        if self._watched is not None and self._watched.ndim == 3:
            self._update({self._current_mask_z()})

    def _current_mask_z(self) -> int:
        return L.current_z(self._watched, self.viewer)

    def annotated(self) -> list[int]:
        return sorted(z for z, v in self._painted.items() if v)

    def _show(self) -> None:
        if self._watched is None:
            self.status.value = "No mask yet: pick an image and click 'New mask'."
            return
        zs, n = self.annotated(), len(self._painted)
        self.status.value = f"Annotated slices: {len(zs)} of {n}" + (
            f": {summarize(zs)}" if zs else " - paint label 1 on the structures you want to segment"
        )
