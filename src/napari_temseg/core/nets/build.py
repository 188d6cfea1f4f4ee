"""Network registry: ``build_model(cfg)`` returns an ``nn.Module`` producing logits.

Native architectures (implemented here, no downloads ever):

* ``unet`` - classic U-Net (Ronneberger et al. 2015): two 3x3 conv + BN + ReLU per
  level, 2x2 max-pool, 2x2 transposed-conv up-sampling, skip concatenation, 1x1 head.
  Four poolings (``cfg.depth``: 3..6); widths ``b, 2b, 4b, 8b`` + ``16b`` bottleneck
  (``b = cfg.base_width``, default 32; deeper levels stay at ``16b``).
* ``small-unet`` - the compact U-Net of the Keras/Kaggle recipe: 16-32-64-128 encoder,
  256 bottleneck, 3x3 stride-2 transposed convolutions, ~2.16 M parameters for one input
  channel (``cfg.base_width`` scales it; default 16).
* ``sensor3d`` - Sensor3D (Novikov et al. 2019; :mod:`.sensor3d`): a U-Net encoder and
  decoder shared by the slices of a (2k+1)-slice window, bidirectional ConvLSTMs along the
  slice axis at the bottleneck and at full resolution, the centre slice segmented
  (default width 16).
* ``resunet`` - Deep Residual U-Net (Zhang, Liu & Wang 2018): pre-activation residual
  blocks (BN-ReLU-Conv x2, 1x1 conv shortcut), 64/128/256 encoder with strided first
  convolutions, 512 bridge, up-sampling + concatenation decoder, 1x1 head.

Any other ``arch`` is a segmentation-models-pytorch architecture (``Unet``, ``FPN``,
``UnetPlusPlus``...) with ``cfg.encoder`` (``resnet18``, ``mobilenet_v2``...).

Input height and width must be multiples of :func:`required_multiple` (2^depth = 16 for
the native archs, 32 for smp encoders): pad, don't resize.

torch is imported lazily: importing this module is cheap (the napari manifest and
the CLI import it at start-up).
"""

from __future__ import annotations

from typing import Any

from ..config.choices import NATIVE_ARCHS, ConfigError
from ..config.model import ModelConfig
from ..errors import InputError

# Default network when the user picks nothing; chosen with benchmarks/bench_models.py
# (docs/experiments/, "Model choice"): best Dice within a CPU minute, fast on GPU.
DEFAULT_ARCH = "small-unet"
DEFAULT_ENCODER: str | None = None
DEFAULT_MODEL = ModelConfig(arch=DEFAULT_ARCH, encoder=DEFAULT_ENCODER)

_DEFAULT_WIDTH = {"unet": 32, "small-unet": 16, "resunet": 64, "sensor3d": 16}
_OFFLINE_HINT = (
    "no internet: use encoder_weights=None (random init), "
    "or run once online so the weights are cached"
)

_CLASSES: dict[str, type] = {}


def _classes() -> dict[str, type]:
    """Define the torch modules on first use (keeps ``import models`` torch-free)."""
    if _CLASSES:
        return _CLASSES
    import torch
    from torch import nn

    class ResBlock(nn.Module):
        """Pre-activation residual unit: (BN-ReLU-)Conv3x3-BN-ReLU-Conv3x3 + 1x1 shortcut."""

        def __init__(
            self, cin: int, cout: int, stride: int = 1, first: bool = False, norm: str = "batch"
        ):
            super().__init__()
            pre = [] if first else [_norm_layer(norm, cin), nn.ReLU(inplace=True)]
            self.body = nn.Sequential(
                *pre,
                nn.Conv2d(cin, cout, 3, stride, 1),
                _norm_layer(norm, cout),
                nn.ReLU(inplace=True),
                nn.Conv2d(cout, cout, 3, 1, 1),
            )
            self.skip = nn.Sequential(nn.Conv2d(cin, cout, 1, stride), _norm_layer(norm, cout))

        def forward(self, x):
            return self.body(x) + self.skip(x)

    class UNet(nn.Module):
        """Generic encoder/decoder with skips: enc blocks, bridge, (up, dec) pairs, head."""

        def __init__(self, enc, bridge, ups, decs, head):
            super().__init__()
            self.enc, self.bridge = nn.ModuleList(enc), bridge
            self.ups, self.decs, self.head = nn.ModuleList(ups), nn.ModuleList(decs), head

        def forward(self, x):
            skips = []
            for block in self.enc:
                x = block(x)
                skips.append(x)
            x = self.bridge(x)
            for up, dec, skip in zip(self.ups, self.decs, reversed(skips), strict=False):
                x = dec(torch.cat([up(x), skip], dim=1))
            return self.head(x)

    for cls in (ResBlock, UNet):  # picklable as napari_temseg.core.nets.build.<name>
        cls.__module__, cls.__qualname__ = __name__, cls.__name__
    _CLASSES.update(ResBlock=ResBlock, UNet=UNet)
    return _CLASSES


