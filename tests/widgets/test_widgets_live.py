"""Live preview: strokes retrain the pixel classifier and redraw the preview, no button."""

from __future__ import annotations

import numpy as np
import pytest
from _widget_helpers import blobs

pytestmark = [
    pytest.mark.gui,
    pytest.mark.filterwarnings("error:Private attribute access:FutureWarning"),
]


@pytest.fixture
def dock(make_napari_viewer):
    viewer = make_napari_viewer()
    _, w = viewer.window.add_plugin_dock_widget("napari-temseg", "Annotate")
    return viewer, w


def _stroke(mask, z, y, xs, label):
    """A horizontal brush stroke, one paint event per step as napari's brush emits them."""
    for x in xs:
        mask.paint((z, y, x) if mask.ndim == 3 else (y, x), label)


def test_strokes_update_the_live_preview_without_a_button(dock, qtbot):
    viewer, w = dock
    img, truth = blobs((2, 96, 96))
    w.image.value = viewer.add_image(img, name="em")
    w.new_mask.clicked()
    w.sparse.value = True  # scribbles: 1 foreground, 2 background
    mask = viewer.layers["em mask"]
    mask.brush_size = 3
    w.live.toggle.value = True
    fg = np.argwhere(truth[0] > 0)
    bg = np.argwhere(truth[0] == 0)
    y, x = fg[len(fg) // 2]
    _stroke(mask, 0, y, range(max(0, x - 2), x + 3), 1)
    y, x = bg[len(bg) // 3]
    _stroke(mask, 0, y, range(max(0, x - 2), x + 3), 2)
    qtbot.waitUntil(lambda: "em live preview" in viewer.layers, timeout=60000)
    first = np.array(viewer.layers["em live preview"].data, copy=True)
    assert "px painted" in w.live.status.value
    # more strokes: the preview changes by itself, and agrees better with the truth
    for y, x in fg[:: max(1, len(fg) // 6)][:6]:
        _stroke(mask, 0, y, range(max(0, x - 1), x + 2), 1)
    for y, x in bg[:: max(1, len(bg) // 6)][:6]:
        _stroke(mask, 0, y, range(max(0, x - 1), x + 2), 2)
    qtbot.waitUntil(
        lambda: not np.array_equal(viewer.layers["em live preview"].data, first), timeout=60000
    )
    qtbot.waitUntil(lambda: not w.live.busy(), timeout=60000)
    prob = np.asarray(viewer.layers["em live preview"].data)[0]
    assert ((prob > 0.5) == (truth[0] > 0)).mean() > 0.8
    # the classifier becomes the session's model: the Predict dock can use it
    w.live.use.clicked()
    from napari_temseg._widgets import session

    model = session.get_model(viewer)
    assert model is not None and model.model_cfg.arch == "pixel-classifier"


def test_one_class_painted_says_what_to_paint(dock, qtbot):
    viewer, w = dock
    img, truth = blobs((1, 64, 64))
    w.image.value = viewer.add_image(img[0], name="em")
    w.new_mask.clicked()
    w.sparse.value = True
    w.live.toggle.value = True
    mask = viewer.layers["em mask"]
    _stroke(mask, 0, 30, range(20, 25), 1)
    qtbot.waitUntil(lambda: "two classes" in w.live.status.value, timeout=30000)
    assert "em live preview" not in viewer.layers
