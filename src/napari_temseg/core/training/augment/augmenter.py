"""Batched data augmentation on the training device (GPU when there is one).

``Augmenter(preset)(x, y, w)`` takes a batch of patches
``x (N, Cin, P, P)`` float (normalised image), ``y (N, 1, P, P)`` target in {0, 1} and
``w (N, 1, P, P)`` loss weight in {0, 1} (0 = ignore), draws *different* random
parameters for every sample and returns the augmented ``(x, y, w)`` with the same
shapes, dtypes and device.

Geometry (moves image and labels together):

* flips and 90 degree rotations: exact, one ``gather`` per tensor (cached index maps);
* rotation, zoom, translation and elastic distortion: fused into **one** sampling grid
  per batch, one ``grid_sample`` for the image (bilinear, reflection padding) and one
  for ``y``/``w`` (nearest: values stay in {0, 1}). Pixels from outside the patch get
  ``w = 0``. The elastic field follows Augmentor's ``Distort(G, G, magnitude)``: random
  shifts of up to ``magnitude`` px at the interior vertices of a ``G x G`` grid,
  interpolated bicubically.

Intensity (image only): brightness, contrast, gamma, FIB-SEM curtaining stripes
(random per-column offsets, smoothly modulated along y), Gaussian blur, Gaussian noise.

Randomness comes from a seeded ``torch.Generator``: the same seed and inputs give the
same outputs (bit-exact on CPU).
"""

from __future__ import annotations

import dataclasses
from typing import Any

from ...config.choices import AUGMENT_PRESETS, ConfigError
from ...errors import InputError
from .kernels import AugmentOps, Draw, dihedral, intensity, warp

_FLIPS = dict(p_flip=0.5, p_rot90=0.5)
PRESETS: dict[str, AugmentOps] = {
    "none": AugmentOps(),
    "flips": AugmentOps(**_FLIPS),
    "default": AugmentOps(
        **_FLIPS,
        p_rotate=0.5,
        rotate_deg=20.0,
        p_elastic=0.5,
        elastic_grid=6,
        elastic_magnitude=4.0,
        p_zoom=0.3,
        zoom=(0.85, 1.25),
        p_brightness=0.5,
        brightness=0.1,
        p_contrast=0.5,
        contrast=(0.8, 1.25),
        p_gamma=0.3,
        gamma=(0.7, 1.5),
        p_curtain=0.1,
        curtain=0.05,
        p_blur=0.2,
        blur_sigma=(0.3, 1.0),
        p_noise=0.3,
        noise_std=0.03,
    ),
    # The published TEM U-Net recipe (Augmentor): Rotate 25, Distort 8x8 mag 2, Zoom 1.1-1.6.
    "augmentor": AugmentOps(
        p_rotate=0.7,
        rotate_deg=25.0,
        p_elastic=0.9,
        elastic_grid=8,
        elastic_magnitude=2.0,
        p_zoom=0.3,
        zoom=(1.1, 1.6),
    ),
    # Seed 002: each image rotated, scaled and translated by a random amount (OpenCV).
    "rotate-scale-translate": AugmentOps(
        p_rotate=1.0,
        rotate_deg=180.0,
        p_zoom=1.0,
        zoom=(0.8, 1.25),
        p_translate=1.0,
        translate=0.1,
    ),
    # Seed 004: random crops (every patch is one), flips, random brightness / contrast.
    "flip-brightness": AugmentOps(
        **_FLIPS,
        p_brightness=0.5,
        brightness=0.2,
        p_contrast=0.5,
        contrast=(0.8, 1.2),
    ),
    "strong": AugmentOps(
        **_FLIPS,
        p_rotate=0.8,
        rotate_deg=45.0,
        p_elastic=0.7,
        elastic_grid=6,
        elastic_magnitude=8.0,
        p_zoom=0.5,
        zoom=(0.7, 1.5),
        p_translate=0.3,
        translate=0.1,
        p_brightness=0.7,
        brightness=0.2,
        p_contrast=0.7,
        contrast=(0.6, 1.6),
        p_gamma=0.5,
        gamma=(0.5, 2.0),
        p_curtain=0.3,
        curtain=0.1,
        p_blur=0.4,
        blur_sigma=(0.3, 1.5),
        p_noise=0.5,
        noise_std=0.08,
    ),
}
if tuple(PRESETS) != AUGMENT_PRESETS:  # pragma: no cover - keeps config and this file in sync
    raise RuntimeError(f"augment presets {tuple(PRESETS)} != config.AUGMENT_PRESETS")


