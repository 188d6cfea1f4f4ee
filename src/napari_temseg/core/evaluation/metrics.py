"""Overlap metrics for binary segmentations (numpy; works slice by slice on big stacks)."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from ..errors import InputError


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


# --- multi-class ------------------------------------------------------------------------


def confusion(pred: Any, truth: Any, k: int, valid: Any = None) -> np.ndarray:
    """(K, K + 1) int64 confusion matrix, rows = true class, columns = predicted class
    (the last column: predicted 'unsure' = K).

    Pixels whose truth is outside 0..K-1 or whose prediction is outside 0..K are left out.
    A true class predicted 'unsure' is a miss: it lowers that class's recall through the
    row total (:func:`class_counts`)."""
    p = np.asarray(pred).astype(np.int64, copy=False)
    t = np.asarray(truth).astype(np.int64, copy=False)
    if p.shape != t.shape:
        raise InputError(f"prediction shape {p.shape} != ground-truth shape {t.shape}")
    if valid is not None:
        v = np.asarray(valid).astype(bool)
        p, t = p[v], t[v]
    ok = (t >= 0) & (t < k) & (p >= 0) & (p <= k)  # p == k: 'unsure', an extra column
    m = np.bincount(t[ok] * (k + 1) + p[ok], minlength=k * (k + 1)).reshape(k, k + 1)
    return m


def class_counts(matrix: np.ndarray) -> list[Counts]:
    """Per-class one-vs-rest Counts from a (K, K) or (K, K+1) confusion matrix."""
    m = np.asarray(matrix, np.int64)
    k, total = m.shape[0], int(m.sum())
    out = []
    for c in range(k):
        tp = int(m[c, c])
        fn = int(m[c].sum()) - tp
        fp = int(m[:, c].sum()) - tp
        out.append(Counts(tp, fp, fn, total - tp - fp - fn))
    return out


def class_scores(matrix: np.ndarray, names: Any = None) -> dict[str, Any]:
    """Per-class Dice / IoU / precision / recall / true and predicted share, and the means.

    ``mean_iou`` averages all classes, ``mean_iou_fg`` the classes other than background
    (class 0); classes absent from both truth and prediction are left out of the means.
    """
    m = np.asarray(matrix, np.int64)
    k = m.shape[0]
    names = list(names) if names is not None else [str(c) for c in range(k)]
    total = max(1, int(m.sum()))
    per, present = [], []
    for c, cnt in enumerate(class_counts(m)):
        per.append(
            {
                "class": c,
                "name": names[c],
                **cnt.scores(),
                "true_share": int(m[c].sum()) / total,
                "pred_share": int(m[:, c].sum()) / total,
            }
        )
        if m[c].sum() or m[:, c].sum():
            present.append(c)

    def mean(key: str, classes: list[int]) -> float:
        return float(np.mean([per[c][key] for c in classes])) if classes else float("nan")

    fg = [c for c in present if c != 0]
    return {
        "classes": per,
        "mean_iou": mean("iou", present),
        "mean_iou_fg": mean("iou", fg),
        "mean_dice": mean("dice", present),
        "mean_dice_fg": mean("dice", fg),
        "accuracy": float(np.trace(m[:, :k])) / total,
    }


def evaluate_classes(pred: Any, truth: Any, names: Any) -> dict[str, Any]:
    """Multi-class :func:`evaluate_stack`: per-class scores, mean IoU with and without
    background, the confusion matrix (rows truth, columns prediction; a last column for
    'unsure' pixels) and per-slice scores and class shares (area fractions)."""
    names = list(names)
    k = len(names)
    if tuple(pred.shape) != tuple(truth.shape):
        raise InputError(
            f"prediction shape {tuple(pred.shape)} != ground-truth shape {tuple(truth.shape)}"
        )
    nd = len(pred.shape)
    if nd not in (2, 3):
        raise InputError(f"evaluate needs (Y, X) or (Z, Y, X) label arrays, got {nd}D")
    pairs = [(pred, truth)] if nd == 2 else ((pred[z], truth[z]) for z in range(pred.shape[0]))
    mats, per_slice = [], []
    for z, (p, t) in enumerate(pairs):
        t = np.asarray(t)
        top = int(t.max(initial=0))
        if top >= k:
            raise InputError(
                f"the ground truth has label {top} but the model knows {k} classes "
                f"({', '.join(names)}): compare with labels of the same classes"
            )
        m = confusion(p, t, k)
        mats.append(m)
        s = class_scores(m, names)
        per_slice.append(
            {
                "slice": z,
                "mean_iou": s["mean_iou"],
                "mean_iou_fg": s["mean_iou_fg"],
                **{f"iou {c['name']}": c["iou"] for c in s["classes"]},
                **{f"share {c['name']}": c["pred_share"] for c in s["classes"]},
                **{f"true share {c['name']}": c["true_share"] for c in s["classes"]},
            }
        )
    total = sum(mats[1:], mats[0])
    return {
        "overall": class_scores(total, names),
        "confusion": total.tolist(),
        "names": names,
        "per_slice": per_slice,
    }


def class_fractions(labels: Any, names: Any) -> list[dict[str, Any]]:
    """Area (2D) / volume share of each class per slice of a (Z, Y, X) or (Y, X) labels array
    (what the FIB-SEM phase studies report); a last row 'all' for the whole stack."""
    names = list(names)
    k = len(names)
    planes = [labels] if len(labels.shape) == 2 else (labels[z] for z in range(labels.shape[0]))
    rows, total = [], np.zeros(k + 1, np.int64)
    for z, plane in enumerate(planes):
        v = np.asarray(plane).astype(np.int64, copy=False).ravel()
        n = np.bincount(np.clip(v, 0, k), minlength=k + 1)[: k + 1]
        total += n
        rows.append({"slice": z, **{nm: n[c] / max(1, v.size) for c, nm in enumerate(names)}})
    rows.append(
        {"slice": "all", **{nm: total[c] / max(1, total.sum()) for c, nm in enumerate(names)}}
    )
    return rows
