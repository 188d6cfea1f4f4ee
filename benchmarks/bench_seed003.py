"""Seed 003 (Dong et al.): U-Net vs Sensor3D, 1 vs 3 slices, detector 1 / 2 / both.

The FIB-SEM study of ``../shared/papers/003_*.txt`` trained nine models on three annotated
slices of a two-detector (ICE + TLD) cement stack, 25 % of the data held out for
validation, and evaluated them on an independent fourth slice. Its finding: accuracy
improves with both detector signals and with the neighbouring slices. The same design on
our synthetic multi-phase stack (``core/synthetic_phases.make_phases``: 4 phases - matrix,
pores, unhydrated grains, hydration products - and two complementary detectors, channel 0
"ICE", channel 1 "TLD"):

* one stack ``make_phases((8, --size, --size), channels=2, seed=--seed)``; dense labels on
  slices 2, 4 and 6 (not at the stack ends, so every 3-slice window has real neighbours),
  the other slices unlabelled (zero mask: fit() sees only slices 2, 4, 6 as annotated);
  ``TrainConfig(val_fraction=0.25, seed=--seed)``: fit() holds out whole slices, so
  round(0.25 x 3) = 1 of the 3 slices validates (33 % of the labelled pixels, the paper
  25 %) and 2 train;
* 9 contestants = {``unet1``: small-unet on 1 slice (context 0), ``unet3``: small-unet on 3
  slices (context 1, the slices stacked as channels = 2.5D), ``s3d3``: Sensor3D on 3 slices
  (``arch="sensor3d"``, context 1: shared encoder, ConvLSTMs along the slices)} x {``ICE``:
  channel 0 only, ``TLD``: channel 1 only, ``both``: channels 0 + 1}; everything else fit()'s
  defaults for 4 classes (patch 256, batch 4, batch norm, AdamW 1e-3, ...);
* every contestant gets ``--seconds`` of its own training time; they run interleaved, round
  robin in ``--slice`` second turns (``bench_train.race``, fit() under a virtual clock that
  stops while the others run) so the shared machine's load drift hits all alike;
* each model predicts the whole stack (``predict_stack``, device cpu; the 3-slice models
  read the real neighbours), scored on the evaluation slice ``--eval`` (default 5, never
  annotated): ``evaluation.metrics.confusion`` + ``class_scores`` -> per-class IoU, mean IoU with
  and without the matrix (class 0 = background). A second score over all five unannotated
  slices (0, 1, 3, 5, 7; 0 and 7 with reflected neighbours) shows how much one slice moves.

Sizes: 8 x 384 x 384 keeps 9 x 90 s of training affordable on 2 shared CPU cores (one
torch thread): ~15 min wall in all (load average 4-7). The 3-slice models pay for their 3x
input with fewer steps in the same budget (printed per contestant: ~3 s per step for the
U-Nets, ~14 s for Sensor3D there).

Run from the repository root; the commands of the recorded numbers (docs/experiments/,
"Seed 003: U-Net vs Sensor3D, slices x detectors")::

    python benchmarks/bench_seed003.py --threads 1 --seconds 90
    python benchmarks/bench_seed003.py --threads 1 --seconds 90 --seed 1
    python benchmarks/bench_seed003.py --threads 1 --seconds 3600 --detectors both \
        --options "seconds=None,epochs=2,steps_per_epoch=30"

(the last: 60 steps each instead of equal time; ``seconds=None`` lifts fit()'s time limit).

A quick end-to-end check: ``python benchmarks/bench_seed003.py --threads 1 --seconds 10
--size 128 --slice 5``. Extra TrainConfig / ModelConfig settings for every contestant:
``--options "patch=128,batch=8"`` (``bench_train.parse_variant`` syntax); a subset of the
grid: ``--models unet1,s3d3 --detectors both``.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
os.environ.setdefault("HF_HUB_OFFLINE", "1")

from _common import git_head, machine, torch_threads
from bench_train import Ours, parse_variant, race

DEPTH = 8
ANNOTATED = (2, 4, 6)
# (name, what, overrides): the models of the paper
MODELS = (
    ("unet1", "U-Net, 1 slice", {"arch": "small-unet", "context": 0}),
    ("unet3", "U-Net, 3 slices (2.5D)", {"arch": "small-unet", "context": 1}),
    ("s3d3", "Sensor3D, 3 slices", {"arch": "sensor3d", "context": 1}),
)
# (name, channels of make_phases' image): detector 1, detector 2, both
DETECTORS = (("ICE", [0]), ("TLD", [1]), ("both", [0, 1]))


def _scores(labels: np.ndarray, truth: np.ndarray, zs: list[int], names) -> dict:
    from napari_temseg.core.evaluation.metrics import class_scores, confusion

    k = len(names)
    mat = np.zeros((k, k + 1), np.int64)
    for z in zs:
        mat += confusion(labels[z], truth[z], k)
    return class_scores(mat, names)


def _get(results: dict, name: str, key: str) -> float | None:
    return results[name][key] if name in results else None


def _grid(results: dict, key: str, title: str) -> None:
    """The 3 x 3 table: models (rows) x detectors (columns); '-' = not run."""
    print(f"\n{title}")
    print(f"{'model':<24} " + " ".join(f"{d:>7}" for d, _ in DETECTORS))
    for m, what, _ in MODELS:
        vals = (_get(results, f"{m}-{d}", key) for d, _ in DETECTORS)
        print(f"{what:<24} " + " ".join("      -" if v is None else f"{v:>7.3f}" for v in vals))


def _per_class(results: dict, contestants: list, names, title: str) -> None:
    short = [n[:12] for n in names]
    print(f"\n{title}")
    print(
        f"{'contestant':<11} "
        + " ".join(f"{n:>12}" for n in short)
        + f" {'mIoU':>6} {'w/o mat':>7} {'steps':>6} {'s/step':>6} {'epochs':>6}"
    )
    for c in contestants:
        s = results[c.name]
        per = " ".join(f"{cl['iou']:>12.3f}" for cl in s["classes"])
        print(
            f"{c.name:<11} {per} {s['mean_iou']:>6.3f} {s['mean_iou_fg']:>7.3f} "
            f"{c.steps:>6} {c.elapsed / max(c.steps, 1):>6.2f} {len(c.model.history):>6}"
        )


def _effects(results: dict, key: str) -> None:
    """Both detectors vs the better single one; 3 slices vs 1 slice."""
    print(f"\neffects on {key}:")
    for m, what, _ in MODELS:
        both = _get(results, f"{m}-both", key)
        single = [_get(results, f"{m}-{d}", key) for d in ("ICE", "TLD")]
        if both is not None and None not in single:
            best = max(single)
            print(f"  {what}: both detectors - better single detector = {both - best:+.3f}")
    for d, _ in DETECTORS:
        one = _get(results, f"unet1-{d}", key)
        for m, what, _ in MODELS[1:]:
            other = _get(results, f"{m}-{d}", key)
            if one is not None and other is not None:
                print(f"  {d}: {what} - U-Net 1 slice = {other - one:+.3f}")


def bench(args) -> None:
    from napari_temseg.core.config.classes import ClassTable
    from napari_temseg.core.config.predict import PredictConfig
    from napari_temseg.core.data.synthetic.phases import PHASE_COLORS, PHASE_NAMES, make_phases
    from napari_temseg.core.inference.predict import predict_stack
    from napari_temseg.core.progress import run

    t0 = time.monotonic()
    img, lab = make_phases((DEPTH, args.size, args.size), channels=2, seed=args.seed)
    if args.eval in ANNOTATED or not 0 <= args.eval < DEPTH:
        raise SystemExit(f"--eval must be a slice 0..{DEPTH - 1} not in {ANNOTATED}")
    sparse = np.zeros_like(lab)
    for z in ANNOTATED:
        sparse[z] = lab[z]
    unseen = [z for z in range(DEPTH) if z not in ANNOTATED]
    table = ClassTable(PHASE_NAMES, PHASE_COLORS)
    extra = parse_variant(f"x:{args.options}")[1] if args.options else {}
    print(
        f"seed 003 design: stack {img.shape} (Z, C, Y, X) seed {args.seed} (made in "
        f"{time.monotonic() - t0:.1f}s), annotated slices {list(ANNOTATED)}, val_fraction "
        f"0.25, evaluation slice {args.eval} (also all unannotated {unseen}); budget "
        f"{args.seconds:.0f}s each, slice {args.slice:.0f}s; options {extra or 'defaults'}",
        flush=True,
    )
    share = np.bincount(lab[args.eval].ravel(), minlength=4) / lab[args.eval].size
    print(
        "class share of the evaluation slice: "
        + ", ".join(f"{n} {100 * s:.1f} %" for n, s in zip(PHASE_NAMES, share, strict=True))
    )
    print(f"machine: {machine()}", flush=True)
    print(f"git HEAD {git_head()}", flush=True)
    images = {d: np.ascontiguousarray(img[:, ch]) for d, ch in DETECTORS}
    contestants = [
        Ours(
            f"{m}-{d}",
            images[d],
            sparse,
            args.seconds,
            0,
            {"val_fraction": 0.25, "seed": args.seed, **ov, **extra},
            classes=table,
        )
        for m, _, ov in MODELS
        for d, _ in DETECTORS
        if m in args.models and d in args.detectors
    ]
    t = time.monotonic()
    race(contestants, args.seconds, args.slice)
    print(f"training done in {time.monotonic() - t:.0f}s wall; predicting", flush=True)
    results, wide = {}, {}
    for c in contestants:
        t = time.monotonic()
        d = c.name.split("-")[1]
        res = run(predict_stack(c.model, images[d], PredictConfig(device="cpu")))
        labels = np.asarray(res.labels)
        results[c.name] = _scores(labels, lab, [args.eval], PHASE_NAMES)
        wide[c.name] = _scores(labels, lab, unseen, PHASE_NAMES)
        print(f"  {c.name}: stack predicted in {time.monotonic() - t:.0f}s", flush=True)

    print(f"\nseed 003 design, evaluation slice {args.eval}, budget {args.seconds:.0f}s each")
    print(f"machine: {machine()}")
    print(f"git HEAD {git_head()}")
    _grid(results, "mean_iou_fg", f"mean IoU w/o matrix, slice {args.eval}")
    _grid(results, "mean_iou", f"mean IoU (4 classes), slice {args.eval}")
    _grid(wide, "mean_iou_fg", f"mean IoU w/o matrix, all unannotated slices {unseen}")
    _per_class(results, contestants, PHASE_NAMES, f"per-class IoU, slice {args.eval}")
    _per_class(wide, contestants, PHASE_NAMES, f"per-class IoU, unannotated slices {unseen}")
    _effects(results, "mean_iou_fg")
    print()
    for c in contestants:
        vd = [round(h.get("val_dice", float("nan")), 3) for h in c.model.history]
        print(f"  {c.name}: {c.describe()}; {c.model.model_cfg.in_channels} input channels")
        print(f"    setup {c.setup_s or 0:.1f}s, epochs {len(c.model.history)}, val Dice {vd}")
    for c in contestants:
        s, w = results[c.name], wide[c.name]
        print(
            f"RESULT seed003 seed={args.seed} {c.name}: slice {args.eval} mIoU "
            f"{s['mean_iou']:.3f} mIoU(fg) {s['mean_iou_fg']:.3f} | unannotated mIoU(fg) "
            f"{w['mean_iou_fg']:.3f} | steps {c.steps} | "
            + " ".join(f"{cl['name'].replace(' ', '_')}={cl['iou']:.3f}" for cl in s["classes"])
        )
    best = max(contestants, key=lambda c: results[c.name]["mean_iou_fg"])
    print(f"best mean IoU w/o matrix: {best.name} | done | {machine()}")


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--threads", type=int, default=None, help="torch threads (use 1)")
    ap.add_argument("--seconds", type=float, default=90.0, help="training budget each")
    ap.add_argument("--seed", type=int, default=0, help="stack and training seed")
    ap.add_argument("--size", type=int, default=384, help="slice size Y = X in px")
    ap.add_argument("--slice", type=float, default=30.0, help="round-robin time slice (s)")
    ap.add_argument("--eval", type=int, default=5, help="evaluation slice (not 2, 4, 6)")
    ap.add_argument(
        "--models",
        type=lambda s: s.split(","),
        default=[m for m, _, _ in MODELS],
        help="subset of unet1,unet3,s3d3 (default all)",
    )
    ap.add_argument(
        "--detectors",
        type=lambda s: s.split(","),
        default=[d for d, _ in DETECTORS],
        help="subset of ICE,TLD,both (default all)",
    )
    ap.add_argument(
        "--options", default="", help="extra settings for all, e.g. 'patch=128,batch=8'"
    )
    args = ap.parse_args(argv)
    bad = set(args.models) - {m for m, _, _ in MODELS}
    bad |= set(args.detectors) - {d for d, _ in DETECTORS}
    if bad:
        ap.error(f"unknown model / detector {sorted(bad)}")
    torch_threads(args.threads)
    bench(args)


if __name__ == "__main__":
    main()
