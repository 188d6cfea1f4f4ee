"""Model registry: shapes, parameter counts, architecture details, errors."""

import pickle
import subprocess
import sys

import pytest

torch = pytest.importorskip("torch")

from _core_helpers import count_parameters  # noqa: E402

from napari_temseg.core.config.choices import ConfigError  # noqa: E402
from napari_temseg.core.config.model import DEFAULT_MODEL, ModelConfig  # noqa: E402
from napari_temseg.core.nets import build as models  # noqa: E402
from napari_temseg.core.nets import registry  # noqa: E402


def _modules(net, cls):
    return [m for m in net.modules() if isinstance(m, cls)]


def test_import_does_not_load_torch():
    code = (
        "import sys, napari_temseg.core.nets.build, napari_temseg.core.nets.registry\n"
        "print('torch' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


@pytest.mark.parametrize("arch", ["unet", "small-unet", "resunet"])
@pytest.mark.parametrize("hw", [(32, 32), (48, 80)])
def test_native_output_shape(arch, hw):
    cfg = ModelConfig(arch=arch, in_channels=3, classes=2, base_width=8)
    net = models.build_model(cfg).eval()
    assert models.required_multiple(cfg) == 16
    with torch.no_grad():
        y = net(torch.randn(2, 3, *hw))
    assert y.shape == (2, 2, *hw)
    assert y.dtype == torch.float32
    assert torch.isfinite(y).all()


def test_small_unet_parameter_count():
    n = count_parameters(models.build_model(ModelConfig("small-unet", in_channels=1)))
    assert abs(n - 2.16e6) / 2.16e6 < 0.03, n
    convs = _modules(models.build_model(ModelConfig("small-unet")), torch.nn.Conv2d)
    widths = sorted({c.out_channels for c in convs})
    assert widths == [1, 16, 32, 64, 128, 256]


def test_unet_is_ronneberger_shaped_and_base_width_scales():
    net = models.build_model(ModelConfig("unet"))
    assert len(_modules(net, torch.nn.MaxPool2d)) == 4
    ups = _modules(net, torch.nn.ConvTranspose2d)
    assert len(ups) == 4 and all(u.kernel_size == (2, 2) and u.stride == (2, 2) for u in ups)
    assert max(c.out_channels for c in _modules(net, torch.nn.Conv2d)) == 32 * 16
    n32 = count_parameters(net)
    n16 = count_parameters(models.build_model(ModelConfig("unet", base_width=16)))
    assert 3.5 < n32 / n16 < 4.1  # conv weights scale with width squared


def test_resunet_has_residual_blocks_and_paper_widths():
    net = models.build_model(ModelConfig("resunet"))
    from napari_temseg.core.nets.unets import ResBlock

    blocks = _modules(net, ResBlock)
    assert len(blocks) == 7  # 3 encoder + bridge + 3 decoder
    assert [b.skip[0].out_channels for b in blocks[:4]] == [64, 128, 256, 512]
    assert [b.skip[0].stride for b in blocks[:4]] == [(1, 1), (2, 2), (2, 2), (2, 2)]
    x = torch.randn(1, 1, 32, 32, requires_grad=True)
    net(x).sum().backward()
    assert x.grad is not None and x.grad.abs().sum() > 0


@pytest.mark.parametrize("encoder", ["resnet18", "mobilenet_v2"])
def test_smp_unet_random_init(encoder):
    cfg = ModelConfig(arch="Unet", encoder=encoder, in_channels=2)
    assert models.required_multiple(cfg) == 32
    net = models.build_model(cfg).eval()
    with torch.no_grad():
        assert net(torch.randn(1, 2, 64, 96)).shape == (1, 1, 64, 96)


def test_unknown_arch_and_encoder_list_choices():
    with pytest.raises(ConfigError, match="small-unet.*fpn"):
        models.build_model(ModelConfig(arch="Vnet9"))
    with pytest.raises(ConfigError, match="resnet18"):
        models.build_model(ModelConfig(arch="Unet", encoder="resnet1234"))
    with pytest.raises(ConfigError, match="encoder_weights=None"):
        models.build_model(ModelConfig(arch="Unet", encoder="resnet18", encoder_weights="bogus"))


def test_offline_pretrained_weights_give_config_error(monkeypatch):
    import segmentation_models_pytorch.encoders as enc

    def no_net(*a, **k):
        raise OSError("We couldn't connect to 'https://huggingface.co'")

    monkeypatch.setattr(enc, "hf_hub_download", no_net)
    cfg = ModelConfig(arch="Unet", encoder="resnet18", encoder_weights="imagenet")
    with pytest.raises(ConfigError, match="no internet: use encoder_weights=None"):
        models.build_model(cfg)


def test_default_model():
    assert DEFAULT_MODEL.arch == registry.DEFAULT_ARCH == ModelConfig().arch
    assert registry.DEFAULT_ARCH == "small-unet"
    assert registry.DEFAULT_ENCODER is None and DEFAULT_MODEL.encoder is None  # native: no encoder
    # ModelConfig() builds exactly DEFAULT_MODEL: same layers, same parameter count
    default, explicit = models.build_model(ModelConfig()), models.build_model(DEFAULT_MODEL)
    assert type(default) is type(explicit)
    assert count_parameters(default) == count_parameters(explicit)
    assert count_parameters(default) != count_parameters(
        models.build_model(ModelConfig("unet", base_width=8))
    )
    with torch.no_grad():
        assert default.eval()(torch.randn(1, 1, 32, 48)).shape == (1, 1, 32, 48)


def test_state_dict_roundtrip_and_pickle():
    torch.manual_seed(0)
    cfg = ModelConfig("small-unet", base_width=8)
    a, b = models.build_model(cfg).eval(), models.build_model(cfg).eval()
    x = torch.randn(1, 1, 32, 32)
    b.load_state_dict(a.state_dict(), strict=True)
    assert torch.equal(a(x), b(x))
    c = pickle.loads(pickle.dumps(a))
    assert torch.equal(a(x), c(x))


@pytest.mark.parametrize("arch", ["small-unet", "resunet"])
def test_learns_a_simple_task(arch):
    """A few Adam steps on 'foreground = bright disc' must cut the loss clearly."""
    torch.manual_seed(0)
    yy, xx = torch.meshgrid(torch.arange(32.0), torch.arange(32.0), indexing="ij")
    cy, cx = torch.randint(8, 24, (2, 4, 1, 1)).float()
    y = (((yy - cy) ** 2 + (xx - cx) ** 2) < 36).float().unsqueeze(1)
    x = y * 0.6 + 0.2 * torch.rand_like(y)
    net = models.build_model(ModelConfig(arch, base_width=8))
    opt = torch.optim.Adam(net.parameters(), lr=1e-2)
    loss_fn = torch.nn.BCEWithLogitsLoss()
    first = loss_fn(net(x), y).item()
    for _ in range(25):
        opt.zero_grad()
        loss = loss_fn(net(x), y)
        loss.backward()
        opt.step()
    assert loss.item() < 0.5 * first


def test_native_unet_and_smp_unet_are_different_archs():
    """smp names are matched case-insensitively, except that lower-case "unet" is native."""
    from napari_temseg.core.config.model import ModelConfig
    from napari_temseg.core.nets.build import build_model

    assert type(build_model(ModelConfig(arch="Unet", encoder="resnet18"))).__name__ == "Unet"
    assert type(build_model(ModelConfig(arch="unet", base_width=8))).__name__ != "Unet"


@pytest.mark.parametrize("arch", ["unet", "small-unet", "resunet"])
@pytest.mark.parametrize("norm", ["instance", "group"])
def test_norm_layers_replace_every_batch_norm(arch, norm):
    net = models.build_model(ModelConfig(arch=arch, base_width=8, norm_layer=norm))
    norms = _modules(net, torch.nn.GroupNorm)
    assert not _modules(net, torch.nn.BatchNorm2d) and len(norms) >= 10
    if norm == "instance":  # one group per channel = instance norm
        assert all(m.num_groups == m.num_channels for m in norms)
        ref = torch.nn.InstanceNorm2d(norms[0].num_channels, affine=True)
        x = torch.randn(3, norms[0].num_channels, 9, 7)
        assert torch.allclose(norms[0](x), ref(x), atol=1e-5)
    # per-sample normalisation: a sample's output does not depend on the rest of the batch
    net.train()
    x = torch.randn(2, 1, 32, 32)
    alone = net(x[:1])
    with_other = net(torch.cat([x[:1], 10 * x[1:] + 3]))[:1]
    assert torch.allclose(alone, with_other, atol=1e-5)


def test_norm_option_is_checked():
    with pytest.raises(ConfigError, match="norm_layer must be 'auto' or one of"):
        ModelConfig(arch="small-unet", norm_layer="layer")
    with pytest.raises(ConfigError, match="smp encoders use batch norm"):
        ModelConfig(arch="Unet", norm_layer="instance")


def test_auto_norm_is_instance_for_the_default_and_batch_elsewhere():
    # small-unet's "auto" waits for the class count: instance binary, batch for K classes
    assert DEFAULT_MODEL.norm_layer == ModelConfig().norm_layer == "auto"
    assert ModelConfig(arch="small-unet").resolved().norm_layer == "instance"
    assert ModelConfig(arch="small-unet", classes=4).resolved().norm_layer == "batch"
    assert ModelConfig(norm_layer="instance", classes=4).resolved().norm_layer == "instance"
    assert ModelConfig(arch="unet").norm_layer == ModelConfig(arch="resunet").norm_layer == "batch"
    assert ModelConfig(arch="Unet").norm_layer == "batch"
    assert not _modules(models.build_model(DEFAULT_MODEL), torch.nn.BatchNorm2d)


@pytest.mark.parametrize("arch", ["small-unet", "unet"])
@pytest.mark.parametrize("depth", [3, 5])
def test_depth_sets_pooling_levels_stride_and_capped_widths(arch, depth):
    cfg = ModelConfig(arch=arch, base_width=4, depth=depth)
    net = models.build_model(cfg).eval()
    assert len(_modules(net, torch.nn.MaxPool2d)) == depth
    assert len(_modules(net, torch.nn.ConvTranspose2d)) == depth
    assert models.required_multiple(cfg) == 2**depth
    widths = sorted({c.out_channels for c in _modules(net, torch.nn.Conv2d)} - {1})
    assert widths == [4 * 2**i for i in range(min(depth, 4) + 1)]  # capped at 16 x base
    hw = (2 * 2**depth, 3 * 2**depth)
    with torch.no_grad():
        assert net(torch.randn(1, 1, *hw)).shape == (1, 1, *hw)


def test_depth_auto_is_the_four_level_network():
    auto, four = ModelConfig(), ModelConfig(depth=4)
    assert auto.depth is None and auto.levels == four.levels == 4
    a, b = models.build_model(auto), models.build_model(four)
    assert [p.shape for p in a.state_dict().values()] == [p.shape for p in b.state_dict().values()]
    assert models.min_input_size(ModelConfig(depth=5)) == 64  # instance norm: two strides


@pytest.mark.parametrize(
    "kwargs,message",
    [
        (dict(arch="resunet", depth=5), "depth is an option of"),
        (dict(arch="Unet", depth=4), "leave it on auto"),
        (dict(depth=2), "depth must be 3..6"),
        (dict(depth=7), "depth must be 3..6"),
    ],
)
def test_depth_option_is_checked(kwargs, message):
    with pytest.raises(ConfigError, match=message):
        ModelConfig(**kwargs)
