"""`temseg train` and `temseg demo`: both drive core.training.fit (the demo also predicts)."""

from __future__ import annotations

import sys
import time
from pathlib import Path

from ..core.config.options import TRAIN_CLASSES, train_configs
from ..core.errors import InputError
from ..core.progress import drive
from .options import add_option_flags, given

DEMO_ANNOTATED = (1, 4)  # slices the demo "paints" (ground truth); the others are unseen


# --- train -----------------------------------------------------------------------------------
def _add_train(sub) -> None:
    p = sub.add_parser(
        "train",
        help="train a model on images + painted masks",
        description="Train a U-Net. IMAGE/MASK: a TIFF (2D or stack) or folders of "
        "PNG/TIFF images with masks of the same names. Every option below is also "
        "a keyword of api.train and a setting of the Train dock.",
    )
    p.add_argument("image")
    p.add_argument("mask")
    p.add_argument("-o", "--output", required=True, help="model file to write (.safetensors)")
    d = p.add_argument_group("data")
    d.add_argument("--val-image", help="validation image(s); default: hold out --val-fraction")
    d.add_argument("--val-mask")
    d.add_argument("--channel-axis", type=int, default=None, help="axis of the channels in IMAGE")
    d.add_argument(
        "--annotated", default=None, help="comma-separated slices to use (even if empty)"
    )
    d.add_argument("--resume", default=None, help="continue training this model file")
    p.add_argument("--overwrite", action="store_true", help="replace OUTPUT if it exists")
    p.add_argument("-q", "--quiet", action="store_true")
    add_option_flags(p, TRAIN_CLASSES, "model and training")


def check_model_output(out: Path, overwrite: bool, model_cfg) -> None:
    """Refuse, before any training, an output the model could not be saved to, or on a
    drive too full for the network of ``model_cfg``."""
    if out.suffix != ".safetensors":
        raise InputError(
            f"'{out}': model files end in .safetensors: use -o {out.with_suffix('.safetensors')}"
        )
    if out.is_dir():
        raise InputError(
            f"'{out}' is a folder: give a file name, e.g. -o {out / 'model.safetensors'}"
        )
    if out.exists() and not overwrite:
        raise InputError(f"'{out}' exists: choose another --output or pass --overwrite")
    from ..core.data.write import writable_folder

    try:
        writable_folder(out.parent)
    except NotADirectoryError as e:
        raise InputError(
            f"cannot save into '{out.parent}': '{e.filename}' is a file, not a folder"
        ) from None
    except OSError as e:
        raise InputError(
            f"cannot save into '{e.filename or out.parent}' ({e.strerror or e}): "
            "choose another --output"
        ) from None
    from ..core.modelfile.save import check_room

    check_room(out, model_cfg)


def training_device(tcfg) -> str:
    """The device and precision a run of ``tcfg`` gets, e.g. "cuda (NVIDIA H100 ..., compute
    9.0), bf16 mixed precision" (an unusable device is refused here, before reading data)."""
    from ..core.device import describe, resolve_device

    return describe(resolve_device(tcfg.device), "auto" if tcfg.amp else False)


def _slices(text: str | None) -> list[int] | None:
    if not text:
        return None
    try:
        return [int(v) for v in text.split(",")]
    except ValueError:
        raise InputError(f"--annotated takes slice numbers like 0,3,7; got '{text}'") from None


