"""Training the pixel classifier: painted pixels -> filter-bank features -> trees.

The same inputs as the U-Net's :func:`~napari_temseg.core.training.fit` (images, dense masks
or scribbles, any K, the class table, validation part) through the same checks
(:func:`~napari_temseg.core.training.trainset.training_data`). Features are computed only
on tiles that hold a chosen painted pixel, each read with ``halo()`` pixels of real context,
so a few strokes on a 4k x 4k slice cost a few tiles, not the slice. Dense masks are
subsampled to ``MAX_PIXELS``, each class keeping an equal share where it has one (rare
phases keep every pixel they have).
"""

from __future__ import annotations

import time
from collections.abc import Generator

import numpy as np

from ..config.classes import targets
from ..nets.classifier.features import halo
from ..progress import Progress, StopToken

MAX_PIXELS = 120_000
TILE = 512


def painted_rows(mask: np.ndarray, sparse: bool, k: int) -> np.ndarray:
    """(n, 3) rows (y, x, class id) of the painted pixels of one mask slice."""
    tgt, wt = targets(mask, k, sparse)
    yx = np.argwhere(wt > 0)
    return np.column_stack([yx, tgt[wt > 0].astype(np.int64)])


def subsample(rows: list[np.ndarray], k: int, max_pixels: int, seed: int) -> list[np.ndarray]:
    """The rows kept of each slice: at most ``max_pixels`` in all, equal class shares."""
    allc = np.concatenate(rows) if rows else np.zeros((0, 3), np.int64)
    counts = np.bincount(allc[:, 2], minlength=k)
    if counts.sum() <= max_pixels:
        return rows
    keep = _class_quota(counts, max_pixels)
    rng = np.random.default_rng(seed)
    out = []
    for r in rows:
        sel = np.zeros(len(r), bool)
        for c in range(k):
            idx = np.flatnonzero(r[:, 2] == c)
            if counts[c] and len(idx):
                share = int(round(keep[c] * len(idx) / counts[c]))
                sel[rng.choice(idx, min(len(idx), share), replace=False)] = True
        out.append(r[sel])
    return out


def _class_quota(counts: np.ndarray, total: int) -> np.ndarray:
    """Pixels to keep per class: equal shares, what a small class leaves goes to the rest."""
    keep = np.zeros_like(counts)
    left, open_ = total, [c for c in range(len(counts)) if counts[c]]
    while open_ and left > 0:
        share = left // len(open_)
        small = [c for c in open_ if counts[c] - keep[c] <= share]
        if not small:
            for c in open_:
                keep[c] += share
            break
        for c in small:
            left -= counts[c] - keep[c]
            keep[c] = counts[c]
            open_.remove(c)
    return keep


def _tiles(rows: np.ndarray, shape: tuple[int, int]):
    """(y0, y1, x0, x1, rows in it) of the TILE x TILE tiles of a region holding chosen rows."""
    h, w = shape
    ty, tx = rows[:, 0] // TILE, rows[:, 1] // TILE
    for a, b in sorted(set(zip(ty.tolist(), tx.tolist(), strict=True))):
        sel = rows[(ty == a) & (tx == b)]
        yield a * TILE, min(h, (a + 1) * TILE), b * TILE, min(w, (b + 1) * TILE), sel


def halo_features(net, vol, z: int, spec, box: tuple, device):
    """Features (F, h, w) of the box (y0, y1, x0, x1) of slice z, computed with ``halo()``
    pixels of real image context around it (where the image has them)."""
    import torch

    from ..data.volume import network_input

    y0, y1, x0, x1 = box
    h, w, g = vol.shape[2], vol.shape[3], halo()
    ay0, ay1, ax0, ax1 = max(0, y0 - g), min(h, y1 + g), max(0, x0 - g), min(w, x1 + g)
    img = network_input(vol, z, spec, slice(ay0, ay1), slice(ax0, ax1))
    with torch.inference_mode():
        f = net.features(torch.from_numpy(np.ascontiguousarray(img))[None].to(device))[0]
    return f[:, y0 - ay0 : y1 - ay0, x0 - ax0 : x1 - ax0].cpu().numpy()


