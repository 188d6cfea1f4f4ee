"""Sensor3D from the docks: two detector layers, 3-slice windows, Train ->
Predict, the model file round trip through the Predict dock."""

from __future__ import annotations

import numpy as np
from _widget_helpers import (
    blobs,
    errors_since,
    gui_marks,
    n_records,
    plugin_docks,
    run_predict,
    set_train_form,
    wait_job,
)

pytestmark = gui_marks()


def test_sensor3d_trains_and_predicts_from_the_docks(make_napari_viewer, qtbot, tmp_path):
    img, mask = blobs((5, 64, 64), seed=3, channels=2)
    with plugin_docks(make_napari_viewer, ("Train", "Predict")) as (viewer, train, predict):
        ice = viewer.add_image(img[:, 0], name="ice")
        tld = viewer.add_image(img[:, 1], name="tld")
        labels = viewer.add_labels(mask, name="mask")
        set_train_form(train, image_layers=[ice, tld], mask_layer=labels, epochs=1, patch=32)
        train.arch.value = "sensor3d"
        train.context.value = 1
        train.steps_per_epoch.value = 3
        start = n_records()
        train.start_btn.clicked()
        wait_job(qtbot, train)
        assert errors_since(start) == [], train.status.value
        model = train.model
        assert model.model_cfg.arch == "sensor3d" and model.model_cfg.slices == 3
        assert model.channels == 2 and model.context == 1

        run_predict(qtbot, predict, [ice, tld], tile=64)
        assert errors_since(start) == [], predict.status.value
        prob = np.asarray(viewer.layers["ice probability"].data)
        assert prob.shape == mask.shape and np.isfinite(prob).all()

        path = train.save_to(tmp_path / "s3d")  # the file, loaded back in the Predict dock
        predict.source.value = "model file"
        predict.path.value = str(path)
        assert "sensor3d" in predict.model_info.value
        predict.run_btn.clicked()
        wait_job(qtbot, predict)
        assert errors_since(start) == []
        again = np.asarray(viewer.layers["ice probability"].data)
        np.testing.assert_allclose(again, prob, atol=1e-4)
