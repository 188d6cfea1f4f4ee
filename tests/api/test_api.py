"""Console API: arrays without napari, layers with a viewer, Ctrl-C, save / load."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading

import numpy as np
import pytest
from _widget_helpers import one_torch_thread

FAST = dict(patch=64, batch=4, augment="flips", device="cpu", arch="small-unet")
# Same bound and reasoning as tests/widgets/test_widgets_train_predict.py::MIN_DICE: constant or
# misaligned predictions stay below ~0.3 on this image (f ~ 0.18 foreground).
MIN_DICE = 0.5


@pytest.fixture(scope="module")
def particles():
    from napari_temseg.core.data.synthetic.particles import make_particles

    return make_particles((192, 192), seed=7)


@pytest.fixture(scope="module")
def trained(particles):
    """One model trained through the API on arrays (100 steps, width 8)."""
    from napari_temseg import api

    threads = one_torch_thread()
    img, mask = particles
    model = api.train(img, mask, epochs=2, base_width=8, **FAST)
    import torch

    torch.set_num_threads(threads)
    return model


def test_api_import_pulls_in_neither_napari_nor_torch():
    code = (
        "import sys, napari_temseg.api; "
        "print(sorted({'napari', 'torch', 'qtpy'} & set(sys.modules)))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_package_reexports_lazily():
    import napari_temseg
    from napari_temseg import api

    assert napari_temseg.train is api.train and napari_temseg.load_model is api.load_model


def test_arrays_train_predict_evaluate(trained, particles, capsys):
    from napari_temseg import api

    img, mask = particles
    assert len(trained.history) == 2
    prob, labels = api.predict(trained, img, tile=128, device="cpu")
    assert prob.shape == labels.shape == img.shape  # 2D in, 2D out
    assert prob.dtype == np.float32 and labels.dtype == np.uint8
    res = api.evaluate(labels, mask)
    assert res["overall"]["dice"] > MIN_DICE
    assert "Dice" in capsys.readouterr().out


def test_save_load_roundtrip(trained, particles, tmp_path):
    from napari_temseg import api

    img, _ = particles
    path = trained.save(tmp_path / "m.safetensors")
    loaded = api.load_model(path)
    p1, _ = api.predict(trained, img, tile=128, device="cpu", verbose=False)
    p2, _ = api.predict(str(path), img, tile=128, device="cpu", verbose=False)
    np.testing.assert_allclose(p1, p2, atol=1e-5)
    assert loaded.input_spec == trained.input_spec


def test_bad_options_are_clear(particles):
    from napari_temseg import api
    from napari_temseg.core.config.choices import ConfigError

    img, mask = particles
    with pytest.raises(ConfigError, match="unknown training option.*'patchsize'"):
        api.train(img, mask, patchsize=64)
    with pytest.raises(ConfigError, match="give epochs or seconds"):
        api.train(img, mask, seconds=None)
    with pytest.raises(ConfigError, match="norm_layer must be 'auto' or one of"):
        api.train(img, mask, norm_layer="layer")


def test_norm_choice(particles):
    from napari_temseg import api

    img, mask = particles
    m = api.train(img, mask, epochs=1, steps_per_epoch=1, norm_layer="batch", verbose=False, **FAST)
    assert m.model_cfg.arch == "small-unet" and m.model_cfg.norm_layer == "batch"
    assert m.train_cfg.seconds is None  # epochs alone: no time budget cuts them short


def test_ctrl_c_stops_training_and_returns_the_model(particles):
    from napari_temseg import api

    img, mask = particles
    threads = one_torch_thread()
    try:
        timer = threading.Timer(3.0, os.kill, (os.getpid(), signal.SIGINT))
        timer.start()
        model = api.train(img, mask, seconds=600, base_width=4, **FAST, verbose=False)
        timer.cancel()
    finally:
        import torch

        torch.set_num_threads(threads)
    assert model.train_cfg.seconds == 600 and model.model_cfg.base_width == 4
    assert model.history and model.history[-1]["elapsed"] < 300
    prob, labels = api.predict(
        model, img, tile=128, device="cpu", verbose=False
    )  # a usable network
    assert prob.shape == labels.shape == img.shape and np.isfinite(prob).all()


@pytest.mark.gui
def test_layers_and_viewer(make_napari_viewer, trained, particles):
    from napari_temseg import api

    img, mask = particles
    viewer = make_napari_viewer()
    layer = viewer.add_image(img, name="img", scale=(0.5, 0.5), translate=(3, 4))
    m = api.new_mask(viewer, layer)
    assert m.name == "img mask" and m.data.shape == img.shape and tuple(m.scale) == (0.5, 0.5)
    m.data[:] = mask
    assert api.new_mask(viewer, layer) is m  # the painting is kept
    prob, labels = api.predict(trained, layer, viewer=viewer, tile=128, device="cpu")
    p_layer, l_layer = viewer.layers["img probability"], viewer.layers["img prediction"]
    assert p_layer.data is prob and l_layer.data is labels
    assert tuple(p_layer.scale) == (0.5, 0.5) and tuple(l_layer.translate) == (3, 4)
    api.predict(trained, layer, viewer=viewer, tile=128, device="cpu", verbose=False)
    assert [la.name for la in viewer.layers].count("img probability") == 1  # replaced, not added
    res = api.evaluate(l_layer, m, verbose=False)
    assert res["overall"]["dice"] > MIN_DICE


@pytest.mark.gui
def test_layer_channels_and_sparse_metadata(make_napari_viewer):
    from napari_temseg import api
    from napari_temseg.core.data.synthetic.fibsem import make_fibsem

    image, mask = make_fibsem((2, 2, 64, 64), seed=1)
    viewer = make_napari_viewer()
    a = viewer.add_image(image[:, 0], name="ICE")
    b = viewer.add_image(image[:, 1], name="TLD")
    m = api.new_mask(viewer, a)
    m.metadata["napari_temseg"]["sparse"] = True  # what the Annotate dock's switch records
    m.data[:] = np.where(mask > 0, 1, 2)
    threads = one_torch_thread()
    try:
        model = api.train(
            [a, b],
            m,
            epochs=1,
            steps_per_epoch=2,
            base_width=4,
            val_fraction=0.0,
            verbose=False,
            **FAST,
        )
    finally:
        import torch

        torch.set_num_threads(threads)
    assert model.channels == 2 and model.train_cfg.sparse is True
    prob, labels = api.predict(model, [a, b], tile=64, device="cpu", verbose=False)
    assert prob.shape == (2, 64, 64)
