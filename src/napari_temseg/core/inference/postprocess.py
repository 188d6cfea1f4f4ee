"""Per-slice outputs of predictions: dtype conversion, small objects, holes, instances, writing.

Everything works on one ``(Y, X)`` slice (numpy + scipy.ndimage) so it streams with
the prediction. Connectivity is 8 (touching diagonally = one object), as in
``skimage.measure.label`` for 2D.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..errors import InputError
from .outputs import check_prob_dtype, output_specs, prob_shape


def to_prob_dtype(p: np.ndarray, dtype: Any) -> np.ndarray:
    """Probabilities in [0, 1] as ``dtype`` (uint8: 0-255, rounded)."""
    dt = np.dtype(dtype)
    if dt == np.uint8:
        q = np.multiply(p, 255.0, dtype=np.float32)
        np.clip(q, 0.0, 255.0, out=q)
        return np.rint(q, out=q).astype(np.uint8)
    return p.astype(dt, copy=False)


def _structure() -> np.ndarray:
    return np.ones((3, 3), bool)


def remove_small(binary: np.ndarray, min_size: int) -> np.ndarray:
    """Drop 8-connected objects with fewer than ``min_size`` pixels."""
    from scipy import ndimage as ndi

    if min_size <= 1:
        return binary
    lab, n = ndi.label(binary, structure=_structure())
    if n == 0:
        return binary
    sizes = np.bincount(lab.ravel())
    keep = sizes >= min_size
    keep[0] = False
    return keep[lab]


def postprocess(
    binary: np.ndarray,
    *,
    min_size: int = 0,
    fill_holes: bool = False,
    instances: bool = False,
    split_touching: bool = False,
    exclude_border: bool = False,
    first_label: int = 1,
    dtype: Any = np.uint8,
) -> tuple[np.ndarray, int]:
    """Clean one binary slice; returns (labels, next free label).

    Holes are filled first, then objects smaller than ``min_size`` px removed. With
    ``instances`` every object gets its own id starting at ``first_label`` (so ids
    stay unique across the slices of a stack); otherwise labels are 0 / 1.
    ``split_touching`` cuts touching objects apart (:func:`split_objects`) and
    ``exclude_border`` drops objects touching the slice's border (instances only).
    """
    from scipy import ndimage as ndi

    b = np.asarray(binary, bool)
    if fill_holes:
        b = ndi.binary_fill_holes(b)
    b = remove_small(b, int(min_size))
    dt = np.dtype(dtype)
    if not instances:
        return b.astype(dt), first_label
    lab, n = split_objects(b) if split_touching else ndi.label(b, structure=_structure())
    if exclude_border or (split_touching and min_size > 1):
        lab, n = _relabel(lab, int(min_size) if split_touching else 0, exclude_border)
    last = first_label + n - 1
    if dt.kind not in "iu" or last > np.iinfo(dt).max:
        raise InputError(
            f"{last} instance labels do not fit the labels output dtype {dt}: use a uint32 output"
        )
    out = np.where(lab > 0, lab + (first_label - 1), 0).astype(dt)
    return out, first_label + n


def split_objects(binary: np.ndarray, h: float = 2.0) -> tuple[np.ndarray, int]:
    """Instance ids of a binary slice with touching objects cut apart: a watershed of the
    negated distance to the background from one seed per regional maximum of that distance
    higher than ``h`` px above its surroundings (h-maxima: a neck thinner than the bodies
    on both sides by ``h`` px or more becomes a cut; bumps of an irregular outline do not)."""
    from scipy import ndimage as ndi
    from skimage.morphology import h_maxima
    from skimage.segmentation import watershed

    b = np.asarray(binary, bool)
    if not b.any():
        return np.zeros(b.shape, np.int32), 0
    dist = ndi.distance_transform_edt(b)
    seeds, n = ndi.label(h_maxima(dist, h), structure=_structure())
    lab = watershed(-dist, seeds, mask=b, connectivity=2)
    rest, m = ndi.label(b & (lab == 0), structure=_structure())  # objects without a seed
    lab = np.where(rest > 0, rest + n, lab)
    return lab.astype(np.int32), n + m


def _relabel(lab: np.ndarray, min_size: int, exclude_border: bool) -> tuple[np.ndarray, int]:
    """Drop objects smaller than ``min_size`` px or touching the border; ids 1..n again."""
    sizes = np.bincount(lab.ravel())
    keep = sizes >= max(min_size, 1)
    if exclude_border:
        edge = np.unique(np.concatenate([lab[0], lab[-1], lab[:, 0], lab[:, -1]]))
        keep[edge] = False
    keep[0] = False
    new = np.zeros(len(keep), np.int64)
    new[keep] = np.arange(1, int(keep.sum()) + 1)
    return new[lab], int(keep.sum())


def class_labels(
    prob: np.ndarray,
    *,
    min_confidence: float = 0.0,
    min_size: int = 0,
    fill_holes: bool = False,
) -> np.ndarray:
    """Class ids (uint8) of one slice from its (K, Y, X) class probabilities (any stored
    dtype; uint8 = 0-255): the most likely class; 'unsure' = K where that class's
    probability is below ``min_confidence``; objects of a class (>= 1) smaller than
    ``min_size`` px become background; with ``fill_holes`` background or unsure pixels
    enclosed by one class join it."""
    from scipy import ndimage as ndi

    k = prob.shape[0]
    lab = np.argmax(prob, axis=0).astype(np.uint8)
    if min_confidence > 0:
        scale = 255.0 if prob.dtype == np.uint8 else 1.0
        lab[np.max(prob, axis=0) < min_confidence * scale] = k
    for c in range(1, k) if min_size > 1 or fill_holes else ():
        b = lab == c
        if fill_holes:
            lab[ndi.binary_fill_holes(b) & ~b & ((lab == 0) | (lab == k))] = c
            b = lab == c
        if min_size > 1:
            lab[b & ~remove_small(b, int(min_size))] = 0
    return lab


def post_options(cfg: Any, k: int = 2) -> dict:
    """The keywords of :func:`postprocess` (binary, ``k`` = 2) or :func:`class_labels`
    (K classes) that a PredictConfig sets - one place for prediction, re-thresholding,
    re-labelling and distributed prediction."""
    post = dict(min_size=cfg.min_size, fill_holes=cfg.fill_holes)
    if k == 2:
        post.update(
            instances=cfg.instances,
            split_touching=cfg.split_touching,
            exclude_border=cfg.exclude_border,
        )
    else:
        post["min_confidence"] = cfg.min_confidence
    return post


class SliceWriter:
    """The destination arrays, checked, plus the per-slice writer (runs in a thread)."""

    def __init__(
        self, vol: Any, prob: Any, labels: Any, unc: Any, cfg: Any, threshold: float, k: int = 2
    ):
        """``cfg``: a PredictConfig (prob_dtype, tta, uncertainty, post-processing);
        ``k``: the model's classes (probabilities are (Z, K, Y, X) for K >= 3)."""
        Z, _, Y, X = vol.shape
        want = (Z, Y, X)
        want_prob = prob_shape(want, k)
        if prob is None and labels is None and unc is None:  # nothing given: numpy arrays
            arrays = [np.zeros(o.shape, o.dtype) for o in output_specs(want, cfg, k)]
            prob, labels, unc = (arrays + [None])[:3]
        if unc is not None and not cfg.tta:
            raise InputError(
                "an uncertainty output needs test-time augmentation: pass tta=True (--tta)"
            )
        post = post_options(cfg, k)
        self.arrays = [prob, labels, unc]
        self.targets = [
            None if a is None else _target(a, w, n)
            for a, w, n in zip(
                self.arrays,
                (want_prob, want, want),
                ("probability", "labels", "uncertainty"),
                strict=True,
            )
        ]
        for a, n in ((prob, "probability"), (unc, "uncertainty")):
            if a is not None:
                check_prob_dtype(a.dtype, n)
        self.threshold, self.post, self.next_label, self.k = threshold, post, 1, k

    def write(self, z: int, prob: np.ndarray, var: np.ndarray | None) -> None:
        p, lab, u = self.targets
        if p is not None:
            p[z] = to_prob_dtype(prob, p.dtype)
        if lab is not None:
            if self.k == 2:
                labels, self.next_label = postprocess(
                    prob >= self.threshold,
                    first_label=self.next_label,
                    dtype=lab.dtype,
                    **self.post,
                )
            else:
                labels = class_labels(prob, **self.post)
            lab[z] = labels
        if u is not None:
            u[z] = (
                to_prob_dtype(var * 4.0, u.dtype)
                if np.dtype(u.dtype) == np.uint8
                else var.astype(u.dtype)
            )


class _Flat:
    """Write slice 0 of a (Y, X) array given for a one-slice stack."""

    def __init__(self, a: Any):
        self.a, self.dtype = a, np.dtype(a.dtype)

    def __setitem__(self, z: int, v: np.ndarray) -> None:
        self.a[...] = v


def _target(a: Any, want: tuple, name: str) -> Any:
    shape = tuple(a.shape)
    if shape == want:
        return a
    if want[0] == 1 and shape == want[1:]:
        return _Flat(a)
    axes = "(Z, Y, X)" if len(want) == 3 else "(Z, K classes, Y, X)"
    raise InputError(f"the {name} output has shape {shape}; it must be {axes} = {want}")


__all__ = [
    "to_prob_dtype",
    "remove_small",
    "postprocess",
    "class_labels",
    "post_options",
    "SliceWriter",
]
