import json

import numpy as np
import pytest
import tifffile
import torch

from napari_temseg.cli import main
from napari_temseg.core.config import InputSpec, ModelConfig, PredictConfig
from napari_temseg.core.io import read_image
from napari_temseg.core.modelfile import TrainedModel, load_model, save_model
from napari_temseg.core.predict import predict_stack
from napari_temseg.core.progress import run


@pytest.fixture
def model_path(tmp_path):
    from napari_temseg.core.models import build_model

    cfg = ModelConfig(arch="small-unet", base_width=4, in_channels=2)
    spec = InputSpec(channels=2, norm_lo=(0.0, 10.0), norm_hi=(255.0, 200.0))
    torch.manual_seed(0)
    net = build_model(cfg).eval()
    path = tmp_path / "m.safetensors"
    save_model(TrainedModel(net=net, model_cfg=cfg, input_spec=spec, threshold=0.5), path)
    return path


@pytest.fixture
def stack(tmp_path):
    img = np.random.default_rng(0).integers(0, 255, (3, 2, 40, 52), dtype=np.uint8)
    tifffile.imwrite(tmp_path / "stack.tif", img)
    return tmp_path / "stack.tif", img


def _api(model_path, img, channel_axis=None, **kw):
    cfg = PredictConfig(device="cpu", tile=32, amp=False, **kw)
    return run(predict_stack(load_model(model_path), img, cfg, channel_axis=channel_axis))


def test_predict_tif_and_zarr_match_the_api(tmp_path, model_path, stack, capsys):
    path, img = stack
    rc = main(
        [
            "predict",
            str(model_path),
            str(path),
            "-o",
            str(tmp_path / "p.tif"),
            "--labels",
            str(tmp_path / "l.zarr"),
            "--tile",
            "32",
            "--device",
            "cpu",
            "--no-amp",
            "-q",
        ]
    )
    assert rc == 0
    ref = _api(model_path, img)
    np.testing.assert_allclose(read_image(tmp_path / "p.tif"), ref.prob, atol=1e-6)
    np.testing.assert_array_equal(read_image(tmp_path / "l.zarr")[:], ref.labels)
    assert "3/3 slice(s)" in capsys.readouterr().err


def test_predict_refuses_to_overwrite(tmp_path, model_path, stack, capsys):
    path, _ = stack
    out = tmp_path / "p.zarr"
    args = [
        "predict",
        str(model_path),
        str(path),
        "-o",
        str(out),
        "--tile",
        "32",
        "--device",
        "cpu",
        "--no-amp",
        "--prob-dtype",
        "uint8",
        "-q",
    ]
    assert main(args) == 0
    before = read_image(out)[:].copy()
    assert main(args) == 2
    assert "--overwrite" in capsys.readouterr().err
    np.testing.assert_array_equal(read_image(out)[:], before)
    assert main(args + ["--overwrite"]) == 0


def test_predict_folder_of_images(tmp_path, model_path):
    from PIL import Image

    src = tmp_path / "imgs"
    src.mkdir()
    rng = np.random.default_rng(1)
    sizes = {"a": (30, 41), "b": (50, 20)}
    for name, shape in sizes.items():  # RGB-less 2-channel images: stored as (Y, X, 2) TIFF
        tifffile.imwrite(src / f"{name}.tif", rng.integers(0, 255, (2,) + shape, dtype=np.uint8))
    Image.fromarray(np.zeros((5, 5), np.uint8)).save(src / "notes.png")
    (src / "notes.png").unlink()
    rc = main(
        [
            "predict",
            str(model_path),
            str(src),
            "-o",
            str(tmp_path / "out"),
            "--labels",
            str(tmp_path / "lab"),
            "--tile",
            "32",
            "--device",
            "cpu",
            "--no-amp",
            "--channel-axis",
            "0",
            "-q",
        ]
    )
    assert rc == 0
    for name, shape in sizes.items():
        prob = read_image(tmp_path / "out" / f"{name}.tif")
        assert prob.shape == shape
        ref = _api(model_path, tifffile.imread(src / f"{name}.tif"), channel_axis=0)
        np.testing.assert_allclose(prob, ref.prob[0], atol=1e-6)
        np.testing.assert_array_equal(read_image(tmp_path / "lab" / f"{name}.tif"), ref.labels[0])


