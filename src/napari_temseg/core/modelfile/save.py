"""Saving a model file so that a trained model is never lost.

The one save path of the CLI, the docks and ``TrainedModel.save``: the file is written to a
hidden temporary file beside the target, flushed to the disk (fsync), checked to be complete
and only then renamed over the target, so a full disk or a killed process never leaves a
half-written model under the real name. Every failure to write (an OSError, the safetensors
writer's own SafetensorError, a file found short after writing) becomes one
:class:`SaveError` line that names the path, the cause and the fix. :func:`save_or_rescue`
then writes the model into a rescue folder instead, and says where; if no folder takes it the
caller keeps the model in memory and says so. :func:`check_room` refuses, before training,
a drive too full for the model the config describes.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import ModelFileError, SaveError, TemsegError
from .header import META_KEY

TMP_PREFIX = ".tmp-napari-temseg-"  # + the writing process's pid
STALE_S = 300.0  # a temporary file untouched this long belongs to a save that died
RESCUE_NAME = "napari-temseg-rescued"
HEADER_ROOM = 1 << 20  # bytes kept free beyond the weights: JSON header, history, file system


@dataclass(frozen=True)
class SaveResult:
    """Where a model went: ``path`` (None: nowhere, it is only in memory) and, when that
    is not the path asked for, ``problem``: the one-line reason."""

    path: Path | None
    problem: str | None = None

    def message(self, kept: str) -> str:
        """The line for the user; ``kept`` says where the model lives when no file does."""
        if self.problem is None:
            return f"saved '{self.path}'"
        if self.path is not None:
            return f"{self.problem}; the model was saved to '{self.path}' instead"
        folders = ", ".join(f"'{f}'" for f in rescue_folders())
        return f"{self.problem}; no rescue folder ({folders}) took it either, so {kept}"


def check_target(path: Path, overwrite: bool) -> Path:
    """Refuse a name the model may not be written to (ending, a folder, an existing file)."""
    if path.suffix != ".safetensors":
        raise ModelFileError(f"model files end in '.safetensors'; got '{path.name}'")
    if path.is_dir():
        raise ModelFileError(
            f"'{path}' is a folder: give a file name, e.g. '{path / 'model.safetensors'}'"
        )
    if path.exists() and not overwrite:
        raise ModelFileError(
            f"'{path}' exists; choose another name or pass overwrite=True (--overwrite)"
        )
    return path


def non_finite(tensors: dict) -> list[str]:
    """Names of the floating-point tensors holding NaN or infinite values."""
    import torch

    return [k for k, t in tensors.items() if t.is_floating_point() and not torch.isfinite(t).all()]


def model_tensors(model: Any, name: str) -> dict:
    """CPU copies of the weights; a diverged model is refused (no file could ever load)."""
    tensors = {
        k: v.detach().to("cpu").contiguous().clone() for k, v in model.net.state_dict().items()
    }
    bad = non_finite(tensors)
    if bad:
        raise ModelFileError(
            f"not saved as '{name}': {len(bad)} weight tensor(s) hold NaN or infinite values "
            f"(e.g. '{bad[0]}'), the training diverged; retrain with a lower learning rate"
        )
    return tensors


def save_model(model: Any, path: str | os.PathLike, overwrite: bool = False) -> Path:
    """Write ``model`` to ``path`` atomically; raises ModelFileError (name, diverged) or
    SaveError (could not write). No rescue: :func:`save_or_rescue` adds it."""
    path = check_target(Path(path), overwrite)
    return write_model(model_tensors(model, path.name), model.metadata(), path)


def save_or_rescue(model: Any, path: str | os.PathLike, overwrite: bool = False) -> SaveResult:
    """Save to ``path``; if that fails, into the first rescue folder that takes the file."""
    path = Path(path)
    tensors, meta = model_tensors(model, path.name), model.metadata()
    try:
        return SaveResult(write_model(tensors, meta, check_target(path, overwrite)))
    except TemsegError as e:  # e.g. the disk is full, or the file appeared meanwhile
        problem = str(e)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    for folder in rescue_folders():
        try:
            return SaveResult(
                write_model(tensors, meta, _free_name(folder, path.stem, stamp)), problem
            )
        except SaveError:
            continue
    return SaveResult(None, problem)


def rescue_folders() -> list[Path]:
    """Where a model goes when its own path cannot be written: home, then the temp folder."""
    return [Path.home() / RESCUE_NAME, Path(tempfile.gettempdir()) / RESCUE_NAME]


def _free_name(folder: Path, stem: str, stamp: str) -> Path:
    path, n = folder / f"{stem}-{stamp}.safetensors", 2
    while path.exists():  # two rescues in one second never replace each other
        path, n = folder / f"{stem}-{stamp}-{n}.safetensors", n + 1
    return path


def write_model(tensors: dict, meta: dict, path: Path) -> Path:
    """Temporary file, fsync, completeness check, rename; every failure is one SaveError."""
    from safetensors import SafetensorError

    folder = path.parent
    blocker = _existing_ancestor(folder)
    if not blocker.is_dir():
        raise SaveError(
            f"cannot save '{path}': '{blocker}' is a file, not a folder; choose another folder"
        )
    tmp = None
    try:
        folder.mkdir(parents=True, exist_ok=True)
        remove_stale_temporaries(folder)
        fd, tmp = tempfile.mkstemp(
            prefix=f"{TMP_PREFIX}{os.getpid()}-", suffix=".safetensors", dir=folder
        )
        os.close(fd)
        write_file(tensors, tmp, {META_KEY: json.dumps(meta)})
        _flush(tmp)
        _check_complete(tmp, tensors)
        os.replace(tmp, path)
        _flush_folder(folder)
    except (OSError, SafetensorError) as e:  # a short file is an OSError too
        raise SaveError(f"cannot save '{path}': {_cause(e)}") from None
    finally:
        if tmp is not None and os.path.exists(tmp):
            with contextlib.suppress(OSError):
                os.unlink(tmp)
    return path


def write_file(tensors: dict, filename: str, metadata: dict) -> None:
    """The safetensors writer (one name, so tests can stand in for a failing disk)."""
    from safetensors.torch import save_file

    save_file(tensors, filename, metadata=metadata)


def _flush(filename: str) -> None:
    fd = os.open(filename, os.O_RDONLY)
    try:
        os.fsync(fd)  # a full disk or a failing drive shows here, not at the rename
    finally:
        os.close(fd)


def _flush_folder(folder: Path) -> None:
    with contextlib.suppress(OSError):  # not every file system syncs folders (e.g. Windows)
        fd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def _check_complete(filename: str, tensors: dict) -> None:
    """Read the written header back: a file cut short (disk full) fails to open or lacks
    tensors; the bytes of the weights must all be there."""
    from safetensors import safe_open

    need = sum(t.numel() * t.element_size() for t in tensors.values())
    size = os.path.getsize(filename)
    try:
        with safe_open(filename, framework="pt") as f:
            complete = set(f.keys()) == set(tensors) and size > need
    except Exception:  # SafetensorError: the header or the data is cut short
        complete = False
    if not complete:
        raise OSError(errno.ENOSPC, f"the written file is incomplete ({size} bytes)")


_FULL = ("No space left", "Disk quota", "incomplete")


def _cause(e: BaseException) -> str:
    """What went wrong and what to do, from an OSError or the safetensors writer's error."""
    code = getattr(e, "errno", None)
    text = (getattr(e, "strerror", None) or str(e) or type(e).__name__).splitlines()[0][:160]
    if code in (errno.ENOSPC, errno.EDQUOT) or any(s in str(e) for s in _FULL):
        return f"the disk is full ({text}); free some space or choose another folder"
    if code == errno.EROFS or "Read-only file system" in str(e):
        return "the drive is read-only; choose another folder"
    if code in (errno.EACCES, errno.EPERM) or isinstance(e, PermissionError):
        return "no permission to write in that folder; choose a folder of your own"
    return f"{text}; choose another folder"


