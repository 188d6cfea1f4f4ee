"""Creating outputs written slice by slice, and never losing a user's file to them.

* :func:`create_output` makes a ``.zarr`` / ``.tif`` / ``.npy`` array-like that is
  written with ``out[z] = ...``; it marks it as ours and replaces an existing path only
  when asked *and* it is one of our outputs (:func:`check_output_path` checks first).

Heavy imports (tifffile, zarr, PIL) happen inside the functions.
"""

from __future__ import annotations

import errno
import os
import shutil
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import InputError
from .read import TIFF_SUFFIXES, looks_like_zarr

OUTPUT_SUFFIXES = (".zarr", ".tif", ".tiff", ".npy")
# Classic TIFF addresses 4 GiB; switch to BigTIFF well before that (headers, IFDs).
BIGTIFF_BYTES = 2**32 - 2**25


def _suffix(path: Path) -> str:
    return path.suffix.lower()


# Outputs carry a marker so that ``overwrite`` only ever replaces what this package wrote:
# zarr: the attribute {OUTPUT_MARK: {"version": ...}}; TIFF: the Software tag TIFF_SOFTWARE.
# A .npy header has room for nothing but its three keys (the format allows no other), so an
# existing .npy can never be told apart from the user's own: overwrite refuses every one.
OUTPUT_MARK = "napari_temseg"
TIFF_SOFTWARE = "napari-temseg"


def is_own_output(path: str | os.PathLike) -> bool:
    """Whether ``path`` is an output :func:`create_output` wrote (it carries our marker)."""
    path = Path(path)
    try:
        if path.is_dir():
            import zarr

            mark = zarr.open(str(path), mode="r").attrs.get(OUTPUT_MARK)
            return isinstance(mark, dict)
        if _suffix(path) in TIFF_SUFFIXES:
            import tifffile

            with tifffile.TiffFile(str(path)) as tif:
                return str(tif.pages[0].software or "").startswith(TIFF_SOFTWARE)
    except Exception:  # unreadable, not an array at all, ...: not ours
        return False
    return False


def check_output_path(path: str | os.PathLike, overwrite: bool = False) -> Path:
    """Raise a one-line InputError unless ``path`` can be written; creates nothing.

    The suffix must be an output type; an existing path is refused unless ``overwrite``
    and it is one of our outputs (:func:`is_own_output`); its folder must exist as a
    writable folder or be creatable inside one.
    """
    path = Path(path)
    if _suffix(path) not in OUTPUT_SUFFIXES:
        raise InputError(f"output '{path.name}' must end in {', '.join(OUTPUT_SUFFIXES)}")
    if path.exists() or path.is_symlink():
        if not overwrite:
            raise InputError(
                f"'{path}' exists; choose another output name or pass --overwrite (overwrite=True)"
            )
        if path.is_dir() and not (_suffix(path) == ".zarr" or looks_like_zarr(path)):
            raise InputError(
                f"'{path}' is a folder that is not a zarr store; refusing to delete it: "
                "choose another output name"
            )
        if _suffix(path) == ".npy":
            raise InputError(
                f"'{path}' exists and a .npy file cannot carry napari-temseg's mark, so it is "
                "never replaced: remove it yourself, choose another name, or write .zarr / .tif"
            )
        if not is_own_output(path):
            raise InputError(
                f"'{path}' was not written by napari-temseg; refusing to replace it: "
                "choose another output name or remove it yourself"
            )
    _check_folder(path)
    return path


def _check_folder(path: Path) -> None:
    """The nearest existing folder above ``path`` is a folder we can create files in."""
    try:
        writable_folder(path.parent)
    except NotADirectoryError as e:
        raise InputError(
            f"cannot write '{path}': '{e.filename}' is a file, not a folder; "
            "choose another output path"
        ) from None
    except OSError as e:
        raise InputError(f"cannot write '{path}': {e.strerror or e}") from None


