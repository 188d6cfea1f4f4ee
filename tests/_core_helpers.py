"""Helpers shared by the core tests: tiling shortcuts and parameter counts that no front end
needs (the predictor pads and places tiles itself)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from napari_temseg.core.inference.tiling import pad_amounts, pad_to, tile_starts


def tile_grid(
    shape_yx: Sequence[int], tile: int | Sequence[int], overlap: float
) -> list[tuple[int, int]]:
    """``(y0, x0)`` of every tile, row by row; tiles are ``tile`` (or ``(ty, tx)``) px."""
    ty, tx = (tile, tile) if isinstance(tile, int) else tile
    ys = tile_starts(shape_yx[0], ty, overlap)
    xs = tile_starts(shape_yx[1], tx, overlap)
    return [(y, x) for y in ys for x in xs]


def pad_to_multiple(
    arr: np.ndarray, multiple: int, min_shape: Sequence[int] = (0, 0), mode: str = "reflect"
) -> tuple[np.ndarray, tuple[int, int]]:
    """Pad the last two axes to multiples of ``multiple``; returns (padded, original (h, w))."""
    h, w = arr.shape[-2:]
    py, px = pad_amounts((h, w), multiple, min_shape)
    return pad_to(arr, (h + py, w + px), mode), (h, w)


def count_parameters(net, trainable_only: bool = True) -> int:
    """Number of (trainable) parameters of a torch module."""
    return sum(p.numel() for p in net.parameters() if p.requires_grad or not trainable_only)
