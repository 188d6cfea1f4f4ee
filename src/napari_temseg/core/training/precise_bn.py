"""Precise batch-norm statistics, and a check of how much a prediction depends on the tile.

Batch norm normalises with the statistics of the batch while training and with running
averages in eval mode. Those running averages are an exponential moving average (momentum
0.1) of the last few dozen batches, taken while the weights were still changing: with small
batches of unrelated micrographs they describe no population at all, and a validation (or the
saved model) sees noisy statistics. ``recalibrate`` replaces them with the plain average over
many batches run through the *current* weights ("PreciseBN", Wu & Johnson 2021, "Rethinking
'batch' in BatchNorm"); with ``TrainConfig.precise_bn`` = N > 0 ``fit()`` does it before every
validation, so the model it keeps is the one it validated, with population statistics. It is
off by default: in the issue-15 races it helped once (ISBI), tied once (EMPS) and lost once
(STEM K-class), and it did not stop batch norm's validation from wandering on EMPS
(docs/experiments/, "Tile invariance and precise batch norm").

In eval mode batch norm is then a fixed affine map per channel: the prediction of a pixel
no longer depends on which tile it came from (instance norm computes its statistics per tile
and does). ``tile_agreement`` measures that: the same image predicted with two tile sizes.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

import numpy as np


def batch_norms(net: Any) -> list:
    """The batch-norm layers of ``net`` (empty for instance / group norm networks)."""
    from torch import nn

    kinds = (nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d, nn.SyncBatchNorm)

    return [m for m in net.modules() if isinstance(m, kinds) and m.track_running_stats]


def recalibrate(net: Any, batches: Iterable, forward: Callable[[Any], Any]) -> int:
    """Re-estimate every batch-norm layer's running mean / variance as the plain average over
    ``batches`` (``forward(batch)`` runs one through ``net``); returns how many were used.

    The net runs in train mode without gradients and the weights are untouched. Without a
    batch-norm layer, or when ``batches`` is empty, nothing changes.
    """
    import torch

    bns = batch_norms(net)
    if not bns:
        return 0
    saved = [(m.momentum, {k: v.clone() for k, v in m.state_dict().items()}) for m in bns]
    for m in bns:
        m.reset_running_stats()
        m.momentum = None  # cumulative moving average = the plain mean over the batches
    was_training, n = net.training, 0
    net.train()
    try:
        with torch.no_grad():
            for batch in batches:
                forward(batch)
                n += 1
    finally:
        for m, (momentum, state) in zip(bns, saved, strict=True):
            m.momentum = momentum
            if n == 0:
                m.load_state_dict(state)
        net.train(was_training)
    return n


def _predict(model: Any, image: Any, tile: int, cfg: Any, slices: Any) -> tuple:
    import dataclasses

    from ..inference.predict import predict_stack
    from ..progress import run

    cfg = dataclasses.replace(cfg, tile=tile)
    res = run(predict_stack(model, image, cfg, slices=slices))
    zs = res.slices
    return np.asarray(res.prob[zs], np.float32), np.asarray(res.labels[zs])


def tile_agreement(
    model: Any, images: Any, cfg: Any = None, tiles=(256, 512), slices: Any = None
) -> dict:
    """Predict each image (one array, or a list of them) with two tile sizes: the Dice of the
    two label maps pooled over all images (foreground of a binary model; the mean over the
    classes predicted of a K-class one) and the largest |difference| of the probabilities."""
    from ..config.predict import PredictConfig
    from ..evaluation.metrics import confusion

    cfg = cfg or PredictConfig(device="cpu")
    k = model.classes.k
    m, dp = np.zeros((k, k + 1), np.int64), 0.0
    for image in images if isinstance(images, list) else [images]:
        (pa, la), (pb, lb) = (_predict(model, image, t, cfg, slices) for t in tiles)
        if k == 2:
            la, lb = la > 0, lb > 0
        m += confusion(la.astype(np.int64), lb.astype(np.int64), k)
        dp = max(dp, float(np.abs(pa - pb).max()))
    classes = [1] if k == 2 else [c for c in range(k) if m[:, c].any()]
    dice = [2 * m[c, c] / max(1, m[c].sum() + m[:, c].sum()) for c in classes]
    return {"tiles": tuple(tiles), "label_dice": float(np.mean(dice)), "max_dp": dp}


__all__ = ["batch_norms", "recalibrate", "tile_agreement"]
