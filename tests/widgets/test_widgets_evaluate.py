"""Evaluate dock: metrics table against core.evaluation.metrics, bad input."""

from __future__ import annotations

import numpy as np
import pytest
from _widget_helpers import blobs, errors_since, n_records

# docks are opened the way napari does (npe2 + PublicOnlyProxy viewer); private API use fails
pytestmark = [
    pytest.mark.gui,
    pytest.mark.filterwarnings("error:Private attribute access:FutureWarning"),
]


@pytest.fixture
def dock(make_napari_viewer):
    viewer = make_napari_viewer()
    _, w = viewer.window.add_plugin_dock_widget("napari-temseg", "Evaluate")
    return viewer, w


def test_table_matches_hand_counts(dock):
    viewer, w = dock
    _, gt = blobs((3, 40, 40), seed=1)
    pred = gt.copy()
    pred[1] = 0  # slice 1 missed entirely
    pred[2, :5, :] = 1  # false positives on slice 2
    w.pred.value = viewer.add_labels(pred, name="pred")
    w.truth.value = viewer.add_labels(gt, name="gt")
    w.run_btn.clicked()
    # hand-computed overall Dice
    tp = int(np.sum((pred > 0) & (gt > 0)))
    fp = int(np.sum((pred > 0) & (gt == 0)))
    fn = int(np.sum((pred == 0) & (gt > 0)))
    dice = 2 * tp / (2 * tp + fp + fn)
    assert w.result["overall"]["dice"] == pytest.approx(dice)
    assert w.table.rowCount() == 4  # overall + 3 slices
    assert w.table.item(0, 0).text() == "all"
    assert float(w.table.item(0, 1).text()) == pytest.approx(dice, abs=1e-3)
    assert float(w.table.item(1, 1).text()) == pytest.approx(1.0)  # slice 0 perfect
    assert float(w.table.item(2, 1).text()) == pytest.approx(0.0)  # slice 1 missed
    assert 0 < float(w.table.item(3, 3).text()) < 1  # slice 2 precision hurt by FPs
    assert f"{dice:.3f}" in w.summary.value


@pytest.mark.parametrize("case", ["missing", "same", "shape"])
def test_bad_input_is_a_clear_message(dock, case):
    viewer, w = dock
    _, gt = blobs((2, 32, 32))
    start = n_records()
    if case != "missing":
        a = viewer.add_labels(gt, name="a")
        b = a if case == "same" else viewer.add_labels(gt[:, :16], name="b")
        w.pred.value, w.truth.value = a, b
    w.run_btn.clicked()
    msgs = errors_since(start)
    want = {
        "missing": "choose two labels layers",
        "same": "same layer",
        "shape": "differ in shape",
    }[case]
    assert msgs and want in msgs[-1], msgs
    assert w.result is None
