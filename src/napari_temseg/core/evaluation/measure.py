"""Objects and their measurements, in physical units (scikit-image ``regionprops_table``).

:func:`measure` returns one row per object and slice as columns (a dict of 1-D arrays, what
``pandas.DataFrame`` and napari's layer ``features`` take): ``label``, ``slice``, ``class``,
area, equivalent diameter, perimeter, major / minor axis, eccentricity, solidity, mean
intensity per channel and centroid. Sizes are in the pixel size's unit, which is part of the
column name (``area_nm2``, ``perimeter_nm``; ``_px`` without a pixel size). Objects are the
labels' ids (instance labels); a binary mask (0/1) or a K-class map is split into connected
components per class first. Objects are measured slice by slice (a FIB-SEM slice is a
section), so an id present in several slices has one row per slice.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from ..errors import InputError

PROPS = (
    "label",
    "area",
    "equivalent_diameter_area",
    "perimeter",
    "axis_major_length",
    "axis_minor_length",
    "eccentricity",
    "solidity",
    "centroid",
)
LENGTHS = {  # regionprops name -> our column stem, and its power of the length unit
    "area": ("area", 2),
    "equivalent_diameter_area": ("equivalent_diameter", 1),
    "perimeter": ("perimeter", 1),
    "axis_major_length": ("major_axis", 1),
    "axis_minor_length": ("minor_axis", 1),
    "centroid-0": ("centroid_y", 1),
    "centroid-1": ("centroid_x", 1),
}


def _objects(sl: np.ndarray, classes: bool) -> tuple[np.ndarray, dict[int, int]]:
    """(object ids, {id: class}) of one slice: ids as they are, or connected components
    of each class of a class map."""
    from scipy import ndimage as ndi

    if not classes:
        return sl, {}
    out = np.zeros(sl.shape, np.int32)
    cls: dict[int, int] = {}
    n0 = 0
    for c in np.unique(sl):
        if c == 0:
            continue
        lab, n = ndi.label(sl == c, structure=np.ones((3, 3), bool))
        out[lab > 0] = lab[lab > 0] + n0
        cls.update({i: int(c) for i in range(n0 + 1, n0 + n + 1)})
        n0 += n
    return out, cls


def _channels(image: Any, shape: tuple) -> np.ndarray | None:
    """The intensity image as (Z, Y, X, C) float32, or None."""
    if image is None:
        return None
    img = np.asarray(image, np.float32)
    z, y, x = shape
    if img.shape == (y, x) or img.shape == (z, y, x):
        img = img.reshape(z, 1, y, x)
    elif img.ndim == 3 and img.shape[1:] == (y, x) and z == 1:
        img = img[None]
    if img.ndim != 4 or img.shape[0] != z or img.shape[2:] != (y, x):
        raise InputError(
            f"the image {tuple(np.shape(image))} does not match the labels {shape}: give the "
            "image the labels were made from, (Z, Y, X) or (Z, C, Y, X)"
        )
    return np.moveaxis(img, 1, -1)


def measure(
    labels: Any,
    image: Any = None,
    *,
    pixel_size: float | Sequence[float] | None = None,
    unit: str | None = None,
    classes: bool | None = None,
    class_names: Sequence[str] | None = None,
) -> dict[str, np.ndarray]:
    """One row per object and slice (see the module docstring).

    ``pixel_size``: the pixel's size (one number, or (y, x)) in ``unit`` (default "px" =
    none); with non-square pixels the perimeter is NaN (scikit-image measures it on square
    pixels only). ``classes``: treat ``labels`` as a class map (objects = connected components
    per class); default: yes when its values are 0/1 (a binary mask) or ``class_names``
    is given, else its values are object ids. ``class_names`` adds a ``class_name`` column.
    """
    from skimage.measure import regionprops_table

    lab = np.asarray(labels)
    if lab.ndim == 2:
        lab = lab[None]
    if lab.ndim != 3 or lab.dtype.kind not in "iub":
        raise InputError(f"labels must be whole numbers, (Y, X) or (Z, Y, X); got {lab.shape}")
    spacing, unit = _spacing(pixel_size, unit)
    if classes is None:
        classes = class_names is not None or bool(lab.max(initial=0) <= 1)
    img = _channels(image, lab.shape)
    parts = []
    for z in range(lab.shape[0]):
        obj, cls = _objects(lab[z], classes)
        iso = spacing[0] == spacing[1]  # skimage's perimeter needs square pixels
        t = regionprops_table(
            obj.astype(np.int32),
            intensity_image=None if img is None else img[z],
            properties=tuple(q for q in PROPS if iso or q != "perimeter")
            + (("intensity_mean",) if img is not None else ()),
            spacing=spacing,
        )
        if not iso:
            t["perimeter"] = np.full(len(t["label"]), np.nan)
        t["slice"] = np.full(len(t["label"]), z, np.int32)
        t["class"] = np.array(
            [cls.get(int(i), 1) for i in t["label"]] if classes else np.ones(len(t["label"])),
            np.int32,
        )
        parts.append(t)
    return _columns(parts, unit, class_names)


def _spacing(pixel_size: Any, unit: str | None) -> tuple[tuple[float, float], str]:
    if pixel_size is None:
        return (1.0, 1.0), unit or "px"
    ps = np.atleast_1d(np.asarray(pixel_size, float))[-2:]
    if ps.size == 1:
        ps = np.repeat(ps, 2)
    if not np.all(np.isfinite(ps)) or np.any(ps <= 0):
        raise InputError(f"the pixel size must be > 0, got {pixel_size}")
    return (float(ps[0]), float(ps[1])), unit or "px"


def _columns(parts: list[dict], unit: str, class_names: Sequence[str] | None) -> dict:
    """Concatenate the slices' tables; rename with the unit in the names; fixed order."""
    keys = parts[0].keys() if parts else ()
    cat = {k: np.concatenate([p[k] for p in parts]) for k in keys}
    u = unit.replace("µ", "u")
    out = {k: cat.get(k, np.zeros(0, np.int32)) for k in ("label", "slice", "class")}
    if class_names is not None:
        names = list(class_names)
        out["class_name"] = np.array([names[c] if c < len(names) else str(c) for c in out["class"]])
    for k, v in cat.items():
        if k in LENGTHS:
            stem, power = LENGTHS[k]
            out[f"{stem}_{u}{'2' if power == 2 else ''}"] = v
        elif k.startswith("intensity_mean"):
            out["mean_intensity_ch" + (k.split("-")[1] if "-" in k else "0")] = v
        elif k not in out:
            out[k] = v
    return out


