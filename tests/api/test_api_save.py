"""The console: the split warning of api.train and model.save's one-line failures."""

import errno

import numpy as np
import pytest

from napari_temseg import api
from napari_temseg.core.data.synthetic.fibsem import make_fibsem

FAST = dict(epochs=1, steps_per_epoch=2, patch=32, base_width=4, seconds=None, device="cpu")


def test_the_console_warns_and_a_failed_save_is_one_line(tmp_path, capsys, monkeypatch):
    from napari_temseg.core.errors import SaveError
    from napari_temseg.core.modelfile import save

    img, _ = make_fibsem(shape=(1, 1, 64, 64), seed=3)
    mask = np.zeros((64, 64), np.uint8)
    mask[10:50, 55:61] = 1  # only in the right band, held out for validation
    model = api.train(img[0, 0], mask, verbose=False, **FAST)
    assert "WARNING: the training part of the data has no painted pixel of 'foreground'" in (
        capsys.readouterr().err
    )
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.setattr("tempfile.tempdir", str(tmp_path))

    def full(tensors, filename, metadata):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(save, "write_file", full)
    with pytest.raises(SaveError, match="the disk is full .*only in memory") as e:
        model.save(tmp_path / "m.safetensors")
    assert "\n" not in str(e.value) and str(tmp_path / "m.safetensors") in str(e.value)
