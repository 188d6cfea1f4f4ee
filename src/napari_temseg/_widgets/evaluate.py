"""Evaluate dock: Dice / IoU / precision / recall of a segmentation against ground truth.

K classes (a layer with a class table, e.g. a K-class prediction): per-class scores, mean
IoU with and without background, the confusion matrix, per-slice IoU and class shares,
one table at a time (the "show" box)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from magicgui.widgets import ComboBox, Container, Label, PushButton

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


VIEWS = ("per class", "confusion matrix", "per slice: IoU", "per slice: class shares")


def class_rows(res: dict, view: str) -> tuple[list[str], list[dict]]:
    """(headers, rows) of one view of a multi-class result (``metrics.evaluate_classes``)."""
    names = res["names"]
    if view == "per class":
        heads = ["class", "Dice", "IoU", "precision", "recall", "true %", "predicted %"]
        keys = ["name", "dice", "iou", "precision", "recall", "true_share", "pred_share"]
        scale = [1, 1, 1, 1, 1, 100, 100]
        rows = [
            {h: c[k] * f if f != 1 else c[k] for h, k, f in zip(heads, keys, scale, strict=True)}
            for c in res["overall"]["classes"]
        ]
        return heads, rows
    if view == "confusion matrix":
        heads = ["truth \\ prediction", *names, "unsure"]
        return heads, [
            dict(zip(heads, [n, *row], strict=True))
            for n, row in zip(names, res["confusion"], strict=True)
        ]
    prefix = "iou " if view == "per slice: IoU" else "share "
    heads = ["slice", "mean_iou", "mean_iou_fg"] if prefix == "iou " else ["slice"]
    heads += [prefix + n for n in names]
    return heads, [{k: r[k] for k in heads} for r in res["per_slice"]]


def _fill(table: Any, rows: list[dict], columns: Any = COLUMNS) -> None:
    from qtpy.QtWidgets import QTableWidgetItem

    table.setColumnCount(len(columns))
    table.setRowCount(len(rows))
    for r, row in enumerate(rows):
        for c, key in enumerate(columns):
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
        self.view = ComboBox(label="show", choices=VIEWS, value=VIEWS[0], visible=False)
        self.extend([self.pred, self.truth, self.run_btn, self.summary, self.view])
        self.table = _table()
        add_qwidget(self, self.table)
        self.result: dict | None = None
        self.run_btn.clicked.connect(self._on_run)
        self.view.changed.connect(lambda *_: self._show_classes())
        follow_layers(viewer, self)

    @guarded("Evaluate")
    def _on_run(self, *_: Any) -> None:
        from ..core.evaluation.metrics import evaluate_stack

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
        table = L.classes_of(pred) or L.classes_of(truth)
        multi = table is not None and not table.binary
        self.view.visible = multi
        if multi:
            from ..core.evaluation.metrics import evaluate_classes

            self.result = evaluate_classes(p, t, table.names)
            return self._show_classes()
        self.table.setHorizontalHeaderLabels(["slice", "Dice", "IoU", "Precision", "Recall"])
        self.result = res = evaluate_stack(p, t)
        o = res["overall"]
        self.summary.value = (
            f"Overall: Dice {o['dice']:.3f}, IoU {o['iou']:.3f}, precision "
            f"{o['precision']:.3f}, recall {o['recall']:.3f}"
        )
        _fill(self.table, [{"slice": "all", **o}] + res["per_slice"])

    def _show_classes(self) -> None:
        res = self.result
        if not res or "names" not in res:
            return
        o = res["overall"]
        self.summary.value = (
            f"Overall ({len(res['names'])} classes): mean IoU {o['mean_iou']:.3f}, without "
            f"background {o['mean_iou_fg']:.3f}, pixel accuracy {o['accuracy']:.3f}"
        )
        heads, rows = class_rows(res, self.view.value)
        _fill(self.table, rows, heads)
        self.table.setHorizontalHeaderLabels(heads)
