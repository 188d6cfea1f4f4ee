"""`temseg predict` (tiled inference into TIFF / zarr, files or folders) and `temseg evaluate`."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from .cli import run_with_bar
from .core.errors import InputError

OUT_FORMATS = (".tif", ".tiff", ".zarr")


# --- predict ---------------------------------------------------------------------------------
def _add_predict(sub) -> None:
    p = sub.add_parser(
        "predict", help="segment an image, a stack or a folder of images with a trained model",
        description="Tiled inference, slice by slice: the stack is never loaded whole. IMAGE: TIFF, "
        "zarr, PNG/JPEG or a folder of them. OUT: .tif or .zarr (probabilities); for a folder "
        "IMAGE, OUT (and --labels) are folders receiving one file per image.",
    )
    p.add_argument("model", help="model file (.safetensors) from `temseg train` or the napari plugin")
    p.add_argument("image")
    p.add_argument("-o", "--output", required=True, help="probability output: .tif, .zarr (or a folder)")
    p.add_argument("--labels", default=None, help="also write labels (prob >= threshold): .tif, .zarr or folder")
    p.add_argument("--uncertainty", default=None, help="with --tta: variance of the 8 views (.tif/.zarr)")
    p.add_argument("--format", default=".tif", choices=OUT_FORMATS, help="file type in folder mode")
    g = p.add_argument_group("tiling")
    g.add_argument("--tile", type=int, default=512, help="tile size in pixels (rounded to the network stride)")
    g.add_argument("--overlap", type=float, default=0.25, help="tile overlap fraction (default 0.25)")
    g.add_argument("--batch", type=int, default=4, help="tiles per forward pass")
    g.add_argument("--blend", default="gaussian", choices=("gaussian", "constant"))
    g.add_argument("--tta", action="store_true", help="average 8 flips/rotations (8x slower)")
    g.add_argument("--device", default="auto", help="auto (CUDA, MPS, CPU), cpu, cuda, cuda:N, mps")
    g.add_argument("--no-amp", dest="amp", action="store_const", const=False, default="auto",
                   help="full float32 (default: bf16/fp16 on CUDA, bf16 on CPUs with native bf16)")
    g.add_argument("--dask-scheduler", default=None, metavar="ADDRESS",
                   help="run on a dask.distributed cluster (e.g. tcp://host:8786); OUT must be .zarr")
    o = p.add_argument_group("outputs")
    o.add_argument("--threshold", type=float, default=None, help="default: the model's threshold")
    o.add_argument("--prob-dtype", default="float32", choices=("float32", "float16", "uint8"),
                   help="uint8 stores 0-255 (4x smaller files)")
    o.add_argument("--channel-axis", type=int, default=None)
    o.add_argument("--slices", default=None, help="comma-separated slices to predict (others stay 0)")
    o.add_argument("--min-size", type=int, default=0, help="remove objects smaller than N px (labels)")
    o.add_argument("--fill-holes", action="store_true", help="fill holes in objects (labels)")
    o.add_argument("--instances", action="store_true", help="labels: one id per connected object (uint32)")
    p.add_argument("--overwrite", action="store_true", help="replace outputs that exist")
    p.add_argument("-q", "--quiet", action="store_true")


def _is_folder(path: Path) -> bool:
    from .core.io import _looks_like_zarr

    return path.is_dir() and path.suffix.lower() != ".zarr" and not _looks_like_zarr(path)


def _targets(args, images: list[Path], folder: bool) -> list[dict]:
    """Output paths per image; all checked before anything runs (no half-done folders)."""
    names = {"prob": args.output, "labels": args.labels, "unc": args.uncertainty}
    jobs = []
    for img in images:
        job = {"image": img}
        for key, base in names.items():
            if base is None:
                job[key] = None
                continue
            path = Path(base) / (img.stem + args.format) if folder else Path(base)
            if not folder and path.suffix.lower() not in OUT_FORMATS:
                raise InputError(f"output '{path}' must end in .tif, .tiff or .zarr")
            if path.exists() and not args.overwrite:
                raise InputError(f"'{path}' exists; choose another output or pass --overwrite")
            if path.resolve() == img.resolve():
                raise InputError(f"output '{path}' is the input image; choose another name")
            job[key] = path
        jobs.append(job)
    return jobs


def _create(path: Path | None, shape: tuple, dtype: Any, overwrite: bool) -> Any:
    from .core.io import create_output

    return None if path is None else create_output(path, shape, dtype, overwrite=overwrite)


def _predict_one(model, job: dict, args, slices) -> Any:
    import numpy as np

    from .core.data import as_volume
    from .core.io import read_image
    from .core.predict import predict_stack

    vol = as_volume(read_image(job["image"], args.channel_axis), channel_axis=args.channel_axis)
    Z, _, Y, X = vol.shape
    shape = (Y, X) if Z == 1 else (Z, Y, X)
    prob = _create(job["prob"], shape, args.prob_dtype, args.overwrite)
    labels = _create(job["labels"], shape, np.uint32 if args.instances else np.uint8, args.overwrite)
    unc = _create(job["unc"], shape, np.float32, args.overwrite)
    gen = predict_stack(
        model, vol, prob_out=prob, labels_out=labels, uncertainty_out=unc, tile=args.tile,
        overlap=args.overlap, batch=args.batch, blend=args.blend, tta=args.tta, threshold=args.threshold,
        device=args.device, slices=slices, min_size=args.min_size, fill_holes=args.fill_holes,
        instances=args.instances, amp=args.amp,
    )
    res = run_with_bar(gen, args.quiet)
    for out in (prob, labels, unc):
        if hasattr(out, "flush"):
            out.flush()
    return res, (Z, Y, X)


def _cmd_predict(args) -> int:
    from .core.io import list_images
    from .core.modelfile import load_model

    if args.uncertainty and not args.tta:
        raise InputError("--uncertainty needs --tta (it is the spread of the 8 augmented views)")
    image = Path(args.image)
    folder = _is_folder(image)
    images = list_images(image)
    jobs = _targets(args, images, folder)
    slices = [int(s) for s in args.slices.split(",")] if args.slices else None
    if args.dask_scheduler:
        return _predict_on_cluster(args, jobs, folder)
    model = load_model(args.model)
    for job in jobs:
        res, (Z, Y, X) = _predict_one(model, job, args, slices)
        print(f"{job['image'].name}: {len(res.slices)}/{Z} slice(s) of {Y} x {X} in {res.seconds:.1f} s "
              f"({res.mpix_per_s:.2f} Mpix/s, {res.device}) -> {job['prob']}", file=sys.stderr)
    return 0


def _predict_on_cluster(args, jobs: list[dict], folder: bool) -> int:
    from distributed import Client

    from .core.data import as_volume
    from .core.io import read_image
    from .core.predict import predict_dask

    bad = [str(j["prob"]) for j in jobs if j["prob"].suffix.lower() != ".zarr"]
    if bad or args.uncertainty or args.instances or args.slices:
        raise InputError("--dask-scheduler writes zarr only (OUT and --labels ending in .zarr, "
                         "--format .zarr for folders) without --uncertainty, --instances, --slices")
    with Client(args.dask_scheduler):
        for job in jobs:
            arr = read_image(job["image"], args.channel_axis)
            as_volume(arr, channel_axis=args.channel_axis)  # validates the axes early
            res = predict_dask(
                args.model, arr, job["prob"], labels_zarr_path=job["labels"], channel_axis=args.channel_axis,
                prob_dtype=args.prob_dtype, threshold=args.threshold, min_size=args.min_size,
                fill_holes=args.fill_holes, overwrite=args.overwrite, tile=args.tile, overlap=args.overlap,
                batch=args.batch, blend=args.blend, tta=args.tta, device=args.device, amp=args.amp,
            )
            print(f"{job['image'].name}: {len(res.slices)} slice(s) in {res.seconds:.1f} s on "
                  f"{args.dask_scheduler} -> {job['prob']}", file=sys.stderr)
    return 0


# --- evaluate --------------------------------------------------------------------------------
def _add_evaluate(sub) -> None:
    p = sub.add_parser(
        "evaluate", help="Dice, IoU, precision, recall of a prediction against ground truth",
        description="PRED and TRUTH: label images (non-zero = foreground) as TIFF/zarr/PNG or folders "
        "of matching names. A float PRED (probabilities) is thresholded at --threshold; with "
        "--threshold a uint8 PRED is read as probability 0-255.",
    )
    p.add_argument("pred")
    p.add_argument("truth")
    p.add_argument("--threshold", type=float, default=None, help="for probability maps (default 0.5)")
    p.add_argument("--json", action="store_true", help="print the full result as JSON")


class _Thresholded:
    """Lazy ``pred >= threshold`` (per slice) for probability maps."""

    def __init__(self, a: Any, thr: float):
        import numpy as np

        self.a, self.shape = a, tuple(a.shape)
        self.thr = thr * 255 if np.dtype(a.dtype) == np.uint8 else thr

    def __getitem__(self, idx: Any) -> Any:
        import numpy as np

        return np.asarray(self.a[idx]) >= self.thr

    def __array__(self, dtype: Any = None, copy: Any = None) -> Any:
        return self[...]


def _load_pair(pred_path: Path, truth_path: Path, thr: float | None) -> tuple[Any, Any]:
    import numpy as np

    from .core.io import read_image

    pred, truth = read_image(pred_path), read_image(truth_path)
    if np.dtype(pred.dtype).kind == "f" or thr is not None:
        pred = _Thresholded(pred, 0.5 if thr is None else thr)
    ps, ts = tuple(pred.shape), tuple(truth.shape)
    if ps != ts and len(ps) == 3 and ps[0] == 1 and ps[1:] == ts:
        pred = _Squeeze(pred)
    elif ps != ts and len(ts) == 3 and ts[0] == 1 and ts[1:] == ps:
        truth = _Squeeze(truth)
    return pred, truth


class _Squeeze:
    def __init__(self, a: Any):
        self.a, self.shape = a, tuple(a.shape[1:])

    def __getitem__(self, idx: Any) -> Any:
        return self.a[(0,) + (idx if isinstance(idx, tuple) else (idx,))]

    def __array__(self, dtype: Any = None, copy: Any = None) -> Any:
        import numpy as np

        return np.asarray(self[...])


def _evaluate_pairs(args) -> dict:
    from .core.io import list_pairs
    from .core.metrics import Counts, evaluate_stack

    pred, truth = Path(args.pred), Path(args.truth)
    if _is_folder(pred) != _is_folder(truth):
        raise InputError("give two label files or two folders of label images with matching names")
    pairs = list_pairs(pred, truth) if _is_folder(pred) else [(pred, truth)]
    results = {p.stem: evaluate_stack(*_load_pair(p, t, args.threshold)) for p, t in pairs}
    if len(results) == 1:
        return next(iter(results.values()))
    keys = ("tp", "fp", "fn", "tn")
    total = sum((Counts(*(r["overall"][k] for k in keys)) for r in results.values()), Counts())
    return {"overall": {**total.scores(), **{k: getattr(total, k) for k in keys}},
            "per_image": {name: r["overall"] for name, r in results.items()}}


def _cmd_evaluate(args) -> int:
    res = _evaluate_pairs(args)
    if args.json:
        print(json.dumps(res, indent=2))
        return 0
    o = res["overall"]
    print(f"overall  Dice {o['dice']:.4f}  IoU {o['iou']:.4f}  precision {o['precision']:.4f}  "
          f"recall {o['recall']:.4f}")
    rows = res.get("per_slice") if "per_slice" in res else [
        {"slice": name, **r} for name, r in res["per_image"].items()]
    if len(rows) > 1:
        print(f"{'slice/image':>12} {'Dice':>8} {'IoU':>8} {'prec':>8} {'recall':>8}")
        for r in rows:
            print(f"{str(r['slice']):>12} {r['dice']:8.4f} {r['iou']:8.4f} {r['precision']:8.4f} {r['recall']:8.4f}")
    return 0


COMMANDS: list = [(_add_predict, _cmd_predict), (_add_evaluate, _cmd_evaluate)]

__all__ = ["COMMANDS"]
