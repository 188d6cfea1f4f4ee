"""Live mode: every stroke retrains the trees and re-predicts the slice in view.

A :class:`LiveSession` belongs to one image. It computes the filter bank of a slice once
(``features``, kept for the last ``cache_slices`` slices) and on each ``update`` reads the
painted pixels of every painted slice, trains fresh trees on them and predicts the slice in
view from its cached features: after the first stroke on a slice, an update costs the
trees' training and prediction only. Slices larger than ``MAX_LIVE_PIXELS`` are worked on
binned (``InputSpec.binning``), as a binned U-Net would be, so the preview stays within a
few seconds on big EM slices; :meth:`LiveSession.model` gives the trained classifier as
a model to predict the stack with, evaluate, save or teach a U-Net.

No Qt here: the Annotate dock makes the session in the GUI thread (so the constructor imports
no torch) and drives ``update`` in a worker thread, coalescing strokes that arrive while an
update runs.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Generator
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..config.classes import ClassTable
from ..errors import InputError
from ..progress import Progress

MAX_LIVE_PIXELS = 2_200_000  # per slice, after binning: about 2 s of features on 2 cores
_TILE = 1024


@dataclass
class LiveResult:
    """One update: class probabilities (K, Y, X) of slice ``z`` at the image's size, its
    labels (Y, X) uint8 (class ids) and what it cost."""

    z: int
    prob: np.ndarray
    labels: np.ndarray
    pixels: int
    fit_seconds: float
    predict_seconds: float


def live_binning(shape_yx: tuple[int, int]) -> int:
    """The smallest binning (1..4) that brings a slice under MAX_LIVE_PIXELS."""
    from ..config.choices import MAX_BINNING

    for s in range(1, MAX_BINNING + 1):
        if -(-shape_yx[0] // s) * -(-shape_yx[1] // s) <= MAX_LIVE_PIXELS:
            return s
    return MAX_BINNING


class LiveSession:
    """Trees retrained on the strokes so far, answering for the slice in view."""

    def __init__(
        self,
        image: Any,
        classes: ClassTable,
        sparse: bool = True,
        channel_axis: int | None = None,
        device: str = "cpu",
        cache_slices: int = 3,
    ):
        from ..data.binning import view
        from ..data.volume import as_volume

        self.source = as_volume(image, channel_axis=channel_axis)
        self.binning = live_binning(self.source.shape[2:])
        self.vol = view(self.source, self.binning)
        self.classes, self.sparse = classes, sparse
        self._device_name, self._device = device, None  # resolved in the worker (torch)
        self.cache_slices = max(1, int(cache_slices))
        self._features: OrderedDict[int, np.ndarray] = OrderedDict()
        self._painted: dict[int, tuple] = {}  # slice -> (its mask, features, class ids)
        self.spec = None
        self.net = None

    @property
    def device(self):
        if self._device is None:
            from ..device import resolve_device

            self._device = resolve_device(self._device_name)
        return self._device

    # --- features --------------------------------------------------------------------------
    def _input_spec(self, z: int):
        """Intensity normalisation from the first slice the session sees, fixed after that
        (features of every slice must be comparable for the trees)."""
        from ..config.model import InputSpec
        from ..data.volume import compute_norm

        if self.spec is None:
            lo, hi = compute_norm([self.vol], [[z]])
            self.spec = InputSpec(
                channels=self.vol.shape[1],
                context=0,
                norm_lo=lo,
                norm_hi=hi,
                binning=self.binning,
            )
        return self.spec

    def features(self, z: int) -> np.ndarray:
        """(y, x, F) float32 features of slice z (binned), cached."""
        if z in self._features:
            self._features.move_to_end(z)
            return self._features[z]
        from .classifier import halo_features

        spec, net = self._input_spec(z), self._net()
        h, w = self.vol.shape[2:]
        out = None
        for y0 in range(0, h, _TILE):
            for x0 in range(0, w, _TILE):
                box = (y0, min(h, y0 + _TILE), x0, min(w, x0 + _TILE))
                f = halo_features(net, self.vol, z, spec, box, self.device).transpose(1, 2, 0)
                if out is None:
                    out = np.empty((h, w, f.shape[-1]), np.float32)
                out[y0 : y0 + f.shape[0], x0 : x0 + f.shape[1]] = f
        self._features[z] = out
        while len(self._features) > self.cache_slices:
            self._features.popitem(last=False)
        return out

    def _net(self):
        from ..nets.classifier.module import PixelClassifier

        if self.net is None:
            c = self.vol.shape[1]
            self.net = PixelClassifier(c, self.classes.out_channels)
        return self.net

    # --- strokes -> trees -> preview ---------------------------------------------------------
    def _rows(self, z: int, mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(features, class ids) of the painted pixels of slice z, reused while unchanged."""
        from ..data.binning import bin_labels
        from .classifier import painted_rows

        kept = self._painted.get(z)
        if kept is not None and np.array_equal(kept[0], mask):
            return kept[1], kept[2]
        m = bin_labels(mask, self.binning, 0 if self.sparse else None)
        rows = painted_rows(m, self.sparse, self.classes.k)
        f = self.features(z)
        x, y = f[rows[:, 0], rows[:, 1]], rows[:, 2]
        self._painted[z] = (mask.copy(), x, y)
        return x, y

    def update(
        self, painted: dict[int, np.ndarray], z: int
    ) -> Generator[Progress, None, LiveResult]:
        """Retrain on ``painted`` ({slice: (Y, X) mask}, every painted slice) and predict
        slice ``z``. Yields Progress while features of a new slice are computed."""
        from ..nets.classifier.forest import make_forest
        from .classifier import MAX_PIXELS, subsample

        t0 = time.monotonic()
        for old in set(self._painted) - set(painted):  # erased slices
            del self._painted[old]
        xs, ys = [], []
        for i, (zi, m) in enumerate(sorted(painted.items())):
            if zi not in self._features and zi not in self._painted:
                yield Progress(
                    stage="features",
                    step=i,
                    total=len(painted),
                    message=f"features of slice {zi}",
                    elapsed=time.monotonic() - t0,
                )
            x, y = self._rows(zi, np.asarray(m))
            xs.append(x)
            ys.append(y)
        y = np.concatenate(ys) if ys else np.zeros(0, np.int64)
        if len(np.unique(y)) < 2:
            raise InputError(
                "live preview needs strokes of at least two classes: paint the background "
                "(or another class) too"
            )
        index = np.column_stack([np.arange(len(y)), np.zeros_like(y), y])  # subsample's rows
        rows = subsample([index], self.classes.k, MAX_PIXELS, 0)[0]
        x = np.concatenate(xs)[rows[:, 0]]
        self._net().set_forest(make_forest(self.classes.k).fit(x, rows[:, 2]))
        t_fit = time.monotonic() - t0
        if z not in self._features:
            yield Progress(
                stage="features",
                step=len(painted),
                total=len(painted) + 1,
                message=f"features of slice {z}",
                elapsed=time.monotonic() - t0,
            )
        prob = self.probabilities(z)
        return LiveResult(
            z=z,
            prob=prob,
            labels=prob.argmax(0).astype(np.uint8),
            pixels=int(len(rows)),
            fit_seconds=t_fit,
            predict_seconds=time.monotonic() - t0 - t_fit,
        )

    def probabilities(self, z: int) -> np.ndarray:
        """(K, Y, X) float32 class probabilities of slice z at the image's size."""
        f = self.features(z)
        h, w, nf = f.shape
        p = self._net().trees().predict_proba(f.reshape(-1, nf)).T.reshape(-1, h, w)
        if self.binning > 1:
            s = self.binning
            p = p.repeat(s, 1).repeat(s, 2)[:, : self.source.shape[2], : self.source.shape[3]]
        return np.ascontiguousarray(p)

    def model(self):
        """The trees trained by the last update, as a model (predict, evaluate, save)."""
        from ..config.model import ModelConfig
        from ..config.train import TrainConfig
        from ..modelfile.format import TrainedModel
        from ..nets.registry import CLASSIFIER_ARCH

        net = self._net()
        if not net.trained:
            raise InputError("nothing trained yet: paint strokes of two classes first")
        cfg = ModelConfig(
            arch=CLASSIFIER_ARCH, in_channels=net.in_channels, classes=net.out_channels
        )
        n = sum(len(v[2]) for v in self._painted.values())
        return TrainedModel(
            net=net,
            model_cfg=cfg,
            input_spec=self.spec,
            threshold=0.5,
            classes=self.classes,
            train_cfg=TrainConfig(sparse=self.sparse),
            history=[{"epoch": 1, "step": 1, "loss": 0.0, "pixels": n, "live": True}],
        )
