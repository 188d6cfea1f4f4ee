"""Export for other tools: TorchScript and ONNX files that take raw intensities
and give this package's probabilities; CLI and API."""

import json

import numpy as np
import pytest
import torch

from napari_temseg.core.config.model import ModelConfig
from napari_temseg.core.config.predict import PredictConfig
from napari_temseg.core.config.train import TrainConfig
from napari_temseg.core.errors import InputError
from napari_temseg.core.inference.predict import predict_stack
from napari_temseg.core.interop.formats import export
from napari_temseg.core.progress import run
from napari_temseg.core.training.loop import fit

onnxruntime = pytest.importorskip("onnxruntime", reason="pip install onnx onnxruntime")


def trained(classes=2, context=0, arch="small-unet", depth=None, binning=1):
    rng = np.random.default_rng(0)
    img = (rng.random((3, 64, 64)) * 200 + 30).astype(np.float32)  # raw, not 0..1
    lab = (img > 130).astype(np.uint8)
    if classes == 3:
        lab[img > 190] = 2
    cfg = TrainConfig(epochs=1, seconds=None, steps_per_epoch=2, patch=64, batch=2,
                      device="cpu", context=context, binning=binning)  # fmt: skip
    mcfg = ModelConfig(arch=arch, base_width=8, depth=depth)
    return img, run(fit(img, lab, train_cfg=cfg, model_cfg=mcfg))


def reference(model, img):
    """predict_stack's probabilities with one tile = the whole 64 x 64 slice (no blending),
    normalised by its own statistics as the exported network does; fp32 like the exported
    graphs (on CPUs with native bf16 predict_stack would autocast)."""
    cfg = PredictConfig(
        tile=64, overlap=0.0, device="cpu", prob_dtype="float32", norm_stats="tile", amp=False
    )
    res = run(predict_stack(model, img, cfg))
    return np.asarray(res.prob)


@pytest.mark.parametrize(
    "classes,context,arch,fmt,depth,binning",
    [(2, 0, "small-unet", "onnx", None, 1), (2, 0, "small-unet", "torchscript", None, 1),
     (3, 1, "small-unet", "onnx", None, 1), (2, 1, "sensor3d", "torchscript", None, 1),
     (2, 0, "small-unet", "onnx", 5, 1), (2, 0, "small-unet", "onnx", None, 2)],
)  # fmt: skip
def test_exported_model_gives_the_package_probabilities(
    tmp_path, classes, context, arch, fmt, depth, binning
):
    """... including a binned model: the graph bins and interpolates back itself."""
    img, model = trained(classes, context, arch, depth, binning)
    assert model.input_spec.binning == binning
    path = export(model, tmp_path / ("m.onnx" if fmt == "onnx" else "m.pt"))
    z = 1  # the middle slice: its 2.5D window is slices 0..2
    x = img[z - context : z + context + 1][None].astype(np.float32)  # (1, 2k+1, 64, 64) raw
    if fmt == "onnx":
        s = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        got = s.run(None, {"input": x})[0][0]
        meta = json.loads(s.get_modelmeta().custom_metadata_map["napari_temseg"])
    else:
        files = {"napari_temseg.json": ""}
        net = torch.jit.load(str(path), _extra_files=files)
        got = net(torch.from_numpy(x))[0].detach().numpy()
        meta = json.loads(files["napari_temseg.json"])
    ref = reference(model, img)[z]
    np.testing.assert_allclose(got if classes == 3 else got[0], ref, atol=2e-4)
    assert meta["threshold"] == model.threshold and meta["classes"]["names"]


def test_export_refuses_bad_names_and_existing_files(tmp_path):
    _, model = trained()
    with pytest.raises(InputError, match="export format must be one of"):
        export(model, tmp_path / "m.h5")
    with pytest.raises(InputError, match="a onnx file ends in .onnx"):
        export(model, tmp_path / "m.pt", "onnx")
    (tmp_path / "m.onnx").write_text("keep")
    with pytest.raises(InputError, match="exists"):
        export(model, tmp_path / "m.onnx")
    assert (tmp_path / "m.onnx").read_text() == "keep"
    assert not list(tmp_path.glob(".tmp-*"))


def test_cli_and_api_export(tmp_path, capsys):
    from napari_temseg import api
    from napari_temseg.cli import main

    _, model = trained()
    model.save(tmp_path / "m.safetensors")
    out = tmp_path / "m.pt"
    assert main(["export", str(tmp_path / "m.safetensors"), "-o", str(out)]) == 0
    assert "checked against the model" in capsys.readouterr().err and out.exists()
    assert api.export(model, tmp_path / "a.onnx").exists()
