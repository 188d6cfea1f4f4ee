"""Does uncertainty-guided annotation need fewer regions? A simulated annotator.

    python benchmarks/bench_suggest.py --threads 1 isbi --rounds 8 --seeds 0 1 2
    python benchmarks/bench_suggest.py --threads 1 phases --rounds 8 --seeds 0 1 2

Each strategy starts from the same single annotated square (seeded: a random square of the
pool that holds at least two classes), then adds ``--per-round`` squares per round:

* ``guided``: ``core.guidance.suggest.suggest_regions`` with the current model (defaults: entropy,
  diversity 1, at most ``--max-regions`` candidates scored);
* ``random``: unannotated squares drawn uniformly;
* ``in-order``: the next unannotated squares slice by slice, row by row (a user who goes
  through the stack in order).

The annotator paints the ground truth into every pixel of a chosen square as sparse
scribbles (every class including background, 0 = unlabelled elsewhere). After each round
the model continues training (``fit(resume=...)``) for the same ``--steps`` steps for
every strategy (a step budget, not seconds: the same for all under any machine load), and
is scored on held-out slices: Dice (binary) or mean IoU (K classes). Rounds run strategy
after strategy for each seed, so load drift hits all alike. Writes a CSV and a PNG (score
vs annotated squares, mean and spread over seeds) to ``--out``; prints how many squares
guided selection needed to reach random selection's final score (goal <= 60 %).

Data: ``isbi`` - ISBI 2012 sections 0-14 are the pool, 15-19 the test set (membranes,
binary; needs ../shared/data or TEMSEG_DATA); ``phases`` - the synthetic 4-phase FIB-SEM
stack of ``core/data/synthetic/phases.py`` (2 detectors), slices 0-7 pool, 8-11 test.
"""

from __future__ import annotations

import argparse
import csv
import os
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

STRATEGIES = ("guided", "random", "in-order")


def _data(name: str):
    """(image (Z, C, Y, X) float32, labels (Z, Y, X), pool slices, test slices, names)."""
    if name == "isbi":
        import _realdata

        vol, lab = _realdata.isbi2012()
        return vol[:, None].astype(np.float32), lab, list(range(15)), list(range(15, 20)), None
    from napari_temseg.core.data.synthetic.phases import PHASE_NAMES, make_phases

    img, lab = make_phases((12, 256, 256), channels=2, seed=7)
    return img, lab, list(range(8)), list(range(8, 12)), list(PHASE_NAMES)


def _cells(lab, pool, size):
    """Every square of the grid on the pool slices: (z, y, x)."""
    from napari_temseg.core.guidance.suggest import grid_starts

    ys, xs = grid_starts(lab.shape[1], size), grid_starts(lab.shape[2], size)
    return [(z, y, x) for z in pool for y in ys for x in xs]


def _paint(mask, lab, cell, size, table):
    z, y, x = cell
    lut = np.array([table.value(c, True) for c in range(table.k)], np.uint8)
    mask[z, y : y + size, x : x + size] = lut[lab[z, y : y + size, x : x + size]]


def _first(lab, cells, size, rng):
    """A random square holding at least two classes (each >= 5 % of it)."""
    ok = []
    for c in cells:
        z, y, x = c
        counts = np.bincount(lab[z, y : y + size, x : x + size].ravel())
        if (counts >= 0.05 * size * size).sum() >= 2:
            ok.append(c)
    return ok[rng.integers(len(ok))]


def _pick(strategy, model, img, mask, done, cells, args, rng, rnd):
    from napari_temseg.core.config.predict import PredictConfig
    from napari_temseg.core.config.suggest import SuggestConfig
    from napari_temseg.core.guidance.suggest import suggest_regions
    from napari_temseg.core.progress import run

    free = [c for c in cells if c not in done]
    if strategy == "random":
        return [free[i] for i in rng.choice(len(free), args.per_round, replace=False)]
    if strategy == "in-order":
        return free[: args.per_round]
    cfg = SuggestConfig(
        n=args.per_round, size=args.size, max_regions=args.max_regions, seed=rnd, margin=32
    )
    pool = sorted({c[0] for c in cells})
    res = run(
        suggest_regions(
            model, img[pool], mask[pool], cfg, sparse=True, predict_cfg=PredictConfig(device="cpu")
        )
    )
    return [(pool[r.z], r.y, r.x) for r in res.regions]


def _train(img, mask, model, table, args):
    from napari_temseg.core.config.model import ModelConfig
    from napari_temseg.core.config.train import TrainConfig
    from napari_temseg.core.progress import run
    from napari_temseg.core.training.loop import fit

    cfg = TrainConfig(
        epochs=1, steps_per_epoch=args.steps, seconds=None, patch=args.patch, batch=4,
        sparse=True, val_fraction=0.0, device="cpu", seed=0,
    )  # fmt: skip
    gen = fit(img, mask, train_cfg=cfg, model_cfg=ModelConfig(), resume=model, classes=table)
    return run(gen)


