"""A trained model and its single-file format.

A model file is one ``.safetensors`` file: the network weights as tensors, and
in its string metadata a JSON document (key ``napari_temseg``) with the
architecture (:class:`ModelConfig`), the input spec (channels, 2.5D context,
normalisation), the threshold, the training config and history, and the
package version. Loading never unpickles anything, and a file whose weights do
not fit its config is rejected with a clear message.
"""

from __future__ import annotations

import json
import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..version import __version__
from .config import InputSpec, ModelConfig, TrainConfig, from_dict, to_dict
from .errors import ModelFileError

META_KEY = "napari_temseg"
FORMAT_VERSION = 1


@dataclass
class TrainedModel:
    """A network plus everything needed to apply it the way it was trained."""

    net: Any  # torch.nn.Module, logits (N, classes, H, W)
    model_cfg: ModelConfig
    input_spec: InputSpec
    threshold: float = 0.5
    train_cfg: TrainConfig | None = None
    history: list[dict] = field(default_factory=list)
    source: str | None = None  # path it was loaded from, if any

    @property
    def channels(self) -> int:
        return self.input_spec.channels

    @property
    def context(self) -> int:
        return self.input_spec.context

    def metadata(self) -> dict:
        return {
            "format": FORMAT_VERSION,
            "package_version": __version__,
            "model": to_dict(self.model_cfg),
            "input": to_dict(self.input_spec),
            "threshold": float(self.threshold),
            "train": to_dict(self.train_cfg) if self.train_cfg is not None else None,
            "history": self.history,
        }

    def save(self, path: str | os.PathLike, overwrite: bool = False) -> Path:
        """Write atomically (temporary file + rename). Refuses to replace a file unless asked."""
        return save_model(self, path, overwrite=overwrite)

    def __repr__(self) -> str:
        arch = self.model_cfg.arch + (
            f"/{self.model_cfg.encoder}" if self.model_cfg.encoder else ""
        )
        return (
            f"TrainedModel({arch}, channels={self.channels}, context={self.context}, "
            f"threshold={self.threshold}, epochs={len(self.history)})"
        )


def save_model(model: TrainedModel, path: str | os.PathLike, overwrite: bool = False) -> Path:
    from safetensors.torch import save_file

    path = Path(path)
    if path.suffix != ".safetensors":
        raise ModelFileError(f"model files end in '.safetensors'; got '{path.name}'")
    if path.exists() and not overwrite:
        raise ModelFileError(
            f"'{path}' exists; choose another name or pass overwrite=True (--overwrite)"
        )
    path.parent.mkdir(parents=True, exist_ok=True)
    tensors = {
        k: v.detach().to("cpu").contiguous().clone() for k, v in model.net.state_dict().items()
    }
    meta = {META_KEY: json.dumps(model.metadata())}
    fd, tmp = tempfile.mkstemp(prefix=".tmp-", suffix=".safetensors", dir=path.parent)
    os.close(fd)
    try:
        save_file(tensors, tmp, metadata=meta)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return path


def read_metadata(path: str | os.PathLike) -> dict:
    """The JSON header of a model file (no weights are read)."""
    from safetensors import safe_open

    path = Path(path)
    if not path.is_file():
        raise ModelFileError(f"model file '{path}' not found")
    try:
        with safe_open(str(path), framework="pt") as f:
            meta = f.metadata() or {}
    except Exception as e:  # SafetensorError, OSError, ...
        raise ModelFileError(
            f"'{path.name}' is not a readable .safetensors model file ({e})"
        ) from None
    if META_KEY not in meta:
        raise ModelFileError(f"'{path.name}' is a safetensors file but not a napari-temseg model")
    try:
        return json.loads(meta[META_KEY])
    except json.JSONDecodeError as e:
        raise ModelFileError(f"'{path.name}' has a corrupt model header ({e})") from None


def load_model(path: str | os.PathLike, device: str = "cpu") -> TrainedModel:
    """Load a model file; raises :class:`ModelFileError` with a clear message on any mismatch."""
    from safetensors.torch import load_file

    from .models import build_model

    meta = read_metadata(path)
    try:
        # files written before the "norm" field existed hold batch-norm networks (from_dict maps the
        # old name "norm" to "norm_layer")
        model_cfg = from_dict(ModelConfig, {"norm_layer": "batch", **meta["model"]})
        spec = from_dict(InputSpec, meta["input"])
        train_cfg = from_dict(TrainConfig, meta["train"]) if meta.get("train") else None
    except (KeyError, TypeError, ValueError) as e:
        raise ModelFileError(f"'{Path(path).name}' has an invalid model config ({e})") from None
    if model_cfg.encoder_weights is not None:  # weights come from the file, not the internet
        model_cfg = ModelConfig(**{**to_dict(model_cfg), "encoder_weights": None})
    try:
        tensors = load_file(str(path), device="cpu")
    except Exception as e:
        raise ModelFileError(f"'{Path(path).name}': weights cannot be read ({e})") from None
    net = build_model(model_cfg)
    try:
        net.load_state_dict(tensors, strict=True)
    except RuntimeError as e:
        first = str(e).splitlines()[0:3]
        raise ModelFileError(
            f"'{Path(path).name}': the weights do not match its config "
            f"({model_cfg.arch}, in_channels={model_cfg.in_channels}): {' '.join(first)[:300]}. "
            "The file was edited or mixed from two models; retrain or use the original file."
        ) from None
    net.to(device).eval()
    return TrainedModel(
        net=net,
        model_cfg=model_cfg,
        input_spec=spec,
        threshold=float(meta.get("threshold", 0.5)),
        train_cfg=train_cfg,
        history=list(meta.get("history", [])),
        source=str(path),
    )
