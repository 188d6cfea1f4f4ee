"""The model file: round trip, atomic write, no overwrite, no unpickling, clear errors."""

import json
import struct

import numpy as np
import pytest

from napari_temseg.core.config.model import InputSpec, ModelConfig
from napari_temseg.core.config.train import TrainConfig
from napari_temseg.core.errors import ModelFileError
from napari_temseg.core.modelfile.format import META_KEY, TrainedModel, load_model, read_metadata


@pytest.fixture
def model():
    import torch

    from napari_temseg.core.nets.build import build_model

    torch.manual_seed(0)
    cfg = ModelConfig(arch="small-unet", in_channels=3)
    spec = InputSpec(channels=1, context=1, norm_lo=(0.1,), norm_hi=(0.9,))
    return TrainedModel(
        build_model(cfg).eval(),
        cfg,
        spec,
        threshold=0.6,
        train_cfg=TrainConfig(patch=64),
        history=[{"epoch": 1, "loss": 0.5}],
    )


def test_round_trip_gives_identical_predictions(model, tmp_path):
    import torch

    path = model.save(tmp_path / "m.safetensors")
    loaded = load_model(path)
    assert loaded.input_spec == model.input_spec and loaded.model_cfg == model.model_cfg
    assert (
        loaded.threshold == 0.6 and loaded.train_cfg.patch == 64 and loaded.history == model.history
    )
    x = torch.rand(1, 3, 32, 32)
    with torch.no_grad():
        assert torch.allclose(model.net(x), loaded.net(x), atol=1e-6)
    assert [p.name for p in tmp_path.iterdir()] == ["m.safetensors"]  # no temporary left behind


def test_file_is_plain_safetensors_with_json_header(model, tmp_path):
    path = model.save(tmp_path / "m.safetensors")
    raw = path.read_bytes()
    n = struct.unpack("<Q", raw[:8])[0]
    header = json.loads(raw[8 : 8 + n])  # safetensors: 8-byte length + JSON, then raw tensor bytes
    meta = json.loads(header["__metadata__"][META_KEY])
    assert meta["model"]["arch"] == "small-unet" and meta["input"]["context"] == 1
    assert b"\x80\x04" not in raw[: 8 + n]  # no pickle protocol marker in the header
    assert read_metadata(path)["threshold"] == 0.6


def test_refuses_to_overwrite(model, tmp_path):
    path = model.save(tmp_path / "m.safetensors")
    with pytest.raises(ModelFileError, match="exists"):
        model.save(path)
    model.save(path, overwrite=True)
    with pytest.raises(ModelFileError, match=".safetensors"):
        model.save(tmp_path / "m.pt")


def test_corrupt_and_foreign_files(model, tmp_path):
    bad = tmp_path / "bad.safetensors"
    bad.write_bytes(b"\x00garbage" * 20)
    with pytest.raises(ModelFileError, match="not a readable"):
        load_model(bad)
    with pytest.raises(ModelFileError, match="not found"):
        load_model(tmp_path / "missing.safetensors")
    from safetensors.numpy import save_file

    foreign = tmp_path / "foreign.safetensors"
    save_file({"w": np.zeros(3, np.float32)}, str(foreign))
    with pytest.raises(ModelFileError, match="not a napari-temseg model"):
        load_model(foreign)


