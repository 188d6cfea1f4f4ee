"""Synthetic multi-phase FIB-SEM stacks with exact ground truth, for multi-class segmentation.

:func:`make_phases` mimics a cement mortar imaged by serial-section FIB-SEM with two
detectors (Dong et al., "Forget about cleaning up your micrographs"): four phases,

* 0 ``matrix`` - the majority (~48-54 %), a textured mid-grey background class;
* 1 ``pores`` - small dark voids (~6.5-9 %), clustered, also inside hydration products;
* 2 ``unhydrated grains`` - bright angular particles: random convex
  polytopes with uneven faces and a per-grain brightness (~19-23 %);
* 3 ``hydration products`` - rims of varying width around the grains plus patches
  (~18-22 %), with a finer texture.

All phases are 3D objects (one slice is as thick as ``_Z_PX`` in-plane pixels), so
neighbouring slices agree on most pixels and change gradually. The two detectors are
complementary: channel 0 ("ICE", SE-like: blurrier, noisier) separates pores from
solids well but grains from hydration products poorly; channel 1 ("TLD", BSE-like)
separates grains from hydration products well but pores from the matrix poorly, so
both together are clearly easier than either alone (see tests/core/data/test_synthetic_phases.py).
Artefacts reuse :mod:`.synthetic`: vertical curtaining, a smooth per-detector response,
slice-to-slice drift, Poisson + Gaussian noise. Deterministic for a given ``seed``;
numpy + scipy.ndimage only.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ...errors import InputError
from .fibsem import curtains
from .particles import add_noise, check_shape, detector_response, smooth_noise, to_dtype

PHASE_NAMES = ("matrix", "pores", "unhydrated grains", "hydration products")
PHASE_COLORS = ("#404040", "#1f77b4", "#ff7f0e", "#2ca02c")
MATRIX, PORES, GRAINS, HYDRATION = range(4)

_Z_PX = 2.5  # slice thickness in in-plane px: a grain of radius 16 px spans ~13 slices
_MARGIN = 6.0  # px around each grain where its distance field is computed (rims live here)
_RIM = 2.0  # mean width in px of the hydration rims around grains
# volume share (low, high) drawn per stack; the matrix takes the rest
_SHARES = {PORES: (0.065, 0.09), GRAINS: (0.19, 0.23), HYDRATION: (0.20, 0.24)}

# Per detector: level and texture amplitude per phase (matrix, pores, grains, hydration
# products), per-grain brightness spread, blur (px), photon counts per unit intensity
# (Poisson), Gaussian read noise and curtaining strength. 0 = ICE, 1 = TLD.
_DETECTORS = (
    dict(
        levels=(0.50, 0.12, 0.74, 0.69),
        texture=(0.05, 0.02, 0.02, 0.06),
        tone=0.025,
        blur=1.1,
        counts=50.0,
        read=0.035,
        curtain=1.0,
    ),
    dict(
        levels=(0.40, 0.33, 0.82, 0.58),
        texture=(0.04, 0.02, 0.02, 0.05),
        tone=0.03,
        blur=0.6,
        counts=110.0,
        read=0.02,
        curtain=0.6,
    ),
)


def _grain(rng: np.random.Generator, z: int, h: int, w: int, radius: float) -> dict:
    """One angular grain: a random convex polytope (6-10 faces) cut by a sphere."""
    r = float(np.clip(radius * np.exp(0.4 * rng.standard_normal()), 4.0, min(h, w) / 4))
    k = int(rng.integers(6, 11))
    normals = rng.standard_normal((k, 3))
    normals /= np.linalg.norm(normals, axis=1, keepdims=True)
    return dict(
        c=(rng.uniform(-2, z + 1) * _Z_PX, rng.uniform(0, h), rng.uniform(0, w)),
        r=r,
        normals=normals.astype(np.float32),
        offsets=(r * rng.uniform(0.6, 1.0, k)).astype(np.float32),
        tone=rng.standard_normal(),
    )


def _grain_field(
    rng: np.random.Generator, shape: tuple, radius: float, share: float, rough: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Signed distance (px) to the nearest grain surface (< 0 inside) and each voxel's grain tone.

    Grains are added until their volume in the stack reaches ``share`` (plus overlap);
    far from every grain the distance is ``_MARGIN``.
    """
    z, h, w = shape
    dist = np.full(shape, _MARGIN, np.float32)
    tone = np.zeros(shape, np.float32)
    volume, target = 0, 1.1 * share * z * h * w
    for _ in range(100_000):  # a cap, never reached in practice
        if volume >= target:
            break
        g = _grain(rng, z, h, w, radius)
        (cz, cy, cx), ext = g["c"], 1.4 * g["r"] + _MARGIN
        z0, z1 = max(int((cz - ext) / _Z_PX), 0), min(int((cz + ext) / _Z_PX) + 2, z)
        y0, y1 = max(int(cy - ext), 0), min(int(cy + ext) + 2, h)
        x0, x1 = max(int(cx - ext), 0), min(int(cx + ext) + 2, w)
        if z0 >= z1 or y0 >= y1 or x0 >= x1:
            continue
        zz, yy, xx = np.ogrid[z0:z1, y0:y1, x0:x1]
        dz = (zz * _Z_PX - cz).astype(np.float32)
        dy, dx = (yy - cy).astype(np.float32), (xx - cx).astype(np.float32)
        f = np.sqrt(dz**2 + dy**2 + dx**2) - 1.4 * g["r"]
        for (nz, ny, nx), off in zip(g["normals"], g["offsets"], strict=True):
            np.maximum(f, nz * dz + ny * dy + nx * dx - off, out=f)
        bb = (slice(z0, z1), slice(y0, y1), slice(x0, x1))
        f += rough[bb]
        volume += int(np.count_nonzero(f < 0))
        win = f < dist[bb]
        dist[bb][win] = f[win]
        tone[bb][win] = g["tone"]
    return dist, tone