def __getattr__(name: str) -> Any:  # lazy module attributes (used by pickle)
    if name in ("ResBlock", "UNet"):
        return _classes()[name]
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def _norm_layer(kind: str, channels: int):
    """Batch norm (default), instance norm (per sample, nnU-Net style) or group norm (8 groups)."""
    from torch import nn

    if kind == "instance":  # = InstanceNorm2d(affine=True); as GroupNorm it is 2.1x faster in
        return nn.GroupNorm(channels, channels)  # channels_last CPU inference (measured)
    if kind == "group":
        return nn.GroupNorm(min(8, channels), channels)
    return nn.BatchNorm2d(channels)


def _double_conv(cin: int, cout: int, norm: str = "batch"):
    from torch import nn

    return nn.Sequential(
        nn.Conv2d(cin, cout, 3, padding=1, bias=False),
        _norm_layer(norm, cout),
        nn.ReLU(inplace=True),
        nn.Conv2d(cout, cout, 3, padding=1, bias=False),
        _norm_layer(norm, cout),
        nn.ReLU(inplace=True),
    )


def _plain_unet(
    cin: int, classes: int, base: int, up_kernel: int, norm: str = "batch", depth: int = 4
):
    """U-Net with ``depth`` poolings; ``up_kernel`` 2 (Ronneberger) or 3 (Keras small U-Net).

    Widths double per level up to ``16 * base`` (the 4-level bottleneck), then stay: a fifth
    level doubles the receptive field for ~1.1x the training time (measured), not 4x the
    parameters.
    """
    from torch import nn

    w = [base * 2 ** min(i, 4) for i in range(depth + 1)]  # levels + bottleneck
    enc = [_double_conv(cin, w[0], norm)]
    enc += [
        nn.Sequential(nn.MaxPool2d(2), _double_conv(w[i - 1], w[i], norm)) for i in range(1, depth)
    ]
    bridge = nn.Sequential(nn.MaxPool2d(2), _double_conv(w[depth - 1], w[depth], norm))
    pad, out_pad = (0, 0) if up_kernel == 2 else (1, 1)
    up_levels = range(depth - 1, -1, -1)
    ups = [nn.ConvTranspose2d(w[i + 1], w[i], up_kernel, 2, pad, out_pad) for i in up_levels]
    decs = [_double_conv(2 * w[i], w[i], norm) for i in up_levels]
    return _classes()["UNet"](enc, bridge, ups, decs, nn.Conv2d(w[0], classes, 1))


def _resunet(cin: int, classes: int, base: int, norm: str = "batch"):
    """Deep Residual U-Net (Zhang et al. 2018); 3 strided levels + strided bridge."""
    from functools import partial

    from torch import nn

    res = partial(_classes()["ResBlock"], norm=norm)
    w = [base, 2 * base, 4 * base, 8 * base]
    enc = [res(cin, w[0], 1, first=True), res(w[0], w[1], 2), res(w[1], w[2], 2)]
    bridge = res(w[2], w[3], 2)
    up = lambda: nn.Upsample(scale_factor=2, mode="bilinear", align_corners=False)  # noqa: E731
    ups = [up(), up(), up()]
    decs = [res(w[3] + w[2], w[2]), res(w[2] + w[1], w[1]), res(w[1] + w[0], w[0])]
    return _classes()["UNet"](enc, bridge, ups, decs, nn.Conv2d(w[0], classes, 1))


def _smp_archs() -> list[str]:
    import segmentation_models_pytorch as smp

    return list(smp.MODEL_ARCHITECTURES_MAPPING)


def _smp_arch_key(arch: str) -> str:
    key = arch.lower()
    if key not in _smp_archs():
        raise ConfigError(
            f"unknown model architecture '{arch}': use one of {list(NATIVE_ARCHS)} (native) "
            f"or an smp architecture {_smp_archs()}"
        )
    return key


def _check_encoder(name: str, weights: str | None) -> None:
    from segmentation_models_pytorch import encoders

    if name.startswith("tu-"):  # any timm model; validated when built
        return
    if name not in encoders.encoders:
        raise ConfigError(
            f"unknown encoder '{name}': use one of {sorted(encoders.encoders)} "
            "or a timm model as 'tu-<name>'"
        )
    available = list(encoders.encoders[name]["pretrained_settings"])
    if weights is not None and weights not in available:
        raise ConfigError(
            f"encoder '{name}' has no '{weights}' weights: use encoder_weights=None "
            f"(random init) or one of {available}"
        )


def _build_smp(cfg: ModelConfig):
    import segmentation_models_pytorch as smp

    key = _smp_arch_key(cfg.arch)
    _check_encoder(cfg.encoder, cfg.encoder_weights)
    kwargs = dict(encoder_name=cfg.encoder, in_channels=cfg.in_channels, classes=cfg.classes)
    try:
        return smp.create_model(key, encoder_weights=cfg.encoder_weights, **kwargs)
    except Exception as e:  # download failure, or an arch/encoder combination smp refuses
        if cfg.encoder_weights is None:
            raise ConfigError(
                f"smp cannot build '{cfg.arch}' with encoder '{cfg.encoder}' ({e}); "
                "pick another encoder or architecture"
            ) from None
        try:  # does it build without the weights? then the download failed
            smp.create_model(key, encoder_weights=None, **kwargs)
        except Exception:
            raise ConfigError(
                f"smp cannot build '{cfg.arch}' with encoder '{cfg.encoder}' ({e}); "
                "pick another encoder or architecture"
            ) from None
        raise ConfigError(
            f"cannot download the '{cfg.encoder_weights}' weights of encoder '{cfg.encoder}' "
            f"({type(e).__name__}): {_OFFLINE_HINT}"
        ) from None


