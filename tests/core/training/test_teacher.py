"""The U-Net taught by the pixel classifier: the teacher's answer reaches the patches,
its scores the history, and the better of the two models is the one kept."""

import numpy as np
import pytest

pytest.importorskip("sklearn")
torch = pytest.importorskip("torch")

from napari_temseg.core.config.model import InputSpec, ModelConfig  # noqa: E402
from napari_temseg.core.config.train import TrainConfig  # noqa: E402
from napari_temseg.core.data.synthetic import make_phases  # noqa: E402
from napari_temseg.core.data.volume import as_mask, as_volume  # noqa: E402
from napari_temseg.core.errors import ConfigError  # noqa: E402
from napari_temseg.core.progress import run  # noqa: E402
from napari_temseg.core.training import fit  # noqa: E402
from napari_temseg.core.training.sampling import PatchSampler, split_regions  # noqa: E402
from napari_temseg.core.training.teacher import comparison, confidence, teaching  # noqa: E402

TINY = ModelConfig(arch="small-unet", base_width=4)


@pytest.fixture(scope="module")
def phases():
    return make_phases((2, 96, 96), channels=1, seed=5)


def _dots(lab, k, every=9):
    """Sparse labels on a coarse grid of dots of both slices (K = background)."""
    m = np.zeros_like(lab)
    dots = lab[:, ::every, ::every]
    m[:, ::every, ::every] = np.where(dots == 0, k, dots)
    return m


def test_teaching_is_on_for_scribbles_only():
    assert teaching(TrainConfig(sparse=True)) and not teaching(TrainConfig())
    assert teaching(TrainConfig(teacher="pixel-classifier"))
    assert not teaching(TrainConfig(sparse=True, teacher="none"))
    with pytest.raises(ConfigError, match="teacher must be one of"):
        TrainConfig(teacher="forest")


def test_confidence_is_zero_when_undecided_and_one_when_sure():
    p = np.array([[1 / 3, 1.0, 0.5], [1 / 3, 0.0, 0.5], [1 / 3, 0.0, 0.0]])
    np.testing.assert_allclose(confidence(p), [0.0, 1.0, 0.25], atol=1e-6)


def test_taught_patches_label_unpainted_pixels_with_the_teachers_answer():
    img = np.zeros((1, 1, 32, 32), np.float32)
    mask = np.zeros((1, 32, 32), np.uint8)
    mask[0, 4, 4], mask[0, 20, 20] = 1, 3  # one stroke pixel of class 1, one of background
    vol, m = as_volume(img, channel_axis=1), as_mask(mask, as_volume(img, channel_axis=1))
    regions, _ = split_regions([(0, 0)], [(32, 32)], 0.0, 0)
    spec = InputSpec(channels=1, context=0, norm_lo=[0.0], norm_hi=[1.0])
    s = PatchSampler([vol], [m], regions, spec, 32, True, 0.0, 0, k=3)
    lab = np.full((32, 32), 2, np.uint8)
    conf = np.full((32, 32), 0.8, np.float16)
    s.teach([(lab, conf)], weight=0.5)
    _, y, w = s.crop(0, 0, 0)
    assert y[4, 4] == 1 and w[4, 4] == 1  # painted: the stroke, full weight
    assert y[20, 20] == 0 and w[20, 20] == 1
    assert y[0, 0] == 2 and w[0, 0] == pytest.approx(
        0.4, abs=1e-3
    )  # unpainted: the teacher, weighted


def _fit(img, mask, **cfg):
    kw = {"device": "cpu", "sparse": True, "epochs": 2, "steps_per_epoch": 3, "seconds": None}
    cfg = TrainConfig(patch=64, batch=2, val_fraction=0.5, **{**kw, **cfg})
    seen: list = []
    model = run(fit(img, mask, train_cfg=cfg, model_cfg=TINY, channel_axis=1), seen.append)
    return model, seen


def test_fit_teaches_the_unet_and_records_both_scores(phases):
    img, lab = phases
    k = int(lab.max()) + 1
    model, progress = _fit(img, _dots(lab, k), keep_better=False)
    stages = [p.stage for p in progress]
    assert "features" in stages and "teach" in stages
    assert stages.index("teach") < stages.index("train")  # the answer comes first
    assert model.model_cfg.arch == "small-unet"
    assert all("teacher_val_dice" in h for h in model.history)
    assert 0 < model.history[-1]["teacher_val_dice"] <= 1


def test_strokes_alone_and_dense_masks_have_no_teacher(phases):
    img, lab = phases
    k = int(lab.max()) + 1
    model, progress = _fit(img, _dots(lab, k), teacher="none")
    assert "teach" not in {p.stage for p in progress}
    assert "teacher_val_dice" not in model.history[-1]
    model, progress = _fit(img, lab, sparse=False)
    assert "teach" not in {p.stage for p in progress}


def test_the_better_model_is_kept_and_named(phases):
    img, lab = phases
    k = int(lab.max()) + 1
    # one step of a U-Net cannot beat the trees: the classifier is kept, and the last
    # Progress says so
    model, progress = _fit(img, _dots(lab, k), epochs=1, steps_per_epoch=1)
    assert model.model_cfg.arch == "pixel-classifier"
    last = progress[-1]
    assert "pixel classifier scored higher" in last.warning
    assert last.extra["kept"] == last.message == comparison(model)
    assert model.history[-1]["unet_val_dice"] < model.history[-1]["val_dice"]


def test_a_unet_that_wins_is_kept_and_named():
    hist = [{"val_dice": 0.7, "teacher_val_dice": 0.6}, {"val_dice": 0.8, "teacher_val_dice": 0.6}]
    unet = type("M", (), {"history": hist})()
    assert comparison(unet) == (
        "the U-Net (validation Dice 0.800) is kept over its teacher, the pixel classifier (0.600)"
    )
    assert comparison(type("M", (), {"history": [{"val_dice": 0.8}]})()) is None


def test_image_priors_find_the_images_class_shares_not_the_strokes():
    from napari_temseg.core.training.teacher import answer, image_priors

    rng = np.random.default_rng(0)
    truth = (rng.random((64, 64)) < 0.2).astype(int)  # 20 % class 1
    # a classifier trained on 50/50 strokes: calibrated for equal shares, a bit unsure
    p1 = np.where(truth == 1, 0.8, 0.35) + rng.normal(0, 0.05, truth.shape)
    p = np.stack([1 - p1, p1]).clip(0.01, 0.99)
    pi = image_priors([p], np.array([0.5, 0.5]))
    assert 0.1 < pi[1] < 0.3  # near the image's 20 %, far from the strokes' 50 %
    lab, _ = answer(p, pi / 0.5)
    assert lab.mean() <= (p.argmax(0)).mean()  # re-weighted: no more foreground than before
