"""Evaluate dock: Dice / IoU / precision / recall of a segmentation against ground truth."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from magicgui.widgets import Container, Label, PushButton

from ..adapters import layers as L
from ..core.errors import InputError
from .common import add_qwidget, follow_layers, guarded, layer_combo

if TYPE_CHECKING:
    import napari

COLUMNS = ("slice", "dice", "iou", "precision", "recall")


def _table():
    from qtpy.QtWidgets import QAbstractItemView, QTableWidget

    t = QTableWidget(0, len(COLUMNS))
    t.setHorizontalHeaderLabels(["slice", "Dice", "IoU", "Precision", "Recall"])
    t.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
    t.verticalHeader().setVisible(False)
    t.setMinimumHeight(160)
    return t


def _fill(table: Any, rows: list[dict]) -> None:
    from qtpy.QtWidgets import QTableWidgetItem

    table.setRowCount(len(rows))
    for r, row in enumerate(rows):
        for c, key in enumerate(COLUMNS):
            v = row[key]
            table.setItem(
                r, c, QTableWidgetItem(str(v) if isinstance(v, (int, str)) else f"{v:.3f}")
            )
    table.resizeColumnsToContents()


def _binary_view(layer: Any) -> Any:
    """Labels are compared as foreground (> 0); sparse background label 2 would count as
    foreground, so a layer that this plugin knows to be sparse scribbles is refused."""
    meta = layer.metadata.get(L.TAG) if L.is_ours(layer) else None
    if isinstance(meta, dict) and meta.get("sparse"):
        raise InputError(
            f"'{layer.name}' holds sparse scribbles (2 = background), not a full "
            "segmentation: choose a dense ground-truth layer"
        )
    return L.layer_data(layer)


class EvaluateWidget(Container):
    """Compare a predicted labels layer with a ground-truth labels layer."""

    def __init__(self, viewer: napari.viewer.Viewer):  # napari passes the viewer (by annotation)
        super().__init__(labels=True)
        self.viewer = viewer
        self.pred = layer_combo(viewer, "labels", "segmentation")
        self.truth = layer_combo(viewer, "labels", "ground truth")
        self.run_btn = PushButton(text="Evaluate")
        self.summary = Label(value="Pick a segmentation and its ground truth, then Evaluate.")
        self.summary.native.setWordWrap(True)
        self.extend([self.pred, self.truth, self.run_btn, self.summary])
        self.table = _table()
        add_qwidget(self, self.table)
        self.result: dict | None = None
        self.run_btn.clicked.connect(self._on_run)
        follow_layers(viewer, self)

    @guarded("Evaluate")
    def _on_run(self, *_: Any) -> None:
        from ..core.metrics import evaluate_stack

        pred, truth = self.pred.value, self.truth.value
        if pred is None or truth is None:
            raise InputError("choose two labels layers: the segmentation and the ground truth")
        if pred is truth:
            raise InputError("segmentation and ground truth are the same layer: pick the other one")
        p, t = _binary_view(pred), _binary_view(truth)
        if tuple(p.shape) != tuple(t.shape):
            raise InputError(
                f"'{pred.name}' {tuple(p.shape)} and '{truth.name}' {tuple(t.shape)} "
                "differ in shape: compare layers made from the same image"
            )
        self.result = res = evaluate_stack(p, t)
        o = res["overall"]
        self.summary.value = (
            f"Overall: Dice {o['dice']:.3f}, IoU {o['iou']:.3f}, precision "
            f"{o['precision']:.3f}, recall {o['recall']:.3f}"
        )
        _fill(self.table, [{"slice": "all", **o}] + res["per_slice"])
