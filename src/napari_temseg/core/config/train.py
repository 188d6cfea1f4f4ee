"""TrainConfig: how a network is trained (every field a user option; see ``config.py``)."""

from __future__ import annotations

import math
from dataclasses import dataclass

from .choices import (
    AUGMENT_PRESETS,
    CLASS_WEIGHTS,
    INTENSITY_NORMS,
    LOSSES,
    MAX_BINNING,
    OPTIMIZERS,
    TEACHERS,
    amp_opt,
    check,
    device_opt,
    opt,
)
from .classes import MAX_CLASSES, ClassTable, parse_names
from .recipes import RECIPE_NAMES


@dataclass(frozen=True)
class TrainConfig:
    """Training options. ``seconds`` (a time budget) and/or ``epochs`` bound the run."""

    recipe: str | None = opt(
        None,
        "a seed paper's setting in one word (`temseg recipes`); options you give override it",
        choices=RECIPE_NAMES,
        none="none",
    )
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
    background_phase: bool = opt(
        False,
        "K classes, dense masks: class 0 is a phase of the specimen (a matrix, a support), "
        "scored by validation and oversampled like the other classes (scribbles always count "
        "the painted background); off: class 0 is what is left over",
        advanced=True,
    )
    teacher: str = opt(
        "auto",
        "scribbles: first train the pixel classifier on the strokes (seconds), then teach the "
        "U-Net its answer on the unpainted pixels, weighted by its confidence; the better of "
        "the two on the held-out strokes is kept. auto: for scribbles, none for dense masks",
        choices=TEACHERS,
    )
    teacher_weight: float = opt(
        0.5,
        "loss weight of a pixel the teacher is sure of (painted pixels weigh 1)",
        lo=0.0,
        hi=1.0,
        step=0.05,
        advanced=True,
    )
    teacher_priors: bool = opt(
        False,
        "with a teacher: re-weight its answer to the class shares it finds in the images "
        "(EM), not the strokes' shares (many strokes of a rare class)",
        advanced=True,
    )
    keep_better: bool = opt(
        True,
        "with a teacher: keep whichever of the U-Net and the pixel classifier scores higher "
        "on the held-out strokes (off: always the U-Net)",
        advanced=True,
    )
    patch: int = opt(
        256,
        "training patch size in pixels (multiple of 16; of 2^depth for a deeper network)",
        label="patch (px)",
        lo=16,
        hi=4096,
        step=16,
    )
    batch: int = opt(4, "patches per training step", lo=1, hi=1024)
    lr: float | None = opt(
        None,
        "learning rate (auto: 1e-3 for binary models, 3e-3 for K classes)",
        label="learning rate",
        none="auto",
        lo=1e-7,
        hi=0.5,
        step=1e-4,
    )
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
    binning: int | None = opt(
        None,
        "train and predict on the image binned N x N (block means): N times the context and "
        "N^2 times the specimen area per step, for large objects on large backgrounds "
        "(particles, nuclei, phases); outlines are interpolated back to full resolution. "
        "auto: 2 where most painted pixels lie far from any class boundary (1 if a class "
        "is painted only in specks), else 1",
        none="auto",
        lo=1,
        hi=MAX_BINNING,
        advanced=True,
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
    precise_bn: int = opt(
        0,
        "batch-norm networks: before each validation, re-estimate the normalisation statistics "
        "as the mean over this many training batches (0: off, keep the running averages)",
        label="precise batch norm (batches)",
        lo=0,
        hi=10000,
        advanced=True,
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
        check(self.precise_bn >= 0, f"precise_bn must be >= 0 batches, got {self.precise_bn}")
        check(self.lr is None or 0 < self.lr < 1, f"learning rate must be in (0, 1), got {self.lr}")
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
        if self.binning is not None:
            check(
                1 <= self.binning <= MAX_BINNING,
                f"binning must be 1..{MAX_BINNING} (or auto), got {self.binning}",
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
        check(self.teacher in TEACHERS, f"teacher must be one of {TEACHERS}, got '{self.teacher}'")
        check(0 <= self.teacher_weight <= 1, "teacher_weight must be in [0, 1]")
        check(
            self.class_weights in CLASS_WEIGHTS,
            f"class_weights must be one of {CLASS_WEIGHTS}, got '{self.class_weights}'",
        )


AUTO_LR = {True: 1e-3, False: 3e-3}  # binary / K classes: docs/experiments/, session 5


def learning_rate(cfg: TrainConfig, binary: bool) -> float:
    """The learning rate a run uses: the given one, or 'auto' by the kind of model (K-class
    models learnt faster at 3e-3 in every race on MetalDAM, STEM and the synthetic phases)."""
    return cfg.lr if cfg.lr is not None else AUTO_LR[binary]


def lr_factor(t: float) -> float:
    """Warm-up over the first 3 %, then cosine decay to 5 % of the base rate."""
    if t < 0.03:
        return 0.1 + 0.9 * t / 0.03
    return 0.05 + 0.95 * 0.5 * (1 + math.cos(math.pi * min(1.0, (t - 0.03) / 0.97)))
