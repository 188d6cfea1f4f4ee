"""`temseg learning-curve`: accuracy against the number of annotated images (seed 002)."""

from __future__ import annotations

import sys
from pathlib import Path

from ..core.config.options import TRAIN_CLASSES, train_configs
from ..core.errors import InputError
from ..core.progress import drive
from .options import add_option_flags, given

OUTPUTS = ("curve.csv", "curve.png")


def _add(sub) -> None:
    from ..core.guidance.learning_curve import LADDER, CurveConfig

    d = CurveConfig()
    p = sub.add_parser(
        "learning-curve",
        help="how much to annotate: accuracy vs number of training images",
        description="Train on nested random subsets of IMAGES/MASKS (folders of images with "
        "masks of the same names) of growing size, the same budget each, score every model "
        "on held-out images, and write OUT/curve.csv and OUT/curve.png. The training options "
        "below are those of `temseg train` (the budget per size: --seconds or --epochs).",
    )
    p.add_argument("images")
    p.add_argument("masks")
    p.add_argument("-o", "--output", required=True, help="folder for curve.csv and curve.png")
    c = p.add_argument_group("study")
    c.add_argument(
        "--sizes",
        type=int,
        nargs="+",
        default=None,
        help=f"training-set sizes (default: {', '.join(map(str, LADDER[:5]))}, ... below "
        "the number of training images, then all of them)",
    )
    c.add_argument("--seeds", type=int, default=d.seeds, help="random subsets per size")
    c.add_argument(
        "--test-fraction",
        type=float,
        default=d.test_fraction,
        help="share held out for testing when --test-images is not given",
    )
    c.add_argument("--test-images", default=None, help="held-out test images (folder)")
    c.add_argument("--test-masks", default=None)
    c.add_argument(
        "--compare-augment", action="store_true", help="also train each size without augmentation"
    )
    c.add_argument("--flat-within", type=float, default=d.flat_within, help="what counts as flat")
    p.add_argument("--overwrite", action="store_true", help="replace curve.csv / curve.png")
    p.add_argument("-q", "--quiet", action="store_true")
    add_option_flags(p, TRAIN_CLASSES, "model and training")


def _check_output(out: Path, overwrite: bool) -> None:
    from ..core.data.write import writable_folder

    if out.exists() and not out.is_dir():
        raise InputError(f"'{out}' is a file: give a folder for curve.csv and curve.png")
    taken = [n for n in OUTPUTS if (out / n).exists()]
    if taken and not overwrite:
        raise InputError(f"'{out / taken[0]}' exists: choose another -o folder or pass --overwrite")
    try:
        writable_folder(out)
    except OSError as e:
        raise InputError(f"cannot write into '{out}': {e.strerror or e}") from None


def _cmd(args) -> int:
    from ..core.data.read import read_training_set
    from ..core.guidance import learning_curve as lc
    from ..core.progress import StopToken

    out = Path(args.output)
    _check_output(out, args.overwrite)
    cfg = lc.CurveConfig(
        sizes=args.sizes,
        seeds=args.seeds,
        test_fraction=args.test_fraction,
        compare_augment=args.compare_augment,
        flat_within=args.flat_within,
    )
    tcfg, mcfg = train_configs(given(args, TRAIN_CLASSES))
    images, masks, names = read_training_set(args.images, args.masks)
    test = (None, None)
    if (args.test_images is None) != (args.test_masks is None):
        raise InputError("give both --test-images and --test-masks, or neither")
    if args.test_images:
        test = read_training_set(args.test_images, args.test_masks)[:2]
    stop = StopToken()
    gen = lc.learning_curve(
        images, masks, cfg, tcfg, mcfg, test_images=test[0], test_masks=test[1], stop=stop
    )
    result = drive(gen, stop, args.quiet)
    out.mkdir(parents=True, exist_ok=True)
    lc.write_csv(result, out / OUTPUTS[0])
    lc.plot(result, out / OUTPUTS[1], cfg.flat_within)
    print(lc.table(result, cfg.flat_within))
    note = " (stopped early: the runs finished so far)" if result.stopped else ""
    print(f"wrote {out / OUTPUTS[0]} and {out / OUTPUTS[1]}{note}", file=sys.stderr)
    return 0 if result.rows else 1


COMMANDS: list = [(_add, _cmd)]

__all__ = ["COMMANDS"]
