"""Sensor3D: the sequential model of seed 003 - shapes, the slice window it reads,
training, model file, prediction and the CLI / API front ends. Tiny images, CPU."""

import numpy as np
import pytest
import torch

from napari_temseg.core.config.choices import ConfigError
from napari_temseg.core.config.model import ModelConfig
from napari_temseg.core.config.predict import PredictConfig
from napari_temseg.core.config.train import TrainConfig
from napari_temseg.core.errors import ModelFileError
from napari_temseg.core.evaluation.metrics import dice
from napari_temseg.core.inference.predict import predict_stack
from napari_temseg.core.modelfile.format import load_model, read_metadata, save_model
from napari_temseg.core.nets.build import build_model
from napari_temseg.core.progress import run
from napari_temseg.core.training.loop import fit


def next_slice_stack(z=6, size=64, seed=0):
    """Each slice shows its own random discs; its label is the discs of the NEXT slice (the
    last slice: its own). Only a model that reads the neighbours can segment it."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:size, :size]
    discs = np.zeros((z, size, size), np.uint8)
    for k in range(z):
        for _ in range(4):
            cy, cx = rng.integers(8, size - 8, 2)
            discs[k][(yy - cy) ** 2 + (xx - cx) ** 2 < 49] = 1
    img = 0.2 + 0.6 * discs + rng.normal(0, 0.05, discs.shape)
    return img.astype(np.float32), discs[np.minimum(np.arange(z) + 1, z - 1)]


def cfg(context, **kw):
    base = dict(
        context=context,
        patch=64,
        batch=4,
        epochs=4,
        seconds=None,
        steps_per_epoch=15,
        augment="flips",
        lr=3e-3,
        seed=0,
        device="cpu",
        val_fraction=0.0,
    )
    return TrainConfig(**{**base, **kw})


S3D = ModelConfig(arch="sensor3d", base_width=8)


@pytest.mark.parametrize("slices,channels,classes", [(1, 1, 1), (3, 2, 1), (5, 1, 4)])
def test_shapes_and_the_centre_slice(slices, channels, classes):
    mc = ModelConfig(
        arch="sensor3d", in_channels=slices * channels, slices=slices, classes=classes, base_width=4
    )
    torch.manual_seed(0)
    net = build_model(mc).eval()
    x = torch.randn(2, slices * channels, 48, 32)
    with torch.no_grad():
        y = net(x)
        assert y.shape == (2, classes, 48, 32)
        if slices > 1:  # the output depends on the neighbours, and on both sides
            for s in (0, slices - 1):
                x2 = x.clone()
                x2[:, s * channels : (s + 1) * channels] += 1.0
                assert (net(x2) - y).abs().max() > 1e-4


def test_slices_must_divide_the_input_channels():
    with pytest.raises(ConfigError, match="slices must be >= 1 and divide in_channels"):
        ModelConfig(arch="sensor3d", in_channels=4, slices=3)


def test_a_three_slice_window_beats_one_slice_where_neighbours_matter():
    """The model of one slice cannot know the next slice's discs; the 3-slice one learns to
    read them (Dice on a new stack)."""
    img, lab = next_slice_stack(seed=0)
    test_img, test_lab = next_slice_stack(seed=1)
    scores = {}
    for k in (0, 1):
        torch.manual_seed(0)
        model = run(fit(img, lab, train_cfg=cfg(k), model_cfg=S3D))
        assert model.model_cfg.arch == "sensor3d" and model.model_cfg.slices == 2 * k + 1
        pred = run(predict_stack(model, test_img, PredictConfig(tile=64, device="cpu")))
        scores[k] = dice(pred.labels[:-1], test_lab[:-1])
    assert scores[1] > 0.4 and scores[1] > scores[0] + 0.25, scores


def test_model_file_round_trip_and_tile_consistency(tmp_path):
    img, lab = next_slice_stack(z=4, seed=2)
    model = run(fit(img, lab, train_cfg=cfg(1, epochs=1, steps_per_epoch=2), model_cfg=S3D))
    save_model(model, tmp_path / "s.safetensors")
    meta = read_metadata(tmp_path / "s.safetensors")
    assert meta["model"]["arch"] == "sensor3d" and meta["model"]["slices"] == 3
    back = load_model(tmp_path / "s.safetensors")
    pc = PredictConfig(tile=64, device="cpu")
    a = run(predict_stack(model, img, pc)).prob
    np.testing.assert_allclose(run(predict_stack(back, img, pc)).prob, a, atol=1e-5)
    b = run(predict_stack(back, img, PredictConfig(tile=32, overlap=0.5, device="cpu"))).prob
    assert np.mean((a >= 0.5) == (b >= 0.5)) > 0.95  # batch norm: tiles agree


def test_a_damaged_window_length_is_refused(tmp_path):
    import json

    from safetensors import safe_open
    from safetensors.torch import save_file

    img, lab = next_slice_stack(z=4, seed=3)
    model = run(fit(img, lab, train_cfg=cfg(1, epochs=1, steps_per_epoch=1), model_cfg=S3D))
    save_model(model, tmp_path / "s.safetensors")
    with safe_open(str(tmp_path / "s.safetensors"), "pt") as f:
        meta, tensors = f.metadata(), {k: f.get_tensor(k) for k in f.keys()}  # noqa: SIM118
    header = json.loads(meta["napari_temseg"])
    header["model"]["slices"] = 5
    bad = {**meta, "napari_temseg": json.dumps(header)}
    save_file(tensors, str(tmp_path / "bad.safetensors"), bad)
    with pytest.raises(ModelFileError, match="sensor3d model reads 2 x context \\+ 1 = 3 slices"):
        load_model(tmp_path / "bad.safetensors")


def test_cli_and_api_train_sensor3d(tmp_path, capsys):
    import tifffile

    from napari_temseg import api
    from napari_temseg.cli import main

    img, lab = next_slice_stack(z=4, seed=4)
    tifffile.imwrite(tmp_path / "img.tif", img, photometric="minisblack")
    tifffile.imwrite(tmp_path / "mask.tif", lab, photometric="minisblack")
    out = tmp_path / "m.safetensors"
    args = ["train", str(tmp_path / "img.tif"), str(tmp_path / "mask.tif"), "-o", str(out)]
    args += ["--arch", "sensor3d", "--context", "1", "--epochs", "1", "--steps-per-epoch", "1"]
    args += ["--patch", "64", "--base-width", "8", "--device", "cpu", "-q"]
    assert main(args) == 0
    meta = read_metadata(out)  # a 4-slice stack of one channel, windows of 3 slices
    assert meta["model"]["arch"] == "sensor3d" and meta["model"]["slices"] == 3
    assert meta["input"]["channels"] == 1
    model = api.train(
        img,
        lab,
        arch="sensor3d",
        context=1,
        epochs=1,
        seconds=None,
        steps_per_epoch=1,
        patch=64,
        base_width=8,
        device="cpu",
        verbose=False,
    )
    assert model.model_cfg.slices == 3
    prob, labels = api.predict(model, img, tile=64, device="cpu")
    assert prob.shape == labels.shape == img.shape
