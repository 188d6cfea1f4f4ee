"""The annotate-where-suggested loop in a real napari window: train, suggest regions, jump
to one, paint it, continue training, and the suggestions refresh without the painted region."""

from __future__ import annotations

import numpy as np
import pytest
from _widget_helpers import (
    blobs,
    errors_since,
    gui_marks,
    n_records,
    plugin_docks,
    set_train_form,
    wait_job,
)

pytestmark = gui_marks()


def _paint_region(mask, truth, r):
    """The simulated annotator: every pixel of the square, foreground 1, background 2."""
    ys, xs = slice(r.y, r.y + r.height), slice(r.x, r.x + r.width)
    data = mask.data
    data[r.z, ys, xs] = np.where(truth[r.z, ys, xs] > 0, 1, 2)
    mask.data = data


def test_suggest_jump_paint_continue(make_napari_viewer, qtbot):
    with plugin_docks(make_napari_viewer, ("Annotate", "Train")) as (viewer, annotate, train):
        img, truth = blobs((3, 96, 96), seed=4)
        image = viewer.add_image(img, name="em", scale=(2.0, 1.0, 1.0))
        annotate.image.value = image
        annotate.new_mask.clicked()
        mask = viewer.layers["em mask"]
        annotate.sparse.value = True
        panel = annotate.suggest
        start = n_records()
        panel.suggest_btn.clicked()  # no model yet: one clear message, nothing else
        assert any("no model trained" in e for e in errors_since(start))

        ys, xs = np.nonzero(truth[0])  # a square around a blob of slice 0
        y0, x0 = (int(np.clip(v.mean() - 24, 0, 48)) // 32 * 32 for v in (ys[:40], xs[:40]))
        first = type("R", (), dict(z=0, y=y0, x=x0, height=64, width=64))
        _paint_region(mask, truth, first)
        set_train_form(train, image_layers=[image], mask_layer=mask, epochs=1, patch=48)
        start = n_records()
        train.start_btn.clicked()
        wait_job(qtbot, train)
        assert errors_since(start) == [] and train.model is not None

        panel.form.set_value("size", 32)
        panel.form.set_value("n", 3)
        panel.suggest_btn.clicked()
        wait_job(qtbot, panel)
        assert errors_since(start) == []
        regions = panel.result.regions
        assert len(regions) == 3
        painted = {(0, y0 + y, x0 + x) for y in (0, 32) for x in (0, 32)}  # the first square
        assert not {(r.z, r.y, r.x) for r in regions} & painted
        shapes = viewer.layers["em suggestions"]
        assert len(shapes.data) == 3 and list(shapes.features["rank"]) == [1, 2, 3]
        assert shapes.data[0][0][0] == regions[0].z * 2.0  # world coordinates (z scale 2)
        assert "em uncertainty (regions)" in viewer.layers

        panel.next_btn.clicked()
        r = regions[0]
        assert viewer.dims.point[0] == pytest.approx(r.z * 2.0)
        assert viewer.scene.camera.center[-2:] == pytest.approx((r.y + 16, r.x + 16))
        assert viewer.layers.selection.active is mask and mask.mode == "paint"
        assert "Region 1 of 3" in panel.info.value

        _paint_region(mask, truth, r)
        train.continue_btn.clicked()
        wait_job(qtbot, train)
        qtbot.waitUntil(lambda: panel.result is not None and panel.result.regions != regions)
        wait_job(qtbot, panel)  # refreshed after training, the painted square left out
        assert errors_since(start) == []
        again = {(q.z, q.y, q.x) for q in panel.result.regions}
        assert (r.z, r.y, r.x) not in again and not again & painted
        assert len(viewer.layers["em suggestions"].data) == 3
