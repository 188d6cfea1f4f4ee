"""`temseg evaluate`: Dice, IoU, precision, recall of label files or folders."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from ..core.errors import InputError


# --- evaluate --------------------------------------------------------------------------------
def _add_evaluate(sub) -> None:
    p = sub.add_parser(
        "evaluate",
        help="Dice, IoU, precision, recall of a prediction against ground truth",
        description="PRED and TRUTH: label images (non-zero = foreground) as TIFF/zarr/PNG "
        "or folders of matching names. A float PRED (probabilities) is thresholded at "
        "--threshold; with --threshold a uint8 PRED is read as probability 0-255.",
    )
    p.add_argument("pred")
    p.add_argument("truth")
    p.add_argument(
        "--threshold", type=float, default=None, help="for probability maps (default 0.5)"
    )
    p.add_argument("--json", action="store_true", help="print the full result as JSON")
    m = p.add_argument_group("multi-class (per-class scores, mean IoU, confusion matrix)")
    m.add_argument("--classes", type=int, default=None, help="number of classes (labels 0..K-1)")
    m.add_argument("--class-names", default=None, help="class names, background first: a,b,c")
    m.add_argument("--model", default=None, help="take the classes from this model file")


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

    from ..core.data.read import read_image

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
    from ..core.data.read import is_image_folder as is_folder
    from ..core.data.read import list_pairs
    from ..core.evaluation.metrics import Counts, evaluate_stack

    pred, truth = Path(args.pred), Path(args.truth)
    if is_folder(pred) != is_folder(truth):
        raise InputError("give two label files or two folders of label images with matching names")
    pairs = list_pairs(pred, truth) if is_folder(pred) else [(pred, truth)]
    results = {p.stem: evaluate_stack(*_load_pair(p, t, args.threshold)) for p, t in pairs}
    if len(results) == 1:
        return next(iter(results.values()))
    keys = ("tp", "fp", "fn", "tn")
    total = sum((Counts(*(r["overall"][k] for k in keys)) for r in results.values()), Counts())
    return {
        "overall": {**total.scores(), **{k: getattr(total, k) for k in keys}},
        "per_image": {name: r["overall"] for name, r in results.items()},
    }


def _class_names(args) -> list[str] | None:
    """The classes of a multi-class evaluation, or None (binary)."""
    from ..core.config.classes import ClassTable, resolve

    table = None
    if args.model:
        from ..core.modelfile.format import read_metadata

        meta = read_metadata(args.model)
        table = ClassTable.from_dict(meta["classes"]) if meta.get("classes") else ClassTable()
    table = resolve(table, args.classes, args.class_names)
    return None if table is None or table.binary else list(table.names)


def _evaluate_classes(args, names: list[str]) -> dict:
    import numpy as np

    from ..core.data.read import is_image_folder as is_folder
    from ..core.data.read import list_pairs, read_image
    from ..core.evaluation.metrics import class_scores, evaluate_classes

    pred, truth = Path(args.pred), Path(args.truth)
    if is_folder(pred) != is_folder(truth):
        raise InputError("give two label files or two folders of label images with matching names")
    pairs = list_pairs(pred, truth) if is_folder(pred) else [(pred, truth)]
    results = {}
    for p, t in pairs:
        a, b = read_image(p), read_image(t)
        if np.dtype(a.dtype).kind == "f":
            raise InputError(
                f"'{p.name}' holds probabilities; multi-class evaluation compares class ids "
                "(the labels output of temseg predict)"
            )
        results[p.stem] = evaluate_classes(a, b, names)
    if len(results) == 1:
        return next(iter(results.values()))
    total = sum(np.asarray(r["confusion"]) for r in results.values())
    return {
        "overall": class_scores(total, names),
        "confusion": total.tolist(),
        "names": names,
        "per_image": {n: r["overall"] for n, r in results.items()},
    }


def _cmd_evaluate(args) -> int:
    names = _class_names(args)
    if names is not None:
        from ..core.evaluation.report import class_table_text

        res = _evaluate_classes(args, names)
        print(json.dumps(res, indent=2) if args.json else class_table_text(res))
        return 0
    res = _evaluate_pairs(args)
    if args.json:
        print(json.dumps(res, indent=2))
        return 0
    o = res["overall"]
    print(
        f"overall  Dice {o['dice']:.4f}  IoU {o['iou']:.4f}  precision {o['precision']:.4f}  "
        f"recall {o['recall']:.4f}"
    )
    rows = (
        res.get("per_slice")
        if "per_slice" in res
        else [{"slice": name, **r} for name, r in res["per_image"].items()]
    )
    if len(rows) > 1:
        print(f"{'slice/image':>12} {'Dice':>8} {'IoU':>8} {'prec':>8} {'recall':>8}")
        for r in rows:
            print(
                f"{str(r['slice']):>12} {r['dice']:8.4f} {r['iou']:8.4f} "
                f"{r['precision']:8.4f} {r['recall']:8.4f}"
            )
    return 0


COMMANDS: list = [(_add_evaluate, _cmd_evaluate)]

__all__ = ["COMMANDS"]
