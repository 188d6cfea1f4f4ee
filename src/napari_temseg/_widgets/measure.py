"""Measure dock: the objects of a Labels layer in physical units - a sortable table (a row
takes the view to its object), a size histogram, the layer's ``features``, "Save CSV"."""

from __future__ import annotations

import contextlib
from typing import TYPE_CHECKING, Any

import numpy as np
from magicgui.widgets import Container, Label, PushButton, Select

from ..adapters.measure import layer_unit, measure_layers
from .common import add_qwidget, compact, follow_layers, guarded, layer_choices, layer_combo

if TYPE_CHECKING:
    import napari

SHOWN = (
    "label",
    "slice",
    "class",
    "area",
    "equivalent_diameter",
    "eccentricity",
    "solidity",
    "mean_intensity",
)


def _table():
    from qtpy.QtWidgets import QAbstractItemView, QTableWidget

    t = QTableWidget(0, 0)
    t.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
    t.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
    t.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
    t.setSortingEnabled(True)
    t.verticalHeader().setVisible(False)
    t.setMinimumHeight(180)
    return t


def _histogram():
    from matplotlib.backends.backend_qtagg import FigureCanvasQTAgg
    from matplotlib.figure import Figure

    canvas = FigureCanvasQTAgg(Figure(figsize=(3.2, 1.8), dpi=90))
    canvas.setMinimumHeight(150)
    return canvas


def _sizes_in(size: Any, unit: str | None) -> str:
    """What the sizes are in, as the column names say (``core.evaluation.measure``: ``_px`` when the
    layer has no unit, even where its scale multiplies them)."""
    if unit:
        return f"{unit} (layer scale)"
    if size:
        return "layer-scale units, no unit set (columns say px)"
    return "px (no pixel size on the layer)"


class MeasureWidget(Container):
    """Labels (+ images for intensities) -> objects table, histogram, features, CSV."""

    def __init__(self, viewer: napari.viewer.Viewer):
        super().__init__(labels=True)
        self.viewer = viewer
        self.labels = layer_combo(viewer, "labels", "labels")
        self.images = Select(
            label="intensity of", choices=layer_choices(viewer, "image"), allow_multiple=True
        )
        compact(self.images.native, 70)
        self.images.tooltip = "optional: image layer(s) whose mean intensity per object to add"
        self.run_btn = PushButton(text="Measure")
        self.save_btn = PushButton(text="Save CSV...", enabled=False)
        self.status = Label(value="Pick a labels layer (e.g. a prediction), then Measure.")
        self.status.native.setWordWrap(True)
        self.extend([self.labels, self.images, self.run_btn, self.save_btn, self.status])
        self.table, self.hist = _table(), _histogram()
        add_qwidget(self, self.table)
        add_qwidget(self, self.hist)
        self.df: Any = None
        self._layer: Any = None
        self.run_btn.clicked.connect(self._measure)
        self.save_btn.clicked.connect(self._save)
        self.table.itemSelectionChanged.connect(self._go_to_selected)
        follow_layers(viewer, self)

    @guarded("Measuring")
    def _measure(self) -> None:
        layer = self.labels.value
        if layer is None:
            self.status.value = "Pick a labels layer first."
            return
        self.df = measure_layers(layer, list(self.images.value) or None)
        self._layer = layer
        self._fill()
        self._plot()
        self._set_features(layer)
        where = _sizes_in(*layer_unit(layer))
        self.status.value = f"{len(self.df)} object(s) in '{layer.name}'; sizes in {where}."
        self.save_btn.enabled = len(self.df) > 0

    def _columns(self) -> list[str]:
        return [c for c in self.df.columns if c.startswith(SHOWN)]

    def _fill(self) -> None:
        from qtpy.QtCore import Qt
        from qtpy.QtWidgets import QTableWidgetItem

        cols = self._columns()
        t = self.table
        t.setSortingEnabled(False)
        t.setColumnCount(len(cols))
        t.setHorizontalHeaderLabels(cols)
        t.setRowCount(len(self.df))
        for r, row in enumerate(self.df[cols].itertuples(index=False)):
            for c, v in enumerate(row):
                item = QTableWidgetItem()
                item.setData(Qt.ItemDataRole.DisplayRole, v if isinstance(v, str) else float(v))
                item.setData(Qt.ItemDataRole.UserRole, r)  # the row of self.df, sorted or not
                t.setItem(r, c, item)
        t.setSortingEnabled(True)
        t.resizeColumnsToContents()

    def _plot(self) -> None:
        fig = self.hist.figure
        fig.clear()
        ax = fig.add_subplot(111)
        col = next((c for c in self.df.columns if c.startswith("equivalent_diameter")), None)
        if col is not None and len(self.df):
            ax.hist(self.df[col], bins=min(30, max(5, len(self.df) // 3)), color="#4c72b0")
            ax.set_xlabel(col.replace("_", " "))
            ax.set_ylabel("objects")
        fig.tight_layout()
        self.hist.draw_idle()

    def _set_features(self, layer: Any) -> None:
        """The table as the layer's ``features`` when each label id has one row (instance
        labels: other plugins read it there); per-slice or per-class tables stay here."""
        if self.df["label"].is_unique and "class_name" not in self.df:
            feats = self.df.rename(columns={"label": "index"})
            with contextlib.suppress(ValueError, TypeError):  # refused: the dock still has it
                layer.features = feats

    def _go_to_selected(self) -> None:
        rows = self.table.selectionModel().selectedRows() if self.df is not None else []
        if not rows or self._layer is None or self._layer not in self.viewer.layers:
            return
        from qtpy.QtCore import Qt

        r = self.table.item(rows[0].row(), 0).data(Qt.ItemDataRole.UserRole)
        row = self.df.iloc[int(r)]
        self.go_to(int(row["slice"]), int(row["label"]))

    def go_to(self, z: int, label: int) -> None:
        """Show slice ``z`` centred on object ``label`` and select it in the layer."""
        layer = self._layer
        data = np.asarray(layer.data)
        sl = data[z] if data.ndim == 3 else data
        ys, xs = np.nonzero(sl == label)
        if len(ys) == 0:
            return
        point = (z, ys.mean(), xs.mean()) if data.ndim == 3 else (ys.mean(), xs.mean())
        world = layer.data_to_world(point)
        if data.ndim == 3:
            self.viewer.dims.set_point(0, world[0])
        scene = getattr(self.viewer, "scene", None)  # napari >= 0.9: viewer.scene.camera
        camera = scene.camera if scene is not None else self.viewer.camera
        camera.center = tuple(world[-2:])
        if layer.selected_label != label and label > 0:
            layer.selected_label = label

    @guarded("Saving the table")
    def _save(self) -> None:
        from qtpy.QtWidgets import QFileDialog

        path, _ = QFileDialog.getSaveFileName(
            self.native, "Save the objects table", "objects.csv", "CSV (*.csv)"
        )
        if path:
            from ..core.evaluation.measure import write_csv

            write_csv({c: self.df[c].to_numpy() for c in self.df.columns}, path)
            self.status.value = f"Saved {len(self.df)} rows to {path}."


__all__ = ["MeasureWidget"]
