"""`temseg measure`: one row per object (and slice) in physical units, to a CSV file."""

from __future__ import annotations

import sys
from pathlib import Path

from ..core.errors import InputError


def _add(sub) -> None:
    p = sub.add_parser(
        "measure",
        help="measure the objects of a labels image into a CSV table",
        description="One row per object and slice: area, equivalent diameter, perimeter, "
        "axes, eccentricity, solidity, centroid (in the pixel size's unit: from "
        "--pixel-size, else the TIFF's OME / ImageJ metadata, else pixels) and, with "
        "--image, the mean intensity per channel. A 0/1 mask or a class map is split into "
        "connected components per class; other labels are object ids (--instances).",
    )
    p.add_argument("labels", help="labels image (TIFF, PNG, zarr, npy): object ids or classes")
    p.add_argument("--image", default=None, help="the image the labels come from")
    p.add_argument("-o", "--output", required=True, help="CSV table to write")
    p.add_argument("--pixel-size", type=float, nargs="+", default=None, help="Y [X] size")
    p.add_argument("--unit", default=None, help="unit of --pixel-size (e.g. nm, um)")
    kind = p.add_mutually_exclusive_group()
    kind.add_argument(
        "--classes",
        dest="classes",
        action="store_true",
        default=None,
        help="the labels are classes: objects = connected components",
    )
    kind.add_argument(
        "--instances", dest="classes", action="store_false", help="the labels are object ids"
    )
    p.add_argument("--class-names", default=None, help="comma-separated names of the classes")
    p.add_argument("--overwrite", action="store_true", help="replace OUTPUT if it exists")


def _pixel_size(args) -> tuple:
    from ..core.evaluation.measure import pixel_size_from_file

    if args.pixel_size:
        if len(args.pixel_size) > 2:
            raise InputError("--pixel-size takes one size, or two (Y X)")
        return tuple(args.pixel_size), args.unit
    for path in (args.labels, args.image):
        found = (
            path and Path(path).suffix.lower() in (".tif", ".tiff") and (pixel_size_from_file(path))
        )
        if found:
            return found[:2], args.unit or found[2]
    return None, args.unit


def _cmd(args) -> int:
    import numpy as np

    from ..core.config.classes import parse_names
    from ..core.data.read import read_image
    from ..core.evaluation.measure import measure, write_csv

    out = Path(args.output)
    if out.suffix.lower() != ".csv":
        raise InputError(f"'{out}': the table is a .csv file: use -o {out.with_suffix('.csv')}")
    if out.exists() and not args.overwrite:
        raise InputError(f"'{out}' exists: choose another --output or pass --overwrite")
    size, unit = _pixel_size(args)
    labels = np.asarray(read_image(args.labels))
    image = None if args.image is None else np.asarray(read_image(args.image))
    table = measure(
        labels,
        image,
        pixel_size=size,
        unit=unit,
        classes=args.classes,
        class_names=parse_names(args.class_names),
    )
    write_csv(table, out)
    n = len(table["label"])
    print(f"{n} object(s) in {args.labels} -> {out} (sizes in {unit or 'px'})", file=sys.stderr)
    return 0


COMMANDS: list = [(_add, _cmd)]

__all__ = ["COMMANDS"]