def collect(
    net,
    sampler,
    k: int,
    device,
    seed: int = 0,
    max_pixels: int = MAX_PIXELS,
    stop: StopToken | None = None,
) -> Generator[Progress, None, tuple]:
    """Yields Progress per tile; returns (features (n, F) float32, classes (n,) int)."""
    rows = [painted_rows(m, sampler.sparse, k) for m in sampler.masks]
    chosen = subsample(rows, k, max_pixels, seed)
    jobs = [
        (i, box)
        for i, rows in enumerate(chosen)
        if len(rows)
        for box in _tiles(rows, sampler.regions[i].shape)
    ]
    xs, ys, t0 = [], [], time.monotonic()
    for j, (i, (y0, y1, x0, x1, rows)) in enumerate(jobs):
        if stop:
            break
        r = sampler.regions[i]
        box = (r.y0 + y0, r.y0 + y1, r.x0 + x0, r.x0 + x1)  # in image coordinates
        f = halo_features(net, sampler.volumes[r.image], r.z, sampler.spec, box, device)
        xs.append(f[:, rows[:, 0] - y0, rows[:, 1] - x0].T)
        ys.append(rows[:, 2])
        yield Progress(
            stage="features",
            step=j + 1,
            total=len(jobs),
            elapsed=time.monotonic() - t0,
            message=f"features of {sum(len(y) for y in ys)} painted pixels",
        )
    if not xs:
        return np.zeros((0, net.n_features), np.float32), np.zeros(0, np.int64)
    return np.concatenate(xs).astype(np.float32), np.concatenate(ys)


def _validation(net, d, k: int) -> dict:
    """The U-Net's validation record, on the same held-out patches."""
    if d.val_sampler is None:
        return {}
    import torch

    from .objectives import validate
    from .sampling import validation_patches

    val = validation_patches(d.val_sampler)
    rec, _ = validate(net, val, torch.device("cpu"), False, k, d.val_sampler.background)
    return rec


def check_classes(y: np.ndarray, stopped: bool) -> None:
    if len(np.unique(y)) >= 2:
        return
    from ..errors import InputError

    if stopped:
        raise InputError(
            "training was stopped before the painted pixels were read: nothing to "
            "train; train again and let it run (a few seconds)"
        )
    raise InputError(
        "the pixel classifier needs painted pixels of at least two classes: paint "
        "the background (or another class) too"
    )


def train_trees(net, x: np.ndarray, y: np.ndarray, d, t0: float) -> dict:
    """Fit the trees on the collected pixels; the history record, validated like fit()'s."""
    from ..nets.classifier.forest import make_forest

    k = d.classes.k
    net.set_forest(make_forest(k).fit(x, y))
    net.eval()
    return {
        "epoch": 1,
        "step": 1,
        "loss": 0.0,
        "pixels": int(len(y)),
        "elapsed": round(time.monotonic() - t0, 2),
        **_validation(net, d, k),
    }


def new_classifier(d, model_cfg=None):
    """An untrained classifier for the training data ``d``: (net, its ModelConfig)."""
    import dataclasses

    from ..config.model import ModelConfig
    from ..nets.classifier.module import PixelClassifier
    from ..nets.registry import CLASSIFIER_ARCH

    c = d.classes.out_channels
    mcfg = dataclasses.replace(
        model_cfg or ModelConfig(arch=CLASSIFIER_ARCH),
        in_channels=d.spec.network_channels,
        slices=1,
        classes=c,
    )
    return PixelClassifier(mcfg.in_channels, c), mcfg


def classifier_model(net, mcfg, d, cfg, rec: dict):
    """The trained classifier as a TrainedModel (its history: the one record ``rec``)."""
    from ..modelfile.format import TrainedModel

    return TrainedModel(
        net=net,
        model_cfg=mcfg,
        input_spec=d.spec,
        threshold=cfg.threshold,
        classes=d.classes,
        train_cfg=cfg,
        history=[rec],
    )


def fit_classifier(
    cfg, model_cfg, inputs: tuple, classes=None, resume=None, stop: StopToken | None = None
) -> Generator[Progress, None, object]:
    """Train the pixel classifier from :func:`~napari_temseg.core.training.fit`'s arguments
    (``inputs``: images, masks, channel_axis, val_images, val_masks, annotated).

    Retrains from the painted pixels every time (a resumed classifier gives its classes and
    input normalisation; its trees are replaced). Yields Progress, returns a TrainedModel."""
    from ..device import resolve_device
    from .trainset import training_data

    t0 = time.monotonic()
    d, notice = training_data(cfg, inputs, classes, resume)
    k = d.classes.k
    net, mcfg = new_classifier(d, model_cfg)
    x, y = yield from collect(net, d.sampler, k, resolve_device(cfg.device), cfg.seed, stop=stop)
    check_classes(y, bool(stop))
    yield Progress(
        stage="train",
        step=0,
        total=1,
        elapsed=time.monotonic() - t0,
        message=f"training trees on {len(y)} pixels",
    )
    rec = train_trees(net, x, y, d, t0)
    yield Progress(
        stage="train",
        step=1,
        total=1,
        elapsed=rec["elapsed"],
        val_dice=rec.get("val_dice"),
        val_iou=rec.get("val_iou"),
        warning=notice,
        message="trees trained",
        extra={"fraction": 1.0, "epoch_record": rec},
    )
    return classifier_model(net, mcfg, d, cfg, rec)
