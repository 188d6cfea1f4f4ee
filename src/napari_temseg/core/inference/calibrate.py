"""Tile-independent instance normalisation at prediction time.

Instance norm (the default of the native networks) normalises every channel of every tile
by that tile's own mean and variance, so the same image predicted with other tile sizes or
positions gets other probabilities (labels agree at Dice 0.80-0.96 between tile 256 and 512
on real EM). Before a stack is predicted, :func:`calibrated` runs calibration tiles - the
training patch size, at fixed positions spread over the whole stack, independent of the
tile size and of which slices are predicted - through the network once, every instance-norm
layer normalising them by the mean and variance of all their pixels together. Those
statistics are then frozen into eval-mode batch-norm layers of a copy of the network: one
affine map per channel, so every tile of the stack is normalised alike and tiling changes
only the blending (label Dice >= 0.999). The calibration covers the stack up to
``max_tiles`` tiles (~1 Mpix: small images entirely - fewer tiles lost 0.04 Dice on EMPS -;
memory and time bounded whatever the stack and patch size); races and
costs in docs/experiments/.

One set of statistics per stack cannot follow illumination / detector response that varies
across a slice on a scale larger than the training patch (synthetic FIB-SEM, 1024 px slices:
Dice 0.95 per tile, 0.52 with the stack's statistics). So the default,
``PredictConfig.norm_stats="local"``, first evens out every slice over windows twice the
training patch size (``flatfield.py``) and then calibrates; 'stack' calibrates
the raw slices; 'tile' keeps each tile's own statistics (as exported networks do).
"""

from __future__ import annotations

import copy
from typing import Any

import numpy as np

MAX_PIXELS = 16 * 256 * 256  # calibration pixels at most: one batch, ~1 s on a CPU
SEED = 0
STACK_MODES = ("stack", "local")  # PredictConfig.norm_stats values that calibrate


def instance_norms(net: Any) -> list[tuple[Any, str, Any]]:
    """(parent module, attribute name, layer) of every instance-norm layer: GroupNorm with
    one group per channel (how ``nets.unets.norm_layer`` builds instance norm) or InstanceNorm2d."""
    from torch import nn

    found = []
    for parent in net.modules():
        for name, child in parent.named_children():
            inst = isinstance(child, nn.InstanceNorm2d) or (
                isinstance(child, nn.GroupNorm) and child.num_groups == child.num_channels
            )
            if inst:
                found.append((parent, name, child))
    return found


def _grid(y: int, x: int, size: int) -> list[tuple[int, int]]:
    from .tiling import tile_starts

    return [(a, b) for a in tile_starts(y, size, 0.0) for b in tile_starts(x, size, 0.0)]


