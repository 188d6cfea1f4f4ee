"""Annotate dock: make a mask layer for an image, paint, switch to sparse scribbles,
see progress.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
from magicgui.widgets import CheckBox, Container, Label, PushButton

from ..adapters import layers as L
from ..core.errors import InputError
from .common import CHANNEL_AXIS_CHOICES, channel_axis_value, follow_layers, guarded, layer_combo

if TYPE_CHECKING:
    import napari

DENSE_HINT = "Dense mask: paint label 1 = foreground; unpainted = background. Paint whole slices."
SPARSE_HINT = (
    "Sparse scribbles: label 1 = foreground, label 2 = background, "
    "0 = unlabelled (ignored). Switch with the label box or the - / = keys."
)
SPARSE_COLORS = {0: "transparent", 1: "magenta", 2: "cyan", None: "transparent"}
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
    """Make ``<image> mask`` and keep track of which slices are annotated."""

    def __init__(self, viewer: napari.viewer.Viewer):  # napari passes the viewer (by annotation)
        super().__init__(labels=True)
        self.viewer = viewer
        self.image = layer_combo(viewer, "image", "image")
        self.channel_axis = _channel_combo()
        self.new_mask = PushButton(text="New mask")
        self.mask = layer_combo(viewer, "labels", "mask", nullable=True)
        self.sparse = CheckBox(text="Sparse scribbles (1 = foreground, 2 = background)")
        self.hint = Label(value=DENSE_HINT)
        self.status = Label(value="No mask yet.")
        self.hint.native.setWordWrap(True)
        self.status.native.setWordWrap(True)
        self.extend(
            [
                self.image,
                self.channel_axis,
                self.new_mask,
                self.mask,
                self.sparse,
                self.hint,
                self.status,
            ]
        )
        self._painted: dict[int, bool] = {}
        self._watched: Any = None
        self._pending: set[int] | None = set()  # slices to re-check; None = all
        self._timer = _single_shot(30, self._flush)
        self.new_mask.clicked.connect(self._on_new_mask)
        self.sparse.changed.connect(self._on_sparse)
        self.mask.changed.connect(self._watch)
        viewer.dims.events.current_step.connect(self._on_step)
        follow_layers(viewer, self)
        self._watch()

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
        shape_yx = L.layer_data(layer).shape[-2:]
        self.reset_choices()
        self.mask.value = layer
        self.viewer.layers.selection.active = layer
        layer.brush_size = brush_size(shape_yx)
        layer.selected_label = 1
        layer.mode = "paint"
        self._on_sparse()

    def _on_sparse(self, *_: Any) -> None:
        sparse = bool(self.sparse.value)
        self.hint.value = SPARSE_HINT if sparse else DENSE_HINT
        layer = self.mask.value
        if layer is None:
            return
        if L.is_ours(layer):
            layer.metadata[L.TAG]["sparse"] = sparse
        if sparse:
            from napari.utils.colormaps import DirectLabelColormap

            layer.colormap = DirectLabelColormap(color_dict=SPARSE_COLORS)
        layer.selected_label = 1

    # --- annotated-slice bookkeeping ----------------------------------------------------------
    def _watch(self, *_: Any) -> None:
        old, new = self._watched, self.mask.value
        if old is new:
            return
        if old is not None:
            old.events.paint.disconnect(self._on_paint)
            old.events.data.disconnect(self._recount)
        self._watched = new
        if new is not None:
            new.events.paint.connect(self._on_paint)
            new.events.data.connect(self._recount)
            meta = new.metadata.get(L.TAG) if L.is_ours(new) else None
            if isinstance(meta, dict) and "sparse" in meta:
                self.sparse.value = bool(meta["sparse"])
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


def _single_shot(ms: int, slot: Any) -> Any:
    from qtpy.QtCore import QTimer

    t = QTimer()
    t.setSingleShot(True)
    t.setInterval(ms)
    t.timeout.connect(slot)
    return t


def _channel_combo():
    from magicgui.widgets import ComboBox

    return ComboBox(
        label="channel axis",
        choices=CHANNEL_AXIS_CHOICES,
        value="auto",
        tooltip="Which axis of the image holds channels (detectors). 'auto': none for "
        "3D stacks, guessed for 4D. Several layers can also be used as channels.",
    )
