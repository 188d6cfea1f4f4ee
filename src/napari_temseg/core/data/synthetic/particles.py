"""Synthetic TEM particle images with exact ground truth, and the building blocks
shared by all synthetic generators.

:func:`make_particles` - a TEM-like ``(Y, X)`` image of dark particles (log-normal
radii, some touching) on a lighter carbon film with uneven illumination, faint
particles, diffuse dark contamination, blur and noise. Mask: 1 = particle;
``instances=True`` also returns uint16 instance ids. Deterministic for a given
``seed``; numpy + scipy.ndimage only. Import it from :mod:`.synthetic`, which
re-exports it.

The building blocks (shape and dtype checks, smooth noise, the detector response,
the shot + read noise model) are public names so :mod:`.synthetic` and
:mod:`.synthetic_phases` can use them (no module imports another's private names).
They live here rather than in :mod:`.synthetic` because that module re-exports
:func:`make_particles`, and the import graph must stay acyclic (tests/house/test_structure.py).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ...errors import InputError


# --- building blocks shared by the generators ------------------------------------------------
def check_shape(shape: Any, nd: int, axes: str) -> tuple[int, ...]:
    try:
        shape = tuple(int(s) for s in shape)
    except TypeError:
        raise InputError(f"shape must be a tuple of {nd} ints {axes}, got {shape!r}") from None
    if len(shape) != nd or min(shape) < 1:
        raise InputError(f"shape must be {nd} positive ints {axes}, got {shape}")
    if min(shape[-2:]) < 16:
        raise InputError(f"images must be at least 16 x 16 px, got {shape[-2:]}")
    return shape


def to_dtype(img: np.ndarray, dtype: Any) -> np.ndarray:
    np.clip(img, 0.0, 1.0, out=img)
    dt = np.dtype(dtype)
    if dt == np.float32:
        return img
    if dt in (np.uint8, np.uint16):
        return np.round(img * np.iinfo(dt).max).astype(dt)
    raise InputError(f"dtype must be 'float32', 'uint8' or 'uint16', got {dtype!r}")


def smooth_noise(rng: np.random.Generator, shape: tuple, sigma: Any) -> np.ndarray:
    """Gaussian-filtered white noise, zero mean, unit standard deviation.

    Large in-plane sigmas are made at reduced resolution and zoomed up (fast).
    """
    from scipy import ndimage as ndi

    sig = np.broadcast_to(np.asarray(sigma, np.float32), (len(shape),)).copy()
    f = int(np.clip(sig[-2:].min() // 3, 1, 8))
    small = tuple(shape[:-2]) + tuple(-(-n // f) for n in shape[-2:])
    sig[-2:] /= f
    n = ndi.gaussian_filter(rng.standard_normal(small).astype(np.float32), sig, mode="wrap")
    if f > 1:  # nearest-neighbour upsampling, then a box filter = (bi)linear interpolation
        n = np.repeat(np.repeat(n, f, axis=-2), f, axis=-1)[..., : shape[-2], : shape[-1]]
        n = ndi.uniform_filter(n, [1] * (len(shape) - 2) + [f, f], mode="wrap")
    return (n - n.mean()) / (n.std() + 1e-8)


def detector_response(rng: np.random.Generator, h: int, w: int, strength: float) -> np.ndarray:
    """Smooth multiplicative detector response: a tilted ramp and a vignette."""
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    yn, xn = yy / max(h - 1, 1) - 0.5, xx / max(w - 1, 1) - 0.5
    ang = rng.uniform(0, 2 * np.pi)
    ramp = np.cos(ang) * xn + np.sin(ang) * yn
    cy, cx = rng.uniform(-0.2, 0.2, 2)
    vignette = (yn - cy) ** 2 + (xn - cx) ** 2
    g = 1.0 + strength * (rng.uniform(0.45, 0.7) * ramp - rng.uniform(0.5, 0.9) * vignette)
    return g.astype(np.float32)


def add_noise(
    rng: np.random.Generator, img: np.ndarray, counts: float, read: float, noise: float
) -> np.ndarray:
    """Shot noise (Gaussian approximation of Poisson with ``counts`` per unit) + read noise."""
    if noise <= 0:
        return img.astype(np.float32)
    sd = noise * np.sqrt(img / counts + read**2)
    return (img + sd * rng.standard_normal(img.shape, dtype=np.float32)).astype(np.float32)


# --- TEM particles ---------------------------------------------------------------------------
def _place_particles(
    rng: np.random.Generator, h: int, w: int, n: int, median: float, sigma: float, touching: float
) -> list[tuple[float, float, float]]:
    """(y, x, r) circles that do not overlap; a fraction is placed touching a neighbour."""
    out: list[tuple[float, float, float]] = []
    for _ in range(n * 20):
        if len(out) >= n:
            break
        r = float(np.clip(median * np.exp(sigma * rng.standard_normal()), 2.0, min(h, w) / 5))
        if out and rng.random() < touching:
            y0, x0, r0 = out[int(rng.integers(len(out)))]
            ang = rng.uniform(0, 2 * np.pi)
            y, x = y0 + (r0 + r) * np.sin(ang), x0 + (r0 + r) * np.cos(ang)
        else:
            y, x = rng.uniform(r, h - r), rng.uniform(r, w - r)
        if not (r <= y <= h - r and r <= x <= w - r):
            continue
        if all((y - yo) ** 2 + (x - xo) ** 2 >= (r + ro - 0.5) ** 2 for yo, xo, ro in out):
            out.append((y, x, r))
    return out


def _render_particles(
    rng: np.random.Generator, h: int, w: int, circles: list, faint: float
) -> tuple[np.ndarray, np.ndarray]:
    """Instance labels and projected thickness (0..1 scaled by a per-particle density)."""
    labels = np.zeros((h, w), np.uint16)
    thick = np.zeros((h, w), np.float32)
    for i, (yc, xc, r) in enumerate(circles, start=1):
        y0, y1 = max(int(yc - r - 2), 0), min(int(yc + r + 3), h)
        x0, x1 = max(int(xc - r - 2), 0), min(int(xc + r + 3), w)
        yy, xx = np.mgrid[y0:y1, x0:x1].astype(np.float32)
        ang = np.arctan2(yy - yc, xx - xc)
        rr = r * (1 + 0.07 * np.sin(int(rng.integers(2, 5)) * ang + rng.uniform(0, 6.3)))
        dist = np.sqrt((yy - yc) ** 2 + (xx - xc) ** 2)
        inside = dist <= rr
        bb = (slice(y0, y1), slice(x0, x1))
        labels[bb][inside & (labels[bb] == 0)] = i
        density = rng.uniform(0.35, 0.6) if rng.random() < faint else rng.uniform(0.8, 1.2)
        profile = np.sqrt(np.clip(1 - (dist / rr) ** 2, 0, 1)) * 0.6 + 0.4 * inside
        thick[bb] = np.maximum(thick[bb], density * profile * inside)
    return labels, thick


def make_particles(
    shape: tuple[int, int] = (256, 256),
    seed: int = 0,
    *,
    n: int | None = None,
    radius_median: float = 7.0,
    radius_sigma: float = 0.45,
    touching: float = 0.3,
    faint: float = 0.25,
    blur: float = 1.0,
    noise: float = 1.0,
    illumination: float = 1.0,
    instances: bool = False,
    dtype: Any = "float32",
) -> tuple[np.ndarray, ...]:
    """A TEM-like image of dark particles and its mask.

    Returns ``(image, mask)`` - image (Y, X) float32 in [0, 1] (or ``dtype``),
    mask (Y, X) uint8, 1 = particle - or ``(image, mask, instances)`` with uint16
    ids (0 = background) when ``instances=True``. Radii are log-normal
    (``radius_median`` px, ``radius_sigma``); ``touching`` is the fraction placed
    against a neighbour, ``faint`` the fraction of low-contrast particles.
    """
    from scipy import ndimage as ndi

    h, w = check_shape(shape, 2, "(Y, X)")
    rng = np.random.default_rng(seed)
    if n is None:
        n = max(3, int(0.2 * h * w / (np.pi * radius_median**2 * np.exp(2 * radius_sigma**2))))
    circles = _place_particles(rng, h, w, n, radius_median, radius_sigma, touching)
    labels, thick = _render_particles(rng, h, w, circles, faint)
    film = 0.04 * smooth_noise(rng, (h, w), 1.0) + 0.03 * smooth_noise(rng, (h, w), 6.0)
    dirt = np.clip(smooth_noise(rng, (h, w), min(h, w) / 12) - 1.0, 0, None) * 0.35
    img = 0.8 * np.exp(-1.3 * thick) + film - dirt
    img = ndi.gaussian_filter(img.astype(np.float32), blur) if blur > 0 else img.astype(np.float32)
    img *= detector_response(rng, h, w, 1.2 * illumination)
    img = add_noise(rng, np.clip(img, 0, None), 150.0, 0.02, noise)
    mask = (labels > 0).astype(np.uint8)
    out = (to_dtype(img, dtype), mask)
    return out + (labels,) if instances else out


__all__ = ["make_particles"]
