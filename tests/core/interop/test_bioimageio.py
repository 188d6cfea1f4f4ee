"""bioimage.io model packages: `temseg export -o m.zip` / api.export(model, "m.zip")
write a spec-0.5 package that bioimageio.spec validates, that bioimageio.core's test run
passes (TorchScript and ONNX weights reproduce the test output), and whose test output is
this package's own probability on the test input."""

import zipfile

import numpy as np
import pytest
from test_export import trained

from napari_temseg.core.config.predict import PredictConfig
from napari_temseg.core.errors import InputError
from napari_temseg.core.inference.predict import predict_stack
from napari_temseg.core.progress import run

pytest.importorskip("onnxruntime", reason="pip install onnx onnxruntime")
pytest.importorskip("bioimageio.core", reason="pip install bioimageio.core")


def predicted(model, x):
    """predict_stack's probabilities for the middle slice of the test input's 2.5D window
    (channels = slices, one channel per slice here); one tile, no blending, the tile's own
    instance-norm statistics (the exported network normalises each tile). fp32: on CPUs with
    native bf16 predict_stack would autocast and round differently from the fp32 graphs."""
    k, s = model.context, x.shape[-1]
    cfg = PredictConfig(
        tile=s, overlap=0.0, device="cpu", prob_dtype="float32", norm_stats="tile", amp=False
    )
    res = run(predict_stack(model, x[0], cfg))
    prob = np.asarray(res.prob)[k]
    return prob[None] if model.classes.binary else prob


@pytest.mark.parametrize("classes,context,binning", [(2, 0, 1), (3, 1, 1), (2, 0, 2)])
def test_package_validates_passes_the_core_test_and_gives_our_probabilities(
    tmp_path, classes, context, binning
):
    from bioimageio.core import test_model
    from bioimageio.spec import load_description

    from napari_temseg import api

    _, model = trained(classes, context, binning=binning)  # binned: the graph bins itself
    path = api.export(model, tmp_path / "m.zip", author="A. Tester")
    assert not list(tmp_path.glob(".tmp-*"))
    descr = load_description(path)
    assert descr.validation_summary.status in ("valid-format", "passed"), descr.validation_summary
    assert descr.format_version.startswith("0.5") and descr.authors[0].name == "A. Tester"
    assert "10.1007/978-3-319-24574-4_28" in [str(c.doi) for c in descr.cite]
    assert set(descr.weights.model_dump(exclude_none=True)) == {"torchscript", "onnx"}
    summary = test_model(path)
    assert summary.status == "passed", summary.format()
    with zipfile.ZipFile(path) as z:
        names = set(z.namelist())
        x = np.load(z.open("test_input.npy"))
        y = np.load(z.open("test_output.npy"))
    assert {"README.md", "cover.png", "weights.pt", "weights.onnx"} <= names
    n = 2 * context + 1
    assert x.shape == (1, n, 128, 128) and y.shape == (1, 1 if classes == 2 else 3, 128, 128)
    assert x.max() > 2  # raw intensities (trained on 30..230), not 0..1
    np.testing.assert_allclose(y[0], predicted(model, x), atol=1e-4)


def test_cli_bioimageio_options_and_refusals(tmp_path, capsys, monkeypatch):
    from napari_temseg.cli import main
    from napari_temseg.core.interop import formats as export_module
    from napari_temseg.core.interop.formats import export

    _, model = trained()
    with pytest.raises(InputError, match="only for a bioimage.io package"):
        export(model, tmp_path / "m.pt", author="me")
    with pytest.raises(InputError, match="licen"):
        export(model, tmp_path / "m.zip", license="no-such-licence")
    with pytest.raises(InputError, match="a bioimageio file ends in .zip"):
        export(model, tmp_path / "m.pt", "bioimageio")
    (tmp_path / "m.zip").write_text("keep")
    with pytest.raises(InputError, match="exists"):
        export(model, tmp_path / "m.zip")
    assert (tmp_path / "m.zip").read_text() == "keep" and not list(tmp_path.glob(".tmp-*"))
    model.save(tmp_path / "m.safetensors")
    args = ["export", str(tmp_path / "m.safetensors"), "-o", str(tmp_path / "m.pt")]
    assert main([*args, "--license", "CC-BY-4.0"]) != 0  # not for a .pt file
    assert "only for a bioimage.io package" in capsys.readouterr().err
    seen = {}
    monkeypatch.setattr(export_module, "export", lambda m, p, f, **kw: seen.update(kw) or p)
    args[-1] = str(tmp_path / "n.zip")
    assert main([*args, "--author", "Ann Other", "--license", "CC-BY-4.0"]) == 0
    assert seen == {"overwrite": False, "author": "Ann Other", "license": "CC-BY-4.0"}
