"""Reading images and masks lazily.

* :func:`read_image` returns the *raw* array (source dtype, source axis order, not
  normalised; :func:`~.volume.as_volume` decides the axes later): a ``numpy.memmap`` for
  contiguous TIFFs, a read-only zarr array for compressed/tiled TIFFs and ``.zarr``
  stores, a numpy array for PNG/JPEG (small by nature) and ``.npy`` (memory-mapped).
* :func:`list_pairs` / :func:`read_training_set` match images and masks by file stem.

* :func:`read_image` returns the *raw* array (source dtype, source axis order, not
  normalised; ``data.as_volume`` decides the axes later): a ``numpy.memmap`` for
  contiguous TIFFs, a read-only zarr array for compressed/tiled TIFFs and ``.zarr``
  stores, a numpy array for PNG/JPEG (small by nature) and ``.npy`` (memory-mapped).
* :func:`list_pairs` / :func:`read_training_set` match images and masks by file stem.

Heavy imports (tifffile, zarr, PIL) happen inside the functions.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import InputError

TIFF_SUFFIXES = (".tif", ".tiff")
PICTURE_SUFFIXES = (".png", ".jpg", ".jpeg")
IMAGE_SUFFIXES = TIFF_SUFFIXES + PICTURE_SUFFIXES + (".zarr", ".npy")
MASK_SUFFIXES = (".tif", ".tiff", ".png")


def _suffix(path: Path) -> str:
    return path.suffix.lower()


def read_image(path: str | os.PathLike, channel_axis: int | None = None) -> Any:
    """The raw pixels of ``path`` as a lazy array-like (numpy memmap, zarr) or numpy array.

    ``channel_axis`` is only checked against the number of dimensions here; the axis
    order is interpreted by ``data.as_volume(array, channel_axis)``.
    """
    path = Path(path)
    if not path.exists():
        raise InputError(f"image '{path}' not found: check the path")
    suffix = _suffix(path)
    if suffix in TIFF_SUFFIXES:
        arr = _read_tiff(path)
    elif suffix == ".zarr" or (path.is_dir() and looks_like_zarr(path)):
        arr = _read_zarr(path)
    elif suffix in PICTURE_SUFFIXES:
        arr = _read_picture(path)
    elif suffix == ".npy":
        arr = np.load(path, mmap_mode="r")
    elif path.is_dir():
        raise InputError(f"'{path}' is a folder of images: use list_images() / pass one image file")
    else:
        raise InputError(
            f"cannot read '{path.name}': supported image files are {', '.join(IMAGE_SUFFIXES)}"
        )
    if channel_axis is not None and not -len(arr.shape) <= channel_axis < len(arr.shape):
        raise InputError(
            f"channel axis {channel_axis} does not exist in '{path.name}' with shape "
            f"{tuple(arr.shape)}: use an axis between 0 and {len(arr.shape) - 1}"
        )
    return arr


def _read_tiff(path: Path) -> Any:
    import tifffile

    try:
        return tifffile.memmap(str(path), mode="r")
    except (ValueError, OSError, IndexError, TypeError):
        pass  # compressed, tiled or non-contiguous: read lazily through zarr
    try:
        import zarr

        store = tifffile.imread(str(path), aszarr=True)
        z = zarr.open(store, mode="r")
        return _first_array(z, path)
    except InputError:
        raise
    except Exception:  # exotic TIFF that zarr cannot map: load it (small files only)
        try:
            return tifffile.imread(str(path))
        except Exception as e:
            raise InputError(
                f"cannot read TIFF '{path.name}' ({e}); re-save it as TIFF or zarr"
            ) from None


def looks_like_zarr(path: Path) -> bool:
    return any((path / n).exists() for n in ("zarr.json", ".zarray", ".zgroup"))


def is_image_folder(path: str | os.PathLike) -> bool:
    """A folder of images (not a zarr store, which is a folder too)."""
    path = Path(path)
    return path.is_dir() and _suffix(path) != ".zarr" and not looks_like_zarr(path)


def _read_zarr(path: Path) -> Any:
    import zarr

    try:
        z = zarr.open(str(path), mode="r")
    except Exception as e:
        raise InputError(f"cannot open zarr store '{path}' ({e})") from None
    return _first_array(z, path)


def _first_array(z: Any, path: Path) -> Any:
    """A zarr array, or the full-resolution array of a group (OME-Zarr level '0')."""
    if hasattr(z, "shape") and hasattr(z, "dtype"):
        return z
    keys = sorted(z.array_keys()) if hasattr(z, "array_keys") else []
    if not keys:
        raise InputError(f"zarr group '{path.name}' holds no array: point to the array inside it")
    return z["0"] if "0" in keys else z[keys[0]]


def _read_picture(path: Path) -> np.ndarray:
    from PIL import Image

    try:
        with Image.open(path) as im:
            arr = np.asarray(im)  # palette PNGs keep their indices (label masks)
    except Exception as e:
        raise InputError(f"cannot read picture '{path.name}' ({e})") from None
    return arr.astype(np.uint8) if arr.dtype == bool else arr


def list_images(path: str | os.PathLike) -> list[Path]:
    """Image files in a folder (sorted; ``.zarr`` folders count as images); a file gives [it]."""
    path = Path(path)
    if not path.exists():
        raise InputError(f"'{path}' not found: check the path")
    if not path.is_dir() or _suffix(path) == ".zarr" or looks_like_zarr(path):
        return [path]
    found = sorted(
        p for p in path.iterdir() if _suffix(p) in IMAGE_SUFFIXES and not p.name.startswith(".")
    )
    if not found:
        raise InputError(f"folder '{path}' has no images ({', '.join(IMAGE_SUFFIXES)})")
    return found


def _by_stem(folder: Path, suffixes: Sequence[str], what: str) -> dict[str, Path]:
    if not folder.is_dir():
        raise InputError(f"{what} folder '{folder}' not found")
    out: dict[str, Path] = {}
    for p in sorted(folder.iterdir()):
        if _suffix(p) not in suffixes or p.name.startswith("."):
            continue
        if p.stem in out:
            raise InputError(
                f"{what} folder has two files named '{p.stem}' ({out[p.stem].name}, {p.name})"
            )
        out[p.stem] = p
    if not out:
        raise InputError(f"{what} folder '{folder}' has no files ending in {', '.join(suffixes)}")
    return out


def _names(stems: Sequence[str], limit: int = 5) -> str:
    s = ", ".join(sorted(stems)[:limit])
    return s + (f" and {len(stems) - limit} more" if len(stems) > limit else "")


def list_pairs(
    image_dir: str | os.PathLike, mask_dir: str | os.PathLike
) -> list[tuple[Path, Path]]:
    """(image, mask) paths matched by file stem (``a.tif`` <-> ``a.png`` is fine)."""
    images = _by_stem(Path(image_dir), IMAGE_SUFFIXES, "image")
    masks = _by_stem(Path(mask_dir), MASK_SUFFIXES, "mask")
    common = sorted(set(images) & set(masks))
    no_mask = sorted(set(images) - set(masks))
    no_image = sorted(set(masks) - set(images))
    if not common:
        raise InputError(
            f"no image in '{image_dir}' has a mask with the same name in '{mask_dir}' "
            f"(images: {_names(list(images))}; masks: {_names(list(masks))}): "
            "name each mask like its image (e.g. img01.tif and img01.png)"
        )
    if no_image:
        raise InputError(
            f"masks without an image: {_names(no_image)} (in '{mask_dir}'): "
            "rename them to match an image or remove them"
        )
    if no_mask:
        raise InputError(
            f"images without a mask: {_names(no_mask)} (in '{image_dir}'): "
            "add their masks or move those images out of the training folder"
        )
    return [(images[s], masks[s]) for s in common]


def read_training_set(
    image_path: str | os.PathLike, mask_path: str | os.PathLike
) -> tuple[list[Any], list[Any], list[str]]:
    """Lazy images, masks and names from one (image, mask) file pair or two folders."""
    ip, mp = Path(image_path), Path(mask_path)
    image_is_dir = is_image_folder(ip)
    if image_is_dir != mp.is_dir():
        raise InputError(
            "give either one image file and one mask file, or an image folder and a mask folder "
            f"(got '{ip}' and '{mp}')"
        )
    pairs = list_pairs(ip, mp) if image_is_dir else [(ip, mp)]
    images, masks, names = [], [], []
    for i, m in pairs:
        images.append(read_image(i))
        masks.append(read_image(m))
        names.append(i.stem)
    return images, masks, names


__all__ = [
    "read_image",
    "list_images",
    "is_image_folder",
    "looks_like_zarr",
    "list_pairs",
    "read_training_set",
    "TIFF_SUFFIXES",
    "PICTURE_SUFFIXES",
    "IMAGE_SUFFIXES",
    "MASK_SUFFIXES",
]
