"""ilastik's filter bank in torch: the per-pixel features of the pixel classifier.

Per input channel (each channel of each context slice) and per scale sigma in ``SCALES``:
Gaussian smoothing, Laplacian of Gaussian, Gaussian gradient magnitude, difference of
Gaussians (sigma - 0.66 sigma), the two structure-tensor eigenvalues (gradients at sigma,
tensor smoothed at sigma / 2) and the two Hessian-of-Gaussian eigenvalues; plus the raw
channel: ``1 + 8 * len(SCALES)`` features per channel, the set ilastik offers by default
(Sommer et al. 2011, Berg et al. 2019).

The same code runs on the CPU and the GPU: separable convolutions (``conv2d`` with 1-D
kernels) on a reflect-padded tile. Large scales are computed on an average-pooled copy
(every power of two that keeps the reduced sigma >= ``MIN_REDUCED_SIGMA`` px) and
up-sampled bilinearly: at sigma 10 the filters see the same structures for a sixteenth of
the work. Trees split on ranks, so the features need no normalisation.

A pixel's features depend on the image within ``halo()`` pixels of it: tiles overlap by at
least that much (the tiler's overlap and the training crops use it).
"""

from __future__ import annotations

import math

SCALES = (0.7, 1.0, 1.6, 3.5, 5.0, 10.0)
FILTERS = ("gauss", "log", "gradmag", "dog", "st_max", "st_min", "hess_max", "hess_min")
MIN_REDUCED_SIGMA = 1.5
_TRUNCATE = 4.0  # kernel radius in sigmas, as scipy.ndimage


def feature_count(channels: int) -> int:
    """Features per pixel for ``channels`` network input channels."""
    return channels * (1 + len(FILTERS) * len(SCALES))


def feature_names(channels: int) -> list[str]:
    """One name per feature, in the order :func:`filter_bank` returns them."""
    names = []
    for c in range(channels):
        names.append(f"c{c}:raw")
        names += [f"c{c}:{f}@{s:g}" for s in SCALES for f in FILTERS]
    return names


def _factor(sigma: float) -> int:
    """The pooling factor of ``sigma``: the largest power of two keeping sigma/f >= the min."""
    f = 1
    while sigma / (2 * f) >= MIN_REDUCED_SIGMA:
        f *= 2
    return f


def _reduced_sigma(sigma: float, f: int) -> float:
    """sigma in pooled pixels, minus the blur of the f x f average pooling itself."""
    return math.sqrt(max(sigma**2 - (f * f - 1) / 12.0, 0.25)) / f


def _radius(sigma: float) -> int:
    return max(1, int(math.ceil(_TRUNCATE * sigma)))


def halo() -> int:
    """Pixels of context a feature needs on each side (the widest filter, pooling included)."""
    out = 0
    for s in SCALES:
        f = _factor(s)
        r = _reduced_sigma(s, f)
        # gradients at sigma, then the structure tensor's smoothing at sigma / 2
        out = max(out, (_radius(r) + _radius(r / 2) + 2) * f)
    return out


def _kernels(sigma: float, device, dtype):
    """Gaussian and its first and second derivative, (3, L), zero-sum derivatives."""
    import torch

    r = _radius(sigma)
    x = torch.arange(-r, r + 1, device=device, dtype=torch.float64)
    g = torch.exp(-0.5 * (x / sigma) ** 2)
    g /= g.sum()
    d1 = x / sigma**2 * g  # conv2d correlates: +x, not -x
    d1 /= (x * d1).sum()  # the derivative of a ramp is exactly 1
    d2 = (x**2 / sigma**4 - 1 / sigma**2) * g
    d2 -= g * d2.sum()  # a constant has no curvature
    d2 /= 0.5 * (x**2 * d2).sum()  # the curvature of x^2 / 2 is exactly 1
    return torch.stack([g, d1, d2]).to(dtype)


def _pad(t, r: int):
    import torch.nn.functional as F

    mode = "reflect" if r < min(t.shape[-2:]) else "replicate"
    return F.pad(t, (r, r, r, r), mode=mode)


