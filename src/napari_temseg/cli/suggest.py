"""`temseg suggest`: where to annotate next - regions ranked by the model's uncertainty."""

from __future__ import annotations

import sys
from pathlib import Path

from ..core.errors import InputError
from .options import add_option_flags, given


def _add(sub) -> None:
    from ..core.config.options import PREDICT_CLASSES
    from ..core.config.suggest import PREDICT_OPTIONS, SuggestConfig

    p = sub.add_parser(
        "suggest",
        help="rank the regions to annotate next by the model's uncertainty",
        description="Score squares of IMAGE that MASK does not annotate yet by the model's "
        "uncertainty (entropy of its probabilities, or the variance of 8 test-time views) and "
        "print the N most uncertain, spread out, as rank, slice, y, x, height, width, score. "
        "Paint them (all classes inside the square, background too: sparse scribbles), train "
        "again with --resume, and ask again. Options: also keywords of api.suggest_regions and "
        "settings of the Annotate dock.",
    )
    p.add_argument("model", help="model file (.safetensors)")
    p.add_argument("image", help="image or stack (TIFF, zarr, npy, PNG)")
    p.add_argument("--mask", default=None, help="the annotation so far (same shape as IMAGE)")
    p.add_argument(
        "--sparse",
        action="store_true",
        help="MASK holds scribbles (0 = unlabelled); default: painted slices are fully labelled",
    )
    p.add_argument("--channel-axis", type=int, default=None, help="axis of the channels in IMAGE")
    p.add_argument("-o", "--output", default=None, help="also write the table to this .csv")
    p.add_argument("--overwrite", action="store_true", help="replace OUTPUT if it exists")
    p.add_argument("-q", "--quiet", action="store_true")
    add_option_flags(p, (SuggestConfig,), "suggestions", short={"n": "-n"})
    add_option_flags(p, PREDICT_CLASSES, "prediction of the scored regions", only=PREDICT_OPTIONS)


def _cmd(args) -> int:
    import numpy as np

    from ..core.config.options import PREDICT_CLASSES, build, predict_config
    from ..core.config.suggest import SuggestConfig
    from ..core.data.read import read_image
    from ..core.data.volume import as_volume
    from ..core.guidance.suggest import suggest_regions
    from ..core.modelfile.format import load_model
    from ..core.progress import StopToken, drive

    out = None if args.output is None else Path(args.output)
    if out is not None and out.suffix.lower() != ".csv":
        raise InputError(f"'{out}': the table is a .csv file: use -o {out.with_suffix('.csv')}")
    if out is not None and out.exists() and not args.overwrite:
        raise InputError(f"'{out}' exists: choose another --output or pass --overwrite")
    cfg = build(SuggestConfig, given(args, (SuggestConfig,)))
    pcfg = predict_config(given(args, PREDICT_CLASSES))
    model = load_model(args.model)
    vol = as_volume(read_image(args.image, args.channel_axis), channel_axis=args.channel_axis)
    mask = None if args.mask is None else read_image(args.mask)
    stop = StopToken()
    res = drive(
        suggest_regions(model, vol, mask, cfg, sparse=args.sparse, predict_cfg=pcfg, stop=stop),
        stop,
        quiet=args.quiet,
    )
    print("rank\tslice\ty\tx\theight\twidth\tscore")
    for r in res.regions:
        print(f"{r.rank}\t{r.z}\t{r.y}\t{r.x}\t{r.height}\t{r.width}\t{r.score:.4f}")
    if out is not None:
        from ..core.evaluation.measure import write_csv

        rows = res.table()
        write_csv({k: np.array([row[k] for row in rows]) for k in rows[0]} if rows else {}, out)
    print(
        f"scored {res.scored} of {res.candidates} unannotated regions "
        f"({res.mpix:.1f} Mpix) in {res.seconds:.1f} s" + (" (stopped)" if res.stopped else ""),
        file=sys.stderr,
    )
    return 0


COMMANDS: list = [(_add, _cmd)]

__all__ = ["COMMANDS"]
