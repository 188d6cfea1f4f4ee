"""Build a network from its config: ``build_model(cfg)`` returns an ``nn.Module`` (logits).

The architecture of ``cfg.arch`` comes from ``registry.py`` (the one list of names and
their properties); its builder module is imported here, when a network is built, so
importing this module stays cheap (the napari manifest and the CLI import it at start-up).
Names the registry does not hold are segmentation-models-pytorch architectures (``Unet``,
``FPN``, ``UnetPlusPlus``...) with ``cfg.encoder`` (``resnet18``, ``mobilenet_v2``...).

Input height and width must be multiples of :func:`required_multiple` (2^depth = 16 for
the native archs, 32 for smp encoders): pad, don't resize. ``cfg`` is a
``config.model.ModelConfig``; this package sits below config/ (config reads the
registry), so it is taken as it comes, not imported.
"""

from __future__ import annotations

import dataclasses
import importlib
from typing import Any

from ..errors import ConfigError, InputError
from .registry import SMP, arch_of, native_archs, not_built

_OFFLINE_HINT = (
    "no internet: use encoder_weights=None (random init), "
    "or run once online so the weights are cached"
)


def _smp_archs() -> list[str]:
    import segmentation_models_pytorch as smp

    return list(smp.MODEL_ARCHITECTURES_MAPPING)


def _smp_arch_key(arch: str) -> str:
    try:
        known = _smp_archs()
    except ImportError:
        raise ConfigError(
            f"unknown model architecture '{arch}': use one of {list(native_archs())} "
            "(smp architectures need: pip install segmentation-models-pytorch)"
        ) from None
    key = arch.lower()
    if key not in known:
        raise ConfigError(
            f"unknown model architecture '{arch}': use one of {list(native_archs())} (native) "
            f"or an smp architecture {known}"
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


def build_smp(cfg: Any) -> Any:
    """The :data:`~.registry.SMP` entry: ``smp.create_model`` with ``cfg.encoder``."""
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


def _builder(spec) -> Any:
    if spec.builder is None:
        raise not_built(spec.name)
    module, _, func = spec.builder.partition(":")
    return getattr(importlib.import_module(f"{__package__}.{module}"), func)


def build_model(cfg: Any) -> Any:
    """The network of ``cfg`` (a ``ModelConfig``): logits ``(N, classes, H, W)``.

    ``H`` and ``W`` must be multiples of :func:`required_multiple`. Native archs and smp
    archs with ``encoder_weights=None`` never touch the network.
    """
    if not callable(getattr(cfg, "resolved", None)):
        raise ConfigError(f"build_model needs a ModelConfig, got {type(cfg).__name__}")
    cfg = cfg.resolved()
    spec = arch_of(cfg.arch)
    if spec is SMP:
        return build_smp(cfg)
    if spec.base_width is not None and cfg.base_width is None:
        cfg = dataclasses.replace(cfg, base_width=spec.base_width)
    return _builder(spec)(cfg)


def required_multiple(cfg: Any) -> int:
    """Input H and W must be multiples of this: 2^depth for archs with a depth option
    (16 at the default depth), else the entry's ``multiple`` (16 native, 32 smp)."""
    spec = arch_of(cfg.arch)
    return 2**cfg.levels if spec.depth else spec.multiple


def min_input_size(cfg: Any) -> int:
    """Smallest input H and W the network runs on (smaller images are padded up to it).

    One stride for most networks; two for networks with instance norm, which normalises
    each channel over its pixels and needs more than one pixel at the bottleneck (1/16
    resolution at depth 4).
    """
    cfg = cfg.resolved()
    m = required_multiple(cfg)
    return 2 * m if cfg.norm_layer == "instance" else m


def width_of(cfg: Any) -> int | None:
    """The base width a native network is built with (the arch's default where the config
    leaves it open); None for smp networks, whose encoder fixes it, and for archs without
    a width."""
    spec = arch_of(cfg.arch)
    if spec is SMP or spec.base_width is None:
        return None
    return cfg.base_width or spec.base_width


def check_patch(patch: int, model_cfg: Any) -> None:
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
    "build_model",
    "build_smp",
    "required_multiple",
    "min_input_size",
]