def _cmd_train(args) -> int:
    from ..core.data.read import read_training_set
    from ..core.modelfile.format import load_model
    from ..core.modelfile.save import save_or_rescue
    from ..core.progress import StopToken
    from ..core.training.loop import fit

    out = Path(args.output)
    if (args.val_image is None) != (args.val_mask is None):
        raise InputError("give both --val-image and --val-mask, or neither")
    tcfg, mcfg = train_configs(given(args, TRAIN_CLASSES))
    print(f"training on {training_device(tcfg)}", file=sys.stderr)
    annotated = _slices(args.annotated)
    resume = load_model(args.resume) if args.resume else None
    check_model_output(out, args.overwrite, resume.model_cfg if resume else mcfg)
    images, masks, names = read_training_set(args.image, args.mask)
    val = (None, None, None)
    if args.val_image:
        val = read_training_set(args.val_image, args.val_mask)
    print(f"{len(images)} training image(s): {', '.join(names[:5])}", file=sys.stderr)
    stop = StopToken()
    gen = fit(
        images,
        masks,
        train_cfg=tcfg,
        model_cfg=mcfg,
        channel_axis=args.channel_axis,
        val_images=val[0],
        val_masks=val[1],
        annotated=annotated,
        resume=resume,
        stop=stop,
    )
    model = drive(gen, stop, args.quiet)
    done = save_or_rescue(model, out, args.overwrite)
    if stop.requested:
        print("stopped early (Ctrl-C): kept the best model so far", file=sys.stderr)
    if done.problem is not None:
        lost = "the trained model is lost when temseg exits: free some space and train again"
        print(f"temseg train: error: {done.message(lost)}", file=sys.stderr)
        return 1
    dice = max((h.get("val_dice", -1) for h in model.history), default=-1)
    print(
        f"saved {out} ({model!r}); best validation Dice {dice:.3f}" if dice >= 0 else f"saved {out}"
    )
    if not model.classes.binary:
        print(class_summary(model, tcfg.sparse))
    from ..core.training.teacher import comparison

    if comparison(model):  # a taught U-Net: which of the two models was saved
        print(comparison(model))
    ended = model.history[-1].get("stopped") if model.history else None
    if ended:  # out of memory: the best model so far is saved, the run is not complete
        print(f"temseg train: stopped early: {ended}", file=sys.stderr)
        return 1
    return 0 if model.history else 1


def class_summary(model, sparse: bool) -> str:
    """The classes a K-class model learnt (label values) and its best per-class Dice."""
    from ..core.training.objectives import per_class_text

    table = model.classes
    lines = [f"{table.k} classes; mask labels: {table.describe(sparse)}"]
    best = max(
        (h for h in model.history if "val_dice_classes" in h),
        key=lambda h: h["val_dice"],
        default=None,
    )
    if best is not None:
        per = per_class_text(table.names, best["val_dice_classes"])
        lines.append(f"validation Dice per class (epoch {best['epoch']}): {per}")
    return "\n".join(lines)


# --- demo ------------------------------------------------------------------------------------
def _add_demo(sub) -> None:
    p = sub.add_parser(
        "demo",
        help="train and predict on built-in synthetic FIB-SEM data (offline)",
        description="Generate a synthetic 2-detector FIB-SEM stack, 'paint' two slices "
        "from its ground truth, train a small U-Net for a bounded time, predict the "
        "whole stack with tiling and report Dice/IoU on the slices it never saw.",
    )
    p.add_argument("--out", default="temseg-demo", help="output folder (default ./temseg-demo)")
    p.add_argument("--seconds", type=float, default=90.0, help="training time budget (default 90)")
    p.add_argument("--slices", type=int, default=8)
    p.add_argument("--size", type=int, default=256, help="slice height and width in pixels")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default="auto")
    p.add_argument(
        "--classes",
        action="store_true",
        help="multi-class: the 4-phase FIB-SEM stack (matrix, pores, grains, hydration "
        "products), per-class IoU on the unseen slices",
    )
    p.add_argument(
        "--overwrite", action="store_true", help="replace files in an existing --out folder"
    )
    p.add_argument("-q", "--quiet", action="store_true")