def test_config_weights_mismatch_is_rejected(model, tmp_path):
    from safetensors import safe_open
    from safetensors.torch import save_file

    path = model.save(tmp_path / "m.safetensors")
    with safe_open(str(path), "pt") as f:
        tensors = {k: f.get_tensor(k) for k in f.keys()}  # noqa: SIM118 - safe_open, not a dict
        meta = json.loads(f.metadata()[META_KEY])
    meta["model"]["base_width"] = 8  # the header lies about the weights
    save_file(tensors, str(tmp_path / "edited.safetensors"), metadata={META_KEY: json.dumps(meta)})
    with pytest.raises(ModelFileError, match="do not match its config"):
        load_model(tmp_path / "edited.safetensors")
    meta["model"]["base_width"], meta["model"]["depth"] = None, 5  # or about its depth
    save_file(tensors, str(tmp_path / "deep.safetensors"), metadata={META_KEY: json.dumps(meta)})
    with pytest.raises(ModelFileError, match="do not match its config"):
        load_model(tmp_path / "deep.safetensors")
    meta["model"]["depth"] = None
    meta["model"]["in_channels"] = 5  # and about its input
    save_file(tensors, str(tmp_path / "lies.safetensors"), metadata={META_KEY: json.dumps(meta)})
    with pytest.raises(ModelFileError, match="in_channels = 5"):
        load_model(tmp_path / "lies.safetensors")
    meta["model"]["in_channels"] = 3
    meta["model"]["arch"] = ""
    save_file(tensors, str(tmp_path / "broken.safetensors"), metadata={META_KEY: json.dumps(meta)})
    with pytest.raises(ModelFileError, match="invalid model config"):
        load_model(tmp_path / "broken.safetensors")


def test_intensity_norm_travels_with_the_model(model, tmp_path):
    import dataclasses

    model.input_spec = dataclasses.replace(model.input_spec, intensity_norm="image")
    assert load_model(model.save(tmp_path / "m.safetensors")).input_spec.intensity_norm == "image"


def test_norm_layers_travel_with_the_model(tmp_path):
    import torch

    from napari_temseg.core.nets.build import build_model

    cfg = ModelConfig(arch="small-unet", in_channels=1, base_width=8, norm_layer="instance")
    spec = InputSpec(channels=1, context=0, norm_lo=(0.0,), norm_hi=(1.0,))
    m = TrainedModel(build_model(cfg).eval(), cfg, spec)
    back = load_model(m.save(tmp_path / "m.safetensors"))
    assert back.model_cfg.norm_layer == "instance"
    x = torch.randn(1, 1, 32, 32)
    with torch.no_grad():
        assert torch.allclose(m.net(x), back.net(x))


def test_files_without_norm_field_load_as_batch_norm(tmp_path):
    """Files of version 0.1 (no 'norm' in the header) hold batch-norm networks."""
    import torch
    from safetensors.torch import save_file

    from napari_temseg.core.nets.build import build_model

    cfg = ModelConfig(arch="small-unet", in_channels=1, base_width=8, norm_layer="batch")
    spec = InputSpec(channels=1, context=0, norm_lo=(0.0,), norm_hi=(1.0,))
    old = TrainedModel(build_model(cfg).eval(), cfg, spec)
    header = old.metadata()
    del header["model"]["norm_layer"]
    path = tmp_path / "old.safetensors"
    save_file(
        {k: v.contiguous() for k, v in old.net.state_dict().items()},
        str(path),
        metadata={META_KEY: json.dumps(header)},
    )
    back = load_model(path)
    assert back.model_cfg.norm_layer == "batch"
    x = torch.randn(1, 1, 32, 32)
    with torch.no_grad():
        assert torch.allclose(old.net(x), back.net(x))


def test_depth_travels_with_the_model_and_old_files_load_as_depth_4(model, tmp_path):
    import torch

    from napari_temseg.core.nets.build import build_model

    cfg = ModelConfig(arch="small-unet", base_width=4, depth=5)
    spec = InputSpec(channels=1, context=0, norm_lo=(0.0,), norm_hi=(1.0,))
    deep = TrainedModel(build_model(cfg).eval(), cfg, spec)
    back = load_model(deep.save(tmp_path / "deep.safetensors"))
    x = torch.randn(1, 1, 64, 64)
    with torch.no_grad():
        assert back.model_cfg.depth == 5 and torch.equal(deep.net(x), back.net(x))
    old = load_model(_rewrite(model, tmp_path, _set("model", "depth", _DELETE)))  # pre-depth file
    assert old.model_cfg.depth is None and old.model_cfg.levels == 4