def build_model(cfg: ModelConfig | None = None):
    """The network of ``cfg`` (default :data:`DEFAULT_MODEL`): logits ``(N, classes, H, W)``.

    ``H`` and ``W`` must be multiples of :func:`required_multiple`. Native archs and smp
    archs with ``encoder_weights=None`` never touch the network.
    """
    cfg = DEFAULT_MODEL if cfg is None else cfg
    if not isinstance(cfg, ModelConfig):
        raise ConfigError(f"build_model needs a ModelConfig, got {type(cfg).__name__}")
    cfg = cfg.resolved()
    if not cfg.is_native:
        return _build_smp(cfg)
    base = cfg.base_width or _DEFAULT_WIDTH[cfg.arch]
    if cfg.arch == "unet":
        return _plain_unet(cfg.in_channels, cfg.classes, base, 2, cfg.norm_layer, cfg.levels)
    if cfg.arch == "small-unet":
        return _plain_unet(cfg.in_channels, cfg.classes, base, 3, cfg.norm_layer, cfg.levels)
    if cfg.arch == "sensor3d":
        from functools import partial

        from .sensor3d import build_sensor3d

        block = partial(_double_conv, norm=cfg.norm_layer)
        return build_sensor3d(cfg.in_channels, cfg.slices, cfg.classes, base, block)
    return _resunet(cfg.in_channels, cfg.classes, base, cfg.norm_layer)


def required_multiple(cfg: ModelConfig | None = None) -> int:
    """Input H and W must be multiples of this: 2^depth (16) for native archs, 32 for smp."""
    cfg = DEFAULT_MODEL if cfg is None else cfg
    return 2**cfg.levels if cfg.is_native else 32


def min_input_size(cfg: ModelConfig | None = None) -> int:
    """Smallest input H and W the network runs on (smaller images are padded up to it).

    One stride for most networks; two for native networks with instance norm, which
    normalises each channel over its pixels and needs more than one pixel at the
    bottleneck (1/16 resolution at depth 4).
    """
    cfg = (DEFAULT_MODEL if cfg is None else cfg).resolved()
    m = required_multiple(cfg)
    return 2 * m if cfg.is_native and cfg.norm_layer == "instance" else m


def list_archs() -> list[str]:
    """Native architecture names, then the smp ones as smp spells them ("Unet", "FPN", ...).

    smp names are matched case-insensitively, except that lower-case "unet" is the native
    U-Net: listing smp's lower-case keys would show "unet" twice, one of them wrong.
    """
    try:
        import segmentation_models_pytorch as smp

        extra = [cls.__name__ for cls in smp.MODEL_ARCHITECTURES_MAPPING.values()]
    except ImportError:  # smp missing: native archs still work
        extra = []
    return list(NATIVE_ARCHS) + extra


def list_encoders() -> list[str]:
    """Encoder names accepted for smp archs (plus any timm model as ``tu-<name>``)."""
    from segmentation_models_pytorch import encoders

    return sorted(encoders.encoders)


def count_parameters(net, trainable_only: bool = True) -> int:
    """Number of (trainable) parameters of a module."""
    return sum(p.numel() for p in net.parameters() if p.requires_grad or not trainable_only)


def width_of(cfg: ModelConfig) -> int | None:
    """The base width a native network is built with (the arch's default where the config
    leaves it open); None for smp networks, whose encoder fixes it."""
    return (cfg.base_width or _DEFAULT_WIDTH[cfg.arch]) if cfg.is_native else None


def check_patch(patch: int, model_cfg: ModelConfig) -> None:
    """Refuse a training patch the network cannot take (too small, or off its stride)."""
    need, m = min_input_size(model_cfg), required_multiple(model_cfg)
    if patch < need:
        raise InputError(
            f"patch {patch} px is too small for {model_cfg.arch} with {model_cfg.norm_layer} "
            f"norm (it needs more than one pixel at its bottleneck): use patch >= {need}"
        )
    if patch % m:
        raise InputError(
            f"patch {patch} px does not fit {model_cfg.arch} at depth {model_cfg.levels}: "
            f"use a multiple of {m}, e.g. patch {patch + m - patch % m}"
        )


__all__ = [
    "check_patch",
    "width_of",
    "DEFAULT_ARCH",
    "DEFAULT_ENCODER",
    "DEFAULT_MODEL",
    "build_model",
    "required_multiple",
    "min_input_size",
    "list_archs",
    "list_encoders",
    "count_parameters",
]