def _existing_ancestor(folder: Path) -> Path:
    while not folder.exists() and folder != folder.parent:
        folder = folder.parent
    return folder


def remove_stale_temporaries(folder: Path) -> list[Path]:
    """Delete half-written model files of this program untouched for ``STALE_S`` seconds:
    a save that was killed (a live save keeps writing, so its file stays fresh)."""
    removed, now = [], time.time()
    for tmp in folder.glob(f"{TMP_PREFIX}*.safetensors"):
        with contextlib.suppress(OSError):
            if now - tmp.stat().st_mtime > STALE_S:
                tmp.unlink()
                removed.append(tmp)
    return removed


def expected_size(model_cfg: Any) -> int:
    """Bytes of the weights of the network ``model_cfg`` describes, counted on torch's
    "meta" device (nothing is allocated or downloaded)."""
    import dataclasses

    import torch

    from ..nets.build import build_model

    cfg = dataclasses.replace(model_cfg, encoder_weights=None)
    with torch.device("meta"):
        state = build_model(cfg).state_dict()
    return sum(t.numel() * t.element_size() for t in state.values())


def check_room(path: Path, model_cfg: Any) -> None:
    """Refuse, before training, a drive with less free space than the model will take."""
    import shutil

    try:
        need = expected_size(model_cfg) + HEADER_ROOM
    except Exception:  # an architecture that cannot be built on "meta": the save will tell
        return
    free = shutil.disk_usage(_existing_ancestor(path.parent)).free
    if free < need:
        raise SaveError(
            f"cannot save '{path}': its drive has {free / 2**20:.1f} MB free and the model "
            f"needs about {need / 2**20:.1f} MB; free some space or choose another folder"
        )
