"""Sensor3D: a sequential U-Net for short windows of neighbouring slices.

Novikov et al., "Deep Sequential Segmentation of Organs in Volumetric Medical Scans", IEEE
TMI 38 (2019) 1207, as used by the FIB-SEM study of seed 003 (Dong et al.). The network
reads the same ``(2k+1)``-slice windows as 2.5D channel stacking (``InputSpec.context``),
but keeps the slices apart:

* a 2D U-Net encoder shared by the slices of the window ("time-distributed": the window is
  folded into the batch), four 2x2 poolings, widths ``b, 2b, 4b, 8b`` and ``16b``;
* a bidirectional convolutional LSTM over the slices at the 1/16 bottleneck (hidden width
  ``4b``), carrying information along the slice axis (both directions, concatenated);
* the shared decoder (transposed convolutions, skip concatenation) per slice, then a
  second bidirectional ConvLSTM at full resolution whose centre-slice output feeds a 1x1
  head: the segmentation of the centre slice.

Where the paper is vague we chose: batch norm, 3x3 ConvLSTM gates, hidden width ``4b`` at
the bottleneck and ``b / 2`` at full resolution (3.4 M parameters at ``b = 16``; the
small-unet has 2.2 M), the LSTM state starting at zero. A window
of one slice (context 0) is a valid sequence: then the network is a U-Net with two
(one-step) ConvLSTMs. Input: ``(N, S * C, H, W)`` slice-major as ``data.network_input``
stacks it; output: logits ``(N, classes, H, W)``.

torch is imported at the top: only ``build.build_model`` imports this module.
"""

from __future__ import annotations

from functools import partial
from typing import Any

import torch
from torch import nn

from .unets import double_conv


class ConvLSTM(nn.Module):
    """Bidirectional convolutional LSTM over the slice axis of ``(N, S, C, H, W)``."""

    def __init__(self, cin: int, hidden: int):
        super().__init__()
        self.hidden = hidden
        self.gates = nn.ModuleList(nn.Conv2d(cin + hidden, 4 * hidden, 3, padding=1) for _ in "fb")

    def _run(self, x, gates, order):
        n, _, _, h, w = x.shape
        hs = x.new_zeros(n, self.hidden, h, w)
        cs = torch.zeros_like(hs)
        out = [None] * x.shape[1]
        for s in order:
            i, f, o, g = gates(torch.cat([x[:, s], hs], 1)).chunk(4, 1)
            cs = torch.sigmoid(f) * cs + torch.sigmoid(i) * torch.tanh(g)
            hs = torch.sigmoid(o) * torch.tanh(cs)
            out[s] = hs
        return torch.stack(out, 1)

    def forward(self, x):
        steps = range(x.shape[1])
        fwd = self._run(x, self.gates[0], steps)
        bwd = self._run(x, self.gates[1], reversed(steps))
        return torch.cat([fwd, bwd], 2)


class Sensor3D(nn.Module):
    def __init__(self, cin: int, slices: int, classes: int, base: int, block: Any):
        """``block(cin, cout)``: the U-Net's double convolution (with its norm layer)."""
        super().__init__()
        w = [base * 2**i for i in range(5)]
        self.slices = slices
        self.enc = nn.ModuleList(
            [block(cin, w[0])]
            + [nn.Sequential(nn.MaxPool2d(2), block(w[i - 1], w[i])) for i in range(1, 5)]
        )
        self.mid = ConvLSTM(w[4], w[2])  # 2 x 4b = 8b channels out
        self.ups = nn.ModuleList(
            nn.ConvTranspose2d(w[min(i + 1, 3)], w[i], 2, 2) for i in (3, 2, 1, 0)
        )
        self.decs = nn.ModuleList(block(2 * w[i], w[i]) for i in (3, 2, 1, 0))
        self.end = ConvLSTM(w[0], max(base // 2, 2))
        self.head = nn.Conv2d(2 * max(base // 2, 2), classes, 1)

    def forward(self, x):
        n, sc, h, wd = x.shape
        s = self.slices
        x = x.reshape(n * s, sc // s, h, wd)  # the window folded into the batch
        skips = []
        for block in self.enc:
            x = block(x)
            skips.append(x)
        x = self.mid(x.reshape(n, s, *x.shape[1:])).flatten(0, 1)
        for up, dec, skip in zip(self.ups, self.decs, reversed(skips[:-1]), strict=True):
            x = dec(torch.cat([up(x), skip], 1))
        x = self.end(x.reshape(n, s, *x.shape[1:]))
        return self.head(x[:, s // 2])


def build(cfg: Any) -> Sensor3D:
    """The ``sensor3d`` entry of the registry: windows of ``cfg.slices`` slices of
    ``in_channels // slices`` channels, the native U-Nets' double convolution as block."""
    block = partial(double_conv, norm=cfg.norm_layer)
    cin = cfg.in_channels // cfg.slices
    return Sensor3D(cin, cfg.slices, cfg.classes, cfg.base_width, block)


__all__ = ["ConvLSTM", "Sensor3D", "build"]
