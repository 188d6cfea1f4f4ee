"""Shared helpers for the dock tests (tiny synthetic data, notification capture)."""

from __future__ import annotations

import numpy as np


def blobs(shape=(4, 64, 64), seed=0, channels=None):
    """A small stack of bright discs on a noisy background and its ground-truth mask.

    Returns (image float32 (Z, Y, X) or (Z, C, Y, X) when ``channels``), mask uint8 (Z, Y, X).
    """
    rng = np.random.default_rng(seed)
    z, y, x = shape
    yy, xx = np.mgrid[:y, :x]
    mask = np.zeros(shape, np.uint8)
    for k in range(z):
        for _ in range(3):
            cy, cx, r = rng.integers(10, y - 10), rng.integers(10, x - 10), rng.integers(5, 9)
            mask[k][(yy - cy) ** 2 + (xx - cx) ** 2 <= r * r] = 1
    img = mask.astype(np.float32) * 0.6 + 0.2 + rng.normal(0, 0.05, shape).astype(np.float32)
    if channels:
        img = np.stack([img * (1 + 0.1 * c) for c in range(channels)], axis=1)
    return img, mask


def errors_since(start: int) -> list[str]:
    """Messages of napari error notifications emitted after record ``start``."""
    from napari.utils.notifications import notification_manager

    return [str(n.message) for n in notification_manager.records[start:]
            if str(getattr(n.type, "value", n.type)).lower() == "error"]


def n_records() -> int:
    from napari.utils.notifications import notification_manager

    return len(notification_manager.records)
