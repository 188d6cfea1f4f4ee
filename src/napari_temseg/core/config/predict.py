"""PredictConfig: how a trained network segments an image (every field a user option;
see ``config.py``)."""

from __future__ import annotations

from dataclasses import dataclass

from .choices import (
    BLENDS,
    NORM_STATS,
    PROB_DTYPE_CHOICES,
    amp_opt,
    check,
    device_opt,
    opt,
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
    norm_stats: str = opt(
        "local",
        "instance-norm models: 'local' evens out each slice's brightness and contrast over "
        "windows twice the training patch size, then normalises with statistics measured once "
        "over the stack (the tile size does not change the result; uneven illumination is "
        "followed); 'stack' the same without evening out; 'tile' each tile's own statistics, "
        "as in training and in exported models (the result changes a little with the tile)",
        label="normalisation statistics",
        choices=NORM_STATS,
        advanced=True,
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
    split_touching: bool = opt(
        False,
        "instance labels: split touching objects (watershed on the distance to the background,"
        " one seed per thick part)",
        label="split touching objects",
        advanced=True,
    )
    exclude_border: bool = opt(
        False,
        "instance labels: drop objects that touch the image border (cut off, unmeasurable)",
        label="exclude border objects",
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
        check(
            self.norm_stats in NORM_STATS,
            f"norm_stats must be one of {NORM_STATS}, got '{self.norm_stats}'",
        )
        check(self.blend in BLENDS, f"blend must be one of {BLENDS}, got '{self.blend}'")
        if self.threshold is not None:
            check(
                0 < self.threshold < 1,
                f"threshold must be between 0 and 1 (exclusive), got {self.threshold}",
            )
        check(self.min_size >= 0, f"min_size must be >= 0 px, got {self.min_size}")
        check(
            self.instances or not (self.split_touching or self.exclude_border),
            "split_touching and exclude_border work on instance labels: turn instances on "
            "(--instances)",
        )
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
