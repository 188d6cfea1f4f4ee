"""Frozen, validated configuration dataclasses, saved as JSON with every model.

Three pieces travel together:

* :class:`ModelConfig` - which network to build (``models.build_model``).
* :class:`InputSpec`  - how raw pixels become network input (channels, 2.5D
  context, per-channel normalisation); applied identically in training and
  inference.
* :class:`TrainConfig` - how the network was (or will be) trained.

Every field is checked in ``__post_init__`` and a bad value raises
:class:`ConfigError` with a message that names the fix.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from typing import Any


from .errors import TemsegError


class ConfigError(TemsegError, ValueError):
    """A configuration value is out of range; the message says what to use instead."""


def _check(cond: bool, msg: str) -> None:
    if not cond:
        raise ConfigError(msg)


# Names of the models implemented in this package (``models.py``); anything else
# is looked up in segmentation-models-pytorch (e.g. "Unet", "UnetPlusPlus").
NATIVE_ARCHS = ("unet", "small-unet", "resunet")
LOSSES = ("bce", "dice", "bce+dice")
OPTIMIZERS = ("adam", "adamw")
AUGMENT_PRESETS = ("none", "flips", "default", "augmentor", "strong")
BLENDS = ("gaussian", "constant")
NORM_MODES = ("dataset", "image")
NORM_LAYERS = ("batch", "instance", "group")
# ModelConfig(norm="auto"): instance norm for the default small-unet (stable on folders of
# heterogeneous micrographs, docs/benchmarks.md "Normalisation layers"); batch norm where the
# architecture's paper or the smp encoder uses it
_AUTO_NORM = {"small-unet": "instance"}


@dataclass(frozen=True)
class ModelConfig:
    """The network: a native architecture or any smp architecture + encoder."""

    arch: str = "small-unet"
    encoder: str | None = None  # smp only, e.g. "resnet18"
    encoder_weights: str | None = None  # smp only: None (random) or "imagenet"
    in_channels: int = 1  # = InputSpec.network_channels
    classes: int = 1
    base_width: int | None = None  # native archs: width of the first level
    norm: str = "auto"  # "batch", "instance", "group" (native archs) or "auto" (see _AUTO_NORM)

    def __post_init__(self) -> None:
        _check(bool(self.arch), "ModelConfig.arch is empty: use e.g. 'small-unet' or 'Unet'")
        _check(self.in_channels >= 1, f"in_channels must be >= 1, got {self.in_channels}")
        _check(self.classes >= 1, f"classes must be >= 1, got {self.classes}")
        if self.base_width is not None:
            _check(self.base_width >= 4, f"base_width must be >= 4, got {self.base_width}")
        if self.norm == "auto":
            object.__setattr__(self, "norm", _AUTO_NORM.get(self.arch, "batch"))
        _check(self.norm in NORM_LAYERS, f"norm must be 'auto' or one of {NORM_LAYERS}, got '{self.norm}'")
        if self.arch in NATIVE_ARCHS:
            _check(
                self.encoder is None and self.encoder_weights is None,
                f"arch '{self.arch}' has no encoder option; encoders are for smp archs like 'Unet'",
            )
        else:
            _check(
                self.norm == "batch",
                f"norm='{self.norm}' is for the native archs {NATIVE_ARCHS}; smp encoders use batch norm",
            )
            if self.encoder is None:
                object.__setattr__(self, "encoder", "resnet18")

    @property
    def is_native(self) -> bool:
        return self.arch in NATIVE_ARCHS


@dataclass(frozen=True)
class InputSpec:
    """How an image becomes network input.

    The network sees, for slice ``z``, the slices ``z-context .. z+context``
    (reflected at the stack edges), each with all ``channels`` channels,
    ordered slice-major: ``input[(dz + context) * channels + c]``.
    Intensities are mapped with ``(x - norm_lo[c]) / (norm_hi[c] - norm_lo[c])``
    (``norm_mode="dataset"``: one range from the training data), or with each slice's own
    percentile range (``norm_mode="image"``: for folders of micrographs whose contrast
    differs from image to image; norm_lo/hi are then only the training data's range).
    """

    channels: int = 1
    context: int = 0
    norm_lo: tuple[float, ...] = (0.0,)
    norm_hi: tuple[float, ...] = (1.0,)
    norm_mode: str = "dataset"

    def __post_init__(self) -> None:
        object.__setattr__(self, "norm_lo", tuple(float(v) for v in self.norm_lo))
        object.__setattr__(self, "norm_hi", tuple(float(v) for v in self.norm_hi))
        _check(self.channels >= 1, f"channels must be >= 1, got {self.channels}")
        _check(0 <= self.context <= 8, f"context slices must be 0..8, got {self.context}")
        _check(
            len(self.norm_lo) == len(self.norm_hi) == self.channels,
            f"normalisation needs one (lo, hi) per channel ({self.channels}), "
            f"got {len(self.norm_lo)} / {len(self.norm_hi)}",
        )
        for lo, hi in zip(self.norm_lo, self.norm_hi):
            _check(hi > lo, f"normalisation range must have hi > lo, got ({lo}, {hi})")
        _check(self.norm_mode in NORM_MODES, f"norm_mode must be one of {NORM_MODES}, got '{self.norm_mode}'")

    @property
    def network_channels(self) -> int:
        return self.channels * (2 * self.context + 1)


@dataclass(frozen=True)
class TrainConfig:
    """Training hyper-parameters. Either ``epochs`` or ``seconds`` bounds the run."""

    patch: int = 256
    batch: int = 4
    epochs: int | None = None
    seconds: float | None = 120.0
    steps_per_epoch: int = 50
    lr: float = 1e-3
    optimizer: str = "adamw"
    weight_decay: float = 1e-4
    loss: str = "bce+dice"
    augment: str = "default"
    val_fraction: float = 0.2
    foreground_oversample: float = 0.5
    early_stop: int | None = None  # epochs without val improvement
    sparse: bool = False
    seed: int = 0
    device: str = "auto"
    amp: bool = True  # autocast: bf16/fp16 on CUDA, bf16 on CPUs with native bf16 units
    channels_last: bool = True  # when it pays: on CUDA, and on CPUs with bf16 autocast
    threshold: float = 0.5
    normalize: str = "dataset"  # or "image": each slice by its own percentiles (InputSpec.norm_mode)

    def __post_init__(self) -> None:
        _check(self.normalize in NORM_MODES, f"normalize must be one of {NORM_MODES}, got '{self.normalize}'")
        _check(16 <= self.patch <= 4096, f"patch must be 16..4096 px, got {self.patch}")
        _check(self.patch % 16 == 0, f"patch must be a multiple of 16, got {self.patch}")
        _check(1 <= self.batch <= 1024, f"batch must be 1..1024, got {self.batch}")
        _check(
            self.epochs is not None or self.seconds is not None,
            "give epochs or seconds (a time budget) so training knows when to stop",
        )
        if self.epochs is not None:
            _check(self.epochs >= 1, f"epochs must be >= 1, got {self.epochs}")
        if self.seconds is not None:
            _check(self.seconds > 0, f"seconds must be > 0, got {self.seconds}")
        _check(self.steps_per_epoch >= 1, "steps_per_epoch must be >= 1")
        _check(0 < self.lr < 1, f"learning rate must be in (0, 1), got {self.lr}")
        _check(self.optimizer in OPTIMIZERS, f"optimizer must be one of {OPTIMIZERS}")
        _check(self.loss in LOSSES, f"loss must be one of {LOSSES}, got '{self.loss}'")
        _check(
            self.augment in AUGMENT_PRESETS,
            f"augment preset must be one of {AUGMENT_PRESETS}, got '{self.augment}'",
        )
        _check(0 <= self.val_fraction < 0.9, "val_fraction must be in [0, 0.9)")
        _check(0 <= self.foreground_oversample <= 1, "foreground_oversample must be in [0, 1]")
        _check(0 < self.threshold < 1, f"threshold must be in (0, 1), got {self.threshold}")
        if self.early_stop is not None:
            _check(self.early_stop >= 1, "early_stop must be >= 1 epoch")


def to_dict(obj: Any) -> dict:
    return dataclasses.asdict(obj)


def from_dict(cls: type, data: dict) -> Any:
    """Build ``cls`` from a dict, ignoring unknown keys (files from newer versions)."""
    names = {f.name for f in dataclasses.fields(cls)}
    kwargs = {k: (tuple(v) if isinstance(v, list) else v) for k, v in data.items() if k in names}
    return cls(**kwargs)


def dumps(**parts: Any) -> str:
    return json.dumps({k: (to_dict(v) if dataclasses.is_dataclass(v) else v) for k, v in parts.items()})


__all__ = [
    "ConfigError",
    "ModelConfig",
    "InputSpec",
    "TrainConfig",
    "NATIVE_ARCHS",
    "LOSSES",
    "AUGMENT_PRESETS",
    "BLENDS",
    "to_dict",
    "from_dict",
    "dumps",
    "field",
]
