"""The option vocabulary of the config dataclasses: ConfigError, the choice lists, ``opt()``.

``opt(default, help, ...)`` declares a config field together with its user-facing
description; ``core/config/options.py`` reads those descriptions back.
"""

from __future__ import annotations

from dataclasses import field
from typing import Any

from ..errors import ConfigError


def check(cond: bool, msg: str) -> None:
    if not cond:
        raise ConfigError(msg)


MAX_BINNING = 4  # InputSpec.binning / TrainConfig.binning: 1 (none) .. 4 x 4
LOSSES = ("bce", "dice", "bce+dice")  # multi-class: cross-entropy and soft Dice
CLASS_WEIGHTS = ("none", "balanced")
TEACHERS = ("auto", "pixel-classifier", "none")  # training.teacher
OPTIMIZERS = ("adam", "adamw")
AUGMENT_PRESETS = (
    "none",
    "flips",
    "default",
    "augmentor",  # seed 000 (Augmentor rotate / distort / zoom)
    "rotate-scale-translate",  # seed 002 (OpenCV rotate / scale / translate)
    "flip-brightness",  # seed 004 (albumentations flips + random brightness/contrast)
    "strong",
)
BLENDS = ("gaussian", "constant")
INTENSITY_NORMS = ("dataset", "image")
NORM_LAYERS = ("batch", "instance", "group")
NORM_STATS = ("local", "tile", "stack")  # instance norm at prediction (flatfield.py, calibrate.py)
PROB_DTYPE_CHOICES = ("auto", "float32", "float16", "uint8")
DEVICES = ("auto", "cpu", "cuda", "mps")  # also "cuda:N"


def opt(
    default: Any,
    help: str,
    *,
    label: str | None = None,
    choices: tuple | None = None,
    open_choices: bool = False,
    none: str | None = None,
    lo: float | None = None,
    hi: float | None = None,
    step: float | None = None,
    advanced: bool = False,
    derived: str | None = None,
) -> Any:
    """A config field with its user-facing description (see ``core/config/options.py``).

    ``none``: what None means ("auto", "no limit"); ``open_choices``: other values are
    allowed too (``choices`` are the suggestions); ``derived``: not an option - set from
    the data, with this reason; ``lo``/``hi``/``step``: the range offered in the docks.
    """
    meta = dict(
        help=help,
        label=label,
        choices=choices,
        open_choices=open_choices,
        none=none,
        lo=lo,
        hi=hi,
        step=step,
        advanced=advanced,
        derived=derived,
    )
    return field(default=default, metadata=meta)


def device_opt(verb: str) -> Any:
    """The ``device`` option of training and prediction."""
    return opt(
        "auto",
        f"where to {verb} (auto: CUDA, then MPS, then CPU; cuda:N picks a GPU)",
        choices=DEVICES,
        open_choices=True,
    )


def amp_opt() -> Any:
    """The ``amp`` (mixed precision) option of training and prediction."""
    return opt(
        True,
        "mixed precision where the hardware has it (bf16/fp16 on CUDA, bf16 on "
        "CPUs with native bf16)",
        label="mixed precision",
        advanced=True,
    )
