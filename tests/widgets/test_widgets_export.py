"""The Predict dock's "Export model..." button in a real napari window."""

from __future__ import annotations

import numpy as np
import pytest
from _widget_helpers import errors_since, n_records, plugin_docks

pytestmark = [
    pytest.mark.gui,
    pytest.mark.filterwarnings("error:Private attribute access:FutureWarning"),
]


def test_export_the_chosen_model_file(make_napari_viewer, tmp_path, monkeypatch):
    from qtpy.QtWidgets import QFileDialog

    from napari_temseg.core.config.model import ModelConfig
    from napari_temseg.core.config.train import TrainConfig
    from napari_temseg.core.progress import run
    from napari_temseg.core.training.loop import fit

    img = np.random.default_rng(0).random((2, 64, 64)).astype(np.float32)
    cfg = TrainConfig(epochs=1, seconds=None, steps_per_epoch=1, patch=64, device="cpu")
    model = run(fit(img, (img > 0.5).astype(np.uint8), train_cfg=cfg,
                    model_cfg=ModelConfig(base_width=4)))  # fmt: skip
    model.save(tmp_path / "m.safetensors")
    with plugin_docks(make_napari_viewer, ("Predict",)) as (viewer, w):
        start = n_records()
        w.export_btn.clicked()  # no model yet: one line, no crash
        assert any("no model trained in this session" in e for e in errors_since(start))
        w.source.value = "model file"
        w.path.value = str(tmp_path / "m.safetensors")
        monkeypatch.setattr(
            QFileDialog, "getSaveFileName", lambda *a, **k: (str(tmp_path / "m.pt"), "")
        )
        start = n_records()
        w.export_btn.clicked()
        assert errors_since(start) == [] and (tmp_path / "m.pt").stat().st_size > 1000
        assert "Exported to" in w.status.value
