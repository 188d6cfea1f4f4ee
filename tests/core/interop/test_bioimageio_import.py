"""Running a local bioimage.io model package: packages written by
``temseg export`` come back as models whose tiled prediction gives our own model's
probabilities (binary, 3 classes, 2 input channels, TorchScript and ONNX weights), from a
.zip or its folder, through api.load_model and `temseg predict`; a hand-written package
checks other axis orders, a batch of one, padding to min + n x step and a skipped sigmoid;
packages this predictor cannot run are refused with one-line messages naming the fix."""

import warnings
import zipfile

import numpy as np
import pytest
import tifffile
import torch
import yaml

from napari_temseg.core.config.classes import ClassTable
from napari_temseg.core.config.model import InputSpec, ModelConfig
from napari_temseg.core.config.predict import PredictConfig
from napari_temseg.core.errors import InputError, ModelFileError
from napari_temseg.core.inference.predict import predict_stack
from napari_temseg.core.modelfile.format import TrainedModel
from napari_temseg.core.progress import run

pytest.importorskip("bioimageio.spec", reason="pip install bioimageio.core")
pytest.importorskip("onnxruntime", reason="pip install onnx onnxruntime")  # export writes ONNX

CFG = dict(tile=64, overlap=0.25, device="cpu", prob_dtype="float32", amp=False, norm_stats="tile")


def tiny(classes: int, channels: int, norm: str = "dataset", context: int = 0) -> TrainedModel:
    """An untrained small-unet (batch norm: no per-tile statistics) of our format."""
    from napari_temseg.core.nets.build import build_model

    torch.manual_seed(classes)
    cfg = ModelConfig(arch="small-unet", base_width=4, in_channels=channels * (2 * context + 1),
                      norm_layer="batch", classes=1 if classes == 2 else classes)  # fmt: skip
    net = build_model(cfg).eval()
    with torch.no_grad():  # larger weights: probabilities that vary (not all ~0.45)
        for w in net.parameters():
            w.mul_(2.5 if w.ndim == 4 else 1.0)
    spec = InputSpec(channels=channels, context=context, norm_lo=(30.0,) * channels,
                     norm_hi=(230.0,) * channels, intensity_norm=norm)  # fmt: skip
    return TrainedModel(net, cfg, spec, classes=ClassTable.default(classes))


@pytest.fixture(scope="module")
def packages(tmp_path_factory):
    """{kind: (our model, its package)}; written once (an export takes seconds)."""
    from napari_temseg.core.interop.formats import export

    d = tmp_path_factory.mktemp("pkg")
    out = {}
    for kind, model in (("binary", tiny(2, 1)), ("3-class", tiny(3, 2, "image", context=1))):
        out[kind] = (model, export(model, d / f"{kind}.zip"))
    return out


def probs(model, img, channel_axis=None):
    cfg = PredictConfig(**CFG)
    return np.asarray(run(predict_stack(model, img, cfg, channel_axis=channel_axis)).prob)


@pytest.mark.parametrize("weights", ["torchscript", "onnx"])
def test_binary_package_predicts_our_probabilities(packages, weights):
    from napari_temseg.core.interop.bioimageio.load import PackageModel, load_package

    ours, path = packages["binary"]
    model = load_package(path, weights=weights)
    assert isinstance(model, PackageModel) and model.classes.binary and model.weights == weights
    assert model.input_spec.intensity_norm == "dataset" and model.channels == 1
    assert "bioimage.io package" in repr(model)
    # 96 px: the same tile grid for ours (tiles start on its 16 px stride) and the package
    # (on 32 px, as a network of unknown stride); other sizes tile differently, and with
    # instance norm per tile that changes the values
    img = np.random.default_rng(0).uniform(30, 230, (2, 96, 96)).astype(np.float32)
    want, got = probs(ours, img), probs(model, img)
    assert got.shape == (2, 96, 96) and want.std() > 1e-3  # not a constant output
    np.testing.assert_allclose(got, want, atol=1e-4)


def test_three_class_two_channel_2_5d_package_with_per_slice_range(packages, tmp_path):
    from napari_temseg import api

    ours, path = packages["3-class"]
    folder = tmp_path / "unpacked"
    with zipfile.ZipFile(path) as z:
        z.extractall(folder)
    model = api.load_model(folder)  # the folder of a package, through the console API
    assert model.classes.k == 3 and model.channels == 2
    assert model.context == 1  # our own 2.5D packages' channel names: z_minus1_ch0, ...
    assert model.input_spec.intensity_norm == "image"  # scale_range 0.5 / 99.5 %: per slice
    img = np.random.default_rng(1).uniform(0, 255, (3, 2, 96, 96)).astype(np.float32)
    img[:, 1] = img[:, 1] * 0.5 + 40  # channels of other ranges
    want, got = probs(ours, img), probs(model, img)
    assert got.shape == (3, 3, 96, 96) and want.std() > 1e-2
    np.testing.assert_allclose(got, want, atol=1e-4)
    with pytest.raises(ModelFileError, match="can only predict"):
        model.save(tmp_path / "m.safetensors")
    with pytest.raises(InputError, match="can only predict"):
        api.export(model, tmp_path / "m.onnx")


