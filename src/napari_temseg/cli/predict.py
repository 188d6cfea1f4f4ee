"""`temseg predict`: tiled inference into TIFF / zarr, for files or folders of images."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from ..core.errors import InputError
from ..core.options import PREDICT_CLASSES, predict_config
from .options import add_option_flags, given
from .progress import drive

OUT_FORMATS = (".tif", ".tiff", ".zarr")


def _add_predict(sub) -> None:
    p = sub.add_parser(
        "predict",
        help="segment an image, a stack or a folder of images with a trained model",
        description="Tiled inference, slice by slice: the stack is never loaded whole. "
        "IMAGE: TIFF, zarr, PNG/JPEG or a folder of them. "
        "OUT: .tif or .zarr (probabilities); for a folder "
        "IMAGE, OUT (and --labels) are folders receiving one file per image. With --uncertainty "
        "the spread of the 8 test-time views goes next to OUT as <OUT>-uncertainty. Every "
        "option below is also a keyword of api.predict and a setting of the Predict dock.",
    )
    p.add_argument(
        "model", help="model file (.safetensors) from `temseg train` or the napari plugin"
    )
    p.add_argument("image")
    p.add_argument(
        "-o", "--output", required=True, help="probability output: .tif, .zarr (or a folder)"
    )
    o = p.add_argument_group("files")
    o.add_argument("--labels", default=None, help="also write labels: .tif, .zarr or a folder")
    o.add_argument("--format", default=".tif", choices=OUT_FORMATS, help="file type in folder mode")
    o.add_argument("--channel-axis", type=int, default=None, help="axis of the channels in IMAGE")
    o.add_argument(
        "--slices", default=None, help="comma-separated slices to predict (others stay 0)"
    )
    o.add_argument(
        "--dask-scheduler",
        default=None,
        metavar="ADDRESS",
        help="run on a dask.distributed cluster (e.g. tcp://host:8786); OUT must be .zarr",
    )
    p.add_argument("--overwrite", action="store_true", help="replace outputs that exist")
    p.add_argument("-q", "--quiet", action="store_true")
    add_option_flags(p, PREDICT_CLASSES, "prediction")


def _targets(args, images: list[Path], folder: bool, uncertainty: bool) -> list[dict]:
    """Output paths per image; all checked before anything runs (no half-done folders)."""
    jobs = []
    for img in images:
        job: dict[str, Any] = {"image": img}
        for key, base in (("prob", args.output), ("labels", args.labels)):
            job[key] = (
                None
                if base is None
                else (Path(base) / (img.stem + args.format) if folder else Path(base))
            )
        job["unc"] = None
        if uncertainty:
            prob = job["prob"]
            job["unc"] = prob.with_name(f"{prob.stem}-uncertainty{prob.suffix}")
        for key in ("prob", "labels", "unc"):
            path = job[key]
            if path is None:
                continue
            if path.suffix.lower() not in OUT_FORMATS:
                raise InputError(f"output '{path}' must end in .tif, .tiff or .zarr")
            if path.exists() and not args.overwrite:
                raise InputError(f"'{path}' exists; choose another output or pass --overwrite")
            if path.resolve() == img.resolve():
                raise InputError(f"output '{path}' is the input image; choose another name")
        jobs.append(job)
    return jobs


def _create(path: Path | None, shape: tuple, dtype: Any, overwrite: bool) -> Any:
    from ..core.io import create_output

    return None if path is None else create_output(path, shape, dtype, overwrite=overwrite)


def _predict_one(model, job: dict, args, cfg, slices) -> Any:
    import numpy as np

    from ..core.data import as_volume
    from ..core.io import read_image
    from ..core.predict import predict_stack

    vol = as_volume(read_image(job["image"], args.channel_axis), channel_axis=args.channel_axis)
    Z, _, Y, X = vol.shape
    shape = (Y, X) if Z == 1 else (Z, Y, X)
    prob = _create(job["prob"], shape, cfg.prob_dtype, args.overwrite)
    labels = _create(job["labels"], shape, np.uint32 if cfg.instances else np.uint8, args.overwrite)
    unc = _create(job["unc"], shape, np.float32, args.overwrite)
    gen = predict_stack(
        model, vol, cfg, prob_out=prob, labels_out=labels, uncertainty_out=unc, slices=slices
    )
    res = drive(gen, quiet=args.quiet)
    for out in (prob, labels, unc):
        if hasattr(out, "flush"):
            out.flush()
    return res, (Z, Y, X)


def _cmd_predict(args) -> int:
    from ..core.io import is_image_folder, list_images
    from ..core.modelfile import load_model

    cfg = predict_config(given(args, PREDICT_CLASSES))
    image = Path(args.image)
    folder = is_image_folder(image)
    jobs = _targets(args, list_images(image), folder, cfg.uncertainty)
    slices = [int(s) for s in args.slices.split(",")] if args.slices else None
    if args.dask_scheduler:
        return _predict_on_cluster(args, cfg, jobs)
    model = load_model(args.model)
    for job in jobs:
        res, (Z, Y, X) = _predict_one(model, job, args, cfg, slices)
        print(
            f"{job['image'].name}: {len(res.slices)}/{Z} slice(s) of {Y} x {X} "
            f"in {res.seconds:.1f} s "
            f"({res.mpix_per_s:.2f} Mpix/s, {res.device}) -> {job['prob']}",
            file=sys.stderr,
        )
    return 0


def _predict_on_cluster(args, cfg, jobs: list[dict]) -> int:
    from distributed import Client

    from ..core.data import as_volume
    from ..core.io import read_image
    from ..core.predict_dask import predict_dask

    bad = [str(j["prob"]) for j in jobs if j["prob"].suffix.lower() != ".zarr"]
    if bad or cfg.uncertainty or cfg.instances or args.slices:
        raise InputError(
            "--dask-scheduler writes zarr only (OUT and --labels ending in .zarr, "
            "--format .zarr for folders) without --uncertainty, --instances, --slices"
        )
    with Client(args.dask_scheduler):
        for job in jobs:
            arr = read_image(job["image"], args.channel_axis)
            as_volume(arr, channel_axis=args.channel_axis)  # validates the axes early
            res = predict_dask(
                args.model,
                arr,
                job["prob"],
                cfg,
                labels_zarr_path=job["labels"],
                channel_axis=args.channel_axis,
                overwrite=args.overwrite,
            )
            print(
                f"{job['image'].name}: {len(res.slices)} slice(s) in {res.seconds:.1f} s on "
                f"{args.dask_scheduler} -> {job['prob']}",
                file=sys.stderr,
            )
    return 0


COMMANDS: list = [(_add_predict, _cmd_predict)]

__all__ = ["COMMANDS"]
