"""Folder prediction in the core: many files in, one output per file, checked first, no
partial file left by a failed or stopped image."""

import numpy as np
import pytest
import tifffile
import torch

from napari_temseg.core.config.model import InputSpec, ModelConfig
from napari_temseg.core.config.predict import PredictConfig
from napari_temseg.core.data.read import read_image
from napari_temseg.core.errors import InputError
from napari_temseg.core.inference import jobs
from napari_temseg.core.inference.folder import FolderResult, predict_files
from napari_temseg.core.inference.predict import predict_stack
from napari_temseg.core.modelfile.format import TrainedModel, save_model
from napari_temseg.core.progress import StopToken, run

CFG = PredictConfig(device="cpu", tile=32, amp=False)


@pytest.fixture
def model():
    from napari_temseg.core.nets.build import build_model

    cfg = ModelConfig(arch="small-unet", base_width=4, in_channels=1)
    spec = InputSpec(channels=1, norm_lo=(0.0,), norm_hi=(255.0,))
    torch.manual_seed(0)
    return TrainedModel(net=build_model(cfg).eval(), model_cfg=cfg, input_spec=spec)


@pytest.fixture
def images(tmp_path):
    src = tmp_path / "imgs"
    src.mkdir()
    rng = np.random.default_rng(0)
    shapes = {"a": (2, 40, 36), "b": (30, 44)}
    for name, shape in shapes.items():
        tifffile.imwrite(src / f"{name}.tif", rng.integers(0, 255, shape, dtype=np.uint8))
    return src, shapes


def _files(root):
    return sorted(str(p.relative_to(root)) for p in root.rglob("*"))


def test_a_folder_gives_one_output_per_image(tmp_path, model, images):
    src, shapes = images
    seen = []
    res = run(
        predict_files(model, src, tmp_path / "out", CFG, labels=tmp_path / "lab"),
        lambda p: seen.append(p.message),
    )
    assert isinstance(res, FolderResult) and res.total == 2 and not res.stopped
    assert [f.job.image.name for f in res.files] == ["a.tif", "b.tif"]
    assert res.classes.binary
    for name, shape in shapes.items():
        ref = run(predict_stack(model, tifffile.imread(src / f"{name}.tif"), CFG))
        prob = read_image(tmp_path / "out" / f"{name}.tif")
        assert prob.shape == shape
        np.testing.assert_allclose(prob, ref.prob.reshape(shape), atol=1e-6)
        np.testing.assert_array_equal(
            read_image(tmp_path / "lab" / f"{name}.tif"), ref.labels.reshape(shape)
        )
    assert any(m.startswith("image 2/2 b.tif: ") for m in seen)


def test_a_list_of_files_and_zarr_outputs(tmp_path, model, images):
    src, _ = images
    path = tmp_path / "m.safetensors"
    save_model(model, path)
    res = run(predict_files(path, [src / "b.tif"], tmp_path / "out", CFG, fmt=".zarr"))
    assert [f.job.prob.name for f in res.files] == ["b.zarr"]
    assert read_image(tmp_path / "out" / "b.zarr").shape == (30, 44)
    mine = tmp_path / "mine.tif"  # the model file is never an output
    with pytest.raises(InputError, match=r"is an input \(the model file\)"):
        run(predict_files(model, src / "a.tif", mine, CFG, model_file=mine))


def test_a_stop_keeps_finished_images_and_removes_the_partial_one(tmp_path, model, images):
    src, _ = images
    stop = StopToken()

    def on_progress(p):
        if p.message.startswith("image 2/2"):
            stop.request()

    res = run(predict_files(model, src, tmp_path / "out", CFG, stop=stop), on_progress)
    assert res.stopped and [f.job.image.name for f in res.files] == ["a.tif"]
    assert _files(tmp_path / "out") == ["a.tif"]


def test_closing_the_generator_mid_image_leaves_no_file(tmp_path, model, images):
    src, _ = images
    gen = predict_files(model, src / "a.tif", tmp_path / "new" / "p.tif", CFG)
    next(gen)  # the first batch: the output exists
    assert (tmp_path / "new" / "p.tif").exists()
    gen.close()
    assert not (tmp_path / "new").exists()


@pytest.mark.parametrize(
    "case, needle",
    [
        ("clash", "both name"),
        ("channels", r"expects 1 channel\(s\) but 'a.tif' has 2: choose the image"),
        ("slices", "outside 'b.tif'"),
        ("format", "must be one of"),
        ("space", "MB free"),
    ],
)
def test_everything_is_checked_before_any_file_is_made(
    tmp_path, model, images, monkeypatch, case, needle
):
    src, _ = images
    other = tmp_path / "other"
    other.mkdir()
    (other / "a.tif").write_bytes((src / "a.tif").read_bytes())
    kw = {}
    image = src
    if case == "clash":  # two images with one name write one output
        image = [src / "a.tif", other / "a.tif"]
    elif case == "channels":
        image, kw = [src / "a.tif"], {"channel_axis": 0}  # (2, Y, X): 2 channels
    elif case == "slices":
        kw = {"slices": [1]}  # a.tif has 2 slices, b.tif one
    elif case == "format":
        kw = {"fmt": ".png"}
    else:
        free = type("Usage", (), {"free": 100})
        monkeypatch.setattr(jobs.shutil, "disk_usage", lambda p: free)
    before = _files(tmp_path)
    with pytest.raises(InputError, match=needle) as e:
        run(predict_files(model, image, tmp_path / "out", CFG, **kw))
    assert "\n" not in str(e.value)
    assert _files(tmp_path) == before


def test_instances_are_refused_for_k_classes_before_any_file(tmp_path, images):
    from napari_temseg.core.config.classes import ClassTable
    from napari_temseg.core.nets.build import build_model

    src, _ = images
    cfg = ModelConfig(arch="small-unet", base_width=4, in_channels=1, classes=3)
    spec = InputSpec(channels=1, norm_lo=(0.0,), norm_hi=(255.0,))
    k3 = TrainedModel(
        net=build_model(cfg), model_cfg=cfg, input_spec=spec, classes=ClassTable(("a", "b", "c"))
    )
    with pytest.raises(InputError, match="instance labels are for binary models"):
        run(predict_files(k3, src, tmp_path / "out", PredictConfig(instances=True)))
    assert not (tmp_path / "out").exists()
