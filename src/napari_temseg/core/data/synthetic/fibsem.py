"""Synthetic EM images with exact ground truth, for tests, demos and benchmarks.

* :func:`make_fibsem` - a FIB-SEM-like ``(Z, C, Y, X)`` stack: mitochondria
  (3D ellipsoids with a dark double membrane and darker cristae stripes) in a
  textured cytoplasm with distractors that are *not* in the mask (dense granules,
  vesicles with a dark rim, ER-like dark lines), vertical curtaining stripes,
  a smooth per-channel detector response, slice-to-slice brightness drift and
  Poisson + Gaussian noise. Channel 0 mimics an in-column detector ("ICE":
  blurrier and noisier), channel 1 a through-lens detector ("TLD": sharper, less
  noise, different contrast - the mitochondrial matrix is brighter there).
  Mask: 1 = mitochondrion (membranes included), 0 = everything else.
* :func:`make_particles` - a TEM-like ``(Y, X)`` image of dark particles
  (log-normal radii, some touching) on a lighter carbon film with uneven
  illumination, faint particles, diffuse dark contamination, blur and noise.
  Mask: 1 = particle; ``instances=True`` also returns uint16 instance ids.
  Defined in :mod:`.synthetic_particles` (with the building blocks both
  generators share) and re-exported here.

Both are deterministic for a given ``seed`` (one ``numpy.random.Generator``),
need only numpy + scipy.ndimage, and take well under a second at default sizes.

Intensities are float32 in ``[0, 1]`` (clipped) by default; ``dtype="uint8"`` or
``"uint16"`` scales ``[0, 1]`` to the full integer range. The task is
deliberately not solvable by a global threshold (best-threshold Dice < 0.8,
see tests/core/data/test_synthetic.py) but easy for a small U-Net.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .particles import (
    add_noise,
    check_shape,
    detector_response,
    make_particles,
    smooth_noise,
    to_dtype,
)

# Per-channel contrast of each component (added to ``base``), blur, photon
# counts per unit intensity (Poisson) and Gaussian read noise. Channel 0 = ICE,
# channel 1 = TLD; extra channels reuse these with a seeded jitter.
_CHANNELS = (
    dict(
        base=0.60,
        cyto=0.07,
        matrix=-0.07,
        membrane=-0.34,
        cristae=-0.17,
        granule=-0.40,
        ring=-0.28,
        lumen=0.10,
        er=-0.24,
        blur=1.2,
        counts=60.0,
        read=0.03,
        curtain=1.0,
    ),
    dict(
        base=0.48,
        cyto=0.05,
        matrix=0.05,
        membrane=-0.30,
        cristae=-0.20,
        granule=-0.26,
        ring=-0.26,
        lumen=0.05,
        er=-0.20,
        blur=0.5,
        counts=120.0,
        read=0.015,
        curtain=0.7,
    ),
)
_COMPONENTS = ("cyto", "matrix", "membrane", "cristae", "granule", "ring", "lumen", "er")


# --- FIB-SEM ---------------------------------------------------------------------------------
def _mito_params(rng: np.random.Generator, z: int, h: int, w: int, radius: tuple) -> dict:
    b = rng.uniform(*radius)
    return dict(
        zc=rng.uniform(-1.5, z + 0.5),
        yc=rng.uniform(0, h),
        xc=rng.uniform(0, w),
        b=b,
        a=b * rng.uniform(1.0, 2.6),
        rz=rng.uniform(1.8, 5.0),
        theta=rng.uniform(0, np.pi),
        dy=rng.normal(0, 1.5),
        dx=rng.normal(0, 1.5),
        period=rng.uniform(5.5, 9.0),
        phase=rng.uniform(0, 2 * np.pi),
        wk=int(rng.integers(2, 5)),
        wamp=rng.uniform(0.0, 0.08),
        wph=rng.uniform(0, 2 * np.pi),
    )


def _mito_slice(m: dict, zi: int, h: int, w: int, grow: float = 1.0):
    """Geometry of mitochondrion ``m`` in slice ``zi``: (bbox, r, d, u, v) or None.

    ``r`` is the normalised elliptic radius (< 1 inside), ``d`` the approximate
    distance in px inward from the outer membrane, ``u``/``v`` the long/short axis
    coordinates.
    """
    t = (zi - m["zc"]) / m["rz"]
    if abs(t) >= 0.92:
        return None
    s = np.sqrt(1.0 - t * t)
    a, b = max(m["a"] * s, 3.0), max(m["b"] * s, 3.0)
    yc, xc = m["yc"] + m["dy"] * (zi - m["zc"]), m["xc"] + m["dx"] * (zi - m["zc"])
    ext = a * grow * 1.15 + 3
    y0, y1 = max(int(yc - ext), 0), min(int(yc + ext) + 2, h)
    x0, x1 = max(int(xc - ext), 0), min(int(xc + ext) + 2, w)
    if y0 >= y1 or x0 >= x1:
        return None
    yy, xx = np.mgrid[y0:y1, x0:x1].astype(np.float32)
    ct, st = np.cos(m["theta"]), np.sin(m["theta"])
    u = (xx - xc) * ct + (yy - yc) * st
    v = -(xx - xc) * st + (yy - yc) * ct
    phi = np.arctan2(v / b, u / a)
    r = np.sqrt((u / a) ** 2 + (v / b) ** 2) / (1 + m["wamp"] * np.sin(m["wk"] * phi + m["wph"]))
    grad = np.sqrt((u / a**2) ** 2 + (v / b**2) ** 2) + 1e-6
    d = (1.0 - r) * np.maximum(r, 0.05) / grad
    return (slice(y0, y1), slice(x0, x1)), r, d, u, v


def _place_mitos(
    rng: np.random.Generator, z: int, h: int, w: int, radius: tuple, density: float
) -> list[dict]:
    """Non-overlapping mitochondria by rejection sampling on a 3D occupancy grid."""
    radius = (min(radius[0], min(h, w) / 6), min(radius[1], min(h, w) / 4))
    target = max(2, int(np.ceil(density * h * w / 4500 * (z + 5) / 6)))
    taken = np.zeros((z, h, w), bool)
    mitos: list[dict] = []
    for attempt in range(target * 6):
        if len(mitos) >= target:
            break
        m = _mito_params(rng, z, h, w, radius)
        if attempt == 0:  # at least one mitochondrion in the middle of the stack
            m.update(zc=(z - 1) / 2, yc=h / 2, xc=w / 2)
        inside = []
        for zi in sorted(range(z), key=lambda k: abs(k - m["zc"])):  # clash most likely near zc
            g = _mito_slice(m, zi, h, w, grow=1.3)
            if g is None:
                continue
            if np.any(taken[zi][g[0]] & (g[1] < 1.3)):
                inside = []
                break
            inside.append((zi, g[0], g[1] < 1.3))
        for zi, bb, ins in inside:
            taken[zi][bb] |= ins
        if inside:
            mitos.append(m)
    return mitos


def _place_bodies(rng: np.random.Generator, z: int, h: int, w: int, amount: float) -> list[tuple]:
    """Distractors: ("granule" | "vesicle", zc, yc, xc, radius, z half-extent)."""
    n = int(round(amount * h * w / 2500 * (z + 3) / 4))
    out = []
    for _ in range(n):
        kind = "granule" if rng.random() < 0.45 else "vesicle"
        r = rng.uniform(2.0, 5.0) if kind == "granule" else rng.uniform(4.0, 10.0)
        out.append(
            (kind, rng.uniform(-1, z), rng.uniform(0, h), rng.uniform(0, w), r, max(r / 3, 1.2))
        )
    return out


def _render_mitos(comps: dict, mitos: list[dict], zi: int, h: int, w: int) -> np.ndarray:
    mask = np.zeros((h, w), np.uint8)
    for m in mitos:
        g = _mito_slice(m, zi, h, w)
        if g is None:
            continue
        bb, r, d, u, v = g
        inside = r <= 1.0
        mask[bb] |= inside
        comps["matrix"][bb] = np.maximum(comps["matrix"][bb], np.clip(d + 0.5, 0, 1))
        memb = np.exp(-(((d - 0.9) / 0.8) ** 2)) + 0.8 * np.exp(-(((d - 3.0) / 0.8) ** 2))
        comps["membrane"][bb] = np.maximum(comps["membrane"][bb], memb)
        b = max(float(np.abs(v[inside]).max()) if inside.any() else 1.0, 1.0)
        wave = np.cos(2 * np.pi * u / m["period"] + m["phase"] + 1.2 * np.sin(2.0 * v / b))
        crista = np.clip((wave - 0.55) / 0.45, 0, 1) * np.clip((d - 3.8) / 1.5, 0, 1)
        crista *= np.clip(1.4 - np.abs(v) / b, 0, 1)  # cristae do not always span the width
        comps["cristae"][bb] = np.maximum(comps["cristae"][bb], crista)
    return mask


def _render_bodies(comps: dict, bodies: list[tuple], zi: int, h: int, w: int) -> None:
    for kind, zc, yc, xc, r, rz in bodies:
        t = (zi - zc) / rz
        if abs(t) >= 1:
            continue
        rr = r * np.sqrt(1 - t * t)
        y0, y1 = max(int(yc - rr - 3), 0), min(int(yc + rr + 4), h)
        x0, x1 = max(int(xc - rr - 3), 0), min(int(xc + rr + 4), w)
        if y0 >= y1 or x0 >= x1:
            continue
        yy, xx = np.mgrid[y0:y1, x0:x1].astype(np.float32)
        dist = np.sqrt((yy - yc) ** 2 + (xx - xc) ** 2)
        bb = (slice(y0, y1), slice(x0, x1))
        disk = np.clip(rr - dist + 0.5, 0, 1)
        if kind == "granule":
            comps["granule"][bb] = np.maximum(comps["granule"][bb], disk)
        else:
            ring = np.exp(-(((dist - rr) / 0.9) ** 2))
            comps["ring"][bb] = np.maximum(comps["ring"][bb], ring)
            comps["lumen"][bb] = np.maximum(comps["lumen"][bb], disk * (1 - ring))


def _curtains(rng: np.random.Generator, z: int, h: int, w: int) -> np.ndarray:
    """Vertical FIB curtaining: column offsets whose strength varies slowly along y and z."""
    from scipy import ndimage as ndi

    cols = np.zeros(w, np.float32)
    for x in rng.choice(w, size=max(2, w // 10), replace=False):
        width = int(rng.integers(1, 5))
        cols[x : x + width] += rng.normal(0, 0.09)
    cols = ndi.gaussian_filter1d(cols, 0.6)
    fade = np.linspace(1.0, 0.3, h, dtype=np.float32) ** rng.uniform(0.5, 1.5)
    mod = 0.6 + 0.4 * smooth_noise(rng, (z, h), (1.5, h / 10))
    return (mod * fade)[:, :, None] * cols[None, None, :]


def make_fibsem(
    shape: tuple[int, int, int, int] = (8, 2, 256, 256),
    seed: int = 0,
    *,
    mito_radius: tuple[float, float] = (9.0, 20.0),
    mito_density: float = 1.0,
    distractors: float = 1.0,
    noise: float = 1.0,
    curtaining: float = 1.0,
    response: float = 1.0,
    dtype: Any = "float32",
) -> tuple[np.ndarray, np.ndarray]:
    """A FIB-SEM-like stack and its mitochondria mask.

    Returns ``image`` (Z, C, Y, X) float32 in [0, 1] (or ``dtype``) and ``mask``
    (Z, Y, X) uint8 with 1 = mitochondrion. ``mito_radius`` is the range of the
    short semi-axis in px; ``mito_density``, ``distractors``, ``noise``,
    ``curtaining`` and ``response`` scale those effects (0 turns one off).
    """
    z, c, h, w = check_shape(shape, 4, "(Z, C, Y, X)")
    rng = np.random.default_rng(seed)
    mitos = _place_mitos(rng, z, h, w, tuple(mito_radius), mito_density)
    bodies = _place_bodies(rng, z, h, w, distractors)
    cyto = 0.7 * smooth_noise(rng, (z, h, w), (0.8, 1.5, 1.5)) + 0.5 * smooth_noise(
        rng, (z, h, w), (2, 8, 8)
    )
    er = np.exp(-((smooth_noise(rng, (z, h, w), (1.5, 7, 7)) / 0.1) ** 2))
    er *= np.clip(smooth_noise(rng, (z, h, w), (3, 20, 20)) - 0.3, 0, 1) * distractors
    curtain = curtaining * _curtains(rng, z, h, w)
    chans = [dict(_CHANNELS[ch]) if ch < 2 else _jitter(rng, _CHANNELS[ch % 2]) for ch in range(c)]
    gains = [detector_response(rng, h, w, response) for _ in range(c)]
    drift = 1.0 + rng.normal(0, 0.015, (z, c)) * response
    image = np.empty((z, c, h, w), np.float32)
    mask = np.zeros((z, h, w), np.uint8)
    for zi in range(z):
        comps = {k: np.zeros((h, w), np.float32) for k in _COMPONENTS}
        comps["cyto"] = cyto[zi]
        mask[zi] = _render_mitos(comps, mitos, zi, h, w)
        _render_bodies(comps, bodies, zi, h, w)
        outside = 1.0 - comps["matrix"]
        for k in ("granule", "ring", "lumen"):
            comps[k] *= outside
        comps["er"] = er[zi] * outside * (1 - comps["lumen"])
        for ch in range(c):
            image[zi, ch] = _detect(
                rng, comps, chans[ch], gains[ch] * drift[zi, ch], curtain[zi], noise
            )
    return to_dtype(image, dtype), mask


def _jitter(rng: np.random.Generator, p: dict) -> dict:
    return {k: v * rng.uniform(0.8, 1.2) for k, v in p.items()}


def _detect(
    rng: np.random.Generator,
    comps: dict,
    p: dict,
    gain: np.ndarray,
    curtain: np.ndarray,
    noise: float,
) -> np.ndarray:
    """One detector's view of a slice: contrast mix, blur, response, curtains, noise."""
    from scipy import ndimage as ndi

    img = np.full(gain.shape, p["base"], np.float32)
    for k in _COMPONENTS:
        img += p[k] * comps[k]
    img = ndi.gaussian_filter(img, p["blur"]) + p["curtain"] * curtain
    img = np.clip(img * gain, 0, None)
    return add_noise(rng, img, p["counts"], p["read"], noise)


# Building blocks shared with .synthetic_phases: public names, as no module imports
# another's private ones (tests/house/test_structure.py). The others (check_shape, to_dtype,
# smooth_noise, detector_response, add_noise) come from .synthetic_particles.
curtains = _curtains

__all__ = ["make_fibsem", "make_particles"]
