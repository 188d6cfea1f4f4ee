"""Which classes count in K-class training: validation (and so the kept model), the
per-class scores, patch sampling and class weights. Painted background (scribbles) counts
like any class; dense background does not; a class absent from validation is not scored."""

import json

import numpy as np
import pytest

from napari_temseg.core.data.volume import as_mask, as_volume
from napari_temseg.core.training.objectives import (
    class_weights,
    loss_fn,
    per_class_text,
    scored_classes,
    validate,
)
from napari_temseg.core.training.sampling import PatchSampler, split_regions


class Oracle:
    """A 'network' whose logits say: the class written in input channel 0."""

    def __init__(self, k: int):
        self.k = k

    def __call__(self, x):
        import torch.nn.functional as F

        return F.one_hot(x[:, 0].long(), self.k).permute(0, 3, 1, 2).float() * 10

    def eval(self):
        return self

    def train(self):
        return self


def _val(pred: np.ndarray, truth: np.ndarray):
    """(x, y, w) validation patches whose oracle prediction is ``pred``."""
    x = pred[None, None].astype(np.float32)
    return x, truth[None, None].astype(np.float32), np.ones_like(x)


def _truth() -> np.ndarray:
    """Classes 0, 1, 2 in bands; class 3 nowhere in the validation data."""
    t = np.zeros((8, 8), np.int64)
    t[3:6], t[6:] = 1, 2
    return t


def _score(pred, truth, sparse, k=4):
    import torch

    return validate(Oracle(k), _val(pred, truth), torch.device("cpu"), False, k, sparse)[0]


def test_scored_classes_is_the_one_rule():
    assert scored_classes(4, background=True) == [0, 1, 2, 3]
    assert scored_classes(4, background=False) == [1, 2, 3]
    assert scored_classes(4, background=True, present={0, 2}) == [0, 2]
    assert scored_classes(4, background=False, present={0, 2}) == [2]


def test_sparse_validation_scores_painted_background():
    truth = _truth()
    keeps = truth.copy()
    forgets = np.where(truth == 0, 3, truth)  # background predicted as the absent class 3
    good, bad = _score(keeps, truth, sparse=True), _score(forgets, truth, sparse=True)
    assert good["val_dice"] == pytest.approx(1.0)
    # forgetting the painted background costs a third of the score (0, 1, 1 over 3 classes)
    assert bad["val_dice"] == pytest.approx(2 / 3, abs=1e-4)
    assert bad["val_iou"] == pytest.approx(2 / 3, abs=1e-4)
    assert bad["val_dice_classes"][:3] == [0.0, 1.0, 1.0]


def test_dense_validation_still_leaves_background_out():
    truth = _truth()
    forgets = np.where(truth == 0, 3, truth)
    rec = _score(forgets, truth, sparse=False)
    assert rec["val_dice"] == pytest.approx(1.0)  # classes 1 and 2 are perfect
    assert rec["val_dice_classes"][0] == 0.0  # reported, not averaged


def test_a_background_that_is_a_phase_counts_in_dense_masks_too():
    from napari_temseg.core.config.train import TrainConfig
    from napari_temseg.core.training.objectives import background_counts

    assert background_counts(TrainConfig(sparse=True))
    assert not background_counts(TrainConfig()) and not background_counts(None)
    assert background_counts(TrainConfig(background_phase=True))
    truth = _truth()
    forgets = np.where(truth == 0, 3, truth)
    rec = _score(forgets, truth, sparse=True)  # validate(..., background=True)
    assert rec["val_dice"] == pytest.approx(2 / 3, abs=1e-4)
    dense = np.zeros((96, 96), np.uint8)  # a rare matrix corner in a dense mask
    dense[:, 8:] = 1
    dense[50:, :] = 2
    img = np.zeros((96, 96), np.float32)
    for background, want in ((False, [1, 2]), (True, [0, 1, 2])):
        vol = as_volume(img)
        from napari_temseg.core.config.model import InputSpec

        spec = InputSpec(channels=1, norm_lo=(0.0,), norm_hi=(1.0,))
        regions = split_regions([(0, 0)], [img.shape], 0, 0)[0]
        s = PatchSampler(
            [vol],
            [as_mask(dense, vol)],
            regions,
            spec,
            16,
            False,
            1.0,
            0,
            k=3,
            background=background,
        )
        assert s.fg_classes == want  # classes whose pixels centre oversampled patches


@pytest.mark.parametrize("sparse", [True, False])
def test_absent_class_is_none_and_out_of_the_mean(sparse):
    truth = _truth()
    rec = _score(truth.copy(), truth, sparse)  # class 3: neither true nor predicted
    assert rec["val_dice_classes"][3] is None and rec["val_iou_classes"][3] is None
    assert rec["val_dice"] == pytest.approx(1.0)
    assert '"val_dice_classes": [1.0, 1.0, 1.0, null]' in json.dumps(rec)
    # predicted where it is absent: still no score of its own, the false positives cost the
    # classes they were taken from
    pred = truth.copy()
    pred[6:, :4] = 3
    rec = _score(pred, truth, sparse)
    assert rec["val_dice_classes"][3] is None
    assert rec["val_dice"] < 1.0


