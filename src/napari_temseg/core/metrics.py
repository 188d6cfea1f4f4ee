"""Overlap metrics for binary segmentations (numpy; works slice by slice on big stacks)."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from .errors import InputError


@dataclass(frozen=True)
class Counts:
    tp: int = 0
    fp: int = 0
    fn: int = 0
    tn: int = 0

    def __add__(self, other: Counts) -> Counts:
        return Counts(
            self.tp + other.tp, self.fp + other.fp, self.fn + other.fn, self.tn + other.tn
        )

    @property
    def dice(self) -> float:
        d = 2 * self.tp + self.fp + self.fn
        return 1.0 if d == 0 else 2 * self.tp / d

    @property
    def iou(self) -> float:
        d = self.tp + self.fp + self.fn
        return 1.0 if d == 0 else self.tp / d

    @property
    def precision(self) -> float:
        d = self.tp + self.fp
        return 1.0 if d == 0 and self.fn == 0 else (self.tp / d if d else 0.0)

    @property
    def recall(self) -> float:
        d = self.tp + self.fn
        return 1.0 if d == 0 and self.fp == 0 else (self.tp / d if d else 0.0)

    def scores(self) -> dict[str, float]:
        return {
            "dice": self.dice,
            "iou": self.iou,
            "precision": self.precision,
            "recall": self.recall,
        }


def counts(pred: Any, truth: Any, valid: Any = None) -> Counts:
    """Confusion counts of two binary arrays (non-zero = foreground); ``valid`` masks pixels."""
    p = np.asarray(pred) > 0
    t = np.asarray(truth) > 0
    if p.shape != t.shape:
        raise InputError(f"prediction shape {p.shape} != ground-truth shape {t.shape}")
    if valid is not None:
        v = np.asarray(valid).astype(bool)
        p, t = p[v], t[v]
    tp = int(np.count_nonzero(p & t))
    fp = int(np.count_nonzero(p & ~t))
    fn = int(np.count_nonzero(~p & t))
    return Counts(tp, fp, fn, int(p.size) - tp - fp - fn)


def dice(pred: Any, truth: Any) -> float:
    return counts(pred, truth).dice


def iou(pred: Any, truth: Any) -> float:
    return counts(pred, truth).iou


def evaluate_stack(pred: Any, truth: Any) -> dict[str, Any]:
    """Dice/IoU/precision/recall overall and per slice for (Z, Y, X) or (Y, X) arrays.

    Reads one slice at a time, so ``pred`` / ``truth`` may be zarr, dask or memmap.
    """
    if tuple(pred.shape) != tuple(truth.shape):
        raise InputError(
            f"prediction shape {tuple(pred.shape)} != ground-truth shape {tuple(truth.shape)}"
        )
    if len(pred.shape) == 2:
        per = [counts(pred, truth)]
    elif len(pred.shape) == 3:
        per = [counts(pred[z], truth[z]) for z in range(pred.shape[0])]
    else:
        raise InputError(f"evaluate needs (Y, X) or (Z, Y, X) label arrays, got {len(pred.shape)}D")
    total = sum(per, Counts())
    return {
        "overall": {**total.scores(), **asdict(total)},
        "per_slice": [{"slice": z, **c.scores()} for z, c in enumerate(per)],
    }
