"""A trained model and its single-file format.

A model file is one ``.safetensors`` file: the network weights as tensors, and
in its string metadata a JSON document (key ``napari_temseg``) with the
architecture (:class:`ModelConfig`), the input spec (channels, 2.5D context,
normalisation), the threshold, the training config and history, and the
package version. Loading never unpickles anything. The header is checked field by field
(types and ranges; ``modelfile_check.py``) before any network is built, the network's
shapes are compared with the file's tensors on torch's "meta" device (no memory) before the
real one is allocated, and non-finite weights are refused: a damaged or hostile file gives
one ModelFileError that says what to do, never a raw Python error or a huge allocation.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ...version import __version__
from ..config.classes import ClassTable
from ..config.model import InputSpec, ModelConfig, from_dict, to_dict
from ..config.train import TrainConfig
from ..errors import ModelFileError, SaveError, TemsegError
from ..nets.registry import arch_of
from .header import FORMAT_VERSION, META_KEY, check_header
from .save import check_target, non_finite, save_or_rescue
from .save import save_model as save_model  # its home is save.py; importable here as before


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
    classes: ClassTable = field(default_factory=ClassTable)  # names and colours of the K classes

    def __post_init__(self) -> None:
        if self.classes.out_channels != self.model_cfg.classes:
            raise ModelFileError(
                f"the class table has {self.classes.k} classes but the network has "
                f"{self.model_cfg.classes} output channel(s) (binary: 1, K classes: K)"
            )

    @property
    def channels(self) -> int:
        return self.input_spec.channels

    @property
    def context(self) -> int:
        return self.input_spec.context

    def metadata(self) -> dict:
        return {
            # binary files keep format 1 (older versions read them); K-class files are 2
            "format": 1 if self.classes.binary else FORMAT_VERSION,
            "package_version": __version__,
            "model": to_dict(self.model_cfg),
            "input": to_dict(self.input_spec),
            "threshold": float(self.threshold),
            "train": to_dict(self.train_cfg) if self.train_cfg is not None else None,
            "history": self.history,
            "classes": self.classes.to_dict(),
        }

    def save(self, path: str | os.PathLike, overwrite: bool = False) -> Path:
        """Write atomically (``modelfile/save.py``); returns the file written.

        Refuses to replace a file unless asked. When ``path`` cannot be written (disk full,
        read-only, ...) the model goes to a rescue folder with a warning saying where, and
        that path is returned; if no folder takes it, a SaveError says so (this object
        still holds the model)."""
        import warnings

        check_target(Path(path), overwrite)
        done = save_or_rescue(self, path, overwrite=overwrite)
        if done.problem is None:
            return done.path
        text = done.message("it is only in memory (this object): free some space, then save again")
        if done.path is None:
            raise SaveError(text)
        warnings.warn(text, stacklevel=2)
        return done.path

    def __repr__(self) -> str:
        arch = self.model_cfg.arch + (
            f"/{self.model_cfg.encoder}" if self.model_cfg.encoder else ""
        )
        return (
            f"TrainedModel({arch}, channels={self.channels}, context={self.context}, "
            f"threshold={self.threshold}, epochs={len(self.history)}"
            + (f", binning={self.input_spec.binning}" if self.input_spec.binning > 1 else "")
            + ("" if self.classes.binary else f", classes={list(self.classes.names)}")
            + ")"
        )


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
        header = json.loads(meta[META_KEY])
    except (ValueError, RecursionError) as e:  # JSONDecodeError, absurd nesting or numbers
        msg = str(e).splitlines()[0][:100] if str(e) else type(e).__name__
        raise ModelFileError(
            f"'{path.name}' has a corrupt model header ({msg}); use the original file or retrain"
        ) from None
    return check_header(header, path.name)


def _configs(meta: dict, name: str) -> tuple[ModelConfig, InputSpec, TrainConfig | None]:
    try:
        # files written before the "norm" field existed hold batch-norm networks (from_dict maps the
        # old name "norm" to "norm_layer")
        model_cfg = from_dict(ModelConfig, {"norm_layer": "batch", **meta["model"]})
        spec = from_dict(InputSpec, meta["input"])
        train_cfg = from_dict(TrainConfig, meta["train"]) if meta.get("train") else None
    except (KeyError, TypeError, ValueError, OverflowError) as e:
        raise ModelFileError(
            f"'{name}' has an invalid model config ({e}); use the original file or retrain"
        ) from None
    if model_cfg.encoder_weights is not None:  # weights come from the file, not the internet
        model_cfg = ModelConfig(**{**to_dict(model_cfg), "encoder_weights": None})
    return model_cfg, spec, train_cfg


def _mismatch(name: str, cfg: ModelConfig, detail: str) -> ModelFileError:
    return ModelFileError(
        f"'{name}': the weights do not match its config "
        f"({cfg.arch}, in_channels={cfg.in_channels}): {detail[:300]}. "
        "The file was edited or mixed from two models; retrain or use the original file."
    )


def _check_shapes(cfg: ModelConfig, tensors: dict, name: str) -> None:
    """Compare the file's tensors with the network built on the meta device (no memory), so
    a header that asks for a huge network is refused before anything is allocated."""
    import torch

    from ..nets.build import build_model

    if not arch_of(cfg.arch).fixed_shapes:  # buffers sized by training: loaded as they are
        return
    try:
        with torch.device("meta"):
            want = {k: tuple(v.shape) for k, v in build_model(cfg).state_dict().items()}
    except TemsegError as e:  # e.g. an architecture smp does not know
        raise ModelFileError(f"'{name}': {e}") from None
    except Exception:  # an architecture that cannot be built on "meta": load_state_dict checks
        return
    missing = sorted(set(want) - set(tensors))
    extra = sorted(set(tensors) - set(want))
    wrong = [k for k in want if k in tensors and tuple(tensors[k].shape) != want[k]]
    if missing or extra or wrong:
        parts = [
            f"missing {missing[:3]}" if missing else "",
            f"unexpected {extra[:3]}" if extra else "",
        ]
        parts += [f"'{k}' is {tuple(tensors[k].shape)}, expected {want[k]}" for k in wrong[:2]]
        raise _mismatch(name, cfg, "; ".join(p for p in parts if p))


def _check_finite(tensors: dict, name: str) -> None:
    bad = non_finite(tensors)
    if bad:
        raise ModelFileError(
            f"'{name}': {len(bad)} weight tensor(s) hold NaN or infinite values (e.g. '{bad[0]}'): "
            "the training diverged or the file is damaged; retrain (a lower learning rate "
            "helps) or use an earlier model file"
        )


def load_model(path: str | os.PathLike, device: str = "cpu") -> TrainedModel:
    """Load a model file; raises :class:`ModelFileError` with a clear message on any mismatch."""
    from safetensors.torch import load_file

    from ..nets.build import build_model

    meta = read_metadata(path)
    name = Path(path).name
    model_cfg, spec, train_cfg = _configs(meta, name)
    try:
        tensors = load_file(str(path), device="cpu")
    except Exception as e:
        first = str(e).splitlines()[0][:200] if str(e) else type(e).__name__
        raise ModelFileError(
            f"'{name}': the weights cannot be read ({first}); the file is damaged or "
            "incomplete: use the original file or retrain"
        ) from None
    _check_shapes(model_cfg, tensors, name)
    _check_finite(tensors, name)
    net = build_model(model_cfg)
    try:
        net.load_state_dict(tensors, strict=True)
    except RuntimeError as e:
        raise _mismatch(name, model_cfg, " ".join(str(e).splitlines()[0:3])) from None
    net.to(device).eval()
    return TrainedModel(
        net=net,
        model_cfg=model_cfg,
        input_spec=spec,
        threshold=float(meta.get("threshold", 0.5)),
        train_cfg=train_cfg,
        history=list(meta.get("history", [])),
        source=str(path),
        classes=ClassTable.from_dict(meta["classes"]) if meta.get("classes") else ClassTable(),
    )