def _correlate(t, k, dim: int):
    """Valid 1-D correlation of (B, 1, ...) with each row of k (n, L) along ``dim`` ->
    (B, n, ...). On the CPU as a sum of shifted slices: for these short kernels several
    times faster than ``conv2d``'s single-channel path; elsewhere ``conv2d``."""
    import torch
    import torch.nn.functional as F

    n, taps = k.shape
    if t.device.type != "cpu":
        w = k[:, None, :, None] if dim == 2 else k[:, None, None, :]
        return F.conv2d(t, w)
    size = t.shape[dim] - taps + 1
    out = torch.zeros(
        (t.shape[0], n, *(size if d == dim else t.shape[d] for d in (2, 3))),
        dtype=t.dtype,
        device=t.device,
    )
    weights = k.tolist()
    for i in range(taps):
        s = t.narrow(dim, i, size)[:, 0]
        for j in range(n):
            if weights[j][i] != 0.0:
                out[:, j].add_(s, alpha=weights[j][i])
    return out


def _along_y(t, k):
    """(B, 1, H+2r, W) -> (B, n, H, W): one valid 1-D correlation per kernel row of k."""
    return _correlate(t, k, 2)


def _along_x(t, k):
    """(B, 1, H, W+2r) -> (B, n, H, W)."""
    return _correlate(t, k, 3)


def _smooth(t, sigma: float):
    """Gaussian smoothing of every channel of (B, n, H, W) separately."""
    b, n, h, w = t.shape
    k = _kernels(sigma, t.device, t.dtype)[:1]
    flat = _pad(t.reshape(b * n, 1, h, w), _radius(sigma))
    return _along_x(_along_y(flat, k), k).reshape(b, n, h, w)


def _eig2(a, b, c):
    """Eigenvalues (larger, smaller) of the symmetric 2 x 2 matrices [[a, b], [b, c]]."""
    import torch

    mean = 0.5 * (a + c)
    rad = torch.sqrt((0.5 * (a - c)) ** 2 + b * b)
    return mean + rad, mean - rad


def _scale_features(t, sigma: float):
    """The eight filters at one sigma (in t's pixels) of (B, 1, H, W) -> (B, 8, H, W)."""
    import torch

    k = _kernels(sigma, t.device, t.dtype)
    p = _pad(t, _radius(sigma))
    y = _along_y(p, k)  # g, g', g'' along y
    gx = _along_x(y[:, 0:1], k)  # G, Ix, Ixx
    dy = _along_x(y[:, 1:2], k[:2])  # Iy, Ixy
    iyy = _along_x(y[:, 2:3], k[:1])
    gauss, ix, ixx = gx[:, 0], gx[:, 1], gx[:, 2]
    iy, ixy = dy[:, 0], dy[:, 1]
    iyy = iyy[:, 0]
    st = _smooth(torch.stack([ix * ix, ix * iy, iy * iy], 1), sigma / 2)
    st_max, st_min = _eig2(st[:, 0], st[:, 1], st[:, 2])
    h_max, h_min = _eig2(ixx, ixy, iyy)
    dog = gauss - _smooth(t, 0.66 * sigma)[:, 0]
    feats = [gauss, ixx + iyy, torch.sqrt(ix * ix + iy * iy), dog, st_max, st_min, h_max, h_min]
    return torch.stack(feats, 1)


def _pooled(t, f: int):
    """(B, 1, H, W) average-pooled by f (reflect-padded up to a multiple of f)."""
    import torch.nn.functional as F

    if f == 1:
        return t
    h, w = t.shape[-2:]
    ph, pw = (-h) % f, (-w) % f
    if ph or pw:
        mode = "reflect" if max(ph, pw) < min(h, w) else "replicate"
        t = F.pad(t, (0, pw, 0, ph), mode=mode)
    return F.avg_pool2d(t, f)


def _upsampled(t, f: int, shape: tuple[int, int]):
    import torch.nn.functional as F

    if f == 1:
        return t
    up = F.interpolate(t, scale_factor=f, mode="bilinear", align_corners=False)
    return up[..., : shape[0], : shape[1]]


def filter_bank(x):
    """Features of a float tensor (N, C, H, W) -> (N, ``feature_count(C)``, H, W).

    Border pixels are computed from a reflected image: give the tile ``halo()`` pixels of
    real context where it has them."""
    import torch

    n, c, h, w = x.shape
    t = x.reshape(n * c, 1, h, w).float()
    per_scale = []
    pyramid: dict[int, object] = {}
    for s in SCALES:
        f = _factor(s)
        if f not in pyramid:
            pyramid[f] = _pooled(t, f)
        per_scale.append(_upsampled(_scale_features(pyramid[f], _reduced_sigma(s, f)), f, (h, w)))
    out = torch.cat([t] + per_scale, 1)  # (N*C, 1 + 8 S, H, W)
    return out.reshape(n, c * out.shape[1], h, w)