def max_tiles(size: int) -> int:
    """Calibration tiles of ``size``² at most (16 of 256 px, 4 of 512 px; at least one)."""
    return max(1, MAX_PIXELS // (int(size) * int(size)))


def tile_positions(shape_zyx: tuple, size: int) -> list[tuple[int, int, int]]:
    """Fixed (z, y0, x0) of the calibration tiles: the whole grid of tiles covering every
    slice when it has at most ``max_tiles`` tiles, else ``max_tiles`` grid tiles on slices
    evenly spread over the stack, drawn with a fixed seed - the same for any prediction
    tile size and any choice of slices to predict."""
    z, y, x = shape_zyx
    grid, n = _grid(y, x, size), max_tiles(size)
    if z * len(grid) <= n:
        return [(zz, a, b) for zz in range(z) for a, b in grid]
    rng = np.random.default_rng(SEED)
    zs = np.linspace(0, z - 1, n).round().astype(int)
    return [(int(zz), *grid[int(rng.integers(len(grid)))]) for zz in zs]


def calibration_tiles(vol: Any, spec: Any, size: int) -> np.ndarray:
    """The calibration tiles ``(n, Cin, size, size)`` of a Volume, normalised like the
    prediction tiles (reflect-padded where the image is smaller)."""
    from ..data.volume import network_input
    from . import tiling

    Z, _, Y, X = vol.shape
    out = []
    for z, y0, x0 in tile_positions((Z, Y, X), size):
        t = network_input(vol, z, spec, slice(y0, y0 + size), slice(x0, x0 + size))
        out.append(tiling.pad_to(t, (size, size)))
    return np.stack(out).astype(np.float32, copy=False)


class _Pooled:
    """Replaces an instance norm's forward: normalises the batch by the statistics of all
    its pixels together (per channel) and keeps them."""

    def __init__(self, layer: Any):
        self.layer, self.mean, self.var = layer, None, None

    def __call__(self, x: Any) -> Any:
        import torch
        import torch.nn.functional as F

        c, layer = x.shape[1], self.layer
        mean = torch.zeros(c, device=x.device, dtype=torch.float32)
        var = torch.ones(c, device=x.device, dtype=torch.float32)
        # batch norm in training mode = the pooled statistics, with its fast kernels;
        # momentum 1 leaves them in mean / var (the variance unbiased: made biased below)
        y = F.batch_norm(x.float(), mean, var, layer.weight, layer.bias, True, 1.0, layer.eps)
        n = x.numel() // c
        self.mean, self.var = mean, var * ((n - 1) / max(n, 1))
        return y.to(x.dtype)


def _frozen(layer: Any, mean: Any, var: Any) -> Any:
    """An eval-mode BatchNorm2d applying ``layer``'s affine with fixed statistics."""
    from torch import nn

    c = int(mean.numel())
    bn = nn.BatchNorm2d(c, eps=layer.eps, affine=True).to(mean.device)
    bn.running_mean.copy_(mean)
    bn.running_var.copy_(var)
    if layer.weight is not None:
        bn.weight.data.copy_(layer.weight.detach())
        bn.bias.data.copy_(layer.bias.detach())
    else:
        bn.weight.data.fill_(1.0)
        bn.bias.data.zero_()
    return bn.eval()


def wanted(cfg: Any, net: Any) -> bool:
    """Whether a prediction with PredictConfig ``cfg`` calibrates ``net``: the stack's
    statistics asked for ('stack', or 'local' after flattening the slices: flatfield.py),
    and instance-norm layers to apply them to."""
    return cfg.norm_stats in STACK_MODES and bool(instance_norms(net))


def calibrated(
    net: Any, tiles: np.ndarray, device: Any = None, amp: bool | str = False, cl: bool = False
) -> Any:
    """A copy of ``net`` whose instance-norm layers use statistics measured on ``tiles``
    (``net`` itself when it has none). ``net`` is not changed. ``amp`` / ``cl``: run the
    calibration as the prediction will (autocast, channels_last: 1.5x faster on a CPU; the
    statistics are accumulated in float32 either way)."""
    import torch

    from ..device import autocast

    if not instance_norms(net):
        return net
    twin = copy.deepcopy(net).eval()
    layers = instance_norms(twin)
    hooks = [_Pooled(layer) for _, _, layer in layers]
    originals = [layer.forward for _, _, layer in layers]
    try:
        for (_, _, layer), h in zip(layers, hooks, strict=True):
            layer.forward = h
        dev = device or next(twin.parameters()).device
        x = torch.from_numpy(tiles).to(dev)
        x = x.contiguous(memory_format=torch.channels_last) if cl else x
        with torch.inference_mode(), autocast(torch.device(dev), amp):
            twin(x)
    finally:
        for (_, _, layer), f in zip(layers, originals, strict=True):
            layer.forward = f
    for (parent, name, layer), h in zip(layers, hooks, strict=True):
        setattr(parent, name, _frozen(layer, h.mean.clone(), h.var.clone()))
    _fuse(twin)
    return twin


def _fuse(net: Any) -> int:
    """Fold every eval-mode batch norm that directly follows a convolution in a Sequential
    into that convolution (one pass less over the activations); returns how many."""
    from torch import nn
    from torch.nn.utils.fusion import fuse_conv_bn_eval

    n = 0
    for seq in [m for m in net.modules() if isinstance(m, nn.Sequential)]:
        for i in range(len(seq) - 1):
            conv, bn = seq[i], seq[i + 1]
            if isinstance(conv, nn.Conv2d) and isinstance(bn, nn.BatchNorm2d):
                seq[i], seq[i + 1] = fuse_conv_bn_eval(conv, bn), nn.Identity()
                n += 1
    return n


def stack_tiles(model: Any, vol: Any) -> np.ndarray:
    """The calibration tiles of a Volume for ``model``: the size of its training patches
    (256 px when unknown), no larger than the image, a multiple of the network's stride."""
    from ..nets.build import min_input_size, required_multiple
    from .tiling import round_up

    mc, (Y, X) = model.model_cfg, vol.shape[2:]
    m = required_multiple(mc)
    patch = model.train_cfg.patch if model.train_cfg is not None else 256
    size = min(round_up(patch, m), round_up(max(Y, X), m))
    return calibration_tiles(vol, model.input_spec, max(size, round_up(min_input_size(mc), m)))


__all__ = [
    "STACK_MODES",
    "calibrated",
    "calibration_tiles",
    "instance_norms",
    "stack_tiles",
    "tile_positions",
    "wanted",
]