def _score(model, img, lab, test, names):
    from napari_temseg.core.config.predict import PredictConfig
    from napari_temseg.core.evaluation.metrics import dice, evaluate_classes
    from napari_temseg.core.inference.predict import predict_stack
    from napari_temseg.core.progress import run

    res = run(predict_stack(model, img[test], PredictConfig(device="cpu")))
    if names is None:
        return dice(res.labels > 0, lab[test] > 0)
    return evaluate_classes(res.labels, lab[test], names)["overall"]["mean_iou"]


def simulate(args) -> list[dict]:
    from napari_temseg.core.config.classes import ClassTable

    img, lab, pool, test, names = _data(args.data)
    table = ClassTable() if names is None else ClassTable(tuple(names))
    cells = _cells(lab, pool, args.size)
    states = {}
    for seed in args.seeds:
        start = _first(lab, cells, args.size, np.random.default_rng(seed))
        for s in args.strategies:
            mask = np.zeros(lab.shape, np.uint8)
            _paint(mask, lab, start, args.size, table)
            states[seed, s] = dict(
                mask=mask, done=[start], model=None, rng=np.random.default_rng(seed)
            )
    rows = []
    for rnd in range(args.rounds + 1):
        for seed in args.seeds:
            for s in args.strategies:
                st = states[seed, s]
                t0 = time.monotonic()
                if rnd > 0:
                    new = _pick(
                        s, st["model"], img, st["mask"], st["done"], cells, args, st["rng"], rnd
                    )
                    for c in new:
                        _paint(st["mask"], lab, c, args.size, table)
                    st["done"] += new
                t1 = time.monotonic()
                st["model"] = _train(img, st["mask"], st["model"], table, args)
                t2 = time.monotonic()
                score = _score(st["model"], img, lab, test, names)
                row = dict(
                    data=args.data, strategy=s, seed=seed, round=rnd, regions=len(st["done"]),
                    score=round(float(score), 4), pick_s=round(t1 - t0, 1),
                    train_s=round(t2 - t1, 1),
                )  # fmt: skip
                rows.append(row)
                print(" ".join(f"{k}={v}" for k, v in row.items()), flush=True)
    return rows


def summarize(rows, out: Path, metric: str) -> str:
    """Mean per strategy and round; the squares guided needs to reach random's final mean."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    lines, curves = [], {}
    for s in sorted({r["strategy"] for r in rows}, key=STRATEGIES.index):
        rs = sorted({r["round"] for r in rows})
        n = [
            np.mean([r["regions"] for r in rows if r["strategy"] == s and r["round"] == k])
            for k in rs
        ]
        v = [[r["score"] for r in rows if r["strategy"] == s and r["round"] == k] for k in rs]
        curves[s] = (
            np.array(n),
            np.array([np.mean(x) for x in v]),
            np.array([np.std(x) for x in v]),
        )
        lines.append(f"{s:9s} " + " ".join(f"{m:.3f}" for m in curves[s][1]))
    fig, ax = plt.subplots(figsize=(5, 3.4), dpi=120)
    for s, (n, m, sd) in curves.items():
        ax.errorbar(n, m, yerr=sd, marker="o", ms=3, capsize=2, label=s)
    ax.set_xlabel("annotated squares")
    ax.set_ylabel(metric)
    ax.legend()
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(out.with_suffix(".png"))
    if "guided" in curves and "random" in curves:
        n_r, m_r, _ = curves["random"]
        n_g, m_g, _ = curves["guided"]
        hit = [n for n, m in zip(n_g, m_g, strict=True) if m >= m_r[-1]]
        need = (
            f"{hit[0]:.0f} of {n_r[-1]:.0f} squares ({hit[0] / n_r[-1]:.0%})"
            if hit
            else "not reached"
        )
        lines.append(f"guided reaches random's final {metric} {m_r[-1]:.3f} with {need}")
    return "\n".join(lines)


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("data", choices=("isbi", "phases"))
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--rounds", type=int, default=8)
    ap.add_argument("--per-round", type=int, default=2)
    ap.add_argument("--size", type=int, default=None, help="square side (isbi 128, phases 64)")
    ap.add_argument("--steps", type=int, default=40, help="training steps per round")
    ap.add_argument("--patch", type=int, default=128)
    ap.add_argument("--max-regions", type=int, default=128)
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    ap.add_argument("--strategies", nargs="+", default=list(STRATEGIES), choices=STRATEGIES)
    ap.add_argument("--out", default="/tmp/bench_suggest")
    args = ap.parse_args(argv)
    import torch

    torch.set_num_threads(args.threads)
    args.size = args.size or (128 if args.data == "isbi" else 64)
    out = Path(args.out) / f"suggest-{args.data}.csv"
    out.parent.mkdir(parents=True, exist_ok=True)
    print(
        f"{args.data}: {args.rounds} rounds x {args.per_round} squares of {args.size} px, "
        f"{args.steps} steps/round, seeds {args.seeds} | load {os.getloadavg()[0]:.1f} | "
        f"{time.strftime('%Y-%m-%d %H:%M')} | torch {torch.__version__} {args.threads} thread(s)",
        flush=True,
    )
    rows = simulate(args)
    with open(out, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    metric = "Dice" if args.data == "isbi" else "mean IoU"
    print(summarize(rows, out, metric))
    print(f"wrote {out} and {out.with_suffix('.png')} | load {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
