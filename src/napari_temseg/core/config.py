"""Frozen, validated configuration dataclasses: the single source of every user option.

* :class:`ModelConfig`   - which network to build (``models.build_model``).
* :class:`InputSpec`     - how raw pixels become network input (channels, 2.5D context,
  intensity normalisation); applied identically in training and inference.
* :class:`TrainConfig`   - how the network is trained.
* :class:`PredictConfig` - how a trained network segments an image.

Every option field carries its description (``choices.opt``: help, label, choices, range, whether
it belongs to the "Advanced" section); ``core/options.py`` turns them into the CLI flags,
the dock widgets and the console keyword arguments, so each option has one name, one
default and one help text everywhere. Every field is checked in ``__post_init__`` and a
bad value raises :class:`ConfigError` with a message that names the fix.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from typing import Any

from .choices import (
    AUGMENT_PRESETS,
    BLENDS,
    CLASS_WEIGHTS,
    ENCODERS,
    INTENSITY_NORMS,
    LOSSES,
    NATIVE_ARCHS,
    NORM_LAYERS,
    OPTIMIZERS,
    PROB_DTYPE_CHOICES,
    SMP_ARCHS,
    ConfigError,
    amp_opt,
    check,
    device_opt,
    opt,
)
from .classes import MAX_CLASSES, ClassTable, parse_names

# ModelConfig(norm_layer="auto"): instance norm for the default small-unet (stable on folders of
# heterogeneous micrographs, docs/benchmarks.md "Normalisation layers"); batch norm where the
# architecture's paper or the smp encoder uses it
_AUTO_NORM = {"small-unet": "instance"}
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
        "small-unet",
        "network: small-unet, unet, resunet (native) or an smp architecture like Unet or FPN",
        label="model",
        choices=NATIVE_ARCHS + SMP_ARCHS,
        open_choices=True,
    )
    encoder: str | None = opt(
        None,
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
    norm_layer: str = opt(
        "auto",
        "normalisation layers of a native network (auto: instance for "
        "small-unet, batch for unet and resunet)",
        label="normalisation layers",
        choices=("auto", *NORM_LAYERS),
        advanced=True,
    )

    def __post_init__(self) -> None:
        check(bool(self.arch), "ModelConfig.arch is empty: use e.g. 'small-unet' or 'Unet'")
        check(self.in_channels >= 1, f"in_channels must be >= 1, got {self.in_channels}")
        check(self.classes >= 1, f"classes must be >= 1, got {self.classes}")
        if self.base_width is not None:
            check(self.base_width >= 4, f"base_width must be >= 4, got {self.base_width}")
        if self.norm_layer == "auto":
            object.__setattr__(self, "norm_layer", _AUTO_NORM.get(self.arch, "batch"))
        check(
            self.norm_layer in NORM_LAYERS,
            f"norm_layer must be 'auto' or one of {NORM_LAYERS}, got '{self.norm_layer}'",
        )
        if self.arch in NATIVE_ARCHS:
            check(
                self.encoder is None and self.encoder_weights is None,
                f"arch '{self.arch}' has no encoder option; encoders are for smp archs like 'Unet'",
            )
        else:
            check(
                self.norm_layer == "batch",
                f"norm_layer='{self.norm_layer}' is for the native archs {NATIVE_ARCHS}; "
                "smp encoders use batch norm",
            )
            check(
                self.base_width is None,
                "base_width is for the native archs; smp networks "
                "take their widths from the encoder",
            )
            if self.encoder is None:
                object.__setattr__(self, "encoder", "resnet18")

    @property
    def is_native(self) -> bool:
        return self.arch in NATIVE_ARCHS


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

    @property
    def network_channels(self) -> int:
        return self.channels * (2 * self.context + 1)


@dataclass(frozen=True)
class TrainConfig:
    """Training options. ``seconds`` (a time budget) and/or ``epochs`` bound the run."""

    seconds: float | None = opt(
        120.0,
        "time budget in seconds (training stops then and keeps the best model)",
        label="time budget (s)",
        none="no limit",
        lo=1,
        hi=7 * 24 * 3600,
        step=10,
    )
    epochs: int | None = opt(
        None,
        "number of epochs (validations); with a time budget, the first limit reached stops",
        none="no limit",
        lo=1,
        hi=100000,
    )
    context: int = opt(
        0,
        "neighbouring slices on each side fed to the network (2.5D)",
        label="context slices (2.5D)",
        lo=0,
        hi=8,
    )
    sparse: bool = opt(
        False,
        "masks are scribbles: 0 unlabelled, 1..K-1 the classes, K background "
        "(binary: 1 foreground, 2 background)",
        label="sparse scribbles",
    )
    classes: int | None = opt(
        None,
        "number of classes including background (2 = binary; auto: from the mask values)",
        none="auto",
        lo=2,
        hi=MAX_CLASSES,
    )
    class_names: str | None = opt(
        None,
        "class names separated by commas, background first (e.g. matrix,pores,grains)",
        none="auto",
        advanced=True,
    )
    class_weights: str = opt(
        "none",
        "multi-class: weigh the cross-entropy of rare classes up (balanced: by 1 / "
        "sqrt(share of pixels))",
        choices=CLASS_WEIGHTS,
        advanced=True,
    )
    patch: int = opt(
        256,
        "training patch size in pixels (multiple of 16)",
        label="patch (px)",
        lo=16,
        hi=4096,
        step=16,
    )
    batch: int = opt(4, "patches per training step", lo=1, hi=1024)
    lr: float = opt(1e-3, "learning rate", label="learning rate", lo=1e-7, hi=0.5, step=1e-4)
    augment: str = opt(
        "default", "augmentation preset", label="augmentation", choices=AUGMENT_PRESETS
    )
    intensity_norm: str = opt(
        "dataset",
        "intensity range: one for the training data, or each "
        "image by its own contrast (folders of micrographs)",
        label="intensity normalisation",
        choices=INTENSITY_NORMS,
    )
    device: str = device_opt("train")
    val_fraction: float = opt(
        0.2,
        "share of the annotated regions held out for validation",
        label="validation fraction",
        lo=0.0,
        hi=0.85,
        step=0.05,
        advanced=True,
    )
    steps_per_epoch: int = opt(
        50, "training steps between validations", lo=1, hi=100000, advanced=True
    )
    early_stop: int | None = opt(
        None,
        "stop after this many epochs without a better validation Dice",
        none="never",
        lo=1,
        hi=10000,
        advanced=True,
    )
    optimizer: str = opt("adamw", "optimizer", choices=OPTIMIZERS, advanced=True)
    weight_decay: float = opt(1e-4, "weight decay", lo=0.0, hi=1.0, step=1e-4, advanced=True)
    loss: str = opt("bce+dice", "loss function", choices=LOSSES, advanced=True)
    foreground_oversample: float = opt(
        0.5, "share of patches centred on foreground", lo=0.0, hi=1.0, step=0.05, advanced=True
    )
    threshold: float = opt(
        0.5,
        "probability threshold saved with the model (the default for prediction)",
        lo=0.01,
        hi=0.99,
        step=0.01,
        advanced=True,
    )
    seed: int = opt(
        0,
        "random seed (sampling, augmentation, initial weights)",
        lo=0,
        hi=2**31 - 1,
        advanced=True,
    )
    amp: bool = amp_opt()
    channels_last: bool = opt(True, "channels-last memory format where it is faster", advanced=True)

    def __post_init__(self) -> None:
        check(16 <= self.patch <= 4096, f"patch must be 16..4096 px, got {self.patch}")
        check(self.patch % 16 == 0, f"patch must be a multiple of 16, got {self.patch}")
        check(1 <= self.batch <= 1024, f"batch must be 1..1024, got {self.batch}")
        check(
            self.epochs is not None or self.seconds is not None,
            "give epochs or seconds (a time budget) so training knows when to stop",
        )
        if self.epochs is not None:
            check(self.epochs >= 1, f"epochs must be >= 1, got {self.epochs}")
        if self.seconds is not None:
            check(self.seconds > 0, f"seconds must be > 0, got {self.seconds}")
        check(0 <= self.context <= 8, f"context slices must be 0..8, got {self.context}")
        check(self.steps_per_epoch >= 1, "steps_per_epoch must be >= 1")
        check(0 < self.lr < 1, f"learning rate must be in (0, 1), got {self.lr}")
        check(self.optimizer in OPTIMIZERS, f"optimizer must be one of {OPTIMIZERS}")
        check(self.weight_decay >= 0, f"weight_decay must be >= 0, got {self.weight_decay}")
        check(self.loss in LOSSES, f"loss must be one of {LOSSES}, got '{self.loss}'")
        check(
            self.augment in AUGMENT_PRESETS,
            f"augment preset must be one of {AUGMENT_PRESETS}, got '{self.augment}'",
        )
        check(
            self.intensity_norm in INTENSITY_NORMS,
            f"intensity_norm must be one of {INTENSITY_NORMS}, got '{self.intensity_norm}'",
        )
        check(0 <= self.val_fraction < 0.9, "val_fraction must be in [0, 0.9)")
        check(0 <= self.foreground_oversample <= 1, "foreground_oversample must be in [0, 1]")
        check(0 < self.threshold < 1, f"threshold must be in (0, 1), got {self.threshold}")
        if self.early_stop is not None:
            check(self.early_stop >= 1, "early_stop must be >= 1 epoch")
        if self.classes is not None:
            check(
                2 <= self.classes <= MAX_CLASSES,
                f"classes must be 2..{MAX_CLASSES} (including background), got {self.classes}",
            )
        if self.class_names is not None and not isinstance(self.class_names, str):
            object.__setattr__(self, "class_names", ",".join(map(str, self.class_names)))
        if self.class_names is not None:
            names = parse_names(self.class_names)
            ClassTable(names)  # checks them
            check(
                self.classes in (None, len(names)),
                f"classes={self.classes} but {len(names)} class names were given",
            )
        check(
            self.class_weights in CLASS_WEIGHTS,
            f"class_weights must be one of {CLASS_WEIGHTS}, got '{self.class_weights}'",
        )


@dataclass(frozen=True)
class PredictConfig:
    """Inference options: tiling, outputs and post-processing of the labels."""

    tile: int = opt(
        512,
        "tile size in pixels (rounded down to the network's stride)",
        label="tile (px)",
        lo=16,
        hi=8192,
        step=16,
    )
    overlap: float = opt(
        0.25, "overlap of neighbouring tiles (fraction)", lo=0.0, hi=0.75, step=0.05
    )
    batch: int = opt(4, "tiles per forward pass", label="batch (tiles)", lo=1, hi=1024)
    tta: bool = opt(
        False,
        "test-time augmentation: average 8 flips/rotations (8x slower)",
        label="test-time augmentation",
    )
    device: str = device_opt("run")
    threshold: float | None = opt(
        None,
        "binary: labels = probability >= threshold",
        none="the model's",
        lo=0.01,
        hi=0.99,
        step=0.01,
    )
    min_confidence: float = opt(
        0.0,
        "multi-class: pixels whose most likely class has a lower probability get the "
        "label K ('unsure'); 0 = off",
        label="minimum confidence",
        lo=0.0,
        hi=0.99,
        step=0.05,
    )
    uncertainty: bool = opt(
        False, "also output the variance of the 8 test-time views (needs tta)", advanced=True
    )
    blend: str = opt("gaussian", "how overlapping tiles are blended", choices=BLENDS, advanced=True)
    min_size: int = opt(
        0,
        "labels: remove objects smaller than this many pixels",
        label="min object size (px)",
        lo=0,
        hi=10**9,
        advanced=True,
    )
    fill_holes: bool = opt(False, "labels: fill holes inside objects", advanced=True)
    instances: bool = opt(
        False,
        "labels: one id per connected object (uint32)",
        label="instance labels",
        advanced=True,
    )
    prob_dtype: str = opt(
        "auto",
        "probability output type (auto: float32 for binary models, float16 for K classes; "
        "uint8 stores 0-255, 4x smaller than float32)",
        label="probability type",
        choices=PROB_DTYPE_CHOICES,
        advanced=True,
    )
    amp: bool = amp_opt()

    def __post_init__(self) -> None:
        check(16 <= self.tile <= 8192, f"tile must be 16..8192 px, got {self.tile}")
        check(
            0 <= self.overlap < 0.95,
            f"overlap must be in [0, 0.95), got {self.overlap} (0.25 is typical)",
        )
        check(1 <= self.batch <= 1024, f"batch must be 1..1024 tiles, got {self.batch}")
        check(self.blend in BLENDS, f"blend must be one of {BLENDS}, got '{self.blend}'")
        if self.threshold is not None:
            check(
                0 < self.threshold < 1,
                f"threshold must be between 0 and 1 (exclusive), got {self.threshold}",
            )
        check(self.min_size >= 0, f"min_size must be >= 0 px, got {self.min_size}")
        check(
            0 <= self.min_confidence < 1,
            f"min_confidence must be in [0, 1), got {self.min_confidence}",
        )
        check(
            self.prob_dtype in PROB_DTYPE_CHOICES,
            f"prob_dtype must be one of {PROB_DTYPE_CHOICES}, got '{self.prob_dtype}'",
        )
        check(
            not self.uncertainty or self.tta,
            "uncertainty is the spread of the 8 test-time views: turn on tta too",
        )


OPTION_CLASSES = (ModelConfig, TrainConfig, PredictConfig)


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
    "ModelConfig",
    "InputSpec",
    "TrainConfig",
    "PredictConfig",
    "OPTION_CLASSES",
    "ConfigError",
]
