"""`temseg predict`: tiled inference into TIFF / zarr, for files or folders of images."""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from ..core.config.options import PREDICT_CLASSES, predict_config
from ..core.errors import InputError
from ..core.progress import drive
from .options import add_option_flags, given

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
        "model",
        help="model file (.safetensors) from `temseg train` or the napari plugin, or a "
        "bioimage.io model package (.zip or its folder)",
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
    p.add_argument(
        "--overwrite",
        action="store_true",
        help="replace outputs that exist - only outputs temseg wrote, never other files",
    )
    p.add_argument("-q", "--quiet", action="store_true")
    add_option_flags(p, PREDICT_CLASSES, "prediction")


OUT_KEYS = (("prob", "-o"), ("labels", "--labels"), ("unc", "the uncertainty output"))


def _job_paths(args, img: Path, folder: bool, uncertainty: bool) -> dict:
    job: dict[str, Any] = {"image": img, "unc": None}
    for key, base in (("prob", args.output), ("labels", args.labels)):
        job[key] = (
            None
            if base is None
            else (Path(base) / (img.stem + args.format) if folder else Path(base))
        )
    if uncertainty:
        prob = job["prob"]
        job["unc"] = prob.with_name(f"{prob.stem}-uncertainty{prob.suffix}")
    return job


def _targets(args, images: list[Path], folder: bool, uncertainty: bool) -> list[dict]:
    """Output paths per image, all checked before anything is created (no half-done folders):
    output types, distinct from each other and from the inputs, new or (--overwrite) ours,
    in a folder that exists or can be created and is writable."""
    from ..core.data.write import check_output_path

    jobs = [_job_paths(args, img, folder, uncertainty) for img in images]
    inputs = {p.resolve(): "the input image" for p in images}
    inputs[Path(args.model).resolve()] = "the model file"
    seen: dict[Path, str] = {}
    for job in jobs:
        for key, flag in OUT_KEYS:
            path = job[key]
            if path is None:
                continue
            if path.suffix.lower() not in OUT_FORMATS:
                raise InputError(f"output '{path}' must end in .tif, .tiff or .zarr")
            real = path.resolve()
            if real in inputs:
                raise InputError(
                    f"output '{path}' is an input ({inputs[real]}); choose another name"
                )
            if real in seen:
                raise InputError(
                    f"{seen[real]} and {flag} both name '{path}': give each output its own name"
                )
            seen[real] = flag
            if path.exists() and not args.overwrite:
                raise InputError(f"'{path}' exists; choose another output or pass --overwrite")
            check_output_path(path, overwrite=args.overwrite)
    return jobs


def _parse_slices(text: str | None) -> list[int] | None:
    if not text:
        return None
    try:
        return [int(s) for s in text.split(",") if s.strip()]
    except ValueError:
        raise InputError(
            f"--slices '{text}' must be comma-separated slice numbers, e.g. 0,5,10"
        ) from None


def _check_images(channels: int, jobs: list[dict], args, slices: list[int] | None) -> None:
    """Every image opens with the model's channel count and holds the slices asked for."""
    from ..core.data.read import read_image
    from ..core.data.volume import as_volume

    for job in jobs:
        img = job["image"]
        vol = as_volume(read_image(img, args.channel_axis), channel_axis=args.channel_axis)
        Z, have = vol.shape[:2]
        if have != channels:
            raise InputError(
                f"the model expects {channels} channel(s) but '{img.name}' has {have}: "
                "choose the image (or --channel-axis) the model was trained on"
            )
        bad = [z for z in slices or () if not 0 <= z < Z]
        if bad:
            raise InputError(
                f"--slices {bad[:5]} are outside '{img.name}' (slices 0..{Z - 1}); "
                "choose slices of the stack"
            )


def _check_model(model, cfg) -> None:
    from ..core.inference.tiling import check_tile
    from ..core.nets.build import required_multiple

    if cfg.instances and not model.classes.binary:
        raise InputError(
            f"--instances is for binary models; this model segments {model.classes.k} classes "
            f"({', '.join(model.classes.names)}): leave --instances out"
        )
    check_tile(cfg.tile, required_multiple(model.model_cfg))


@contextlib.contextmanager
def _no_partial_outputs(job: dict, overwrite: bool) -> Iterator[None]:
    """Replace (--overwrite, ours: checked) or create the job's outputs; if anything fails,
    remove what this job wrote - files, zarr stores and the folders made for them."""
    from ..core.data.write import check_output_path, remove_output

    paths = [job[key] for key, _ in OUT_KEYS if job[key] is not None]
    made_dirs = sorted(
        {d for p in paths for d in p.parents if not d.exists()},
        key=lambda d: len(d.parts),
        reverse=True,
    )
    for p in paths:
        if overwrite and p.exists():
            check_output_path(p, overwrite=True)
            remove_output(p)
    try:
        yield
    except BaseException as e:
        for p in paths:
            with contextlib.suppress(OSError):
                remove_output(p)
        for d in made_dirs:
            with contextlib.suppress(OSError):
                d.rmdir()  # only if empty
        if isinstance(e, OSError):
            _name_the_path(e, job, paths)
        raise