class Augmenter:
    """Callable ``(x, y, w) -> (x, y, w)``; see the module docstring.

    ``preset`` is one of :data:`config.AUGMENT_PRESETS`; keyword ``overrides`` replace
    single :class:`AugmentOps` fields (``Augmenter("default", p_noise=0)``).
    ``sparse=True`` (scribble labels) never zooms out, so thin strokes are not dropped
    by nearest-neighbour label sampling.
    """

    def __init__(
        self, preset: str = "default", *, seed: int = 0, sparse: bool = False, **overrides: Any
    ):
        if preset not in PRESETS:
            raise ConfigError(f"unknown augment preset '{preset}': use one of {AUGMENT_PRESETS}")
        try:
            ops = dataclasses.replace(PRESETS[preset], **overrides)
        except TypeError as e:
            names = [f.name for f in dataclasses.fields(AugmentOps)]
            raise ConfigError(f"unknown augmentation option ({e}); options are {names}") from None
        if sparse and ops.zoom[0] < 1:
            ops = dataclasses.replace(ops, zoom=(1.0, max(1.0, ops.zoom[1])))
        self.preset, self.ops, self.seed, self.sparse = preset, ops, int(seed), sparse
        self._gen: Any = None  # CPU generator for per-sample parameters
        self._dev_gens: dict[str, Any] = {}  # generators for per-pixel noise on other devices

    def __repr__(self) -> str:
        return f"Augmenter({self.preset!r}, seed={self.seed}, sparse={self.sparse})"

    def __call__(self, x, y, w):
        import torch

        _check_batch(x, y, w)
        if self._gen is None:
            self._gen = torch.Generator().manual_seed(self.seed)
        if self.ops == PRESETS["none"]:
            return x, y, w
        r = Draw(self._gen, self._device_gen(x.device), x.shape[0], x.device)
        with torch.no_grad():
            x0 = x
            x, y, w = dihedral(self.ops, r, x, y, w)
            x, y, w = warp(self.ops, r, x, y, w)
            x = intensity(self.ops, r, x, owned=x is not x0)
        return x, y, w

    def _device_gen(self, device):
        import torch

        if device.type == "cpu":
            return self._gen
        key = str(device)
        if key not in self._dev_gens:
            self._dev_gens[key] = torch.Generator(device=device).manual_seed(self.seed + 1)
        return self._dev_gens[key]


def _check_batch(x, y, w) -> None:
    shapes = [tuple(getattr(a, "shape", ())) for a in (x, y, w)]
    if len(shapes[0]) != 4:
        raise InputError(f"augment needs x as (N, C, H, W), got shape {shapes[0]}")
    n, _, h, wd = shapes[0]
    for name, s in zip("yw", shapes[1:], strict=False):
        if s != (n, 1, h, wd):
            raise InputError(f"augment needs {name} as (N, 1, H, W) = {(n, 1, h, wd)}, got {s}")
    if not (x.device == y.device == w.device):
        raise InputError(f"x, y, w must be on one device, got {x.device}, {y.device}, {w.device}")
    if not x.is_floating_point():
        raise InputError(f"augment needs a float image batch, got {x.dtype}: normalise first")


__all__ = ["Augmenter", "AugmentOps", "PRESETS"]