def test_binary_validation_record_is_unchanged():
    import torch

    class Binary(Oracle):
        def __call__(self, x):
            return (x[:, :1] * 2 - 1) * 10  # one logit: foreground where channel 0 is 1

    truth = (_truth() > 0).astype(np.int64)
    pred = truth.copy()
    pred[0, :4] = 1  # 4 false positives
    rec, _ = validate(Binary(2), _val(pred, truth), torch.device("cpu"), False, 2, True)
    assert rec == {"val_dice": pytest.approx(80 / 84), "val_iou": pytest.approx(40 / 44)}


def test_per_class_text_shows_a_missing_score_as_a_dash():
    names = ("matrix", "pores", "grains")
    assert per_class_text(names, [0.5, None, 0.25]) == "matrix 0.500, pores -, grains 0.250"
    assert per_class_text(names, [0.5, 0.75], [1, 2], 2) == "pores 0.75, grains -"


# --- sampling and loss ------------------------------------------------------------------------


def _scribbles(size=96, k=3):
    """Long strokes of classes 1 and 2, a few pixels of painted background (label K)."""
    img = np.random.default_rng(0).random((size, size)).astype(np.float32)
    scrib = np.zeros((size, size), np.uint8)
    scrib[10:12, 5:90], scrib[50:52, 5:90] = 1, 2
    scrib[85, 80:84] = k  # rare background strokes, far from the others
    return img, scrib


def _sampler(img, scrib, sparse, k, fg=1.0):
    from napari_temseg.core.config.model import InputSpec

    vol = as_volume(img)
    spec = InputSpec(channels=1, norm_lo=(0.0,), norm_hi=(1.0,))
    regions = split_regions([(0, 0)], [img.shape], 0, 0)[0]
    return PatchSampler([vol], [as_mask(scrib, vol)], regions, spec, 16, sparse, fg, 0, k=k)


def test_sparse_k_class_sampler_draws_background_centred_patches():
    img, scrib = _scribbles()
    s = _sampler(img, scrib, sparse=True, k=3)
    assert sorted(s.fg_classes) == [0, 1, 2]
    x, y, w = s.sample(60)
    # a 16 px patch holds background strokes only near (85, 80..83): about a third of them
    with_bg = int(((y == 0) & (w > 0)).reshape(60, -1).any(1).sum())
    assert with_bg >= 10, with_bg


def test_dense_k_class_sampler_does_not_oversample_background():
    img, scrib = _scribbles()
    dense = np.where(scrib == 3, 0, scrib)
    assert sorted(_sampler(img, dense, sparse=False, k=3).fg_classes) == [1, 2]


def test_binary_sparse_sampler_oversamples_foreground_only():
    img, scrib = _scribbles()
    binary = np.where(scrib == 3, 2, np.where(scrib == 2, 0, scrib))  # 1 fg, 2 bg
    s = _sampler(img, binary, sparse=True, k=2)
    assert list(s.class_points) == [1]


def test_balanced_weights_count_painted_background_like_any_class():
    import torch

    img, scrib = _scribbles()
    pixels = _sampler(img, scrib, sparse=True, k=3).class_pixels()
    assert pixels.tolist() == [4, 170, 170]  # label K is class 0
    w = class_weights(pixels, "balanced")
    assert w[0] > w[1] == w[2]  # the rarest painted class weighs most
    # two pixels, true classes 0 and 1; one of them is predicted as class 2
    y, wt = torch.tensor([[[[0.0, 1.0]]]]), torch.ones(1, 1, 1, 2)
    right, wrong = [5.0, 0.0, 0.0], [0.0, 0.0, 5.0]

    def logits(bg, fg):
        fg = fg[1:2] + fg[:1] + fg[2:]  # 'right' for class 1
        return torch.tensor([bg, fg]).T.reshape(1, 3, 1, 2)

    plain, balanced = loss_fn("bce", 3), loss_fn("bce", 3, w)
    miss_bg, miss_fg = logits(wrong, right), logits(right, wrong)
    assert float(plain(miss_bg, y, wt)) == pytest.approx(float(plain(miss_fg, y, wt)))
    assert float(balanced(miss_bg, y, wt)) > 1.5 * float(balanced(miss_fg, y, wt))


def test_fit_on_k_class_scribbles_keeps_the_model_by_all_painted_classes():
    from napari_temseg.core.config.train import TrainConfig
    from napari_temseg.core.progress import run
    from napari_temseg.core.training.loop import fit

    rng = np.random.default_rng(1)
    img = rng.random((2, 48, 48)).astype(np.float32)
    scrib = np.zeros((2, 48, 48), np.uint8)
    scrib[:, 5:8, 4:44], scrib[:, 20:23, 4:44], scrib[:, 35:38, 4:44] = 1, 2, 3
    img[scrib == 1] += 1.0
    cfg = TrainConfig(
        patch=48, batch=2, epochs=2, seconds=None, steps_per_epoch=2, sparse=True, device="cpu"
    )
    model = run(fit(img, scrib, train_cfg=cfg))
    for rec in model.history:
        scores = rec["val_dice_classes"]
        assert rec["val_dice"] == pytest.approx(np.mean(scores), abs=1e-3), rec  # 0 included
