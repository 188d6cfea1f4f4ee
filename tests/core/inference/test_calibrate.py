"""Instance norm with the stack's statistics at prediction (inference/calibrate.py)."""

import dataclasses

import numpy as np
import pytest

from napari_temseg.core.config.choices import ConfigError
from napari_temseg.core.config.model import ModelConfig
from napari_temseg.core.config.predict import PredictConfig
from napari_temseg.core.config.train import TrainConfig
from napari_temseg.core.data.synthetic.particles import make_particles
from napari_temseg.core.progress import run
from napari_temseg.core.training.loop import fit


@pytest.fixture(scope="module")
def trained():
    img, mask = make_particles((256, 256), seed=0)
    tc = TrainConfig(
        patch=64, batch=4, epochs=2, seconds=None, steps_per_epoch=10, augment="flips", seed=0
    )
    model = run(fit(img, mask, train_cfg=tc, model_cfg=ModelConfig(norm_layer="instance")))
    stack = np.stack([make_particles((320, 352), seed=s)[0] for s in (5, 6, 7)])
    return model, stack


def _predict(model, image, **kw):
    from napari_temseg.core.inference.predict import predict_stack

    slices = kw.pop("slices", None)
    kw.setdefault("norm_stats", "stack")
    kw.setdefault("amp", False)  # fp32: bf16 autocast (CPUs with bf16 units) rounds per batch
    res = run(predict_stack(model, image, PredictConfig(device="cpu", **kw), slices=slices))
    return np.asarray(res.prob[res.slices], np.float32)


def test_stack_statistics_make_the_tile_size_irrelevant(trained):
    """Tile 256 vs 512 on a 640 x 640 image: per-tile statistics disagree (measured 0.86: the
    check can fail), the stack's agree up to blending (0.9998). Tiles much smaller than the
    network's receptive field differ at their borders whatever the statistics (128 vs 512:
    0.975)."""
    from napari_temseg.core.training.precise_bn import tile_agreement

    model, _ = trained
    big = make_particles((640, 640), seed=5)[0]
    per_tile = tile_agreement(model, big, PredictConfig(device="cpu", norm_stats="tile"))
    stack_stats = tile_agreement(model, big, PredictConfig(device="cpu", norm_stats="stack"))
    assert per_tile["label_dice"] < 0.99, per_tile
    assert stack_stats["tiles"] == (256, 512)
    assert stack_stats["label_dice"] >= 0.995 and stack_stats["max_dp"] < 0.05, stack_stats


def test_statistics_do_not_depend_on_the_slices_predicted(trained):
    model, stack = trained
    whole = _predict(model, stack)
    one = _predict(model, stack, slices=[1])
    np.testing.assert_allclose(one[0], whole[1], atol=1e-5)


