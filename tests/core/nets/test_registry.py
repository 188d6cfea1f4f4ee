"""The architecture registry: one entry per name, read by config, build, export and headers."""

import pytest

from napari_temseg.core.config.model import DEPTH_ARCHS, InputSpec, ModelConfig
from napari_temseg.core.config.options import all_options
from napari_temseg.core.errors import ConfigError
from napari_temseg.core.nets import registry
from napari_temseg.core.nets.registry import ARCHS, SMP, Arch, arch_of


def test_every_entry_is_complete_and_offered_names_are_the_choices():
    for name, spec in ARCHS.items():
        assert spec.name == name and spec.help and "\n" not in spec.help
        assert spec.builder is None or ":" in spec.builder
        assert set(spec.export) <= set(registry.EXPORT_FORMATS)
    arch = next(o for o in all_options(ModelConfig) if o.name == "arch")
    assert tuple(arch.choices) == registry.model_choices()
    assert registry.native_archs() == (
        "unet",
        "small-unet",
        "resunet",
        "sensor3d",
        "pixel-classifier",
    )
    assert DEPTH_ARCHS == ("unet", "small-unet")
    assert arch_of("FPN") is SMP and arch_of("bioimage.io").builder is None


def test_entries_drive_the_config_checks():
    assert ModelConfig(arch="Unet").encoder == registry.DEFAULT_SMP_ENCODER
    assert ModelConfig(arch="resunet").is_native and not ModelConfig(arch="FPN").is_native
    with pytest.raises(ConfigError, match="has no encoder option"):
        ModelConfig(arch="sensor3d", encoder="resnet18")
    with pytest.raises(ConfigError, match="base_width is an option of"):
        ModelConfig(arch="Unet", base_width=16)
    with pytest.raises(ConfigError, match="must be a name"):
        ModelConfig(arch="")


def test_unknown_names_are_one_line_errors_naming_the_choices():
    from napari_temseg.core.nets.build import build_model

    for bad in ("resunet2", "small_unet"):  # never a silent fall-through to a native net
        with pytest.raises(ConfigError, match=r"use one of \['unet', 'small-unet'") as e:
            build_model(ModelConfig(arch=bad))
        assert "\n" not in str(e.value)
    with pytest.raises(ConfigError, match="load them with load_any_model"):
        build_model(ModelConfig(arch="bioimage.io", encoder="onnx"))
    with pytest.raises(ConfigError, match="needs a ModelConfig"):
        build_model({"arch": "unet"})


@pytest.fixture
def tiny_arch(monkeypatch):
    """A new architecture added as one entry (the registry docstring's recipe)."""
    spec = Arch(
        "tiny",
        "a 1x1 convolution (test entry)",
        builder="unets:build_resunet",  # any builder of the package will do here
        base_width=4,
        multiple=8,
        norm=None,
        fixed_shapes=False,
        export=("onnx",),
    )
    monkeypatch.setitem(ARCHS, "tiny", spec)
    return spec


def test_an_entry_is_all_it_takes_to_add_an_architecture(tiny_arch):
    torch = pytest.importorskip("torch")
    from napari_temseg.core.nets.build import build_model, min_input_size, required_multiple

    cfg = ModelConfig(arch="tiny", in_channels=2)
    assert cfg.is_native and cfg.norm_layer == "batch" and cfg.encoder is None
    assert required_multiple(cfg) == min_input_size(cfg) == 8
    with pytest.raises(ConfigError, match="'tiny' has none to choose"):
        ModelConfig(arch="tiny", norm_layer="instance")
    with pytest.raises(ConfigError, match="depth is an option of"):
        ModelConfig(arch="tiny", depth=4)
    net = build_model(cfg)  # base_width: the entry's default
    assert net.enc[0].skip[0].out_channels == 4
    assert net(torch.zeros(1, 2, 16, 16)).shape == (1, 1, 16, 16)


def test_export_formats_come_from_the_entry(tiny_arch, tmp_path):
    pytest.importorskip("torch")
    from napari_temseg.core.errors import InputError
    from napari_temseg.core.interop.formats import export
    from napari_temseg.core.modelfile.format import TrainedModel
    from napari_temseg.core.nets.build import build_model

    cfg = ModelConfig(arch="tiny")
    model = TrainedModel(net=build_model(cfg), model_cfg=cfg, input_spec=InputSpec())
    for path in (tmp_path / "m.zip", tmp_path / "m.pt"):
        with pytest.raises(InputError, match="cannot be written as .*: export it as onnx"):
            export(model, path)
    assert not list(tmp_path.iterdir())


def test_sequence_entries_need_their_slices_in_the_header():
    from napari_temseg.core.errors import ModelFileError
    from napari_temseg.core.modelfile.header import check_header

    meta = {
        "format": 1,
        "model": {"arch": "sensor3d", "in_channels": 3, "slices": 1},
        "input": {"channels": 1, "context": 1},
    }
    with pytest.raises(ModelFileError, match="a sensor3d model reads 2 x context"):
        check_header(meta)
    meta["model"]["slices"] = 3
    assert check_header(meta) is meta
    meta["model"].update(arch="unet", slices=1)  # not a sequence model: slices not checked
    assert check_header(meta) is meta
