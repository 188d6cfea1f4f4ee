"""The kernels of :mod:`augment`: per-sample random draws, geometry and intensity ops.

Every function takes the batch as torch tensors on the training device and the
:class:`AugmentOps` of the preset; see :mod:`augment` for what each op does.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any

from ...config.choices import ConfigError


@dataclass(frozen=True)
class AugmentOps:
    """Probability (``p_*``, per sample) and range of every operation."""

    p_flip: float = 0.0  # each of horizontal / vertical flip
    p_rot90: float = 0.0  # extra rotation by 90, 180 or 270 degrees (square patches only)
    p_rotate: float = 0.0
    rotate_deg: float = 0.0  # uniform in [-deg, +deg]
    p_elastic: float = 0.0
    elastic_grid: int = 8  # G x G tiles
    elastic_magnitude: float = 2.0  # max vertex displacement in pixels
    p_zoom: float = 0.0
    zoom: tuple[float, float] = (1.0, 1.0)  # > 1 magnifies
    p_translate: float = 0.0
    translate: float = 0.0  # max shift as a fraction of the patch size
    p_brightness: float = 0.0
    brightness: float = 0.0  # additive, uniform in [-b, b]
    p_contrast: float = 0.0
    contrast: tuple[float, float] = (1.0, 1.0)  # factor around the sample mean
    p_gamma: float = 0.0
    gamma: tuple[float, float] = (1.0, 1.0)  # on the sample's [min, max] range
    p_curtain: float = 0.0
    curtain: float = 0.0  # max stripe amplitude (normalised intensity units)
    p_blur: float = 0.0
    blur_sigma: tuple[float, float] = (0.5, 1.0)
    p_noise: float = 0.0
    noise_std: float = 0.0  # max std of additive Gaussian noise

    def __post_init__(self) -> None:
        for f in dataclasses.fields(self):
            v = getattr(self, f.name)
            if f.name.startswith("p_") and not 0.0 <= v <= 1.0:
                raise ConfigError(f"augmentation probability {f.name} must be in [0, 1], got {v}")
        for name in ("zoom", "contrast", "gamma", "blur_sigma"):
            lo, hi = getattr(self, name)
            if not 0 < lo <= hi:
                raise ConfigError(f"augmentation range {name} must be 0 < lo <= hi, got {(lo, hi)}")
        if self.elastic_grid < 2:
            raise ConfigError(f"elastic_grid must be >= 2 tiles, got {self.elastic_grid}")


class Draw:
    """Per-sample random numbers, drawn on CPU (reproducible) and moved to the device."""

    def __init__(self, gen, dev_gen, n: int, device):
        import torch

        self.torch, self.gen, self.dev_gen, self.n, self.device = torch, gen, dev_gen, n, device

    def uniform(self, lo: float, hi: float, shape: tuple = ()):
        u = self.torch.rand((self.n, *shape), generator=self.gen)
        return (lo + (hi - lo) * u).to(self.device)

    def coin(self, p: float):
        return (self.torch.rand(self.n, generator=self.gen) < p).to(self.device)

    def normal(self, shape: tuple, dtype):
        return self.torch.randn(shape, generator=self.dev_gen, device=self.device, dtype=dtype)


def _bcast(v, like):
    """Per-sample vector -> broadcastable against ``like`` (N, ...)."""
    return v.view(-1, *([1] * (like.dim() - 1))).to(like.dtype)


_CACHE: dict[tuple, Any] = {}  # small per-shape tensors: dihedral maps, interpolation matrices


def _dihedral_maps(h: int, device):
    """(8, H*W) gather indices of the 8 flips/rotations of an H x H image."""
    import torch

    key = ("d4", h, str(device))
    if key not in _CACHE:
        grid = torch.arange(h * h, device=device).view(h, h)
        maps = []
        for k in range(4):
            r = torch.rot90(grid, k, dims=(0, 1))
            maps += [r.flatten(), r.flip(-1).flatten()]
        _CACHE[key] = torch.stack(maps)
    return _CACHE[key]


def dihedral(ops: AugmentOps, r: Draw, x, y, w):
    """Per-sample flips and 90 degree rotations: exact, one gather per tensor."""
    import torch

    n, h, wd = x.shape[0], x.shape[-2], x.shape[-1]
    fx, fy = r.coin(ops.p_flip), r.coin(ops.p_flip)
    k = torch.where(r.coin(ops.p_rot90 if h == wd else 0.0), r.uniform(1, 4).floor(), 0)
    if not bool((fx | fy | (k > 0)).any()):
        return x, y, w
    if h != wd:  # flips only
        out = []
        for a in (x, y, w):
            a = torch.where(fx.view(-1, 1, 1, 1), a.flip(-1), a)
            out.append(torch.where(fy.view(-1, 1, 1, 1), a.flip(-2), a))
        return tuple(out)
    # element index in _dihedral_maps: 2 * rotation + horizontal flip; a vertical flip is
    # a horizontal flip followed by a 180 degree rotation
    rot = (k.long() + 2 * fy.long()) % 4
    idx = _dihedral_maps(h, x.device)[2 * rot + (fx ^ fy).long()]

    def gather(a):
        flat = a.reshape(n, a.shape[1], h * wd)
        return flat.gather(2, idx[:, None, :].expand(n, a.shape[1], h * wd)).view(a.shape)

    return gather(x), gather(y), gather(w)


def _affine_params(ops: AugmentOps, r: Draw):
    """Per-sample rotation angle (rad), zoom factor, shift (fraction) and active flags."""
    import torch

    zero = torch.zeros(r.n, device=r.device)
    on_rot, on_zoom, on_tr = r.coin(ops.p_rotate), r.coin(ops.p_zoom), r.coin(ops.p_translate)
    ang = r.uniform(-ops.rotate_deg, ops.rotate_deg) * (math.pi / 180)
    zoom = r.uniform(*ops.zoom)
    shift = r.uniform(-ops.translate, ops.translate, (2,))
    ang = torch.where(on_rot, ang, zero)
    zoom = torch.where(on_zoom, zoom, zero + 1)
    shift = torch.where(on_tr[:, None], shift, 0.0)
    return ang, zoom, shift, on_rot | on_zoom | on_tr


def _cubic_matrix(n_in: int, n_out: int, device):
    """(n_out, n_in) matrix of 1-D bicubic interpolation (align_corners=True): bicubic
    up-sampling is separable, so ``M_y @ coarse @ M_x.T`` equals ``F.interpolate``."""
    import torch
    import torch.nn.functional as F

    key = ("cubic", n_in, n_out, str(device))
    if key not in _CACHE:
        eye = torch.eye(n_in, device=device).view(n_in, 1, n_in, 1)
        out = F.interpolate(eye, size=(n_out, 1), mode="bicubic", align_corners=True)
        _CACHE[key] = out[:, 0, :, 0].T.contiguous()
    return _CACHE[key]


def _grid(ops: AugmentOps, r: Draw, h: int, w: int, dtype):
    """Sampling grid (k, H, W, 2) of the fused affine + elastic warp of the k warped samples.

    Output pixel centre (u, v) in normalised [-1, 1] coordinates (align_corners=False)
    samples the input at ``A (u, v) + t + elastic(u, v)``.
    """
    import torch

    ang, zoom, shift, active = _affine_params(ops, r)
    on_el = r.coin(ops.p_elastic)
    g = ops.elastic_grid
    disp = r.uniform(-ops.elastic_magnitude, ops.elastic_magnitude, (2, g + 1, g + 1))
    idx = (active | on_el).nonzero().flatten()
    if idx.numel() == 0:
        return None, idx
    ang, zoom, shift, on_el = ang[idx], zoom[idx], shift[idx], on_el[idx]
    c, s = torch.cos(ang) / zoom, torch.sin(ang) / zoom
    u = torch.linspace(-1 + 1 / w, 1 - 1 / w, w, device=r.device).view(1, 1, w)
    v = torch.linspace(-1 + 1 / h, 1 - 1 / h, h, device=r.device).view(1, h, 1)
    col = lambda a: a.view(-1, 1, 1)  # noqa: E731
    gx = torch.addcmul(col(2 * shift[:, 1]) - col(s * (h / w)) * v, col(c), u)
    gy = torch.addcmul(col(2 * shift[:, 0]) + col(c) * v, col(s * (w / h)), u)
    if bool(on_el.any()):
        disp = disp[idx] * on_el.view(-1, 1, 1, 1)
        disp[:, :, [0, -1], :] = 0  # Augmentor keeps the outer vertices fixed
        disp[:, :, :, [0, -1]] = 0
        field = _cubic_matrix(g + 1, h, r.device) @ disp @ _cubic_matrix(g + 1, w, r.device).T
        gx = gx.add_(field[:, 0], alpha=2.0 / w)
        gy = gy.add_(field[:, 1], alpha=2.0 / h)
    return torch.stack([gx, gy], dim=-1).to(dtype), idx


def warp(ops: AugmentOps, r: Draw, x, y, w):
    """One grid_sample for the image (bilinear) and one for y/w (nearest) on warped samples."""
    import torch
    import torch.nn.functional as F

    if ops.p_rotate == ops.p_zoom == ops.p_translate == ops.p_elastic == 0:
        return x, y, w
    grid, idx = _grid(ops, r, x.shape[-2], x.shape[-1], x.dtype)
    if grid is None:
        return x, y, w
    every = idx.numel() == x.shape[0]
    sub = (lambda a: a) if every else (lambda a: a[idx])  # noqa: E731
    xs = F.grid_sample(
        sub(x), grid, mode="bilinear", padding_mode="reflection", align_corners=False
    )
    yw = torch.cat([sub(y).to(x.dtype), sub(w).to(x.dtype)], dim=1)
    yw = F.grid_sample(yw, grid, mode="nearest", padding_mode="zeros", align_corners=False)
    ys, ws = yw[:, :1].to(y.dtype), yw[:, 1:].to(w.dtype)
    if every:
        return xs, ys, ws
    return tuple(_put(a, idx, b) for a, b in ((x, xs), (y, ys), (w, ws)))


def _put(a, idx, values):
    out = a.clone()
    out[idx] = values
    return out


def _subset(x, on, fn) -> None:
    """In place: ``x[on] = fn(x[on], on_indices)``; nothing when no sample is on."""
    idx = on.nonzero().flatten()
    if idx.numel() == x.shape[0]:
        x.copy_(fn(x, idx))
    elif idx.numel():
        x[idx] = fn(x[idx], idx)


def intensity(ops: AugmentOps, r: Draw, x, owned: bool):
    """Image-only ops, each on the samples that drew it (in place on a private copy)."""

    used = [
        p > 0
        for p in (
            ops.p_brightness,
            ops.p_contrast,
            ops.p_gamma,
            ops.p_curtain,
            ops.p_blur,
            ops.p_noise,
        )
    ]
    if not any(used):
        return x
    x = x if owned else x.clone()
    if used[0]:
        b = r.uniform(-ops.brightness, ops.brightness) * r.coin(ops.p_brightness)
        x += _bcast(b, x)
    if used[1]:
        c = r.uniform(*ops.contrast)
        _subset(x, r.coin(ops.p_contrast), lambda a, i: _contrast(a, c[i]))
    if used[2]:
        g = r.uniform(*ops.gamma)
        _subset(x, r.coin(ops.p_gamma), lambda a, i: _gamma(a, g[i]))
    if used[3]:
        amp = r.uniform(0.0, ops.curtain)
        knots = r.uniform(0.3, 1.0, (6,))
        _subset(x, r.coin(ops.p_curtain), lambda a, i: _curtain(r, a, amp[i], knots[i]))
    if used[4]:
        s = r.uniform(*ops.blur_sigma)
        _subset(x, r.coin(ops.p_blur), lambda a, i: _blur(a, s[i], ops.blur_sigma[1]))
    if used[5]:
        std = r.uniform(0.0, ops.noise_std)
        _subset(
            x,
            r.coin(ops.p_noise),
            lambda a, i: a + _bcast(std[i], a) * r.normal(tuple(a.shape), a.dtype),
        )
    return x


def _contrast(x, c):
    mean = x.mean(dim=(-2, -1), keepdim=True)
    return (x - mean) * _bcast(c, x) + mean


def _gamma(x, g):
    """``u ** g`` on each sample's (per channel) [min, max] range, mapped back."""
    lo = x.amin(dim=(-2, -1), keepdim=True)
    span = (x.amax(dim=(-2, -1), keepdim=True) - lo).clamp_min(1e-6)
    u = ((x - lo) / span).clamp(0, 1)
    return lo + span * u.pow(_bcast(g, x))