def test_predict_bad_inputs_are_one_line_errors(tmp_path, model_path, stack, capsys):
    path, _ = stack
    assert (
        main(
            [
                "predict",
                str(tmp_path / "none.safetensors"),
                str(path),
                "-o",
                str(tmp_path / "p.tif"),
            ]
        )
        == 2
    )
    assert main(["predict", str(model_path), str(path), "-o", str(tmp_path / "p.png")]) == 2
    assert (
        main(
            ["predict", str(model_path), str(path), "-o", str(tmp_path / "p.tif"), "--uncertainty"]
        )
        == 2
    )
    err = capsys.readouterr().err
    assert "not found" in err and ".tif, .tiff or .zarr" in err and "turn on tta" in err
    assert "Traceback" not in err


def test_uncertainty_goes_beside_the_probability(tmp_path, model_path, stack):
    path, img = stack
    out = tmp_path / "p.tif"
    assert (
        main(
            [
                "predict",
                str(model_path),
                str(path),
                "-o",
                str(out),
                "--tta",
                "--uncertainty",
                "--channel-axis",
                "1",
                "--tile",
                "32",
                "--no-amp",
                "--device",
                "cpu",
                "-q",
            ]
        )
        == 0
    )
    ref = _api(model_path, img, channel_axis=1, tta=True, uncertainty=True)
    np.testing.assert_allclose(
        read_image(tmp_path / "p-uncertainty.tif"), ref.uncertainty, atol=1e-6
    )
    assert (
        main(["predict", str(model_path), str(path), "-o", str(out), "--tta", "--uncertainty"]) == 2
    )


def _dice(p, t):
    p, t = p > 0, t > 0
    return 2 * (p & t).sum() / (p.sum() + t.sum())


def test_evaluate_json_and_table(tmp_path, capsys):
    rng = np.random.default_rng(2)
    truth = (rng.random((3, 20, 30)) > 0.6).astype(np.uint8)
    prob = np.clip(truth * 0.7 + rng.random(truth.shape) * 0.5, 0, 1).astype(np.float32)
    tifffile.imwrite(tmp_path / "t.tif", truth)
    tifffile.imwrite(tmp_path / "p.tif", prob)
    assert main(["evaluate", str(tmp_path / "p.tif"), str(tmp_path / "t.tif"), "--json"]) == 0
    res = json.loads(capsys.readouterr().out)
    pred = prob >= 0.5
    assert res["overall"]["dice"] == pytest.approx(_dice(pred, truth))
    assert [r["dice"] for r in res["per_slice"]] == pytest.approx(
        [_dice(pred[z], truth[z]) for z in range(3)]
    )
    assert (
        main(["evaluate", str(tmp_path / "p.tif"), str(tmp_path / "t.tif"), "--threshold", "0.9"])
        == 0
    )
    out = capsys.readouterr().out
    assert f"Dice {_dice(prob >= 0.9, truth):.4f}" in out and out.count("\n") == 5


def test_evaluate_folders_and_2d(tmp_path, capsys):
    from PIL import Image

    rng = np.random.default_rng(3)
    (tmp_path / "pred").mkdir()
    (tmp_path / "truth").mkdir()
    dices = []
    for name in ("x", "y"):
        t = (rng.random((16, 18)) > 0.5).astype(np.uint8)
        p = (rng.random((16, 18)) > 0.5).astype(np.uint8)
        Image.fromarray(t).save(tmp_path / "truth" / f"{name}.png")
        tifffile.imwrite(tmp_path / "pred" / f"{name}.tif", p[None])  # (1, Y, X) vs (Y, X)
        dices.append(_dice(p, t))
    assert main(["evaluate", str(tmp_path / "pred"), str(tmp_path / "truth"), "--json"]) == 0
    res = json.loads(capsys.readouterr().out)
    assert [res["per_image"][n]["dice"] for n in ("x", "y")] == pytest.approx(dices)


def test_predict_on_dask_cluster(tmp_path, model_path, stack):
    from distributed import LocalCluster

    path, img = stack
    with LocalCluster(
        n_workers=1, threads_per_worker=1, processes=False, dashboard_address=None
    ) as cluster:
        rc = main(
            [
                "predict",
                str(model_path),
                str(path),
                "-o",
                str(tmp_path / "p.zarr"),
                "--labels",
                str(tmp_path / "l.zarr"),
                "--tile",
                "32",
                "--device",
                "cpu",
                "--no-amp",
                "-q",
                "--dask-scheduler",
                cluster.scheduler_address,
            ]
        )
    assert rc == 0
    ref = _api(model_path, img)
    np.testing.assert_allclose(read_image(tmp_path / "p.zarr")[:], ref.prob, atol=1e-6)
    np.testing.assert_array_equal(read_image(tmp_path / "l.zarr")[:], ref.labels)
