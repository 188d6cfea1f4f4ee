"""The Measure dock in a real napari window: table in the layer's units, sorting,
a row takes the view to its object, histogram, features, Save CSV."""

from __future__ import annotations

import numpy as np
import pytest
from _widget_helpers import errors_since, n_records, plugin_docks

pytestmark = [
    pytest.mark.gui,
    pytest.mark.filterwarnings("error:Private attribute access:FutureWarning"),
]


def test_measure_sort_go_to_object_features_and_save(make_napari_viewer, tmp_path, monkeypatch):
    from qtpy.QtCore import Qt
    from qtpy.QtWidgets import QFileDialog

    lab = np.zeros((3, 60, 80), np.uint32)
    lab[0, 5:15, 5:15] = 1  # 100 px
    lab[2, 30:50, 40:70] = 2  # 600 px, on slice 2
    img = np.zeros(lab.shape, np.float32)
    img[lab == 2] = 0.75
    with plugin_docks(make_napari_viewer, ("Measure",)) as (viewer, w):
        image = viewer.add_image(img, name="em", scale=(40, 2.5, 2.5))
        layer = viewer.add_labels(lab, name="objects", scale=(40, 2.5, 2.5), units="nm")
        w.reset_choices()
        w.labels.value, w.images.value = layer, [image]
        start = n_records()
        w.run_btn.clicked()
        assert errors_since(start) == []
        assert "2 object(s)" in w.status.value and "nm" in w.status.value
        heads = [w.table.horizontalHeaderItem(c).text() for c in range(w.table.columnCount())]
        assert "area_nm2" in heads and "mean_intensity_ch0" in heads
        area = heads.index("area_nm2")
        w.table.sortItems(area, Qt.SortOrder.DescendingOrder)
        assert float(w.table.item(0, area).text()) == pytest.approx(600 * 6.25)
        w.table.selectRow(0)  # the big object: slice 2, centred
        assert viewer.dims.point[0] == pytest.approx(2 * 40)
        camera = viewer.scene.camera if hasattr(viewer, "scene") else viewer.camera
        assert tuple(camera.center[-2:]) == pytest.approx((39.5 * 2.5, 54.5 * 2.5))
        assert layer.selected_label == 2
        assert list(layer.features["index"]) == [1, 2]  # instance ids: the layer's features
        assert w.hist.figure.axes and w.hist.figure.axes[0].patches  # a histogram was drawn
        monkeypatch.setattr(
            QFileDialog, "getSaveFileName", lambda *a, **k: (str(tmp_path / "o.csv"), "")
        )
        w.save_btn.clicked()
        text = (tmp_path / "o.csv").read_text().splitlines()
        assert len(text) == 3 and "area_nm2" in text[0]


def test_measure_status_names_the_units_of_a_layer_without_units(make_napari_viewer):
    """A layer with a scale but no units said "sizes in None (layer scale)"."""
    lab = np.zeros((40, 50), np.uint32)
    lab[5:15, 5:15] = 1
    with plugin_docks(make_napari_viewer, ("Measure",)) as (viewer, w):
        scaled = viewer.add_labels(lab, name="scaled", scale=(2.5, 2.5))
        plain = viewer.add_labels(lab, name="plain")
        w.reset_choices()
        for layer, says in (
            (scaled, "sizes in layer-scale units, no unit set"),
            (plain, "sizes in px (no pixel size"),
        ):
            w.labels.value = layer
            w.run_btn.clicked()
            assert "None" not in w.status.value and says in w.status.value
            heads = [w.table.horizontalHeaderItem(c).text() for c in range(w.table.columnCount())]
            assert "area_px2" in heads  # the columns say px: the status agrees
        area = heads.index("area_px2")
        assert float(w.table.item(0, area).text()) == pytest.approx(100)  # plain: pixels