def test_cli_predict_runs_a_package(packages, tmp_path, capsys):
    from napari_temseg.cli import main

    ours, path = packages["binary"]
    img = np.random.default_rng(2).integers(30, 230, (2, 64, 96)).astype(np.uint8)  # grids agree
    tifffile.imwrite(tmp_path / "img.tif", img)
    out = tmp_path / "p.tif"
    args = ["predict", str(path), str(tmp_path / "img.tif"), "-o", str(out), "--tile", "64",
            "--device", "cpu", "--no-amp", "-q"]  # fmt: skip
    assert main(args) == 0, capsys.readouterr().err
    np.testing.assert_allclose(tifffile.imread(out), probs(ours, img), atol=1e-3)  # float16
    cluster = ["predict", str(path), str(tmp_path / "img.tif"), "-o", str(tmp_path / "q.zarr"),
               "--dask-scheduler", "tcp://127.0.0.1:1"]  # fmt: skip
    assert main(cluster) != 0
    assert "not bioimage.io packages" in capsys.readouterr().err


# --- a hand-written package: axes (batch=1, y, x, channel), per-channel scaling, sigmoid ---
W, B = (0.7, -1.3), 0.2
MEAN, STD = (100.0, 20.0), (40.0, 5.0)


class Pointwise(torch.nn.Module):
    """Logits of (1, y, x, 2) -> (1, y, x, 1); refuses sizes other than 40 + n x 8."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[0] != 1 or (x.shape[1] - 40) % 8 != 0 or (x.shape[2] - 40) % 8 != 0:
            raise RuntimeError("invalid input size")
        return x[..., :1] * 0.7 + x[..., 1:] * -1.3 + 0.2


def handmade(folder, edit=None):
    folder.mkdir()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # jit is deprecated (see core/interop/formats.py)
        torch.jit.script(Pointwise()).save(str(folder / "net.pt"))
    np.save(folder / "in.npy", np.zeros((1, 40, 40, 2), np.float32))
    np.save(folder / "out.npy", np.zeros((1, 40, 40, 1), np.float32))
    (folder / "README.md").write_text("test")
    size = {"min": 40, "step": 8}
    ref = {a: {"tensor_id": "raw", "axis_id": a} for a in "yx"}
    rdf = {
        "format_version": "0.5.4", "type": "model", "name": "handmade", "license": "MIT",
        "description": "a test", "documentation": "README.md", "authors": [{"name": "t"}],
        "cite": [{"text": "t", "doi": "10.1007/978-3-319-24574-4_28"}],
        "inputs": [{"id": "raw", "test_tensor": {"source": "in.npy"}, "axes": [
            {"type": "batch", "size": 1}, {"type": "space", "id": "y", "size": size},
            {"type": "space", "id": "x", "size": size},
            {"type": "channel", "channel_names": ["a", "b"]}],
            "preprocessing": [{"id": "fixed_zero_mean_unit_variance", "kwargs": {
                "axis": "channel", "mean": list(MEAN), "std": list(STD)}}]}],
        "outputs": [{"id": "out", "test_tensor": {"source": "out.npy"}, "axes": [
            {"type": "batch"}, {"type": "space", "id": "y", "size": ref["y"]},
            {"type": "space", "id": "x", "size": ref["x"]},
            {"type": "channel", "channel_names": ["cells"]}],
            "postprocessing": [{"id": "sigmoid"}]}],
        "weights": {"torchscript": {"source": "net.pt", "pytorch_version": "2.1"}},
    }  # fmt: skip
    if edit is not None:
        edit(rdf, folder)
    (folder / "rdf.yaml").write_text(yaml.safe_dump(rdf))
    return folder


def test_handmade_package_axis_order_padding_and_logits(tmp_path):
    from napari_temseg.core.interop.bioimageio.load import load_package

    model = load_package(handmade(tmp_path / "h"))
    assert model.classes.names == ("background", "cells") and model.channels == 2
    assert model.net.plan.logits  # the sigmoid step is the predictor's own
    img = np.random.default_rng(3).normal(100, 20, (2, 30, 50)).astype(np.float32)
    z = [(img[c] - MEAN[c]) / (STD[c] + 1e-6) for c in range(2)]
    want = 1 / (1 + np.exp(-(W[0] * z[0] + W[1] * z[1] + B)))
    np.testing.assert_allclose(probs(model, img, 0)[0], want, atol=1e-5)  # 30 px: padded to 40


def test_packages_it_cannot_run_are_refused_naming_the_fix(tmp_path):
    from napari_temseg.core.interop.bioimageio.load import load_package

    def z_axis(rdf, _):
        z = {"type": "space", "id": "z", "size": {"min": 1, "step": 1}}
        rdf["inputs"][0]["axes"].insert(1, z)

    def state_dict(rdf, folder):
        (folder / "arch.py").write_text("import torch\nNet = torch.nn.Identity\n")
        arch = {"source": "arch.py", "callable": "Net"}
        rdf["weights"] = {"pytorch_state_dict": {"source": "net.pt", "architecture": arch,
                                                 "pytorch_version": "2.1"}}  # fmt: skip

    def damaged(rdf, _):
        rdf["weights"]["torchscript"]["sha256"] = "0" * 64

    def other_tensor(rdf, _):
        step = {"id": "scale_mean_variance", "kwargs": {"reference_tensor": "raw"}}
        rdf["outputs"][0]["postprocessing"] = [step]

    cases = [
        (z_axis, InputError, "z axis: it is a 3D model.*choose a 2D package"),
        (state_dict, InputError, "only pytorch_state_dict weights.*torchscript or onnx"),
        (damaged, ModelFileError, "download the package again"),
        (other_tensor, InputError, "scale_mean_variance refers to tensor 'raw'.*bioimageio.core"),
    ]
    for i, (edit, error, message) in enumerate(cases):
        with pytest.raises(error, match=message) as e:
            load_package(handmade(tmp_path / f"p{i}", edit))
        assert "\n" not in str(e.value)
    (tmp_path / "not.zip").write_bytes(b"not a zip")
    with pytest.raises(ModelFileError, match="not a readable bioimage.io package"):
        load_package(tmp_path / "not.zip")
    with pytest.raises(ModelFileError, match="not found"):
        load_package(tmp_path / "missing.zip")


def test_processing_steps_match_bioimageio_formulas():
    """Per-tile statistics (numpy's linear percentiles, population std) and the
    probability -> logit conversion that the predictor's sigmoid / softmax undoes."""
    from bioimageio.spec.model import v0_5 as v

    from napari_temseg.core.interop.bioimageio.net import Plan, step_function

    dims = {"batch": 0, "channel": 1, "y": 2, "x": 3}
    yx = [v.AxisId("y"), v.AxisId("x")]
    x = torch.from_numpy(np.random.default_rng(4).gamma(2, 30, (2, 3, 20, 24)).astype("f4"))
    a = x.numpy().astype(np.float64)
    lo, hi = (
        np.percentile(a, 1, (2, 3), keepdims=True),
        np.percentile(a, 99.8, (2, 3), keepdims=True),
    )
    mean, std = a.mean((2, 3), keepdims=True), a.std((2, 3), keepdims=True)
    steps = [
        (v.ScaleRangeDescr(kwargs=v.ScaleRangeKwargs(axes=yx, min_percentile=1,
                                                     max_percentile=99.8)),
         (a - lo) / (hi - lo + 1e-6)),
        (v.ZeroMeanUnitVarianceDescr(kwargs=v.ZeroMeanUnitVarianceKwargs(axes=yx)),
         (a - mean) / (std + 1e-6)),
        (v.ScaleLinearDescr(kwargs=v.ScaleLinearAlongAxisKwargs(
            axis=v.AxisId("channel"), gain=[1.0, 2.0, 3.0], offset=[0.0, 1.0, -1.0])),
         a * np.array([1, 2, 3]).reshape(1, 3, 1, 1) + np.array([0, 1, -1]).reshape(1, 3, 1, 1)),
        (v.ClipDescr(kwargs=v.ClipKwargs(min=40.0, max=80.0)), np.clip(a, 40, 80)),
        (v.BinarizeDescr(kwargs=v.BinarizeKwargs(threshold=60.0)), (a > 60).astype(float)),
    ]  # fmt: skip
    for step, want in steps:
        got = step_function(step, dims, "test", "raw")(x).numpy()
        np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4, err_msg=step.id)
    p = torch.softmax(torch.randn(2, 3, 5, 5), 1)
    for k, probs_ in ((1, p[:, :1]), (2, p[:, :2] / p[:, :2].sum(1, keepdim=True)), (3, p)):
        plan = Plan("t", "bcyx", "bcyx", ((16, 16), (16, 16)), [], [], k, False, False)
        lg = plan.to_logits(probs_)
        back = torch.sigmoid(lg) if k <= 2 else torch.softmax(lg, 1)
        np.testing.assert_allclose(back, probs_[:, -1:] if k <= 2 else probs_, atol=1e-5)
