"""Annotate dock: New mask, sparse switch, annotated-slice count, bad input."""

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
    _, w = viewer.window.add_plugin_dock_widget("napari-temseg", "Annotate")
    return viewer, w


def test_new_mask_shape_transform_and_paint_mode(dock):
    viewer, w = dock
    img, _ = blobs((5, 80, 96))
    layer = viewer.add_image(img, name="em", scale=(2.0, 0.5, 0.5), translate=(10, 0, 3))
    w.image.value = layer
    w.new_mask.clicked()
    mask = viewer.layers["em mask"]
    assert mask.data.shape == (5, 80, 96) and mask.data.dtype == np.uint8
    assert tuple(mask.scale) == (2.0, 0.5, 0.5) and tuple(mask.translate) == (10, 0, 3)
    assert mask.mode == "paint" and mask.selected_label == 1
    assert 2 <= mask.brush_size <= 60
    assert viewer.layers.selection.active is mask
    # clicking again keeps the painting (no new, no wiped layer)
    mask.data[2, 5:10, 5:10] = 1
    w.new_mask.clicked()
    assert [la.name for la in viewer.layers].count("em mask") == 1
    assert mask.data.sum() == 25


def test_new_mask_drops_channel_axis(dock):
    viewer, w = dock
    img, _ = blobs((3, 48, 48), channels=2)  # (Z, C, Y, X)
    layer = viewer.add_image(img, name="two", scale=(3, 1, 0.5, 0.5))
    w.image.value = layer
    w.new_mask.clicked()
    mask = viewer.layers["two mask"]
    assert mask.data.shape == (3, 48, 48)
    assert tuple(mask.scale) == (3, 0.5, 0.5)


def test_user_layer_with_same_name_is_not_touched(dock):
    viewer, w = dock
    img, gt = blobs((3, 48, 48))
    layer = viewer.add_image(img, name="em")
    user = viewer.add_labels(gt.copy(), name="em mask")
    w.image.value = layer
    w.new_mask.clicked()
    assert np.array_equal(user.data, gt)
    ours = viewer.layers.selection.active
    assert ours is not user and ours.name != "em mask" and ours.data.sum() == 0


def test_annotated_count_follows_painting(dock, qtbot):
    viewer, w = dock
    img, _ = blobs((6, 48, 48))
    w.image.value = viewer.add_image(img, name="em")
    w.new_mask.clicked()
    mask = viewer.layers["em mask"]
    assert w.annotated() == []
    viewer.dims.set_current_step(0, 3)
    mask.paint((3, 20, 20), 1)  # the same path as a brush stroke (emits a paint event)
    qtbot.waitUntil(lambda: w.annotated() == [3], timeout=2000)
    assert "1 of 6" in w.status.value and "3" in w.status.value
    mask.data = np.ones_like(mask.data)  # data replaced -> full recount
    assert w.annotated() == list(range(6))


def test_sparse_switch_sets_colormap_and_metadata(dock):
    viewer, w = dock
    img, _ = blobs((2, 32, 32))
    w.image.value = viewer.add_image(img, name="em")
    w.new_mask.clicked()
    mask = viewer.layers["em mask"]
    w.sparse.value = True
    assert mask.metadata["napari_temseg"]["sparse"] is True
    assert "background" in w.hint.value
    c1, c2 = mask.colormap.map(np.array([1, 2]))
    assert not np.allclose(c1, c2)


def test_no_image_layer_gives_clear_message(dock):
    viewer, w = dock
    start = n_records()
    w.new_mask.clicked()
    msgs = errors_since(start)
    assert msgs and "no image layer" in msgs[-1]
    assert len(viewer.layers) == 0


def test_2d_image_gets_2d_mask(dock):
    viewer, w = dock
    img, _ = blobs((1, 40, 50))
    w.image.value = viewer.add_image(img[0], name="tem")
    w.new_mask.clicked()
    assert viewer.layers["tem mask"].data.shape == (40, 50)
    assert "0 of 1" in w.status.value


def test_removing_a_mask_in_paint_mode_leaves_paint_mode_first(make_napari_viewer):
    """napari crashed (Mesa llvmpipe segfault at the next redraw) when a Labels layer was
    removed with its brush overlay on while training ran; the docks switch such a layer to
    pan_zoom before napari removes it (the crash: widgets/test_layer_removal_crash.py)."""
    viewer = make_napari_viewer()
    viewer.window.add_plugin_dock_widget("napari-temseg", "Train")
    viewer.window.add_plugin_dock_widget("napari-temseg", "Predict")  # a second dock: one hook
    mask = viewer.add_labels(np.zeros((2, 16, 16), np.uint8), name="mask")
    other = viewer.add_labels(np.zeros((2, 16, 16), np.uint8), name="other")
    mask.mode, other.mode = "paint", "fill"
    seen = []
    viewer.layers.events.removed.connect(lambda e: seen.append((e.value.name, e.value.mode)))
    viewer.layers.remove(mask)
    viewer.layers.remove(other)
    assert seen == [("mask", "pan_zoom"), ("other", "pan_zoom")]
