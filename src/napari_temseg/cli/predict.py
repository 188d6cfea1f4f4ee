"""`temseg predict`: tiled inference into TIFF / zarr, for files or folders of images."""

from __future__ import annotations

import sys

from ..core.config.options import PREDICT_CLASSES, predict_config
from ..core.errors import InputError
from ..core.inference.jobs import FILE_FORMATS
from ..core.progress import drive
from .options import add_option_flags, given


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
    o.add_argument(
        "--format", default=".tif", choices=FILE_FORMATS, help="file type in folder mode"
    )
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


def _parse_slices(text: str | None) -> list[int] | None:
    if not text:
        return None
    try:
        return [int(s) for s in text.split(",") if s.strip()]
    except ValueError:
        raise InputError(
            f"--slices '{text}' must be comma-separated slice numbers, e.g. 0,5,10"
        ) from None


def _cmd_predict(args) -> int:
    """Parse, one core call (which checks everything before creating any output), print."""
    from ..core.inference.folder import predict_files
    from ..core.interop.bioimageio.load import load_any_model

    cfg = predict_config(given(args, PREDICT_CLASSES))
    slices = _parse_slices(args.slices)
    # a cluster's workers load the model from its file; here it may be a bioimage.io package
    model = args.model if args.dask_scheduler else load_any_model(args.model)
    gen = predict_files(
        model,
        args.image,
        args.output,
        cfg,
        labels=args.labels,
        fmt=args.format,
        channel_axis=args.channel_axis,
        slices=slices,
        overwrite=args.overwrite,
        model_file=args.model,
        scheduler=args.dask_scheduler,
    )
    try:
        res = drive(gen, quiet=args.quiet)
    finally:  # an error or Ctrl-C outside the generator: its clean-up runs now
        gen.close()
    _report(res, cfg)
    return 0


def _report(res, cfg) -> None:
    for f in res.files:
        r, (Z, Y, X) = f.result, f.shape
        print(
            f"{f.job.image.name}: {len(r.slices)}/{Z} slice(s) of {Y} x {X} in {r.seconds:.1f} s "
            f"({r.mpix_per_s:.2f} Mpix/s, {r.device}) -> {f.job.prob}",
            file=sys.stderr,
        )
    classes = res.classes
    if classes is not None and not classes.binary:
        print(
            f"class ids: {classes.describe(sparse=False)}"
            + (f", {classes.k} = unsure" if cfg.min_confidence > 0 else "")
            + f"; probabilities are (Z, {classes.k} classes, Y, X)",
            file=sys.stderr,
        )


COMMANDS: list = [(_add_predict, _cmd_predict)]

__all__ = ["COMMANDS"]
