"""The Predict dock runs a bioimage.io model package in a real napari
window: a .zip written by our export, chosen as 'model file', predicts an image into the
probability / labels layers; a damaged .zip is one line in the dock, never a crash."""

from __future__ import annotations

import numpy as np
import pytest
from _widget_helpers import (
    errors_since,
    gui_marks,
    n_records,
    plugin_docks,
    run_predict,
    tiny_model,
)

pytest.importorskip("bioimageio.spec", reason="pip install bioimageio.core")
pytest.importorskip("onnxruntime", reason="pip install onnx onnxruntime")  # export writes ONNX

pytestmark = gui_marks()


def test_predict_dock_runs_a_package_and_names_a_damaged_one(make_napari_viewer, qtbot, tmp_path):
    from napari_temseg.core.interop.formats import export

    package = export(tiny_model(channels=1), tmp_path / "tiny.zip")  # validated spec-0.5 zip
    (tmp_path / "damaged.zip").write_bytes(package.read_bytes()[: package.stat().st_size // 2])
    img = np.random.default_rng(0).random((2, 48, 64)).astype(np.float32)
    with plugin_docks(make_napari_viewer, ("Predict",)) as (viewer, w):
        image = viewer.add_image(img, name="em")
        start = n_records()
        w.source.value = "model file"  # the dock's chooser: FileEdit -> session.chosen_model
        w.path.value = str(package)
        assert "bioimage.io package" in w.model_info.value  # loaded once, described
        run_predict(qtbot, w, [image], tile=64)
        assert errors_since(start) == []
        assert w.status.value.startswith("Done: 2 slice(s)")
        prob = viewer.layers["em probability"].data
        labels = viewer.layers["em prediction"].data
        assert prob.shape == labels.shape == img.shape
        assert float(prob.min()) >= 0.0 and float(prob.max()) <= 1.0 and prob.std() > 0

        w.path.value = str(tmp_path / "damaged.zip")  # described in the dock, not raised
        info = w.model_info.value
        assert "'damaged.zip' is not a readable bioimage.io package" in info
        assert "\n" not in info
        before = len(viewer.layers)
        w.run_btn.clicked()  # Predict with it: one notification line, no new layers
        errors = errors_since(start)
        assert len(errors) == 1 and "\n" not in errors[0]
        assert errors[0].startswith("Predict: 'damaged.zip' is not a readable bioimage.io")
        assert len(viewer.layers) == before and not w.job.running
