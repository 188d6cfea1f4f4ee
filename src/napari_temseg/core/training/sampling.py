"""Training regions, the train/validation split and patch sampling (numpy, CPU side).

A *region* is a rectangle of one annotated slice of one image. Training
patches are drawn from training regions (with foreground oversampling);
validation uses a fixed set of patches tiled over the validation regions.
Images smaller than a patch are padded (reflect) and the padding gets loss
weight 0, so it never counts as background.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..config.classes import targets
from ..config.model import InputSpec
from ..data.volume import Volume, network_input, read_mask
from ..errors import InputError
from ..inference.tiling import pad_to
from .objectives import scored_classes

MIN_TRAIN_SIZE = 16  # px per side of an annotated image: the native networks' stride


@dataclass(frozen=True)
class Region:
    image: int
    z: int
    y0: int
    y1: int
    x0: int
    x1: int

    @property
    def shape(self) -> tuple[int, int]:
        return self.y1 - self.y0, self.x1 - self.x0


def split_regions(
    slices: list[tuple[int, int]],
    shapes: list[tuple[int, int]],
    val_fraction: float,
    seed: int,
) -> tuple[list[Region], list[Region]]:
    """Hold out whole slices when there are several, else a band of the single slice.

    ``slices``: (image index, z) of every annotated slice; ``shapes``: (Y, X) per image.
    Annotated images must be at least ``MIN_TRAIN_SIZE`` px on each side.
    """
    for i in sorted({i for i, _ in slices}):
        h, w = (int(n) for n in shapes[i])
        if min(h, w) < MIN_TRAIN_SIZE:
            raise InputError(
                f"training image {i + 1} is {h} x {w} px: annotated images must be at least "
                f"{MIN_TRAIN_SIZE} x {MIN_TRAIN_SIZE} px; train on the full image, not a "
                "thumbnail or a tiny crop"
            )
    full = [Region(i, z, 0, shapes[i][0], 0, shapes[i][1]) for i, z in slices]
    if val_fraction <= 0:
        return full, []
    if len(full) >= 2:
        n_val = min(len(full) - 1, max(1, int(round(val_fraction * len(full)))))
        order = np.random.default_rng(seed).permutation(len(full))
        val_idx = set(order[:n_val].tolist())
        return [r for k, r in enumerate(full) if k not in val_idx], [
            full[k] for k in sorted(val_idx)
        ]
    r = full[0]
    h, w = r.shape
    if w >= h:  # hold out a vertical band on the right (neither part empty)
        cut = r.x0 + min(w - 1, max(1, int(round(w * (1 - val_fraction)))))
        return [Region(r.image, r.z, r.y0, r.y1, r.x0, cut)], [
            Region(r.image, r.z, r.y0, r.y1, cut, r.x1)
        ]
    cut = r.y0 + min(h - 1, max(1, int(round(h * (1 - val_fraction)))))
    return [Region(r.image, r.z, r.y0, cut, r.x0, r.x1)], [
        Region(r.image, r.z, cut, r.y1, r.x0, r.x1)
    ]


def target_and_weight(mask: np.ndarray, sparse: bool, k: int = 2) -> tuple[np.ndarray, np.ndarray]:
    """(target class id, weight) float32 from a validated mask slice (``classes.targets``)."""
    return targets(mask, k, sparse)


class PatchSampler:
    """Draws (x, y, w) batches of ``patch`` x ``patch`` pixels from training regions.

    ``y`` holds class ids (binary: 0 / 1), ``w`` the loss weight (0 = unlabelled, padding).
    With probability ``fg_oversample`` a patch is centred on a pixel of a class other than
    background - the class drawn uniformly among those painted, so rare classes are seen
    as often as common ones; otherwise on any (labelled) pixel. With K-class scribbles
    painted background is one of those classes, and a background that is a phase
    (``background``, ``objectives.scored_classes``): its strokes may be as rare as any other's.
    """

    def __init__(
        self,
        volumes: list[Volume],
        masks: list[Volume],
        regions: list[Region],
        spec: InputSpec,
        patch: int,
        sparse: bool,
        fg_oversample: float,
        seed: int,
        k: int = 2,
        background: bool | None = None,
    ):
        if not regions:
            raise InputError(
                "no training region left: annotate more slices or lower the validation fraction"
            )
        self.volumes, self.regions, self.spec = volumes, regions, spec
        self.patch, self.sparse, self.fg, self.k = patch, sparse, fg_oversample, k
        self.background = sparse if background is None else background  # class 0 counts
        self.rng = np.random.default_rng(seed)
        self.masks = [self._mask(masks, r) for r in regions]
        # class_points[c][region] = sampled (y, x) of class c in that region (binary: c = 1)
        oversampled = scored_classes(k, self.background) if k > 2 else [1]
        self.class_points = {
            c: [self._points(m == self._value(c)) for m in self.masks] for c in oversampled
        }
        self.fg_classes = [c for c, pts in self.class_points.items() if any(len(p) for p in pts)]
        self.any_points = [self._points(m > 0) if sparse else None for m in self.masks]
        areas = np.array([r.shape[0] * r.shape[1] for r in regions], np.float64)
        self.p_region = areas / areas.sum()
        self.teacher: list[tuple[np.ndarray, np.ndarray]] | None = None

    def teach(self, answers: list[tuple[np.ndarray, np.ndarray]], weight: float) -> None:
        """Unpainted pixels learn a teacher's answer: per region (class id, confidence);
        their loss weight is ``weight`` x confidence (``training.teacher``)."""
        self.teacher = [(lab, (conf.astype(np.float32) * weight)) for lab, conf in answers]

    def _mask(self, masks: list[Volume], r: Region) -> np.ndarray:
        return read_mask(
            masks[r.image], r.z, self.sparse, slice(r.y0, r.y1), slice(r.x0, r.x1), k=self.k
        )

    def _value(self, c: int) -> int:
        """The mask value of class ``c`` (``ClassTable.value``)."""
        return self.k if self.sparse and c == 0 else c

    def _points(self, sel: np.ndarray, limit: int = 20000) -> np.ndarray:
        pts = np.argwhere(sel)
        if len(pts) > limit:
            pts = pts[self.rng.choice(len(pts), limit, replace=False)]
        return pts

    def _pick(self) -> tuple[int, tuple[int, int]]:
        """(region, centre) of the next patch."""
        if self.k > 2 and self.fg_classes and self.rng.random() < self.fg:
            c = self.fg_classes[int(self.rng.integers(len(self.fg_classes)))]
            pts = self.class_points[c]
            sizes = np.array([len(p) for p in pts], np.float64)
            k = int(self.rng.choice(len(pts), p=sizes / sizes.sum()))
            return k, tuple(pts[k][self.rng.integers(len(pts[k]))])
        k = int(self.rng.choice(len(self.regions), p=self.p_region))
        fg = self.class_points[1][k]
        if self.k == 2 and len(fg) and self.rng.random() < self.fg:  # binary: as in 0.x
            return k, tuple(fg[self.rng.integers(len(fg))])
        if self.sparse and self.teacher is None and len(self.any_points[k]):
            # unlabelled pixels teach nothing (without a teacher)
            return k, tuple(self.any_points[k][self.rng.integers(len(self.any_points[k]))])
        h, w = self.regions[k].shape
        return k, (int(self.rng.integers(h)), int(self.rng.integers(w)))

    def sample(self, n: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        cin, p = self.spec.network_channels, self.patch
        x = np.zeros((n, cin, p, p), np.float32)
        y = np.zeros((n, 1, p, p), np.float32)
        w = np.zeros((n, 1, p, p), np.float32)
        for i in range(n):
            k, (cy, cx) = self._pick()
            x[i], y[i, 0], w[i, 0] = self.crop(k, cy - p // 2, cx - p // 2)
        return x, y, w

    def class_pixels(self) -> np.ndarray:
        """Labelled pixels per class (K,) over the regions (for class weights and checks)."""
        out = np.zeros(self.k, np.int64)
        for m in self.masks:
            tgt, wt = target_and_weight(m, self.sparse, self.k)
            out += np.bincount(tgt[wt > 0].astype(np.int64).ravel(), minlength=self.k)[: self.k]
        return out

    def crop(self, k: int, top: int, left: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Patch at (top, left) in region coordinates, shifted inside the region,
        padded if small.
        """
        r, p = self.regions[k], self.patch
        h, w = r.shape
        top = int(np.clip(top, 0, max(0, h - p)))
        left = int(np.clip(left, 0, max(0, w - p)))
        ys, xs = (
            slice(r.y0 + top, r.y0 + min(h, top + p)),
            slice(r.x0 + left, r.x0 + min(w, left + p)),
        )
        img = network_input(self.volumes[r.image], r.z, self.spec, ys, xs)
        tgt, wt = target_and_weight(
            self.masks[k][top : top + p, left : left + p], self.sparse, self.k
        )
        if self.teacher is not None:  # unpainted pixels: the teacher's class, weighted
            lab, tw = (a[top : top + p, left : left + p] for a in self.teacher[k])
            free = wt == 0
            tgt[free], wt[free] = lab[free], tw[free]
        return pad_patch(img, tgt, wt, p)


def pad_patch(img: np.ndarray, tgt: np.ndarray, wt: np.ndarray, p: int):
    """Image reflect-padded to p x p; target and weight zero-padded (padding is never learnt)."""
    return pad_to(img, (p, p)), pad_to(tgt, (p, p), "constant"), pad_to(wt, (p, p), "constant")


def validation_patches(sampler: PatchSampler, max_patches: int = 16) -> tuple[np.ndarray, ...]:
    """A fixed set of patches tiling the sampler's regions (no randomness)."""
    p = sampler.patch
    items = []
    for k, r in enumerate(sampler.regions):
        h, w = r.shape
        for top in range(0, max(1, h - p // 2), p):
            for left in range(0, max(1, w - p // 2), p):
                items.append((k, top, left))
    if len(items) > max_patches:
        items = [items[i] for i in np.linspace(0, len(items) - 1, max_patches).round().astype(int)]
    crops = [sampler.crop(*it) for it in items]
    x = np.stack([c[0] for c in crops])
    y = np.stack([c[1] for c in crops])[:, None]
    w = np.stack([c[2] for c in crops])[:, None]
    return x, y, w
