"""Tile grids, blend weights and stride padding for sliding-window inference (pure numpy).

Conventions (nnU-Net style):

* Tiles cover each axis completely; the number of tiles per axis comes from the
  target step ``ceil(tile * (1 - overlap))`` and the tiles are then spread evenly,
  the first flush with the start and the last flush with the end, so the real step
  is never larger than the target (overlap never smaller than asked).
* Prediction tiles start on multiples of the network stride (``aligned_starts``): a
  U-Net is shift-equivariant only for shifts by its stride (its pooling grid), so aligned
  tilings of any size pool the same pixels together and differ only at tile borders.
* An axis shorter than the tile gets one tile, shrunk to the axis length rounded up
  to the network stride (and at least the network's smallest input) and reflect-padded
  (never resized).
* Blending: each tile's output is weighted by a separable Gaussian (sigma =
  ``tile * sigma_scale``, peak 1, minimum clipped to a small positive value so
  every pixel has weight) or by a constant, and the weighted sum is divided by the
  summed weights.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from ..errors import InputError

BLEND_MODES = ("gaussian", "constant")
MIN_WEIGHT = 1e-6


def _pair(v: int | Sequence[int]) -> tuple[int, int]:
    if isinstance(v, (int, np.integer)):
        return int(v), int(v)
    a, b = v
    return int(a), int(b)


def round_up(n: int, multiple: int) -> int:
    return -(-int(n) // int(multiple)) * int(multiple)


def check_tile(tile: int, multiple: int = 1) -> int:
    """A usable tile size: rounded *down* to the network stride ``multiple``
    (at least one stride).
    """
    tile = int(tile)
    if tile < max(multiple, 16) or tile > 8192:
        raise InputError(f"tile size must be {max(multiple, 16)}..8192 px, got {tile}")
    return max(multiple, tile - tile % multiple)


def check_overlap(overlap: float) -> float:
    overlap = float(overlap)
    if not 0.0 <= overlap < 0.95:
        raise InputError(
            f"tile overlap must be a fraction in [0, 0.95), got {overlap} (0.25 is typical)"
        )
    return overlap


def tile_starts(size: int, tile: int, overlap: float) -> list[int]:
    """Start offsets of the tiles along one axis of length ``size``.

    ``size <= tile`` gives ``[0]`` (one tile; the caller pads the image to the tile).
    """
    size, tile = int(size), int(tile)
    if size < 1 or tile < 1:
        raise InputError(f"axis length and tile must be >= 1, got {size} and {tile}")
    overlap = check_overlap(overlap)
    if size <= tile:
        return [0]
    step = max(1, math.ceil(tile * (1.0 - overlap)))
    n = math.ceil((size - tile) / step) + 1
    actual = (size - tile) / (n - 1)
    return [int(round(i * actual)) for i in range(n)]


def aligned_starts(size: int, tile: int, overlap: float, multiple: int = 1) -> list[int]:
    """:func:`tile_starts` on a grid of ``multiple`` px: every start is a multiple of it
    (``tile`` must be one); the axis counts as ``size`` rounded up to it (the caller pads)."""
    m = max(1, int(multiple))
    if tile % m:
        raise InputError(f"tile {tile} is not a multiple of the network stride {m}")
    return [s * m for s in tile_starts(-(-int(size) // m), tile // m, overlap)]


def tile_shape(
    shape_yx: Sequence[int], tile: int | Sequence[int], multiple: int = 1, min_size: int = 1
) -> tuple[int, int]:
    """Tile size per axis: the tile, or the axis rounded up to ``multiple`` when it is shorter;
    never below ``min_size`` (the network's smallest input, a multiple of ``multiple``)."""
    ty, tx = _pair(tile)
    ty, tx = max(ty, min_size), max(tx, min_size)
    return (
        min(ty, max(round_up(shape_yx[0], multiple), min_size)),
        min(tx, max(round_up(shape_yx[1], multiple), min_size)),
    )


def blend_weights(
    tile: int | Sequence[int], mode: str = "gaussian", sigma_scale: float = 1.0 / 8
) -> np.ndarray:
    """``(ty, tx)`` float32 weights: Gaussian (peak 1, min clipped > 0) or constant ones."""
    ty, tx = _pair(tile)
    if mode == "constant":
        return np.ones((ty, tx), np.float32)
    if mode != "gaussian":
        raise InputError(f"blend mode must be one of {BLEND_MODES}, got '{mode}'")
    if not sigma_scale > 0:
        raise InputError(f"sigma_scale must be > 0, got {sigma_scale}")

    def axis(n: int) -> np.ndarray:
        c = (n - 1) / 2.0
        sigma = max(n * sigma_scale, 1e-3)
        return np.exp(-((np.arange(n) - c) ** 2) / (2.0 * sigma**2))

    w = np.outer(axis(ty), axis(tx))
    w /= w.max()
    return np.maximum(w, MIN_WEIGHT).astype(np.float32)


def weight_sum(
    shape_yx: Sequence[int], starts: Sequence[tuple[int, int]], weights: np.ndarray
) -> np.ndarray:
    """Summed blend weights over the (padded) plane: the normaliser of the weighted sum."""
    ty, tx = weights.shape
    out = np.zeros(tuple(int(s) for s in shape_yx), np.float32)
    for y, x in starts:
        out[y : y + ty, x : x + tx] += weights
    return out


def pad_amounts(
    shape_yx: Sequence[int], multiple: int, min_shape: Sequence[int] = (0, 0)
) -> tuple[int, int]:
    """Pixels to add at the bottom / right to reach a multiple of ``multiple``
    (and ``min_shape``).
    """
    out = []
    for n, lo in zip(shape_yx, min_shape, strict=False):
        target = round_up(max(int(n), int(lo)), multiple)
        out.append(target - int(n))
    return out[0], out[1]


def pad_to(arr: np.ndarray, shape_yx: Sequence[int], mode: str = "reflect") -> np.ndarray:
    """Pad the last two axes at the end (bottom / right) to ``shape_yx``; reflect by default."""
    py = int(shape_yx[0]) - arr.shape[-2]
    px = int(shape_yx[1]) - arr.shape[-1]
    if py < 0 or px < 0:
        raise InputError(f"cannot pad {arr.shape[-2:]} to a smaller {tuple(shape_yx)}")
    if py == 0 and px == 0:
        return arr
    width = [(0, 0)] * (arr.ndim - 2) + [(0, py), (0, px)]
    if mode == "reflect" and min(arr.shape[-2:]) < 2:
        mode = "edge"  # a 1-px axis has nothing to reflect
    return np.pad(arr, width, mode=mode)


__all__ = [
    "BLEND_MODES",
    "aligned_starts",
    "round_up",
    "check_tile",
    "check_overlap",
    "tile_starts",
    "tile_shape",
    "blend_weights",
    "weight_sum",
    "pad_amounts",
    "pad_to",
]