def _curtain(r: Draw, x, amp, knots):
    """FIB-SEM curtaining: per-column offsets (3 px wide), smoothly modulated along y."""
    import torch.nn.functional as F

    n, _, h, w = x.shape
    cols = r.normal((n, 1, 1, w), x.dtype)
    cols = F.avg_pool2d(F.pad(cols, (1, 1, 0, 0), mode="replicate"), (1, 3), stride=1)
    knots = knots.to(x.dtype).view(n, 1, -1, 1)
    rows = F.interpolate(knots, size=(h, 1), mode="bicubic", align_corners=True)
    return x + _bcast(amp, x) * cols * rows


def _blur(x, sigma, max_sigma: float):
    """Separable Gaussian blur with a per-sample sigma (grouped convolution, reflect pad)."""
    import torch
    import torch.nn.functional as F

    n, c, h, w = x.shape
    rad = max(1, math.ceil(3 * max_sigma))
    t = torch.arange(-rad, rad + 1, device=x.device, dtype=x.dtype)
    k = torch.exp(-0.5 * (t / sigma.to(x.dtype).view(-1, 1)) ** 2)
    k = (k / k.sum(1, keepdim=True)).repeat_interleave(c, dim=0)  # (n*C, taps)
    pad_h, pad_w = min(rad, h - 1), min(rad, w - 1)
    xs = F.pad(x.reshape(1, n * c, h, w), (pad_w, pad_w, pad_h, pad_h), mode="reflect")
    xs = F.conv2d(xs, k[:, None, None, rad - pad_w : rad + pad_w + 1], groups=n * c)
    xs = F.conv2d(xs, k[:, None, rad - pad_h : rad + pad_h + 1, None], groups=n * c)
    return xs.view(n, c, h, w)


__all__ = ["Draw", "dihedral", "warp", "intensity"]
