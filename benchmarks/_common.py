"""Helpers shared by the benchmark scripts: the machine line, torch threads, padding, git HEAD,
tile grids and parameter counts.

Each ``bench_*.py`` prints the same machine and checkout description beside its figures, so
that numbers taken on different machines or commits are never compared by mistake. Import it
as the scripts do (``sys.path`` holds this folder): ``from _common import machine``.
"""

from __future__ import annotations

import os
import platform
import subprocess
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]


def torch_threads(n: int | None) -> None:
    """Set torch's intra-op threads when ``n`` is given (None or 0: leave the default)."""
    import torch

    if n:
        torch.set_num_threads(n)


def machine() -> str:
    """One line: host, CPU cores, torch version and threads, load average, date."""
    import torch

    try:
        load = "load avg {:.1f}/{:.1f}/{:.1f}".format(*os.getloadavg())
    except OSError:
        load = "load n/a"
    return (
        f"{platform.node()} | {os.cpu_count()} CPU cores | torch {torch.__version__} "
        f"{torch.get_num_threads()} threads | {load} | {time.strftime('%Y-%m-%d %H:%M')}"
    )


def pad_to(x: np.ndarray, multiple: int) -> tuple[np.ndarray, tuple[int, int]]:
    """(C, H, W) reflect-padded to multiples of ``multiple``; returns the original (H, W)."""
    h, w = x.shape[-2:]
    ph, pw = (-h) % multiple, (-w) % multiple
    mode = "reflect" if ph < h and pw < w else "edge"
    return np.pad(x, ((0, 0), (0, ph), (0, pw)), mode=mode), (h, w)


def git_head() -> str:
    """HEAD, and whether the package comes from this checkout's src/ (and is it clean)."""
    import napari_temseg

    try:
        head = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=REPO, capture_output=True, text=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--", "src"], cwd=REPO, capture_output=True, text=True
        ).stdout.splitlines()
    except OSError:
        head, dirty = "n/a", []
    pkg = Path(napari_temseg.__file__).resolve().parent
    if pkg != REPO / "src" / "napari_temseg":
        return f"{head}; package imported from {pkg}"
    return head + (f" (+ {len(dirty)} uncommitted files in src/)" if dirty else "")


def tile_grid(
    shape_yx: Sequence[int], tile: int | Sequence[int], overlap: float
) -> list[tuple[int, int]]:
    """``(y0, x0)`` of every prediction tile, row by row, as the predictor places them."""
    from napari_temseg.core.inference.tiling import tile_starts

    ty, tx = (tile, tile) if isinstance(tile, int) else tile
    return [(y, x) for y in tile_starts(shape_yx[0], ty, overlap)
            for x in tile_starts(shape_yx[1], tx, overlap)]  # fmt: skip


def count_parameters(net, trainable_only: bool = True) -> int:
    """Number of (trainable) parameters of a torch module."""
    return sum(p.numel() for p in net.parameters() if p.requires_grad or not trainable_only)
