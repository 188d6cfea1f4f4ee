"""SuggestConfig: which regions to offer for annotation next (every field a user option;
see ``config.py`` and ``suggest.py``)."""

from __future__ import annotations

from dataclasses import dataclass

from .choices import check, opt

SCORES = ("entropy", "tta-variance")
PREDICT_OPTIONS = ("tile", "batch", "device", "amp")  # of PredictConfig: how squares are predicted


@dataclass(frozen=True)
class SuggestConfig:
    """Where the model is unsure: the regions offered for annotation next."""

    n: int = opt(5, "how many regions to suggest", label="regions", lo=1, hi=200)
    size: int = opt(
        128, "side of a square region in pixels", label="region size (px)", lo=16, hi=4096, step=16
    )
    score: str = opt(
        "entropy",
        "uncertainty per pixel: entropy of the predicted class probabilities (one pass), or the "
        "variance of the 8 test-time views (tta-variance, 8x slower)",
        choices=SCORES,
    )
    max_regions: int | None = opt(
        256,
        "cost bound: score at most this many candidate regions, drawn at random from all "
        "slices (each is predicted once with a margin of context)",
        label="regions scored",
        none="all",
        lo=1,
        hi=10**7,
    )
    diversity: float = opt(
        1.0,
        "spread: a candidate closer than about this many region sizes to a chosen one is "
        "scored down (0 = pure ranking by uncertainty)",
        lo=0.0,
        hi=20.0,
        step=0.5,
        advanced=True,
    )
    z_distance: float = opt(
        1.0,
        "how far apart neighbouring slices are, in pixels of the image plane (1: isotropic "
        "FIB-SEM voxels; slice thickness / pixel size for serial sections; large: unrelated "
        "images)",
        label="slice distance (px)",
        lo=0.0,
        hi=1e6,
        advanced=True,
    )
    margin: int = opt(
        32,
        "context around each scored region in pixels (predicted, not scored)",
        label="context margin (px)",
        lo=0,
        hi=1024,
        advanced=True,
    )
    painted: float = opt(
        0.01,
        "sparse masks: a region with at least this fraction of painted pixels counts as "
        "annotated and is skipped (dense masks: every painted slice is annotated)",
        label="annotated from",
        lo=0.0,
        hi=1.0,
        step=0.01,
        advanced=True,
    )
    seed: int = opt(0, "random draw of the scored candidates", lo=0, hi=2**31 - 1, advanced=True)

    def __post_init__(self) -> None:
        check(1 <= self.n <= 10_000, f"n must be 1..10000 regions, got {self.n}")
        check(16 <= self.size <= 4096, f"size must be 16..4096 px, got {self.size}")
        check(self.score in SCORES, f"score must be one of {SCORES}, got '{self.score}'")
        check(
            self.max_regions is None or self.max_regions >= 1,
            f"max_regions must be >= 1 (or None for all), got {self.max_regions}",
        )
        check(self.diversity >= 0, f"diversity must be >= 0, got {self.diversity}")
        check(self.z_distance >= 0, f"z_distance must be >= 0 px, got {self.z_distance}")
        check(self.margin >= 0, f"margin must be >= 0 px, got {self.margin}")
        check(0 <= self.painted <= 1, f"painted must be a fraction 0..1, got {self.painted}")


__all__ = ["PREDICT_OPTIONS", "SCORES", "SuggestConfig"]