def _quantile(field: np.ndarray, where: np.ndarray | None, q: float) -> float:
    """Quantile of ``field`` (over ``where``), estimated on every 2nd voxel along each axis."""
    sub = field[::2, ::2, ::2]
    sub = sub if where is None else sub[where[::2, ::2, ::2]]
    return float(np.quantile(sub, min(max(q, 0.0), 1.0))) if sub.size else np.inf


def _top(field: np.ndarray, where: np.ndarray, n: float) -> np.ndarray:
    """``where`` & about the ``n`` voxels of ``where`` with the highest ``field``."""
    avail = int(where.sum())
    if n <= 0 or avail == 0:
        return np.zeros_like(where)
    return where & (field > _quantile(field, where, 1.0 - n / avail))


def _phase_labels(
    rng: np.random.Generator, shape: tuple, radius: float
) -> tuple[np.ndarray, np.ndarray]:
    """Labels (Z, Y, X) uint8 0..3 and the grain tone (0 outside grains)."""
    shares = {k: rng.uniform(*v) for k, v in _SHARES.items()}
    patches = smooth_noise(rng, shape, (2.5, 6.0, 6.0))  # uneven faces, wider rims, patches
    dist, tone = _grain_field(rng, shape, radius, shares[GRAINS], 1.5 * patches)
    thr = float(np.clip(_quantile(dist, None, shares[GRAINS]), -3.0, 3.0))
    grain = dist < thr
    hyd = ~grain & (dist < thr + _RIM * (1.0 + 0.6 * patches))
    hyd |= _top(patches, ~grain & ~hyd, shares[HYDRATION] * grain.size - hyd.sum())
    holes = smooth_noise(rng, shape, (1.8, 2.0, 2.0))
    holes += 0.6 * smooth_noise(rng, shape, (2.5, 12.0, 12.0))  # pores cluster
    pores = _top(holes, ~grain, shares[PORES] * grain.size)
    labels = np.zeros(shape, np.uint8)
    labels[hyd] = HYDRATION
    labels[grain] = GRAINS
    labels[pores] = PORES
    return labels, tone * grain


def _detect_phases(
    rng: np.random.Generator,
    labels: np.ndarray,
    tone: np.ndarray,
    texture: np.ndarray,
    p: dict,
    gain: np.ndarray,
    curtain: np.ndarray,
    noise: float,
) -> np.ndarray:
    """One detector's view of the stack: phase levels + texture, blur, response, curtains, noise."""
    from scipy import ndimage as ndi

    img = np.asarray(p["levels"], np.float32)[labels]
    img += np.asarray(p["texture"], np.float32)[labels] * texture + p["tone"] * tone
    img = ndi.gaussian_filter(img, (0, p["blur"], p["blur"])) + p["curtain"] * curtain
    img = np.clip(img * gain, 0, None)
    return add_noise(rng, img, p["counts"], p["read"], noise)


def make_phases(
    shape: tuple[int, int, int] = (8, 256, 256),
    channels: int = 2,
    seed: int = 0,
    *,
    grain_radius: float = 16.0,
    noise: float = 1.0,
    curtaining: float = 1.0,
    response: float = 1.0,
    dtype: Any = "float32",
) -> tuple[np.ndarray, np.ndarray]:
    """A multi-phase FIB-SEM-like stack (cement mortar) and its 4-class labels.

    ``shape`` is (Z, Y, X). Returns ``image`` (Z, C, Y, X) float32 in [0, 1] (or
    ``dtype``: "uint8" / "uint16"), C = ``channels`` (1: ICE, 2: ICE + TLD), and
    ``labels`` (Z, Y, X) uint8 with the indices of :data:`PHASE_NAMES`.
    ``grain_radius`` is the median grain radius in px; ``noise``, ``curtaining``
    and ``response`` scale those artefacts (0 turns one off).
    """
    z, h, w = check_shape(shape, 3, "(Z, Y, X)")
    if (
        isinstance(channels, bool)
        or not isinstance(channels, (int, np.integer))
        or channels not in (1, 2)
    ):
        raise InputError(f"channels must be 1 (ICE) or 2 (ICE + TLD), got {channels!r}")
    if not np.isfinite(grain_radius) or grain_radius <= 0:
        raise InputError(f"grain_radius must be a positive number of px, got {grain_radius!r}")
    rng = np.random.default_rng(seed)
    labels, tone = _phase_labels(rng, (z, h, w), float(grain_radius))
    texture = smooth_noise(rng, (z, h, w), 1.0)
    curtain = curtaining * curtains(rng, z, h, w)
    image = np.empty((z, channels, h, w), np.float32)
    for ch in range(channels):
        drift = 1.0 + rng.normal(0, 0.015, (z, 1, 1)) * response
        gain = (detector_response(rng, h, w, 0.5 * response)[None] * drift).astype(np.float32)
        image[:, ch] = _detect_phases(
            rng, labels, tone, texture, _DETECTORS[ch], gain, curtain, noise
        )
    return to_dtype(image, dtype), labels


__all__ = ["PHASE_COLORS", "PHASE_NAMES", "make_phases"]