def _cmd_demo(args) -> int:
    import numpy as np
    import tifffile

    from ..core.config.predict import PredictConfig
    from ..core.config.train import TrainConfig
    from ..core.data.synthetic.fibsem import make_fibsem
    from ..core.evaluation.metrics import evaluate_stack
    from ..core.inference.predict import predict_stack
    from ..core.training.loop import fit

    out = Path(args.out)
    if out.exists() and any(out.iterdir()) and not args.overwrite:
        raise InputError(f"'{out}' exists and is not empty: pass --out NEWDIR or --overwrite")
    if args.classes:
        return demo_classes(args, out)
    if args.slices < max(DEMO_ANNOTATED) + 2:
        raise InputError(f"the demo needs --slices >= {max(DEMO_ANNOTATED) + 2}")
    t0 = time.monotonic()
    image, truth = make_fibsem(shape=(args.slices, 2, args.size, args.size), seed=args.seed)
    painted = np.zeros_like(truth)
    painted[list(DEMO_ANNOTATED)] = truth[list(DEMO_ANNOTATED)]
    print(
        f"synthetic FIB-SEM stack {image.shape} (Z, C, Y, X); painted slices {DEMO_ANNOTATED}",
        file=sys.stderr,
    )
    cfg = TrainConfig(
        patch=min(128, args.size // 16 * 16),
        batch=4,
        seconds=args.seconds,
        epochs=None,
        steps_per_epoch=25,
        lr=2e-3,
        seed=args.seed,
        device=args.device,
        context=1,
    )
    model = drive(fit(image, painted, train_cfg=cfg), quiet=args.quiet)
    res = drive(predict_stack(model, image, PredictConfig(device=args.device)), quiet=args.quiet)
    prob, labels = res.prob, res.labels
    unseen = [z for z in range(args.slices) if z not in DEMO_ANNOTATED]
    scores = evaluate_stack(labels[unseen], truth[unseen])["overall"]
    out.mkdir(parents=True, exist_ok=True)
    for name, arr in (
        ("image", image),
        ("probability", prob),
        ("labels", labels),
        ("truth", truth),
    ):
        tifffile.imwrite(out / f"{name}.tif", np.asarray(arr))
    model.save(out / "model.safetensors", overwrite=True)
    print(
        f"unseen slices {unseen}: Dice {scores['dice']:.3f}  IoU {scores['iou']:.3f}  "
        f"precision {scores['precision']:.3f}  recall {scores['recall']:.3f}"
    )
    print(
        f"wrote image, probability, labels, truth (.tif) and model.safetensors to {out}/ "
        f"in {time.monotonic() - t0:.0f} s"
    )
    return 0


def demo_classes(args, out: Path) -> int:
    """``temseg demo --classes``: 3 painted slices of the 4-phase stack, per-class IoU."""
    import numpy as np
    import tifffile

    from ..core.config.classes import ClassTable
    from ..core.config.predict import PredictConfig
    from ..core.config.train import TrainConfig
    from ..core.data.synthetic.phases import PHASE_COLORS, PHASE_NAMES, make_phases
    from ..core.evaluation.metrics import evaluate_classes
    from ..core.evaluation.report import class_table_text
    from ..core.inference.predict import predict_stack
    from ..core.training.loop import fit

    if args.slices < 5:
        raise InputError("the multi-class demo needs --slices >= 5 (3 painted, the rest unseen)")
    t0 = time.monotonic()
    image, truth = make_phases((args.slices, args.size, args.size), seed=args.seed)
    painted_z = [int(round(z)) for z in np.linspace(1, args.slices - 2, 3)]
    painted = np.zeros_like(truth)
    painted[painted_z] = truth[painted_z]
    table = ClassTable(PHASE_NAMES, PHASE_COLORS)
    print(
        f"synthetic FIB-SEM phases {image.shape} (Z, C, Y, X), classes "
        f"{table.describe(sparse=False)}; painted slices {painted_z}",
        file=sys.stderr,
    )
    cfg = TrainConfig(seconds=args.seconds, seed=args.seed, device=args.device)
    model = drive(
        fit(image, painted, train_cfg=cfg, classes=table, annotated=painted_z), quiet=args.quiet
    )
    res = drive(predict_stack(model, image, PredictConfig(device=args.device)), quiet=args.quiet)
    unseen = [z for z in range(args.slices) if z not in painted_z]
    print(class_table_text(evaluate_classes(res.labels[unseen], truth[unseen], PHASE_NAMES), False))
    out.mkdir(parents=True, exist_ok=True)
    for name, arr in (("image", image), ("probability", res.prob), ("labels", res.labels)):
        tifffile.imwrite(out / f"{name}.tif", np.asarray(arr))
    tifffile.imwrite(out / "truth.tif", truth)
    model.save(out / "model.safetensors", overwrite=True)
    print(
        f"wrote image, probability, labels, truth (.tif) and model.safetensors to {out}/ "
        f"in {time.monotonic() - t0:.0f} s"
    )
    return 0


COMMANDS = [(_add_demo, _cmd_demo), (_add_train, _cmd_train)]
