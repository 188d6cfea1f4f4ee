"""Object counts on EMPS: connected components vs split touching objects.

One model with the package defaults is trained on the EMPS training split
(``_realdata.emps_split(0.2)``, the same held-out split by name hash as
``bench_train.py emps``): ``fit(images, masks, train_cfg=TrainConfig(seconds=S,
device="cpu"))`` for ``--seconds`` of fit()'s own time (setup not counted), or loaded with
``--model PATH`` (``--save PATH`` keeps a trained one, so the counting can be re-run
without training). Every held-out image is predicted with
``predict_stack(model, image, PredictConfig(device="cpu"))`` and its probability
thresholded at the model's threshold. Instance labels are then built in four ways, all
with ``core.inference.postprocess.postprocess(binary, instances=True, ...)`` (8-connectivity):

* ``true mask, components``  - the ground-truth binary mask, connected components;
* ``true mask, split``       - the same mask with ``split_touching=True``;
* ``prediction, components`` - the thresholded prediction, connected components;
* ``prediction, split``      - the prediction with ``split_touching=True``;

the first two isolate the splitting from the segmentation (perfect masks: an upper bound
for each way of counting). The prediction rows are computed with ``min_size=0`` and again
with each ``--min-size`` (default 10 and 50 px; of the 2105 true held-out particles 1 is
smaller than 10 px and 19 smaller than 50 px; 0 = no extra rows). Objects touching the
image border are counted like any other (``exclude_border`` off, in the truth as in the
labels).

Scores against ``train/instances`` (uint16 ids): per image the true and predicted counts
and a one-to-one matching - a predicted object matches a true one if their IoU > 0.5
(which makes the match unique) -, precision, recall, F1. Overall: total |count error| /
total true count, mean per-image relative count error |pred - true| / true, and F1 pooled
over the images (sums of TP, FP, FN). Diagnostics: true objects merged (a predicted object
holds more than half of the area of two or more true objects), true objects cut (two or
more predicted objects each lie more than half inside it), mean IoU of the matched pairs.

Run from the repository root (data in ../shared/data); the commands of the recorded numbers
(docs/experiments/, "Objects: counting EMPS particles")::

    python benchmarks/bench_objects.py --threads 1 --seconds 300 \
        --save /tmp/emps_model.safetensors --per-image
    python benchmarks/bench_objects.py --threads 1 --seconds 900 \
        --save /tmp/emps_model_900.safetensors --per-image

and the counting alone again on a saved model::

    python benchmarks/bench_objects.py --threads 1 --model /tmp/emps_model.safetensors

(recorded with the package of commit 0cc8683 exported by ``git archive HEAD src`` and put
first on ``PYTHONPATH``, since ``src/`` of the shared working tree was being edited; the
script prints HEAD and where ``napari_temseg`` was imported from).

A quick end-to-end check: ``... --seconds 20 --limit 5``.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
os.environ.setdefault("HF_HUB_OFFLINE", "1")

import _realdata
from _common import git_head, machine


# --------------------------------------------------------------------------- helpers
def emps_instances(name: str) -> np.ndarray:
    """The EMPS instance ids (uint16, 0 = background) of one image."""
    from PIL import Image

    path = _realdata.data_root() / "emps" / "train" / "instances" / f"{name}.png"
    if not path.exists():
        raise _realdata.DataMissing(f"real data not found: {path}")
    a = np.asarray(Image.open(path))
    return np.ascontiguousarray(a[..., 0] if a.ndim == 3 else a)


# --------------------------------------------------------------------------- scores
@dataclass
class Score:
    """Object scores of one image (or, summed, of many)."""

    n_true: int = 0
    n_pred: int = 0
    tp: int = 0
    merged: int = 0  # true objects sharing one predicted object with another true object
    cut: int = 0  # true objects holding two or more predicted objects
    iou_sum: float = 0.0  # sum of the IoU of the matched pairs
    abs_error: int = 0  # sum over images of |pred - true|
    rel_errors: list = field(default_factory=list)  # per image |pred - true| / true

    @property
    def fp(self) -> int:
        return self.n_pred - self.tp

    @property
    def fn(self) -> int:
        return self.n_true - self.tp

    @property
    def precision(self) -> float:
        return self.tp / self.n_pred if self.n_pred else float("nan")

    @property
    def recall(self) -> float:
        return self.tp / self.n_true if self.n_true else float("nan")

    @property
    def f1(self) -> float:
        d = 2 * self.tp + self.fp + self.fn
        return 2 * self.tp / d if d else float("nan")

    def __add__(self, o: Score) -> Score:
        return Score(
            self.n_true + o.n_true,
            self.n_pred + o.n_pred,
            self.tp + o.tp,
            self.merged + o.merged,
            self.cut + o.cut,
            self.iou_sum + o.iou_sum,
            self.abs_error + o.abs_error,
            self.rel_errors + o.rel_errors,
        )


def _dense(lab: np.ndarray) -> tuple[np.ndarray, int]:
    """Ids renumbered 1..n (0 stays background); returns (ids int64, n)."""
    ids, inv = np.unique(lab, return_inverse=True)
    inv = inv.reshape(lab.shape).astype(np.int64)
    if ids[0] != 0:
        return inv + 1, len(ids)
    return inv, len(ids) - 1


def score(truth: np.ndarray, pred: np.ndarray) -> Score:
    """Match instance labels one to one at IoU > 0.5 (unique: two objects with IoU > 0.5
    to the same object would overlap each other)."""
    t, nt = _dense(truth)
    p, np_ = _dense(pred)
    inter = np.bincount((t * (np_ + 1) + p).ravel(), minlength=(nt + 1) * (np_ + 1))
    inter = inter.reshape(nt + 1, np_ + 1)[1:, 1:].astype(np.float64)  # (true, pred) overlaps
    at = np.bincount(t.ravel(), minlength=nt + 1)[1:].astype(np.float64)
    ap = np.bincount(p.ravel(), minlength=np_ + 1)[1:].astype(np.float64)
    iou = inter / np.maximum(at[:, None] + ap[None, :] - inter, 1.0)
    hit = iou > 0.5
    tp = int(hit.sum())
    # merged: a predicted object holding > half of each of >= 2 true objects
    holds = inter > 0.5 * at[:, None]  # (true, pred): pred holds most of true
    per_pred = holds.sum(0)
    merged = int(holds[:, per_pred >= 2].sum())
    # cut: a true object holding >= 2 predicted objects (each more than half inside it)
    inside = inter > 0.5 * ap[None, :]
    cut = int((inside.sum(1) >= 2).sum())
    rel = [abs(np_ - nt) / nt] if nt else []
    return Score(nt, np_, tp, merged, cut, float(iou[hit].sum()), abs(np_ - nt), rel)


def pixel_counts(pred: np.ndarray, truth: np.ndarray) -> np.ndarray:
    """(tp, fp, fn) pixels of a binary prediction."""
    p, t = pred.astype(bool), truth.astype(bool)
    return np.array([(p & t).sum(), (p & ~t).sum(), (~p & t).sum()], np.int64)


# --------------------------------------------------------------------------- model
def train_model(images, masks, seconds: float):
    from napari_temseg.core.config.train import TrainConfig
    from napari_temseg.core.training.loop import fit

    cfg = TrainConfig(seconds=seconds, device="cpu")
    gen = fit(images, masks, train_cfg=cfg)
    t0, last, next_print = time.monotonic(), None, 0.0
    while True:
        try:
            last = next(gen)
        except StopIteration as done:
            model = done.value
            break
        if last.elapsed >= next_print:
            print(f"  train: step {last.step}, {last.elapsed:.0f}s", flush=True)
            next_print += 60.0
    wall = time.monotonic() - t0
    steps = last.step if last is not None else 0
    vd = [round(h.get("val_dice", float("nan")), 3) for h in model.history]
    info = (
        f"trained {seconds:.0f}s (fit() time; {wall:.0f}s wall incl. setup), {steps} steps, "
        f"{len(model.history)} epochs, internal val Dice per epoch {vd}"
    )
    return model, info


def predict_prob(model, image: np.ndarray) -> np.ndarray:
    return _realdata.default_probabilities(model, image).reshape(image.shape)


# --------------------------------------------------------------------------- run
def _labels(binary: np.ndarray, split: bool, min_size: int) -> np.ndarray:
    from napari_temseg.core.inference.postprocess import postprocess

    lab, _ = postprocess(
        binary, instances=True, split_touching=split, min_size=min_size, dtype=np.uint32
    )
    return lab


def _fmt(x: float) -> str:
    return f"{x:.3f}" if x == x else "  nan"


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--threads", type=int, default=1, help="torch threads (default 1)")
    ap.add_argument("--seconds", type=float, default=300.0, help="fit() training budget")
    ap.add_argument("--model", help="load this model file instead of training")
    ap.add_argument("--save", help="save the trained model here (.safetensors)")
    ap.add_argument(
        "--min-size",
        type=int,
        nargs="+",
        default=[10, 50],
        help="extra prediction rows with each of these min_size (px); 0 = none",
    )
    ap.add_argument("--limit", type=int, default=None, help="held-out images evaluated (quick)")
    ap.add_argument("--train-limit", type=int, default=None, help="use only N training images")
    ap.add_argument("--per-image", action="store_true", help="print the per-image table")
    args = ap.parse_args(argv)

    import torch

    torch.set_num_threads(args.threads)
    from napari_temseg.core.inference.predict import predict_stack  # noqa: F401  (import all code now)

    if args.model:
        from napari_temseg.core.modelfile.format import load_model

        train, test = _realdata.emps_split(0.2, 0, args.limit)
        model = load_model(args.model)
        info = f"loaded {args.model}: {model!r}"
    else:
        train, test = _realdata.emps_split(0.2, args.train_limit, args.limit)
    print(
        f"emps: {len(train)} training images, {len(test)} held-out images evaluated "
        f"(by name hash, as bench_train.py emps)",
        flush=True,
    )
    print(f"machine: {machine()}", flush=True)
    print(f"git HEAD {git_head()}", flush=True)
    if not args.model:
        model, info = train_model([t[1] for t in train], [t[2] for t in train], args.seconds)
        if args.save:
            model.save(args.save, overwrite=True)
            info += f"; saved to {args.save}"
    print(info, flush=True)
    thr = float(model.threshold)

    ways = [("true mask, components", "gt", False, 0), ("true mask, split", "gt", True, 0)]
    sizes = [0] + [m for m in args.min_size if m > 1]
    for ms in sizes:
        suffix = f", min_size {ms}" if ms else ""
        ways += [
            (f"prediction, components{suffix}", "pred", False, ms),
            (f"prediction, split{suffix}", "pred", True, ms),
        ]
    totals = {w[0]: Score() for w in ways}
    pix = np.zeros(3, np.int64)
    per_image = []
    t0 = time.monotonic()
    for name, image, mask in test:
        truth = emps_instances(name)
        pred = predict_prob(model, image) >= thr
        pix += pixel_counts(pred, mask)
        row = [name, int(np.count_nonzero(np.unique(truth)))]
        for label, src, split, ms in ways:
            s = score(truth, _labels(mask if src == "gt" else pred, split, ms))
            totals[label] = totals[label] + s
            row.append((s.n_pred, s.f1))
        per_image.append(row)
    print(f"predicted and counted {len(test)} images in {time.monotonic() - t0:.0f}s", flush=True)

    tp, fp, fn = (int(v) for v in pix)
    dice = 2 * tp / max(2 * tp + fp + fn, 1)
    print(
        f"\npixel Dice of the prediction (threshold {thr:.2f}): {dice:.3f} "
        f"(precision {tp / max(tp + fp, 1):.3f}, recall {tp / max(tp + fn, 1):.3f})"
    )
    if args.per_image:
        print("\nper image: true count, then (predicted count, F1) per way")
        for row in per_image:
            cells = " ".join(f"{n:>4} {_fmt(f)}" for n, f in row[2:])
            print(f"{row[0]:<12} {row[1]:>4}  {cells}")

    n_true = next(iter(totals.values())).n_true
    print(f"\n{len(test)} held-out images, {n_true} true objects (border objects counted)")
    head = (
        f"{'labels':<36} {'pred':>6} {'|err|/true':>10} {'mean rel':>9} {'TP':>6} {'FP':>6} "
        f"{'FN':>6} {'prec':>6} {'recall':>6} {'F1':>6} {'mIoU':>6} {'merged':>6} {'cut':>5}"
    )
    print(head)
    for label, *_ in ways:
        s = totals[label]
        abs_err = s.abs_error
        print(
            f"{label:<36} {s.n_pred:>6} {abs_err / max(n_true, 1):>10.3f} "
            f"{np.mean(s.rel_errors):>9.3f} {s.tp:>6} {s.fp:>6} {s.fn:>6} "
            f"{_fmt(s.precision):>6} {_fmt(s.recall):>6} {_fmt(s.f1):>6} "
            f"{_fmt(s.iou_sum / s.tp if s.tp else float('nan')):>6} {s.merged:>6} {s.cut:>5}"
        )
    print(f"\nmachine: {machine()}")
    print(f"git HEAD {git_head()}")
    for label, *_ in ways:
        s = totals[label]
        abs_err = s.abs_error
        print(
            f"RESULT {label}: count {s.n_pred} vs true {n_true}, |count error|/true "
            f"{abs_err / max(n_true, 1):.3f}, mean per-image rel. error "
            f"{np.mean(s.rel_errors):.3f}, F1@0.5 {s.f1:.3f} (P {s.precision:.3f}, "
            f"R {s.recall:.3f})"
        )
    print(f"RESULT pixel Dice {dice:.3f} | {len(test)} images | {machine()} | git {git_head()}")


if __name__ == "__main__":
    main()
