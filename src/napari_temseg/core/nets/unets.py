"""The native U-Nets: ``unet``, ``small-unet`` and ``resunet`` (entries of ``registry.py``).

* ``unet`` - classic U-Net (Ronneberger et al. 2015): two 3x3 conv + norm + ReLU per
  level, 2x2 max-pool, 2x2 transposed-conv up-sampling, skip concatenation, 1x1 head.
  ``cfg.depth`` poolings (3..6, auto 4); widths ``b, 2b, 4b, 8b`` + ``16b`` bottleneck
  (``b = cfg.base_width``, default 32; deeper levels stay at ``16b``).
* ``small-unet`` - the compact U-Net of the Keras/Kaggle recipe: 16-32-64-128 encoder,
  256 bottleneck, 3x3 stride-2 transposed convolutions, ~2.16 M parameters for one input
  channel (``cfg.base_width`` scales it; default 16).
* ``resunet`` - Deep Residual U-Net (Zhang, Liu & Wang 2018): pre-activation residual
  blocks (BN-ReLU-Conv x2, 1x1 conv shortcut), 64/128/256 encoder with strided first
  convolutions, 512 bridge, up-sampling + concatenation decoder, 1x1 head.

torch is imported at the top: only ``build.build_model`` imports this module, when a
network is built.
"""

from __future__ import annotations

from functools import partial
from typing import Any

import torch
from torch import nn


def norm_layer(kind: str, channels: int) -> nn.Module:
    """Batch norm (default), instance norm (per sample, nnU-Net style) or group norm (8 groups)."""
    if kind == "instance":  # = InstanceNorm2d(affine=True); as GroupNorm it is 2.1x faster in
        return nn.GroupNorm(channels, channels)  # channels_last CPU inference (measured)
    if kind == "group":
        return nn.GroupNorm(min(8, channels), channels)
    return nn.BatchNorm2d(channels)


def double_conv(cin: int, cout: int, norm: str = "batch") -> nn.Module:
    """(3x3 conv, norm, ReLU) twice: a level of the native U-Nets."""
    return nn.Sequential(
        nn.Conv2d(cin, cout, 3, padding=1, bias=False),
        norm_layer(norm, cout),
        nn.ReLU(inplace=True),
        nn.Conv2d(cout, cout, 3, padding=1, bias=False),
        norm_layer(norm, cout),
        nn.ReLU(inplace=True),
    )


class ResBlock(nn.Module):
    """Pre-activation residual unit: (BN-ReLU-)Conv3x3-BN-ReLU-Conv3x3 + 1x1 shortcut."""

    def __init__(
        self, cin: int, cout: int, stride: int = 1, first: bool = False, norm: str = "batch"
    ):
        super().__init__()
        pre = [] if first else [norm_layer(norm, cin), nn.ReLU(inplace=True)]
        self.body = nn.Sequential(
            *pre,
            nn.Conv2d(cin, cout, 3, stride, 1),
            norm_layer(norm, cout),
            nn.ReLU(inplace=True),
            nn.Conv2d(cout, cout, 3, 1, 1),
        )
        self.skip = nn.Sequential(nn.Conv2d(cin, cout, 1, stride), norm_layer(norm, cout))

    def forward(self, x):
        return self.body(x) + self.skip(x)


class UNet(nn.Module):
    """Generic encoder/decoder with skips: enc blocks, bridge, (up, dec) pairs, head."""

    def __init__(self, enc, bridge, ups, decs, head):
        super().__init__()
        self.enc, self.bridge = nn.ModuleList(enc), bridge
        self.ups, self.decs, self.head = nn.ModuleList(ups), nn.ModuleList(decs), head

    def forward(self, x):
        skips = []
        for block in self.enc:
            x = block(x)
            skips.append(x)
        x = self.bridge(x)
        for up, dec, skip in zip(self.ups, self.decs, reversed(skips), strict=False):
            x = dec(torch.cat([up(x), skip], dim=1))
        return self.head(x)


def plain_unet(
    cin: int, classes: int, base: int, up_kernel: int, norm: str = "batch", depth: int = 4
) -> UNet:
    """U-Net with ``depth`` poolings; ``up_kernel`` 2 (Ronneberger) or 3 (Keras small U-Net).

    Widths double per level up to ``16 * base`` (the 4-level bottleneck), then stay: a fifth
    level doubles the receptive field for ~1.1x the training time (measured), not 4x the
    parameters.
    """
    w = [base * 2 ** min(i, 4) for i in range(depth + 1)]  # levels + bottleneck
    enc = [double_conv(cin, w[0], norm)]
    enc += [
        nn.Sequential(nn.MaxPool2d(2), double_conv(w[i - 1], w[i], norm)) for i in range(1, depth)
    ]
    bridge = nn.Sequential(nn.MaxPool2d(2), double_conv(w[depth - 1], w[depth], norm))
    pad, out_pad = (0, 0) if up_kernel == 2 else (1, 1)
    up_levels = range(depth - 1, -1, -1)
    ups = [nn.ConvTranspose2d(w[i + 1], w[i], up_kernel, 2, pad, out_pad) for i in up_levels]
    decs = [double_conv(2 * w[i], w[i], norm) for i in up_levels]
    return UNet(enc, bridge, ups, decs, nn.Conv2d(w[0], classes, 1))


def resunet(cin: int, classes: int, base: int, norm: str = "batch") -> UNet:
    """Deep Residual U-Net (Zhang et al. 2018); 3 strided levels + strided bridge."""
    res = partial(ResBlock, norm=norm)
    w = [base, 2 * base, 4 * base, 8 * base]
    enc = [res(cin, w[0], 1, first=True), res(w[0], w[1], 2), res(w[1], w[2], 2)]
    bridge = res(w[2], w[3], 2)
    up = lambda: nn.Upsample(scale_factor=2, mode="bilinear", align_corners=False)  # noqa: E731
    ups = [up(), up(), up()]
    decs = [res(w[3] + w[2], w[2]), res(w[2] + w[1], w[1]), res(w[1] + w[0], w[0])]
    return UNet(enc, bridge, ups, decs, nn.Conv2d(w[0], classes, 1))


def build_unet(cfg: Any) -> UNet:
    """The ``unet`` entry: 2x2 transposed convolutions."""
    return plain_unet(cfg.in_channels, cfg.classes, cfg.base_width, 2, cfg.norm_layer, cfg.levels)


def build_small_unet(cfg: Any) -> UNet:
    """The ``small-unet`` entry: 3x3 stride-2 transposed convolutions."""
    return plain_unet(cfg.in_channels, cfg.classes, cfg.base_width, 3, cfg.norm_layer, cfg.levels)


def build_resunet(cfg: Any) -> UNet:
    """The ``resunet`` entry."""
    return resunet(cfg.in_channels, cfg.classes, cfg.base_width, cfg.norm_layer)


__all__ = [
    "ResBlock",
    "UNet",
    "build_resunet",
    "build_small_unet",
    "build_unet",
    "double_conv",
    "norm_layer",
    "plain_unet",
    "resunet",
]