def test_files_with_the_old_field_names_load(tmp_path):
    """Format-1 headers written before the renames ('norm', 'norm_mode', 'normalize')."""
    from safetensors.torch import save_file

    from napari_temseg.core.nets.build import build_model

    cfg = ModelConfig(arch="small-unet", in_channels=1, base_width=8, norm_layer="group")
    spec = InputSpec(channels=1, context=0, norm_lo=(0.0,), norm_hi=(1.0,), intensity_norm="image")
    old = TrainedModel(
        build_model(cfg).eval(), cfg, spec, train_cfg=TrainConfig(intensity_norm="image")
    )
    header = old.metadata()
    header["model"]["norm"] = header["model"].pop("norm_layer")
    header["input"]["norm_mode"] = header["input"].pop("intensity_norm")
    header["train"]["normalize"] = header["train"].pop("intensity_norm")
    path = tmp_path / "old-names.safetensors"
    save_file(
        {k: v.contiguous() for k, v in old.net.state_dict().items()},
        str(path),
        metadata={META_KEY: json.dumps(header)},
    )
    back = load_model(path)
    assert back.model_cfg.norm_layer == "group"
    assert back.input_spec.intensity_norm == "image"
    assert back.train_cfg.intensity_norm == "image"


def _rewrite(model, tmp_path, edit, tensors=None):
    """Save ``model``, apply ``edit(header)`` (and replace the tensors), return the new path."""
    from safetensors.torch import save_file

    header = model.metadata()
    edit(header)
    tensors = tensors or {k: v.contiguous() for k, v in model.net.state_dict().items()}
    path = tmp_path / "edited.safetensors"
    if path.exists():
        path.unlink()
    save_file(tensors, str(path), metadata={META_KEY: json.dumps(header)})
    return path


_DELETE = object()


def _set(section, key, value):
    """An edit of the header: ``header[section][key] = value`` (top level when section is None)."""

    def edit(h):
        d = h if section is None else h[section]
        if value is _DELETE:
            del d[key]
        else:
            d[key] = value

    return edit


@pytest.mark.parametrize(
    "edit,message",
    [
        (_set("model", "base_width", 10**9), "model.base_width must be a whole number 4..1024"),
        (_set("model", "in_channels", -3), "model.in_channels must be a whole number"),
        (_set("model", "depth", 9), "model.depth must be a whole number 3..6"),
        (_set("model", "classes", "1"), "model.classes must be a whole number"),
        (_set("model", "arch", 7), "model.arch"),
        (_set("model", "norm_layer", ["batch"]), "model.norm_layer must be text"),
        (_set("input", "context", 0.5), "input.context must be a whole number 0..8"),
        (_set("input", "binning", 0), "input.binning must be a whole number 1..4"),
        (_set("input", "channels", True), "input.channels must be a whole number"),
        (_set("input", "norm_lo", [0.1, 0.2]), "input.norm_lo must be 1 finite number"),
        (_set("input", "norm_hi", ["x"]), "input.norm_hi must be 1 finite number"),
        (_set("input", "norm_hi", [float("inf")]), "input.norm_hi must be 1 finite number"),
        (_set("input", "context", 2), r"input channels x \(2 x context \+ 1\) = 5"),
        (_set(None, "threshold", "0.5"), "threshold must be a number between 0 and 1"),
        (_set(None, "threshold", 1.5), "threshold must be a number between 0 and 1"),
        (_set(None, "history", 3), "history must be a list of epoch records"),
        (_set(None, "history", [1, 2]), "history must be a list of epoch records"),
        (_set(None, "train", [1]), "train must be an object or null"),
        (_set(None, "model", "small-unet"), "'model' must be an object"),
        (_set(None, "input", None), "'input' must be an object"),
        (_set(None, "format", _DELETE), "'format' must be a whole number"),
        (_set(None, "format", "1"), "'format' must be a whole number"),
        (_set("train", "patch", "big"), "invalid model config"),
    ],
)
def test_damaged_headers_give_one_line_errors_that_say_what_to_do(model, tmp_path, edit, message):
    path = _rewrite(model, tmp_path, edit)
    with pytest.raises(ModelFileError, match=message) as info:
        load_model(path)
    text = str(info.value)
    assert "\n" not in text and "use the original file or retrain" in text
    if "invalid model config" not in message:  # read_metadata checks the header too
        with pytest.raises(ModelFileError, match=message):
            read_metadata(path)


