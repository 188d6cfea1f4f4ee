"""Suggested regions: grid, uncertainty, diversity, annotated regions, CLI, API."""

from __future__ import annotations

import numpy as np
import pytest

from napari_temseg.core.config.suggest import SuggestConfig
from napari_temseg.core.errors import InputError
from napari_temseg.core.guidance.suggest import (
    CHUNK,
    annotated_cells,
    choose,
    grid_starts,
    pixel_uncertainty,
    suggest_regions,
)
from napari_temseg.core.progress import StopToken, run


def test_grid_covers_the_image_and_ends_at_the_border():
    assert grid_starts(300, 128) == [0, 128, 172]
    assert grid_starts(256, 128) == [0, 128]
    assert grid_starts(100, 128) == [0]


def test_pixel_uncertainty_is_normalised_entropy():
    p = np.array([[0.0, 0.5, 1.0]], np.float32)
    u = pixel_uncertainty(p, 2)
    assert u[0, 1] == pytest.approx(1.0, abs=1e-5)
    assert u[0, 0] < 1e-4 and u[0, 2] < 1e-4
    k = np.full((4, 1, 1), 0.25, np.float32)
    assert pixel_uncertainty(k, 4)[0, 0] == pytest.approx(1.0, abs=1e-5)
    one_hot = np.array([1, 0, 0, 0], np.float32).reshape(4, 1, 1)
    assert pixel_uncertainty(one_hot, 4)[0, 0] < 1e-3


def test_diversity_spreads_the_choices():
    # two clusters: three high scores side by side at x = 0..2 sizes, one lower far away
    centres = np.array([[0, 0, 0], [0, 0, 100], [0, 0, 200], [0, 0, 5000]], float)
    scores = np.array([0.9, 0.89, 0.88, 0.7])  # 0.88 at 1.6 sizes is damped to 0.62
    assert choose(centres, scores, 2, spread=0, z_px=1) == [0, 1]  # pure ranking
    assert choose(centres, scores, 2, spread=128, z_px=1) == [0, 3]  # the far one second
    # one slice apart counts z_px pixels: far in z (serial sections) = not neighbours
    cz = np.array([[0, 0, 0], [1, 0, 0], [0, 0, 5000]], float)
    assert choose(cz, np.array([0.9, 0.89, 0.5]), 2, spread=128, z_px=1) == [0, 2]
    assert choose(cz, np.array([0.9, 0.89, 0.5]), 2, spread=128, z_px=1e4) == [0, 1]


def test_annotated_cells_dense_slices_and_sparse_regions():
    from napari_temseg.core.data.volume import Volume

    m = np.zeros((3, 64, 64), np.uint8)
    m[1, 5, 5] = 1  # dense: slice 1 is annotated, all of it
    m[2, :32, :32] = 2  # sparse: one square painted
    vol = Volume(m, "ZYX")
    starts = (grid_starts(64, 32), grid_starts(64, 32))
    dense = annotated_cells(vol, 3, starts, (32, 32), sparse=False, painted=0.01)
    assert dense[:, 0, 0].tolist() == [False, True, True] and dense[1].all()
    sp = annotated_cells(vol, 3, starts, (32, 32), sparse=True, painted=0.01)
    assert sp[2].tolist() == [[True, False], [False, False]]
    assert not sp[1].any()  # one pixel of 1024 is under 1 %


def _ramp_model(classes: int = 2):
    """A 'network' whose probability follows the intensity: p = sigmoid(20 (x - 0.5))."""
    import torch

    from napari_temseg.core.config.classes import ClassTable
    from napari_temseg.core.config.model import InputSpec, ModelConfig
    from napari_temseg.core.modelfile.format import TrainedModel

    k = 1 if classes == 2 else classes
    net = torch.nn.Conv2d(1, k, 1)
    with torch.no_grad():
        net.weight.fill_(20.0)
        net.bias.fill_(-10.0)
        if k > 1:  # class 0 below 0.5, class 1 above, class 2 never
            net.weight[0].fill_(-20.0)
            net.bias[0].fill_(10.0)
            net.weight[2:].fill_(0.0)
            net.bias[2:].fill_(-10.0)
    mc = ModelConfig(arch="small-unet", classes=k, base_width=8)
    table = ClassTable() if classes == 2 else ClassTable.default(classes)
    return TrainedModel(net=net, model_cfg=mc, input_spec=InputSpec(), classes=table)


def _image_with_unsure_square():
    img = np.zeros((3, 128, 128), np.float32)
    img[:, :, 64:] = 1.0  # certain: background left, foreground right
    img[2, 64:96, 0:32] = 0.5  # p = 0.5: maximally unsure, slice 2 only
    return img


@pytest.mark.parametrize("classes", [2, 3])
def test_the_unsure_square_ranks_first(classes):
    img = _image_with_unsure_square()
    cfg = SuggestConfig(n=3, size=32, margin=8)
    res = run(suggest_regions(_ramp_model(classes), img, None, cfg))
    top = res.regions[0]
    assert (top.z, top.y, top.x) == (2, 64, 0)
    assert top.score > 0.5 > res.regions[1].score
    assert [r.rank for r in res.regions] == [1, 2, 3]
    assert res.scored == res.candidates == 3 * 16
    assert np.nanargmax(res.score_map) == np.ravel_multi_index((2, 2, 0), res.score_map.shape)