def _name_the_path(e: OSError, job: dict, outputs: list[Path]) -> None:
    """Point an OS error at the output or image it concerns (printed by cli.main)."""
    image = job["image"]
    if not isinstance(e.filename, (str, bytes, os.PathLike)) or not e.filename:
        e.filename, e.filename2, e.temseg_verb = str(image), str(outputs[0]), "predict"
        return
    where = Path(os.path.abspath(os.fsdecode(e.filename)))
    for path, verb in [*((p, "write") for p in outputs), (image, "read")]:
        target = Path(os.path.abspath(path))
        if where == target or target in where.parents:
            e.filename, e.temseg_verb = str(path), verb
            return


def _create(path: Path | None, shape: tuple, dtype: Any) -> Any:
    from ..core.data.write import create_output

    return None if path is None else create_output(path, shape, dtype)


def _predict_one(model, job: dict, args, cfg, slices) -> Any:
    import numpy as np

    from ..core.data.read import read_image
    from ..core.data.volume import as_volume
    from ..core.inference.outputs import prob_dtype, prob_shape
    from ..core.inference.predict import predict_stack

    vol = as_volume(read_image(job["image"], args.channel_axis), channel_axis=args.channel_axis)
    Z, _, Y, X = vol.shape
    shape = (Y, X) if Z == 1 else (Z, Y, X)
    k = model.classes.k
    prob = _create(job["prob"], prob_shape(shape, k), prob_dtype(cfg.prob_dtype, k))
    labels = _create(job["labels"], shape, np.uint32 if cfg.instances else np.uint8)
    unc = _create(job["unc"], shape, np.float32)
    gen = predict_stack(
        model, vol, cfg, prob_out=prob, labels_out=labels, uncertainty_out=unc, slices=slices
    )
    try:
        res = drive(gen, quiet=args.quiet)
    finally:  # an error or Ctrl-C outside the generator: stop its threads before any cleanup
        gen.close()
    for out in (prob, labels, unc):
        if hasattr(out, "flush"):
            out.flush()
    return res, (Z, Y, X)


def _cmd_predict(args) -> int:
    """Validate everything (options, paths, model, every image) before creating any output."""
    from ..core.data.read import is_image_folder, list_images
    from ..core.interop.bioimageio.load import is_package, load_any_model
    from ..core.modelfile.format import read_metadata

    cfg = predict_config(given(args, PREDICT_CLASSES))
    image = Path(args.image)
    jobs = _targets(args, list_images(image), is_image_folder(image), cfg.uncertainty)
    slices = _parse_slices(args.slices)
    if args.dask_scheduler:
        if is_package(args.model):
            raise InputError(
                "--dask-scheduler runs .safetensors model files, not bioimage.io packages: "
                "leave it out"
            )
        _check_cluster_args(args, cfg, jobs)
        _check_images(int(read_metadata(args.model)["input"]["channels"]), jobs, args, slices)
        return _predict_on_cluster(args, cfg, jobs)
    model = load_any_model(args.model)
    _check_model(model, cfg)
    _check_images(model.input_spec.channels, jobs, args, slices)
    for job in jobs:
        with _no_partial_outputs(job, args.overwrite):
            res, (Z, Y, X) = _predict_one(model, job, args, cfg, slices)
        print(
            f"{job['image'].name}: {len(res.slices)}/{Z} slice(s) of {Y} x {X} "
            f"in {res.seconds:.1f} s "
            f"({res.mpix_per_s:.2f} Mpix/s, {res.device}) -> {job['prob']}",
            file=sys.stderr,
        )
    if not model.classes.binary:
        print(
            f"class ids: {model.classes.describe(sparse=False)}"
            + (f", {model.classes.k} = unsure" if cfg.min_confidence > 0 else "")
            + f"; probabilities are (Z, {model.classes.k} classes, Y, X)",
            file=sys.stderr,
        )
    return 0


def _check_cluster_args(args, cfg, jobs: list[dict]) -> None:
    outs = [j[k] for j in jobs for k in ("prob", "labels") if j[k] is not None]
    bad = [str(p) for p in outs if p.suffix.lower() != ".zarr"]
    if bad or cfg.uncertainty or cfg.instances or args.slices:
        raise InputError(
            "--dask-scheduler writes zarr only (OUT and --labels ending in .zarr, "
            "--format .zarr for folders) without --uncertainty, --instances, --slices"
        )


def _predict_on_cluster(args, cfg, jobs: list[dict]) -> int:
    from distributed import Client

    from ..core.data.read import read_image
    from ..core.inference.distributed import predict_dask

    with Client(args.dask_scheduler):
        for job in jobs:
            with _no_partial_outputs(job, args.overwrite):
                res = predict_dask(
                    args.model,
                    read_image(job["image"], args.channel_axis),
                    job["prob"],
                    cfg,
                    labels_zarr_path=job["labels"],
                    channel_axis=args.channel_axis,
                )
            print(
                f"{job['image'].name}: {len(res.slices)} slice(s) in {res.seconds:.1f} s on "
                f"{args.dask_scheduler} -> {job['prob']}",
                file=sys.stderr,
            )
    return 0


COMMANDS: list = [(_add_predict, _cmd_predict)]

__all__ = ["COMMANDS"]
