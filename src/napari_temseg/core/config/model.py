"""Frozen, validated configuration dataclasses: the single source of every user option.

* :class:`ModelConfig`   - which network to build (``nets.build.build_model``); the
  architectures and what each accepts come from ``nets/registry.py``.
* :class:`InputSpec`     - how raw pixels become network input (channels, 2.5D context,
  intensity normalisation); applied identically in training and inference.
* :class:`TrainConfig`   - how the network is trained (declared in ``train.py``).
* :class:`PredictConfig` - how a trained network segments an image (``predict.py``).

All four are imported from here.

Every option field carries its description (``choices.opt``: help, label, choices, range, whether
it belongs to the "Advanced" section); ``core/config/options.py`` turns them into the CLI flags,
the dock widgets and the console keyword arguments, so each option has one name, one
default and one help text everywhere. Every field is checked in ``__post_init__`` and a
bad value raises :class:`ConfigError` with a message that names the fix.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from typing import Any

from ..nets.registry import (
    DEFAULT_ARCH,
    DEFAULT_ENCODER,
    DEFAULT_SMP_ENCODER,
    ENCODERS,
    arch_of,
    archs_with,
    model_choices,
    native_archs,
)
from .choices import (
    AUGMENT_PRESETS,
    INTENSITY_NORMS,
    MAX_BINNING,
    NORM_LAYERS,
    ConfigError,
    check,
    opt,
)
from .predict import PredictConfig
from .train import TrainConfig

# ModelConfig(norm_layer="auto"): instance norm for the default binary small-unet (stable on
# folders of heterogeneous micrographs, docs/experiments/ "Normalisation layers"), batch norm
# for a K-class small-unet (faster and better per step: "Multi-class") and where the
# architecture's paper or the smp encoder uses it. small-unet's "auto" is resolved when the
# number of classes is known (ModelConfig.resolved(), called when a network is built): its
# registry entry has norm="by-classes". Instance norm's labels depend a little on the
# prediction tile size (its statistics are per tile; batch norm's are not), but batch norm
# lost clearly on EMPS again with precise statistics (docs/experiments/, "Tile invariance
# and precise batch norm"), so binary stays.
NATIVE_ARCHS = native_archs()
# native U-Nets whose number of pooling levels is an option (ModelConfig.depth; auto = 4)
DEPTH_ARCHS = archs_with("depth")
MIN_DEPTH, MAX_DEPTH, DEFAULT_DEPTH = 3, 6, 4
# fields renamed since format 1 files were written: {class name: {old: new}}
RENAMED = {
    "ModelConfig": {"norm": "norm_layer"},
    "InputSpec": {"norm_mode": "intensity_norm"},
    "TrainConfig": {"normalize": "intensity_norm"},
}


@dataclass(frozen=True)
class ModelConfig:
    """The network: a native architecture or any smp architecture + encoder."""

    arch: str = opt(
        DEFAULT_ARCH,
        f"network: {', '.join(NATIVE_ARCHS)} (native) or an smp architecture like Unet or FPN",
        label="model",
        choices=model_choices(),
        open_choices=True,
    )
    encoder: str | None = opt(
        DEFAULT_ENCODER,
        "encoder of an smp architecture (default resnet18)",
        choices=ENCODERS,
        open_choices=True,
        none="auto",
    )
    encoder_weights: str | None = opt(
        None,
        "smp encoder weights: none (random) or imagenet (downloaded once, needs internet)",
        choices=("imagenet",),
        none="none",
        advanced=True,
    )
    in_channels: int = opt(
        1, "network input channels", derived="the image's channels x (2 x context + 1)"
    )
    slices: int = opt(
        1,
        "slices per input window",
        derived="2 x context + 1: the window a sequence model (sensor3d) reads",
    )
    classes: int = opt(
        1,
        "network output channels",
        derived="1 (binary, sigmoid) or K (K >= 3 classes, softmax): from the class table",
    )
    base_width: int | None = opt(
        None,
        "channels of the first level of a native network",
        none="auto",
        lo=4,
        hi=256,
        step=4,
        advanced=True,
    )
    depth: int | None = opt(
        None,
        "pooling levels of a small-unet or unet (auto: 4); one more level doubles the context "
        "the network sees (sparse objects on large flat backgrounds), and training patches "
        "must then be multiples of 2^depth",
        label="depth (levels)",
        none="auto",
        lo=MIN_DEPTH,
        hi=MAX_DEPTH,
        advanced=True,
    )
    norm_layer: str = opt(
        "auto",
        "normalisation layers of a native network (auto: instance for a binary "
        "small-unet, batch for a K-class small-unet, unet and resunet)",
        label="normalisation layers",
        choices=("auto", *NORM_LAYERS),
        advanced=True,
    )

    def __post_init__(self) -> None:
        check(
            isinstance(self.arch, str) and bool(self.arch),
            f"ModelConfig.arch must be a name: use one of {list(model_choices())}",
        )
        check(self.in_channels >= 1, f"in_channels must be >= 1, got {self.in_channels}")
        check(self.classes >= 1, f"classes must be >= 1, got {self.classes}")
        check(
            self.slices >= 1 and self.in_channels % self.slices == 0,
            f"slices must be >= 1 and divide in_channels ({self.in_channels}), got {self.slices}",
        )
        if self.base_width is not None:
            check(self.base_width >= 4, f"base_width must be >= 4, got {self.base_width}")
        self._check_arch_options()

    def _check_arch_options(self) -> None:
        """The options that only some architectures have (their registry entries say)."""
        spec = arch_of(self.arch)
        if self.depth is not None:
            check(
                spec.depth,
                f"depth is an option of {DEPTH_ARCHS}, not of '{self.arch}': leave it on auto",
            )
            check(
                MIN_DEPTH <= self.depth <= MAX_DEPTH,
                f"depth must be {MIN_DEPTH}..{MAX_DEPTH} pooling levels, got {self.depth}",
            )
        if self.norm_layer == "auto" and spec.norm != "by-classes":
            object.__setattr__(self, "norm_layer", "batch")
        check(
            self.norm_layer in NORM_LAYERS or self.norm_layer == "auto",
            f"norm_layer must be 'auto' or one of {NORM_LAYERS}, got '{self.norm_layer}'",
        )
        check(
            spec.norm is not None or self.norm_layer == "batch",
            f"norm_layer='{self.norm_layer}' is for the native archs {NATIVE_ARCHS}; "
            f"'{self.arch}' has none to choose (smp encoders use batch norm)",
        )
        check(
            spec.base_width is not None or self.base_width is None,
            f"base_width is an option of {archs_with('base_width')}, not of '{self.arch}' "
            "(smp networks take their widths from the encoder): leave it on auto",
        )
        if not spec.encoder:
            check(
                self.encoder is None and self.encoder_weights is None,
                f"arch '{self.arch}' has no encoder option; encoders are for smp archs like 'Unet'",
            )
        elif self.encoder is None:
            object.__setattr__(self, "encoder", DEFAULT_SMP_ENCODER)

    @property
    def is_native(self) -> bool:
        return arch_of(self.arch).native

    @property
    def levels(self) -> int:
        """Pooling levels of a native U-Net (``depth``, or 4 when auto / not an option)."""
        return DEFAULT_DEPTH if self.depth is None else self.depth

    def resolved(self) -> ModelConfig:
        """This config with ``norm_layer="auto"`` made concrete for its number of output
        channels (small-unet: instance norm binary, batch norm for K classes)."""
        if self.norm_layer != "auto":
            return self
        norm = "instance" if self.classes == 1 else "batch"
        return dataclasses.replace(self, norm_layer=norm)


# the network when the user picks nothing (nets/registry.py says why this one)
DEFAULT_MODEL = ModelConfig(arch=DEFAULT_ARCH, encoder=DEFAULT_ENCODER)


@dataclass(frozen=True)
class InputSpec:
    """How an image becomes network input (saved with the model; not a user option).

    The network sees, for slice ``z``, the slices ``z-context .. z+context``
    (reflected at the stack edges), each with all ``channels`` channels,
    ordered slice-major: ``input[(dz + context) * channels + c]``.
    Intensities are mapped with ``(x - norm_lo[c]) / (norm_hi[c] - norm_lo[c])``
    (``intensity_norm="dataset"``: one range from the training data), or with each slice's own
    percentile range (``"image"``: for folders of micrographs whose contrast differs from
    image to image; norm_lo/hi are then only the training data's range).
    """

    channels: int = 1
    context: int = 0
    norm_lo: tuple[float, ...] = (0.0,)
    norm_hi: tuple[float, ...] = (1.0,)
    intensity_norm: str = "dataset"
    binning: int = 1  # the network sees the image binned binning x binning (core/data/binning.py)

    def __post_init__(self) -> None:
        object.__setattr__(self, "norm_lo", tuple(float(v) for v in self.norm_lo))
        object.__setattr__(self, "norm_hi", tuple(float(v) for v in self.norm_hi))
        check(self.channels >= 1, f"channels must be >= 1, got {self.channels}")
        check(0 <= self.context <= 8, f"context slices must be 0..8, got {self.context}")
        check(
            len(self.norm_lo) == len(self.norm_hi) == self.channels,
            f"normalisation needs one (lo, hi) per channel ({self.channels}), "
            f"got {len(self.norm_lo)} / {len(self.norm_hi)}",
        )
        for lo, hi in zip(self.norm_lo, self.norm_hi, strict=False):
            check(hi > lo, f"normalisation range must have hi > lo, got ({lo}, {hi})")
        check(
            self.intensity_norm in INTENSITY_NORMS,
            f"intensity_norm must be one of {INTENSITY_NORMS}, got '{self.intensity_norm}'",
        )
        check(
            1 <= self.binning <= MAX_BINNING,
            f"binning must be 1..{MAX_BINNING}, got {self.binning}",
        )

    @property
    def network_channels(self) -> int:
        return self.channels * (2 * self.context + 1)


def to_dict(obj: Any) -> dict:
    return dataclasses.asdict(obj)


def from_dict(cls: type, data: dict) -> Any:
    """Build ``cls`` from a saved dict: renamed keys are mapped, unknown keys (files from
    newer versions) ignored."""
    renamed = RENAMED.get(cls.__name__, {})
    data = {renamed.get(k, k): v for k, v in data.items()}
    names = {f.name for f in dataclasses.fields(cls)}
    kwargs = {k: (tuple(v) if isinstance(v, list) else v) for k, v in data.items() if k in names}
    return cls(**kwargs)


def dumps(**parts: Any) -> str:
    return json.dumps(
        {k: (to_dict(v) if dataclasses.is_dataclass(v) else v) for k, v in parts.items()}
    )


__all__ = [
    "AUGMENT_PRESETS",
    "DEFAULT_MODEL",
    "NATIVE_ARCHS",
    "DEPTH_ARCHS",
    "MIN_DEPTH",
    "MAX_DEPTH",
    "DEFAULT_DEPTH",
    "MAX_BINNING",
    "ModelConfig",
    "InputSpec",
    "TrainConfig",
    "PredictConfig",
    "ConfigError",
]