def test_annotated_regions_are_not_suggested_and_cost_is_bounded():
    img = _image_with_unsure_square()
    mask = np.zeros(img.shape, np.uint8)
    mask[2, 64:96, 0:32] = 1  # the unsure square is painted (scribbles)
    cfg = SuggestConfig(n=2, size=32, margin=8, max_regions=10)
    res = run(suggest_regions(_ramp_model(), img, mask, cfg, sparse=True))
    assert res.candidates == 47 and res.scored == 10
    assert all((r.z, r.y, r.x) != (2, 64, 0) for r in res.regions)
    dense = run(suggest_regions(_ramp_model(), img, mask, SuggestConfig(n=50, size=32)))
    assert {r.z for r in dense.regions} == {0, 1}  # a painted dense slice is fully annotated
    with pytest.raises(InputError, match="every region is annotated"):
        run(suggest_regions(_ramp_model(), img, np.ones_like(mask), SuggestConfig(size=32)))


def test_tta_variance_score_and_stop():
    img = _image_with_unsure_square()
    res = run(
        suggest_regions(_ramp_model(), img, None, SuggestConfig(n=1, size=32, score="tta-variance"))
    )
    assert 0 <= res.regions[0].score <= 1
    stop = StopToken()
    gen = suggest_regions(_ramp_model(), img, None, SuggestConfig(size=32), stop=stop)
    next(gen)
    stop.request()
    res = run(gen)
    assert res.stopped and res.scored == CHUNK < res.candidates == 48  # after one batch
    assert len(res.regions) == 5  # chosen from what was scored


def test_a_trained_model_end_to_end_through_cli_and_api(tmp_path, small_fibsem, capsys):
    import tifffile

    from napari_temseg import api
    from napari_temseg.cli import main
    from napari_temseg.core.config.model import ModelConfig
    from napari_temseg.core.config.train import TrainConfig
    from napari_temseg.core.training.loop import fit

    img, mask = small_fibsem
    sparse = np.zeros_like(mask)
    sparse[0, :32, :32] = np.where(mask[0, :32, :32] > 0, 1, 2)
    cfg = TrainConfig(epochs=1, seconds=None, steps_per_epoch=2, patch=32, batch=2, sparse=True)
    model = run(fit(img, sparse, train_cfg=cfg, model_cfg=ModelConfig(base_width=8)))
    res = api.suggest_regions(model, img, sparse, sparse=True, n=3, size=32, verbose=False)
    assert len(res.regions) == 3 and all((r.z, r.y, r.x) != (0, 0, 0) for r in res.regions)
    with pytest.raises(Exception, match="threshold"):
        api.suggest_regions(model, img, sparse, threshold=0.3, verbose=False)
    path = tmp_path / "m.safetensors"
    model.save(path)
    tifffile.imwrite(tmp_path / "img.tif", img[:, 0], photometric="minisblack")
    tifffile.imwrite(tmp_path / "mask.tif", sparse, photometric="minisblack")
    argv = ["suggest", str(path), str(tmp_path / "img.tif"), "--mask", str(tmp_path / "mask.tif")]
    argv += ["--sparse", "--size", "32", "-n", "4", "--tile", "64", "-o", str(tmp_path / "r.csv")]
    assert main([*argv, "-q"]) == 0
    out = capsys.readouterr().out.strip().splitlines()
    assert out[0].startswith("rank") and len(out) == 5
    assert (tmp_path / "r.csv").read_text().splitlines()[0] == "rank,z,y,x,height,width,score"
    assert main([*argv, "-q"]) == 2  # the table exists: not overwritten
    assert "--overwrite" in capsys.readouterr().err


def test_2d_images_and_multichannel_context_models():
    from napari_temseg.core.config.classes import ClassTable
    from napari_temseg.core.config.model import InputSpec, ModelConfig
    from napari_temseg.core.modelfile.format import TrainedModel
    from napari_temseg.core.nets.build import build_model

    rng = np.random.default_rng(0)
    cfg = ModelConfig(arch="small-unet", base_width=4, in_channels=2 * 3, classes=3)
    spec = InputSpec(channels=2, context=1, norm_lo=(0.0, 0.0), norm_hi=(1.0, 1.0))
    model = TrainedModel(build_model(cfg), cfg, spec, classes=ClassTable.default(3))
    stack = rng.random((4, 2, 64, 80)).astype(np.float32)
    res = run(suggest_regions(model, stack, None, SuggestConfig(n=4, size=32)))
    assert len(res.regions) == 4 and res.score_map.shape == (4, 2, 3)
    assert all(r.x + r.width <= 80 and r.height == 32 for r in res.regions)  # 80 = 32 + 32 + 16
    one = ModelConfig(arch="small-unet", base_width=4)
    flat = TrainedModel(build_model(one), one, InputSpec())
    res = run(suggest_regions(flat, rng.random((50, 40)), None, SuggestConfig(n=2, size=64)))
    (r,) = res.regions  # one square only: the image is smaller than the size
    assert (r.z, r.y, r.x, r.height, r.width) == (0, 0, 0, 50, 40)
