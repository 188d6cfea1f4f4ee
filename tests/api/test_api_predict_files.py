"""api.predict on files: the console twin of `temseg predict` (one core call, same checks)."""

import numpy as np
import pytest
import tifffile
import torch

from napari_temseg import api
from napari_temseg.core.config.model import InputSpec, ModelConfig
from napari_temseg.core.data.read import read_image
from napari_temseg.core.errors import InputError
from napari_temseg.core.modelfile.format import TrainedModel, save_model
from napari_temseg.core.progress import StopToken

FAST = dict(device="cpu", tile=32, amp=False, verbose=False)


@pytest.fixture
def model_path(tmp_path):
    from napari_temseg.core.nets.build import build_model

    cfg = ModelConfig(arch="small-unet", base_width=4, in_channels=1)
    spec = InputSpec(channels=1, norm_lo=(0.0,), norm_hi=(255.0,))
    torch.manual_seed(0)
    path = tmp_path / "m.safetensors"
    save_model(TrainedModel(net=build_model(cfg).eval(), model_cfg=cfg, input_spec=spec), path)
    return path


@pytest.fixture
def folder(tmp_path):
    src = tmp_path / "imgs"
    src.mkdir()
    rng = np.random.default_rng(3)
    for name, shape in {"a": (2, 40, 36), "b": (30, 44)}.items():
        tifffile.imwrite(src / f"{name}.tif", rng.integers(0, 255, shape, dtype=np.uint8))
    return src


def test_a_folder_into_files_matches_the_arrays(tmp_path, model_path, folder):
    res = api.predict(
        str(model_path), folder, output=tmp_path / "out", labels_output=tmp_path / "lab", **FAST
    )
    assert [f.job.image.name for f in res.files] == ["a.tif", "b.tif"] and not res.stopped
    for name in ("a", "b"):
        prob, labels = api.predict(model_path, tifffile.imread(folder / f"{name}.tif"), **FAST)
        np.testing.assert_allclose(read_image(tmp_path / "out" / f"{name}.tif"), prob, atol=1e-6)
        np.testing.assert_array_equal(read_image(tmp_path / "lab" / f"{name}.tif"), labels)
    with pytest.raises(InputError, match="overwrite"):  # the same call again: refused
        api.predict(model_path, folder, output=tmp_path / "out", **FAST)
    again = api.predict(model_path, folder, output=tmp_path / "out", overwrite=True, **FAST)
    assert len(again.files) == 2


def test_a_list_of_files_and_one_file(tmp_path, model_path, folder):
    model = api.load_model(model_path)
    res = api.predict(model, [folder / "b.tif"], output=tmp_path / "o", format=".zarr", **FAST)
    assert read_image(res.files[0].job.prob).shape == (30, 44)
    one = api.predict(model, str(folder / "b.tif"), output=tmp_path / "b.tif", **FAST)
    assert one.files[0].job.prob == tmp_path / "b.tif"
    prob, labels = api.predict(model, str(folder / "b.tif"), **FAST)  # no output: in memory
    np.testing.assert_allclose(read_image(tmp_path / "b.tif"), prob, atol=1e-6)


def test_a_stopped_run_returns_what_it_finished(tmp_path, model_path, folder):
    stop = StopToken()
    stop.request()
    res = api.predict(model_path, folder, output=tmp_path / "out", stop=stop, **FAST)
    assert res.stopped and res.files == [] and not (tmp_path / "out").exists()


@pytest.mark.parametrize(
    "kw, needle",
    [
        (dict(image="folder"), "pass output="),
        (dict(image="array", output="out"), "output= writes the results of image files"),
        (dict(image="folder", output="out", viewer=object()), "leave viewer out"),
        (dict(image="folder", output="out", slices=[5]), "outside"),
    ],
)
def test_misuse_is_a_one_line_error(tmp_path, model_path, folder, kw, needle):
    image = {"folder": folder, "array": np.zeros((20, 20), np.uint8)}[kw.pop("image")]
    if "output" in kw:
        kw["output"] = tmp_path / kw["output"]
    with pytest.raises(InputError, match=needle) as e:
        api.predict(model_path, image, **{**FAST, **kw})
    assert "\n" not in str(e.value) and not (tmp_path / "out").exists()