def test_calibrated_copy_freezes_every_instance_norm_and_leaves_the_model(trained):
    import torch

    from napari_temseg.core.data.volume import as_volume
    from napari_temseg.core.inference import calibrate

    model, stack = trained
    before = {k: v.clone() for k, v in model.net.state_dict().items()}
    training = model.net.training
    tiles = calibrate.stack_tiles(model, as_volume(stack))
    all_covered = len(calibrate.tile_positions((3, 320, 352), 64))
    assert tiles.shape[0] == all_covered == 3 * 5 * 6
    assert tiles.shape[1:] == (1, 64, 64)  # the training patch
    twin = calibrate.calibrated(model.net, tiles)
    assert calibrate.instance_norms(model.net) and not calibrate.instance_norms(twin)
    assert not twin.training and model.net.training == training
    assert all(torch.equal(v, model.net.state_dict()[k]) for k, v in before.items())
    # every norm follows a convolution in the U-Net: all folded into the convolutions
    assert not [m for m in twin.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    x = torch.from_numpy(tiles[:3])
    with torch.no_grad():
        assert not torch.allclose(twin(x), model.net.eval()(x), atol=1e-3)
    model.net.train(training)


def test_frozen_layers_apply_the_pooled_statistics_of_the_calibration_tiles():
    """Conv -> norm -> ReLU -> conv -> norm by hand: each norm uses the mean and (biased)
    variance of all the calibration tiles' pixels together, as they reach it."""
    import torch
    from torch import nn

    from napari_temseg.core.inference import calibrate

    torch.manual_seed(0)
    net = nn.Sequential(
        nn.Conv2d(1, 4, 3, bias=False), nn.GroupNorm(4, 4), nn.ReLU(),
        nn.Conv2d(4, 3, 3), nn.InstanceNorm2d(3, affine=True),
    )  # fmt: skip
    with torch.no_grad():
        for m in (net[1], net[4]):
            m.weight.uniform_(0.5, 2.0)
            m.bias.uniform_(-1.0, 1.0)
    tiles = (torch.rand(5, 1, 12, 12) * torch.arange(1, 6).view(5, 1, 1, 1)).numpy()
    twin = calibrate.calibrated(net, tiles)

    def pooled(x, norm):
        var, mean = torch.var_mean(x, dim=(0, 2, 3), unbiased=False)
        y = (x - mean.view(1, -1, 1, 1)) / torch.sqrt(var.view(1, -1, 1, 1) + norm.eps)
        return y * norm.weight.view(1, -1, 1, 1) + norm.bias.view(1, -1, 1, 1)

    x = torch.from_numpy(tiles)
    with torch.no_grad():
        expected = pooled(net[3](torch.relu(pooled(net[0](x), net[1]))), net[4])
        torch.testing.assert_close(twin(x), expected, atol=1e-5, rtol=1e-4)
        # a new tile is normalised with the same frozen statistics, not its own
        one = x[:1] * 3.0
        assert not torch.allclose(twin(one), net.eval()(one), atol=1e-3)


def test_per_tile_option_is_the_old_behaviour_and_batch_norm_is_untouched(trained):
    from napari_temseg.core.inference import calibrate

    model, stack = trained
    import torch

    a = _predict(model, stack[:1], tile=128, norm_stats="tile")
    b = _predict(model, stack[:1], tile=128)
    assert np.abs(a - b).max() > 1e-3  # the option does something

    bn = torch.nn.Sequential(torch.nn.Conv2d(1, 2, 3), torch.nn.BatchNorm2d(2))
    assert calibrate.calibrated(bn, np.zeros((1, 1, 8, 8), np.float32)) is bn
    with pytest.raises(ConfigError, match="norm_stats"):
        PredictConfig(norm_stats="slice")


def test_positions_are_fixed_and_spread_over_the_stack():
    from napari_temseg.core.inference import calibrate

    p = calibrate.tile_positions((100, 2000, 3000), 256)
    assert p == calibrate.tile_positions((100, 2000, 3000), 256)
    assert len(p) == calibrate.max_tiles(256) == 16 and p[0][0] == 0 and p[-1][0] == 99
    assert len(calibrate.tile_positions((100, 2000, 3000), 512)) == 4  # ~1 Mpix whatever the patch
    assert all(0 <= y <= 2000 - 256 and 0 <= x <= 3000 - 256 for _, y, x in p)
    assert len(calibrate.tile_positions((1, 100, 100), 256)) == 1  # small images: one (padded) tile
    # a small image is covered entirely: every pixel in some calibration tile
    p = calibrate.tile_positions((2, 512, 600), 256)
    assert len(p) == len(calibrate.tile_positions((2, 512, 600), 256)) == 12
    seen = np.zeros((2, 512, 600), bool)
    for z, y, x in p:
        seen[z, y : y + 256, x : x + 256] = True
    assert seen.all()


def test_dask_chunks_share_the_statistics(trained, tmp_path):
    pytest.importorskip("dask")
    import dask.array as da

    from napari_temseg.core.inference.distributed import predict_dask

    model, stack = trained
    res = predict_dask(
        model,
        da.from_array(stack, chunks=(1, -1, -1)),
        tmp_path / "p.zarr",
        PredictConfig(tile=128, norm_stats="stack", amp=False),
    )
    ref = _predict(model, stack, tile=128)
    np.testing.assert_allclose(np.asarray(res.prob[:], np.float32), ref, atol=1e-4)


def test_small_model_forward_matches_on_one_tile(trained):
    """With the stack's statistics measured on the very tile predicted, the result equals
    per-tile instance norm (the calibration is the training-time normalisation)."""
    model, stack = trained
    img = stack[0, :64, :64]
    a = _predict(dataclasses.replace(model), img, tile=64, norm_stats="tile")
    b = _predict(model, img, tile=64)
    np.testing.assert_allclose(a, b, atol=1e-4)


def test_k_class_instance_norm_models_are_tile_invariant_too():
    """A 4-phase, 2-detector model with instance norm (K-class models default to batch norm,
    already invariant): the stack's statistics make tile 256 and 512 agree."""
    from napari_temseg.core.config.classes import ClassTable
    from napari_temseg.core.data.synthetic.phases import make_phases
    from napari_temseg.core.training.precise_bn import tile_agreement

    img, lab = make_phases((2, 192, 192), seed=0)
    tc = TrainConfig(
        patch=64, batch=4, epochs=1, seconds=None, steps_per_epoch=15, augment="flips", seed=0
    )
    mc = ModelConfig(classes=4, norm_layer="instance")
    model = run(fit(img, lab, train_cfg=tc, model_cfg=mc, classes=ClassTable.default(4)))
    test = make_phases((1, 600, 600), seed=3)[0]
    r = tile_agreement(model, test, PredictConfig(device="cpu", norm_stats="stack"))
    assert r["label_dice"] >= 0.995, r


def test_odd_sized_images_agree_too(trained):
    """700 x 700 px (not a multiple of 16): tiles of 256 and 512 start on the network's
    stride, so both tilings pool the same pixels together: label Dice 0.9999, max |dp|
    0.003 (unaligned starts: 0.977 / 0.22 here, 0.990 on EMPS)."""
    from napari_temseg.core.training.precise_bn import tile_agreement

    model, _ = trained
    img = make_particles((700, 700), seed=8)[0]
    r = tile_agreement(model, img, PredictConfig(device="cpu", norm_stats="stack"))
    assert r["label_dice"] >= 0.995 and r["max_dp"] < 0.05, r


def test_the_training_preview_keeps_per_tile_statistics(monkeypatch):
    """The live preview (every few seconds) must not pay the stack's calibration."""
    from napari_temseg.core.inference import calibrate

    def no(*_a, **_k):
        raise AssertionError("the preview calibrated")

    monkeypatch.setattr(calibrate, "calibrated", no)
    img, mask = make_particles((96, 96), seed=1)
    tc = TrainConfig(patch=32, batch=2, epochs=1, seconds=None, steps_per_epoch=3, seed=0)
    gen = fit(img, mask, train_cfg=tc, preview=lambda: (img, 0), preview_every=0.0)
    previews = []
    try:
        while True:
            p = next(gen)
            previews += [p.preview] if p.preview is not None else []
    except StopIteration:
        pass
    assert previews and previews[0].shape == (96, 96)


def _dice(a, b) -> float:
    a, b = np.asarray(a) > 0, np.asarray(b) > 0
    return float(2 * (a & b).sum() / max(1, a.sum() + b.sum()))


def test_the_default_local_statistics_are_tile_invariant(trained):
    """The default (``norm_stats='local'``: slices flattened, then the stack's statistics)
    gives the same labels with tile 256 and 512."""
    from napari_temseg.core.training.precise_bn import tile_agreement

    model, _ = trained
    assert PredictConfig().norm_stats == "local"
    big = make_particles((640, 640), seed=5)[0]
    r = tile_agreement(model, big, PredictConfig(device="cpu"))
    assert r["label_dice"] >= 0.995 and r["max_dp"] < 0.05, r


def test_local_statistics_follow_a_gain_across_the_slice(trained):
    """The same specimen with a detector gain falling from 1.4 to 0.6 across the slice:
    'local' keeps its labels (measured: Dice 0.969 to the evenly lit prediction, 0.684 to
    the truth) where one set of statistics per stack cannot (0.818, 0.551)."""
    model, _ = trained
    img, truth = make_particles((384, 512), seed=9)
    xx = np.mgrid[0:384, 0:512][1] / 511.0
    lit = img.astype(np.float32) * (1.0 + 0.8 * (0.5 - xx))
    got = {}
    for stats in ("local", "stack"):
        even = _predict(model, img, tile=128, norm_stats=stats) >= 0.5
        uneven = _predict(model, lit, tile=128, norm_stats=stats) >= 0.5
        got[stats] = (_dice(even, uneven), _dice(uneven[0], truth))
    assert got["local"][0] >= 0.95 and got["stack"][0] < 0.9, got
    assert got["local"][1] >= got["stack"][1] + 0.05, got


def test_dask_chunks_flatten_each_slice_alike(trained, tmp_path):
    pytest.importorskip("dask")
    import dask.array as da

    from napari_temseg.core.inference.distributed import predict_dask

    model, stack = trained
    lit = stack.astype(np.float32) * np.linspace(1.3, 0.7, stack.shape[1])[None, :, None]
    res = predict_dask(
        model,
        da.from_array(lit, chunks=(1, -1, -1)),
        tmp_path / "p.zarr",
        PredictConfig(tile=128, amp=False),
    )
    ref = _predict(model, lit, tile=128, norm_stats="local")
    np.testing.assert_allclose(np.asarray(res.prob[:], np.float32), ref, atol=1e-4)
