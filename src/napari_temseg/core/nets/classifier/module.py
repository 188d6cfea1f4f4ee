"""The pixel classifier as a network: filter bank -> trees -> logits, an ``nn.Module``.

Everything downstream of a network - the tiled, streamed predictor, probabilities and
labels, minimum confidence, uncertainty, evaluation, the model file - takes it as it takes
a U-Net: ``forward`` maps (N, C, H, W) to logits (N, 1, H, W) for two classes (the logit of
the foreground probability) or (N, K, H, W) (log-probabilities, so a softmax gives the
trees' probabilities back).

The trees travel in the state dict as one uint8 buffer (``forest``) holding the backend's
name and its text model, so the model file stays a safetensors file that runs no code when
loaded. The buffer's size is the trees', not the architecture's: ``variable_size`` tells
the model file's shape check to leave it to this module.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from .features import feature_count, filter_bank
from .forest import BACKENDS, make_forest

_EPS = 1e-6
_ROWS = 1 << 18  # pixels per call into the trees: bounds the feature copy in memory


def _encode(forest) -> torch.Tensor:
    data = forest.name.encode() + b"\n" + forest.to_bytes()
    return torch.frombuffer(bytearray(data), dtype=torch.uint8).clone()


def _decode(buf: torch.Tensor, k: int):
    data = bytes(buf.cpu().numpy().tobytes())
    name, _, body = data.partition(b"\n")
    backend = name.decode(errors="replace")
    if backend not in BACKENDS:
        from ...errors import ModelFileError

        raise ModelFileError(
            f"the pixel classifier's trees are of an unknown kind ({backend[:40]!r}): the file "
            f"is damaged or from a newer napari-temseg; update napari-temseg or retrain"
        )
    return BACKENDS[backend].from_bytes(body, k=k)


class PixelClassifier(nn.Module):
    """ilastik-like pixel classifier: :func:`filter_bank` features, then a tree ensemble."""

    variable_size = ("forest",)

    def __init__(self, in_channels: int, out_channels: int):
        super().__init__()
        self.in_channels = in_channels
        self.out_channels = out_channels
        self.k = 2 if out_channels == 1 else out_channels
        self.n_features = feature_count(in_channels)
        self.register_buffer("forest", torch.zeros(0, dtype=torch.uint8))
        self._trees = None

    @property
    def trained(self) -> bool:
        return self.forest.numel() > 0

    def set_forest(self, forest) -> None:
        """Adopt trained trees (their bytes become the ``forest`` buffer)."""
        self.forest = _encode(forest).to(self.forest.device)
        self._trees = forest

    def trees(self):
        if self._trees is None:
            self._trees = _decode(self.forest, self.k) if self.trained else make_forest(self.k)
        return self._trees

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs):
        key = prefix + "forest"
        if key in state_dict:  # the trees' size is the file's, not the architecture's
            self.forest = torch.empty_like(state_dict[key], device=self.forest.device)
            self._trees = None
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """(N, C, H, W) -> (N, F, H, W) float32 on x's device."""
        with torch.autocast(device_type=x.device.type, enabled=False):
            return filter_bank(x.float())

    def probabilities(self, x: torch.Tensor) -> np.ndarray:
        """(N, C, H, W) -> (N, K, H, W) float32 numpy class probabilities."""
        n, _, h, w = x.shape
        out = np.empty((n, self.k, h, w), np.float32)
        trees = self.trees()
        for i in range(n):
            f = self.features(x[i : i + 1])[0].reshape(self.n_features, -1).T.cpu().numpy()
            p = np.concatenate(
                [trees.predict_proba(f[j : j + _ROWS]) for j in range(0, len(f), _ROWS)]
            )
            out[i] = p.T.reshape(self.k, h, w)
        return out

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        p = torch.from_numpy(self.probabilities(x)).clamp_(_EPS, 1 - _EPS)
        logits = torch.logit(p[:, 1:2]) if self.k == 2 else torch.log(p)
        return logits.to(x.device)


def build(cfg) -> PixelClassifier:
    """The registry's builder: an untrained classifier for ``cfg`` (its trees come from
    training or from the model file)."""
    return PixelClassifier(cfg.in_channels, cfg.classes)