def write_csv(table: dict, path: Any) -> None:
    """Columns -> CSV, written to a temporary file first (no half-written table)."""
    import csv
    import os
    import tempfile
    from pathlib import Path

    path = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=".tmp-", suffix=".csv", dir=path.parent)
    try:
        with os.fdopen(fd, "w", newline="") as f:
            w = csv.writer(f)
            w.writerow(list(table))
            w.writerows(zip(*(v.tolist() for v in table.values()), strict=True))
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


_UNITS = {"micron": "um", "\\u00B5m": "um", "µm": "um", "um": "um", "nm": "nm", "mm": "mm"}


def pixel_size_from_file(path: Any) -> tuple[float, float, str] | None:
    """(y, x, unit) of a TIFF's pixel from its OME-XML (PhysicalSizeY/X + unit) or its ImageJ
    unit with the resolution tags (pixels per unit); None when the file does not say (plain
    inch / cm resolutions are print sizes, not the microscope's)."""
    import tifffile

    try:
        with tifffile.TiffFile(str(path)) as tif:
            if tif.ome_metadata:
                return _ome_size(tif.ome_metadata)
            page = tif.pages[0]
            xr, yr = page.tags.get("XResolution"), page.tags.get("YResolution")
            if xr is None or yr is None:
                return None
            per_x, per_y = (v.value[0] / v.value[1] for v in (xr, yr))
            unit = (tif.imagej_metadata or {}).get("unit")  # inch / cm tags: print sizes
            if not unit or per_x <= 0 or per_y <= 0:
                return None
            return 1.0 / per_y, 1.0 / per_x, _UNITS.get(unit, unit)
    except (OSError, ValueError, KeyError, ZeroDivisionError, tifffile.TiffFileError):
        return None


def _ome_size(xml: str) -> tuple[float, float, str] | None:
    import re

    def attr(name: str) -> str | None:
        m = re.search(rf'{name}="([^"]+)"', xml)
        return m.group(1) if m else None

    x, y = attr("PhysicalSizeX"), attr("PhysicalSizeY")
    if x is None:
        return None
    unit = attr("PhysicalSizeXUnit") or "µm"
    return float(y or x), float(x), _UNITS.get(unit, unit)


__all__ = ["measure", "pixel_size_from_file", "write_csv", "PROPS"]
