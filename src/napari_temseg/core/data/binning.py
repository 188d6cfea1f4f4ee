"""Binning: a network that works on the image binned ``s x s`` (``TrainConfig.binning``,
saved as ``InputSpec.binning``).

Large objects on large flat backgrounds (particles, nuclei, material phases) need more
context than a tile at full resolution gives, and their outlines do not need every pixel.
On the image binned ``s x s`` (block means, as a camera bins) the same U-Net sees ``s``
times farther and every training step covers ``s^2`` times the specimen area.

* training: images are binned by block means, masks by the block's most frequent label
  (unlabelled pixels of sparse scribbles only win a block that has nothing else);
* prediction: the slice is read binned band by band (:class:`BinnedArray`: bounded memory),
  predicted, and each finished slice's probabilities are interpolated back (bilinear, pixel
  centres aligned) before the threshold and the clean-up, so labels and probabilities have
  the image's own shape.

An image whose size is not a multiple of ``s`` ends in partial blocks: the mean of their
real pixels, the majority of their real labels (the last row / column repeated). numpy
only; torch only for the interpolation in :func:`unbin`.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .volume import Volume


def binned_size(n: int, s: int) -> int:
    return -(-int(n) // int(s))


def _blocks(a: np.ndarray, s: int, pad: str = "edge") -> np.ndarray:
    """``(..., Y, X)`` -> ``(..., Yb, Xb, s * s)``, partial edge blocks padded (``pad``:
    a numpy pad mode)."""
    Y, X = a.shape[-2:]
    py, px = binned_size(Y, s) * s - Y, binned_size(X, s) * s - X
    if py or px:
        a = np.pad(a, [(0, 0)] * (a.ndim - 2) + [(0, py), (0, px)], mode=pad)
    lead = a.shape[:-2]
    yb, xb = a.shape[-2] // s, a.shape[-1] // s
    b = a.reshape(*lead, yb, s, xb, s)
    b = np.moveaxis(b, -3, -2)  # (..., yb, xb, s, s)
    return b.reshape(*lead, yb, xb, s * s)


def bin_image(a: np.ndarray, s: int) -> np.ndarray:
    """Block means of ``(..., Y, X)`` as float32 ``(..., ceil(Y/s), ceil(X/s))``; a partial
    edge block is the mean of its real pixels (as ``avg_pool2d(ceil_mode=True)``)."""
    a = np.asarray(a)
    if s == 1:
        return a
    Y, X = a.shape[-2:]
    sums = _blocks(a.astype(np.float32, copy=False), s, "constant").sum(axis=-1, dtype=np.float32)
    cy = np.minimum(s, Y - s * np.arange(sums.shape[-2])).astype(np.float32)
    cx = np.minimum(s, X - s * np.arange(sums.shape[-1])).astype(np.float32)
    return sums / np.outer(cy, cx)


def _values(a: np.ndarray) -> np.ndarray:
    """The label values present (a histogram for small non-negative labels: no sort)."""
    if a.size and a.dtype.kind in "ub" and a.dtype.itemsize <= 2:
        return np.flatnonzero(np.bincount(a.ravel().astype(np.intp))).astype(a.dtype)
    return np.unique(a)


def bin_labels(a: np.ndarray, s: int, unlabelled: int | None = None) -> np.ndarray:
    """The most frequent label of each block (ties: the smaller label); ``unlabelled`` (the
    sparse masks' 0) only where the block has no other label. Keeps the dtype."""
    a = np.asarray(a)
    if s == 1:
        return a
    blocks = _blocks(a, s)
    values = _values(a)
    best = np.zeros(blocks.shape[:-1], a.dtype)
    best_n = np.full(blocks.shape[:-1], -1, np.int32)
    for v in values:
        n = np.count_nonzero(blocks == v, axis=-1).astype(np.int32)
        if unlabelled is not None and v == unlabelled:
            n = np.where(n == s * s, s * s, 0)  # wins only an all-unlabelled block
        better = n > best_n
        best[better], best_n[better] = v, n[better]
    return best


def unbin(p: np.ndarray, shape_yx: tuple, s: int) -> np.ndarray:
    """``(..., Yb, Xb)`` probabilities back to ``(..., Y, X)`` float32, bilinear with the
    binned pixels' centres on their blocks' centres (the inverse geometry of binning)."""
    if s == 1:
        return p
    import torch

    t = torch.from_numpy(np.ascontiguousarray(p, np.float32))
    lead = t.shape[:-2]
    t = t.reshape(1, -1, *t.shape[-2:])
    up = torch.nn.functional.interpolate(t, scale_factor=s, mode="bilinear", align_corners=False)
    Y, X = int(shape_yx[0]), int(shape_yx[1])
    return up[..., :Y, :X].reshape(*lead, Y, X).numpy()


class BinnedArray:
    """Lazy ``(Z, C, ceil(Y/s), ceil(X/s))`` float32 view of a :class:`~.data.Volume`:
    indexing ``[z, c, ys, xs]`` reads only the full-resolution rows and columns it needs."""

    def __init__(self, vol: Any, s: int):
        Z, C, Y, X = vol.shape
        self.vol, self.s, self.full = vol, int(s), (Y, X)
        self.shape = (Z, C, binned_size(Y, s), binned_size(X, s))
        self.dtype = np.dtype(np.float32)

    def reduce(self, full: np.ndarray) -> np.ndarray:
        return bin_image(full, self.s)

    def __getitem__(self, index: tuple) -> np.ndarray:
        z, c, ys, xs = index
        (y0, y1, _), (x0, x1, _) = ys.indices(self.shape[2]), xs.indices(self.shape[3])
        s, (Y, X) = self.s, self.full
        full = self.vol.region(int(z), slice(y0 * s, min(y1 * s, Y)), slice(x0 * s, min(x1 * s, X)))
        return self.reduce(full)[c]


class BinnedLabels(BinnedArray):
    """Lazy ``(Z, 1, Yb, Xb)`` view of a mask :class:`~.data.Volume`, binned by
    :func:`bin_labels` (``unlabelled``: the sparse masks' 0)."""

    def __init__(self, mask: Any, s: int, unlabelled: int | None):
        super().__init__(mask, s)
        self.dtype, self.unlabelled = np.dtype(mask.dtype), unlabelled

    def reduce(self, full: np.ndarray) -> np.ndarray:
        return bin_labels(full, self.s, self.unlabelled)


class Binned(Volume):
    """A :class:`~.data.Volume` read binned ``s x s`` (float32 block means, or ``array``: a
    :class:`BinnedLabels`); ``source`` is the full-resolution volume."""

    def __init__(self, vol: Volume, s: int, array: BinnedArray | None = None):
        super().__init__(BinnedArray(vol, s) if array is None else array, "ZCYX")
        self.source = vol


def view(vol: Volume, s: int) -> Volume:
    """``vol`` as a network with binning ``s`` sees it (itself for s = 1 or when binned)."""
    return vol if int(s) == 1 or isinstance(vol, Binned) else Binned(vol, s)


def mask_view(mask: Volume, s: int, sparse: bool) -> Volume:
    """A mask Volume binned by :func:`bin_labels` (sparse: 0 = unlabelled)."""
    if int(s) == 1:
        return mask
    return Binned(mask, s, BinnedLabels(mask, s, 0 if sparse else None))


class Unbinned:
    """A slice writer (``write(z, prob, var)``) that first interpolates the binned
    probabilities (and variance) back to the image's ``(Y, X)``."""

    def __init__(self, writer: Any, shape_yx: tuple, s: int):
        self.writer, self.shape, self.s = writer, tuple(shape_yx), int(s)

    def write(self, z: int, prob: np.ndarray, var: np.ndarray | None) -> None:
        up = None if var is None else unbin(var, self.shape, self.s)
        self.writer.write(z, unbin(prob, self.shape, self.s), up)


# auto binning: 2 x 2 when the 90th percentile of the painted pixels' distance to the nearest
# class boundary is at least this (EMPS particles 175 px, STEM alumina / Pt 256; ISBI
# membranes 22, MetalDAM phases 8: docs/experiments/ "Binning"), on images of at least
# AUTO_MIN_SIDE px per side (binned, still a 128 px training patch or more).
# Measured on at most AUTO_SLICES slices, subsampled to at most AUTO_SIDE px a side (a 4k
# slice costs ~0.2 s instead of ~5 s; distances within the step).
AUTO_DISTANCE, AUTO_MIN_SIDE, AUTO_SLICES, AUTO_SIDE = 64.0, 256, 8, 512


def boundary_distances(labels: np.ndarray) -> np.ndarray:
    """Distance (px) of every pixel of a 2D label image to the nearest pixel where the label
    changes (no boundary at all: the image's larger side)."""
    from scipy import ndimage

    edge = np.zeros(labels.shape, bool)
    dy, dx = labels[1:] != labels[:-1], labels[:, 1:] != labels[:, :-1]
    edge[1:] |= dy
    edge[:-1] |= dy
    edge[:, 1:] |= dx
    edge[:, :-1] |= dx
    if not edge.any():
        return np.full(labels.size, float(max(labels.shape)), np.float32)
    return ndimage.distance_transform_edt(~edge).astype(np.float32).ravel()


def auto_binning(mvols: list, items: list, sparse: bool) -> int:
    """The binning ``auto`` picks for dense masks (sparse scribbles: 1): 2 when the 90th
    percentile of the painted pixels' distance to a class boundary is >= AUTO_DISTANCE px
    on (up to AUTO_SLICES of) the annotated slices, all at least AUTO_MIN_SIDE px a side."""
    if sparse or not items:
        return 1
    if min(min(mvols[i].shape[2:]) for i, _ in items) < AUTO_MIN_SIDE:
        return 1
    picks = np.linspace(0, len(items) - 1, min(len(items), AUTO_SLICES)).round().astype(int)
    dist = []
    for i, z in (items[j] for j in picks):
        labels = mvols[i].slice(z)[0]
        step = -(-max(labels.shape) // AUTO_SIDE)  # large slices: every step-th pixel
        dist.append(boundary_distances(labels[::step, ::step]) * step)
    return 2 if float(np.percentile(np.concatenate(dist), 90)) >= AUTO_DISTANCE else 1
