"""A simulated careful annotator: a few short strokes per class, inside the class.

For each class present in an image, ``strokes`` straight strokes (by default 0.15 of the
smaller image side long, a brush of a hundredth of that side but at least 5 px), each
centred on a random pixel at least ``margin`` px inside the class and clipped to that
interior (a careful user does not paint across a boundary). On the real
data sets this paints 0.4-1 % of the pixels, as the scribble races in docs/benchmarks.md
report. Output: a sparse mask in the package's convention (0 unlabelled, 1..K-1 the
classes, K the background class).
"""

from __future__ import annotations

import numpy as np


def _interior(sel: np.ndarray, margin: int) -> np.ndarray:
    from scipy import ndimage as ndi

    if margin <= 0:
        return sel
    inner = ndi.distance_transform_edt(sel) > margin
    return inner if inner.any() else sel  # thin classes: anywhere inside


def _stroke(shape, cy: int, cx: int, angle: float, length: int) -> tuple[np.ndarray, ...]:
    t = np.linspace(-length / 2, length / 2, max(2, length))
    ys = np.clip(np.round(cy + t * np.sin(angle)).astype(int), 0, shape[0] - 1)
    xs = np.clip(np.round(cx + t * np.cos(angle)).astype(int), 0, shape[1] - 1)
    return ys, xs


def scribbles(
    truth: np.ndarray,
    k: int,
    seed: int,
    strokes: int = 4,
    length: int | None = None,
    width: int | None = None,
    margin: int = 3,
) -> np.ndarray:
    """Sparse scribble mask (H, W) uint8 for the dense class-id image ``truth``."""
    from scipy import ndimage as ndi

    side = min(truth.shape)
    length = length or round(0.15 * side)
    width = width or max(5, (side // 100) | 1)

    rng = np.random.default_rng(seed)
    out = np.zeros(truth.shape, np.uint8)
    for c in range(k):
        sel = truth == c
        if not sel.any():
            continue
        inner = _interior(sel, margin)
        pts = np.argwhere(inner)
        line = np.zeros(truth.shape, bool)
        for _ in range(strokes):
            cy, cx = pts[rng.integers(len(pts))]
            line[_stroke(truth.shape, cy, cx, rng.uniform(0, np.pi), length)] = True
        painted = ndi.binary_dilation(line, iterations=width // 2) & inner
        out[painted] = k if c == 0 else c
    return out


def dense(sparse: np.ndarray, k: int) -> np.ndarray:
    """(class ids, painted) of a sparse mask, for scoring and for peers that take ids."""
    ids = np.where(sparse == k, 0, sparse).astype(np.int64)
    return ids, sparse > 0
