"""Console: the pixel classifier through api.train / api.predict, and live mode's core."""

import numpy as np

from napari_temseg import api
from napari_temseg.core.config.classes import ClassTable
from napari_temseg.core.data.synthetic import make_phases
from napari_temseg.core.progress import run
from napari_temseg.core.training.live import LiveSession


def _dots(lab, k, every=4):
    m = np.zeros_like(lab)
    d = lab[0, ::every, ::every]
    m[0, ::every, ::every] = np.where(d == 0, k, d)
    return m


def test_api_trains_and_predicts_a_pixel_classifier():
    img, lab = make_phases((2, 96, 96), channels=2, seed=2)
    k = int(lab.max()) + 1
    model = api.train(
        img,
        _dots(lab, k),
        channel_axis=1,
        arch="pixel-classifier",
        sparse=True,
        device="cpu",
        verbose=False,
    )
    assert model.model_cfg.arch == "pixel-classifier"
    prob, labels = api.predict(model, img, channel_axis=1, verbose=False)
    assert prob.shape == (2, k, 96, 96)
    assert (np.asarray(labels)[1] == lab[1]).mean() > 0.8


def test_live_session_answers_each_update_and_gives_a_model():
    img, lab = make_phases((2, 96, 96), channels=2, seed=4)
    k = int(lab.max()) + 1
    live = LiveSession(img, ClassTable.default(k), sparse=True, channel_axis=1)
    first = run(live.update({0: _dots(lab, k, every=12)[0]}, 0))
    more = run(live.update({0: _dots(lab, k, every=4)[0]}, 0))
    assert first.prob.shape == (k, 96, 96) and more.pixels > first.pixels
    assert (more.labels == lab[0]).mean() >= (first.labels == lab[0]).mean() - 0.02
    other = run(live.update({0: _dots(lab, k, every=4)[0]}, 1))  # another slice in view
    assert (other.labels == lab[1]).mean() > 0.8
    model = live.model()
    assert model.model_cfg.arch == "pixel-classifier" and model.classes.k == k


def test_api_trains_a_taught_unet_and_says_which_model_it_returns(capsys):
    img, lab = make_phases((2, 96, 96), channels=1, seed=6)
    k = int(lab.max()) + 1
    opts = dict(channel_axis=1, sparse=True, device="cpu", patch=64, batch=2, seconds=None)
    opts.update(epochs=2, steps_per_epoch=2, base_width=4, val_fraction=0.5)
    unet = api.train(img, _dots(lab, k, 6), teacher="pixel-classifier", keep_better=False, **opts)
    assert unet.model_cfg.arch == "small-unet" and "teacher_val_dice" in unet.history[-1]
    capsys.readouterr()
    kept = api.train(img, _dots(lab, k, 6), teacher="pixel-classifier", **opts)
    out = capsys.readouterr().out
    assert kept.model_cfg.arch in ("small-unet", "pixel-classifier")
    assert ("is kept over its teacher" in out) == (kept.model_cfg.arch == "small-unet")
    assert ("it is the model kept" in out) == (kept.model_cfg.arch == "pixel-classifier")
