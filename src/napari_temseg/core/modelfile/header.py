"""The header check of a model file: :func:`check_header` validates every field of the
JSON document (types and ranges) before any network is built (``modelfile.py``), so a
damaged or hostile header gives one ModelFileError that says what to do.
"""

from __future__ import annotations

import math
from typing import Any

from ..config.choices import MAX_BINNING
from ..config.classes import ClassTable
from ..config.model import MAX_DEPTH, MIN_DEPTH
from ..errors import ModelFileError, TemsegError
from ..nets.registry import DEFAULT_ARCH, arch_of

META_KEY = "napari_temseg"  # the safetensors metadata key of the JSON header
FORMAT_VERSION = 2  # 2: K-class models (a 'classes' table; binary files are still 1)
# limits of a plausible header (anything beyond is a damaged or hostile file)
MAX_CHANNELS = 256  # image channels
MAX_CONTEXT = 8  # as InputSpec / TrainConfig
MAX_CLASSES = 256
MAX_BASE_WIDTH = 1024


def _show(v: Any) -> str:
    text = repr(v)
    return text if len(text) <= 40 else text[:37] + "..."


def _damaged(name: str, what: str) -> ModelFileError:
    return ModelFileError(
        f"'{name}' has a damaged model header: {what}; use the original file or retrain"
    )


def _is_int(v: Any, lo: int, hi: int) -> bool:
    return isinstance(v, int) and not isinstance(v, bool) and lo <= v <= hi


def _is_number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def _need(ok: bool, name: str, what: str) -> None:
    if not ok:
        raise _damaged(name, what)


def _check_ints(d: dict, limits: dict, section: str, name: str) -> None:
    """Fields of ``d`` that must be whole numbers within ``limits[key] = (default, lo, hi)``."""
    for key, (default, lo, hi) in limits.items():
        v = d.get(key, default)
        _need(
            _is_int(v, lo, hi),
            name,
            f"{section}.{key} must be a whole number {lo}..{hi}, got {_show(v)}",
        )


def _check_model_section(m: Any, name: str) -> None:
    _need(isinstance(m, dict), name, f"'model' must be an object, got {_show(m)}")
    arch = m.get("arch", DEFAULT_ARCH)
    _need(
        isinstance(arch, str) and len(arch) <= 100,
        name,
        f"model.arch must be an architecture name, got {_show(arch)}",
    )
    for key in ("encoder", "encoder_weights", "norm_layer", "norm"):
        v = m.get(key)
        _need(v is None or isinstance(v, str), name, f"model.{key} must be text, got {_show(v)}")
    in_max = MAX_CHANNELS * (2 * MAX_CONTEXT + 1)
    limits = {
        "in_channels": (1, 1, in_max),
        "slices": (1, 1, 2 * MAX_CONTEXT + 1),
        "classes": (1, 1, MAX_CLASSES),
    }
    _check_ints(m, limits, "model", name)
    if m.get("base_width") is not None:
        _check_ints(m, {"base_width": (None, 4, MAX_BASE_WIDTH)}, "model", name)
    if m.get("depth") is not None:
        _check_ints(m, {"depth": (None, MIN_DEPTH, MAX_DEPTH)}, "model", name)


def _check_input_section(i: Any, model: dict, name: str) -> None:
    _need(isinstance(i, dict), name, f"'input' must be an object, got {_show(i)}")
    limits = {
        "channels": (1, 1, MAX_CHANNELS),
        "context": (0, 0, MAX_CONTEXT),
        "binning": (1, 1, MAX_BINNING),
    }
    _check_ints(i, limits, "input", name)
    c, k = i.get("channels", 1), i.get("context", 0)
    for key, default in (("norm_lo", [0.0]), ("norm_hi", [1.0])):
        v = i.get(key, default)
        ok = isinstance(v, list) and len(v) == c and all(_is_number(x) for x in v)
        _need(ok, name, f"input.{key} must be {c} finite number(s), got {_show(v)}")
    for key in ("intensity_norm", "norm_mode"):
        v = i.get(key)
        _need(v is None or isinstance(v, str), name, f"input.{key} must be text, got {_show(v)}")
    n_in = model.get("in_channels", 1)
    _need(
        c * (2 * k + 1) == n_in,
        name,
        f"input channels x (2 x context + 1) = {c * (2 * k + 1)} but model.in_channels = {n_in}",
    )
    arch = model.get("arch", DEFAULT_ARCH)
    if arch_of(arch).sequence:  # files of other archs may lack slices (default 1)
        _need(
            model.get("slices") == 2 * k + 1,
            name,
            f"a {arch} model reads 2 x context + 1 = {2 * k + 1} slices, "
            f"but model.slices = {_show(model.get('slices'))}",
        )


def check_classes(c: Any, model: dict, name: str) -> None:
    """The class table: absent (binary, files before format 2) or names + colours matching
    the network's output channels."""
    out = model.get("classes", 1)
    if c is None:
        _need(out == 1, name, f"a {out}-class network needs a 'classes' table")
        return
    try:
        table = ClassTable.from_dict(c)
    except TemsegError as e:
        raise _damaged(name, f"classes: {e}") from None
    _need(
        table.out_channels == out,
        name,
        f"{table.k} classes but model.classes = {out} output channel(s)",
    )


def check_header(meta: Any, name: str = "model file") -> dict:
    """``meta`` (a parsed header) checked field by field; raises ModelFileError naming the fix."""
    _need(isinstance(meta, dict), name, "it is not a JSON object")
    fmt = meta.get("format")
    _need(_is_int(fmt, 1, 2**31), name, f"'format' must be a whole number >= 1, got {_show(fmt)}")
    if fmt > FORMAT_VERSION:
        raise ModelFileError(
            f"'{name}' was written by a newer napari-temseg (format {fmt}); "
            "update the plugin: pip install -U napari-temseg"
        )
    _check_model_section(meta.get("model"), name)
    _check_input_section(meta.get("input"), meta["model"], name)
    thr = meta.get("threshold", 0.5)
    ok = _is_number(thr) and 0 < thr < 1
    _need(ok, name, f"threshold must be a number between 0 and 1, got {_show(thr)}")
    hist = meta.get("history", [])
    ok = isinstance(hist, list) and all(isinstance(h, dict) for h in hist)
    _need(ok, name, f"history must be a list of epoch records, got {_show(hist)}")
    check_classes(meta.get("classes"), meta["model"], name)
    train = meta.get("train")
    _need(
        train is None or isinstance(train, dict),
        name,
        f"train must be an object or null, got {_show(train)}",
    )
    return meta


__all__ = [
    "FORMAT_VERSION",
    "MAX_BASE_WIDTH",
    "MAX_CHANNELS",
    "MAX_CLASSES",
    "MAX_CONTEXT",
    "check_header",
]