def test_absurd_base_width_is_refused_before_building(model, tmp_path, monkeypatch):
    from napari_temseg.core.nets import build as models

    built = []
    monkeypatch.setattr(models, "build_model", lambda cfg: built.append(cfg))
    path = _rewrite(model, tmp_path, _set("model", "base_width", 4096))
    with pytest.raises(ModelFileError, match="base_width"):
        load_model(path)
    assert built == []


def test_oversized_config_is_caught_on_the_meta_device(model, tmp_path, monkeypatch):
    """A plausible but wrong base width: the mismatch is found without allocating the network
    (here 16x the parameters of the file; at base_width 1024 it would be ~35 GB)."""
    from napari_temseg.core.nets import build as models

    real_build, built = models.build_model, []

    def spy(cfg):
        net = real_build(cfg)
        p = next(net.parameters())
        built.append((p.device.type, sum(q.numel() for q in net.parameters())))
        return net

    monkeypatch.setattr(models, "build_model", spy)
    path = _rewrite(model, tmp_path, _set("model", "base_width", 64))
    with pytest.raises(ModelFileError, match="do not match its config"):
        load_model(path)
    assert [device for device, _ in built] == ["meta"]  # never allocated for real


def test_newer_format_asks_to_update(model, tmp_path):
    path = _rewrite(model, tmp_path, _set(None, "format", 99))
    with pytest.raises(ModelFileError, match=r"newer napari-temseg \(format 99\); update the "):
        load_model(path)
    with pytest.raises(ModelFileError, match="pip install -U napari-temseg"):
        read_metadata(path)


def test_hostile_json_is_a_corrupt_header(model, tmp_path):
    from safetensors.torch import save_file

    tensors = {k: v.contiguous() for k, v in model.net.state_dict().items()}
    deep, huge_int = "[" * 100000 + "]" * 100000, '{"format": 1' + "9" * 5000 + "}"
    for i, text in enumerate([deep, "[1, 2]", huge_int, "null"]):
        p = tmp_path / f"h{i}.safetensors"
        save_file(tensors, str(p), metadata={META_KEY: text})
        with pytest.raises(ModelFileError, match="(corrupt|damaged) model header") as info:
            load_model(p)
        assert "\n" not in str(info.value) and len(str(info.value)) < 300


def test_non_finite_weights_are_refused(model, tmp_path):
    tensors = {k: v.clone().contiguous() for k, v in model.net.state_dict().items()}
    key = next(k for k, v in tensors.items() if v.is_floating_point())
    tensors[key].view(-1)[0] = float("nan")
    path = _rewrite(model, tmp_path, lambda h: None, tensors)
    with pytest.raises(ModelFileError, match="NaN or infinite values .*retrain"):
        load_model(path)


def test_a_diverged_model_is_not_saved(model, tmp_path):
    import copy

    import torch

    broken = copy.deepcopy(model)
    with torch.no_grad():
        next(p for p in broken.net.parameters()).view(-1)[0] = float("inf")
    with pytest.raises(ModelFileError, match="not saved .*diverged; retrain with a lower"):
        broken.save(tmp_path / "x.safetensors")
    assert list(tmp_path.iterdir()) == []  # no file, no temporary