def writable_folder(folder: str | os.PathLike) -> Path:
    """The nearest existing folder at or above ``folder``, checked to take new files.

    Raises NotADirectoryError (``filename`` = the file in the way) or the OSError of a
    probe file: the real test, since os.access ignores read-only mounts for root, ACLs,
    quotas... Creates nothing that stays.
    """
    import tempfile

    folder = Path(folder)
    while not folder.exists() and folder != folder.parent:
        folder = folder.parent
    if not folder.is_dir():
        raise NotADirectoryError(20, "Not a directory", str(folder))
    fd, probe = tempfile.mkstemp(prefix=".temseg-probe-", dir=folder)
    os.close(fd)
    os.unlink(probe)
    return folder


def remove_output(path: str | os.PathLike) -> None:
    """Delete an output (a file or a zarr store); nothing if it does not exist."""
    path = Path(path)
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    else:
        path.unlink(missing_ok=True)


def default_chunks(shape: Sequence[int]) -> tuple[int, ...]:
    """One slice per chunk along Z (writes never touch a neighbour), <= 1024 x 1024 in Y, X."""
    shape = tuple(int(s) for s in shape)
    tail = tuple(min(s, 1024) for s in shape[-2:])
    return (1,) * (len(shape) - 2) + tail


def create_output(
    path: str | os.PathLike,
    shape: Sequence[int],
    dtype: Any,
    chunks: Sequence[int] | None = None,
    overwrite: bool = False,
) -> Any:
    """A new writable array-like at ``path`` (``.zarr``, ``.tif``/``.tiff``, ``.npy``).

    Write it slice by slice (``out[z] = ...``); call ``flush()`` when it has one
    (TIFF / npy memmaps) before reading the file elsewhere. ``overwrite`` replaces only
    an output this function wrote (:func:`is_own_output`), never other files or folders.
    """
    path = Path(path)
    suffix = _suffix(path)
    shape = tuple(int(s) for s in shape)
    dtype = np.dtype(dtype)
    check_output_path(path, overwrite)
    remove_output(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if suffix == ".zarr":
        import zarr

        from ...version import __version__

        chunks = tuple(chunks) if chunks is not None else default_chunks(shape)
        z = zarr.open(str(path), mode="w-", shape=shape, dtype=dtype, chunks=chunks)
        z.attrs[OUTPUT_MARK] = {"version": __version__}
        return z
    if suffix == ".npy":
        return np.lib.format.open_memmap(str(path), mode="w+", dtype=dtype, shape=shape)
    import tifffile

    nbytes = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
    out = tifffile.memmap(
        str(path),
        shape=shape,
        dtype=dtype,
        bigtiff=nbytes >= BIGTIFF_BYTES,
        photometric="minisblack",
        software=TIFF_SOFTWARE,
    )
    try:
        reserve_disk_space(path)
    except OSError:
        del out
        path.unlink(missing_ok=True)  # never leave the empty file behind
        raise
    return out


def reserve_disk_space(path: Path) -> None:
    """Allocate a (sparse) memory-mapped file's blocks now: a full disk is then an OSError
    here, before any slice is computed, instead of a SIGBUS that kills the process while
    writing through the memory map (and leaves a half-written file)."""
    if not hasattr(os, "posix_fallocate"):  # macOS, Windows: no way to reserve; map as is
        return
    fd = os.open(path, os.O_RDWR)
    try:
        os.posix_fallocate(fd, 0, os.fstat(fd).st_size)
    except OSError as e:
        if e.errno in (errno.EOPNOTSUPP, errno.EINVAL, errno.ENOSYS):  # file system cannot
            return
        e.filename = e.filename or str(path)
        raise
    finally:
        os.close(fd)


__all__ = [
    "writable_folder",
    "create_output",
    "check_output_path",
    "is_own_output",
    "remove_output",
    "default_chunks",
    "OUTPUT_SUFFIXES",
]
