"""Instance-norm statistics at prediction: per tile vs the stack's.

Trains the default binary model (the CLI defaults, ``--seconds`` each, one per seed) on the
shared real data, then predicts the held-out images through ``predict_stack`` with
``norm_stats`` 'tile', 'stack' and 'local' (the default: slices flattened, then the
stack's) at two tile sizes, and prints for each: the Dice against
the ground truth (pooled over the held-out images), the prediction time, and the label Dice
/ max |dp| between the two tile sizes (tile invariance: goal >= 0.995).

    python benchmarks/bench_norm_stats.py --threads 1 isbi --seconds 180 --seeds 0 1
    python benchmarks/bench_norm_stats.py --threads 1 emps --seconds 300 --seeds 0 1 --eval-limit 30

    python benchmarks/bench_norm_stats.py --threads 1 speed --repeat 3

``fibsem``: the synthetic FIB-SEM case where the stack's statistics fail (uneven detector
response across 512-1024 px slices; ``--model`` the bench_predict.py model, else trained
``--seconds`` like it).

``speed``: the default network (random weights) predicting synthetic stacks of several
shapes with 'tile' and 'stack', interleaved ``--repeat`` times (best of each): the cost of
the calibration against the eval-mode batch norm's faster forward pass.

ISBI: train on sections 0-14, test 15-19 (the stack is predicted whole; the calibration
tiles come from all 30 sections). EMPS: the name-hash split of ``_realdata.emps_split``;
every held-out micrograph is predicted on its own (its own calibration). ``--cache DIR``
keeps the trained models, so a rerun only predicts.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np

MODES = ("tile", "stack", "local")  # PredictConfig.norm_stats

sys.path.insert(0, str(Path(__file__).parent))
import _realdata  # noqa: E402


def _data(which: str, eval_limit: int):
    """(training images, masks, [(image, slices or None, truth (n, Y, X))])."""
    if which == "isbi":
        vol, lab = _realdata.isbi2012()
        return vol[:15], lab[:15], [(vol, list(range(15, vol.shape[0])), lab[15:])]
    train, test = _realdata.emps_split(0.2, None, None)
    test = test[:eval_limit] if eval_limit else test
    return [t[1] for t in train], [t[2] for t in train], [(t[1], None, t[2][None]) for t in test]


def _model(which: str, seconds: float, seed: int, images, masks, cache: Path | None):
    from napari_temseg.core.config.options import train_configs
    from napari_temseg.core.modelfile.format import load_model
    from napari_temseg.core.progress import run
    from napari_temseg.core.training.loop import fit

    path = cache / f"{which}_s{seed}_{int(seconds)}.safetensors" if cache else None
    if path is not None and path.exists():
        return load_model(path)
    tc, mc = train_configs({"seconds": seconds, "device": "cpu", "seed": seed})
    model = run(fit(images, masks, train_cfg=tc, model_cfg=mc))
    h = model.history[-1] if model.history else {}
    print(f"  trained seed {seed}: {h.get('step')} steps, val Dice {h.get('val_dice')}")
    if path is not None:
        model.save(path)
    return model


def _dice(a: np.ndarray, b: np.ndarray) -> float:
    a, b = a > 0, b > 0
    return float(2 * (a & b).sum() / max(1, a.sum() + b.sum()))


def _predict_all(model, tests, tile: int, norm_stats: str):
    from napari_temseg.core.config.predict import PredictConfig
    from napari_temseg.core.inference.predict import predict_stack
    from napari_temseg.core.progress import run

    cfg = PredictConfig(device="cpu", tile=tile, norm_stats=norm_stats)
    probs, labels, t0 = [], [], time.monotonic()
    for image, slices, _ in tests:
        res = run(predict_stack(model, image, cfg, slices=slices))
        probs.append(np.asarray(res.prob[res.slices], np.float32))
        labels.append(np.asarray(res.labels[res.slices]))
    return probs, labels, time.monotonic() - t0


def _flat(arrays) -> np.ndarray:
    return np.concatenate([a.ravel() for a in arrays])


def bench(args) -> None:
    import torch

    torch.set_num_threads(args.threads)
    images, masks, tests = _data(args.data, args.eval_limit)
    truth = _flat([t[2] for t in tests])
    print(f"{args.data}: {len(tests)} test item(s), models trained {args.seconds:.0f} s each")
    print(
        "| seed | statistics | Dice tile 256 | Dice tile 512 "
        "| tiles agree (label Dice / max dp) | predict s (256, 512) |"
    )
    print("|---|---|---|---|---|---|")
    for seed in args.seeds:
        model = _model(args.data, args.seconds, seed, images, masks, args.cache)
        for stats in MODES:
            (pa, la, ta), (pb, lb, tb) = (_predict_all(model, tests, t, stats) for t in args.tiles)
            dp = max(float(np.abs(x - y).max()) for x, y in zip(pa, pb, strict=True))
            print(
                f"| {seed} | {stats} | {_dice(_flat(la), truth):.4f} | "
                f"{_dice(_flat(lb), truth):.4f} | {_dice(_flat(la), _flat(lb)):.4f} / {dp:.3f} "
                f"| {ta:.1f}, {tb:.1f} |",
                flush=True,
            )


def speed(args) -> None:
    import torch

    from napari_temseg.core.config.model import InputSpec, ModelConfig
    from napari_temseg.core.config.predict import PredictConfig
    from napari_temseg.core.config.train import TrainConfig
    from napari_temseg.core.inference.predict import predict_stack
    from napari_temseg.core.modelfile.format import TrainedModel
    from napari_temseg.core.nets.build import build_model
    from napari_temseg.core.progress import run

    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    mc = ModelConfig()
    model = TrainedModel(build_model(mc), mc, InputSpec(), train_cfg=TrainConfig())
    print(f"default network {mc.resolved().arch}, patch {model.train_cfg.patch}, tile 512")
    print("| stack (Z, Y, X) | tile: s | stack: s | local: s | stack / tile | local / tile |")
    print("|---|---|---|---|---|---|")
    rng = np.random.default_rng(0)
    for shape in ((1, 512, 600), (3, 1024, 1024), (4, 2048, 2048)):
        img = rng.random(shape).astype(np.float32)
        best = {m: np.inf for m in MODES}
        for _ in range(args.repeat):
            for stats in best:
                t0 = time.perf_counter()
                run(predict_stack(model, img, PredictConfig(device="cpu", norm_stats=stats)))
                best[stats] = min(best[stats], time.perf_counter() - t0)
        a, b, c = best["tile"], best["stack"], best["local"]
        print(f"| {shape} | {a:.2f} | {b:.2f} | {c:.2f} | {b / a:.2f} | {c / a:.2f} |", flush=True)


def fibsem(args) -> None:
    """Synthetic FIB-SEM (uneven detector response): a model trained on 256 px slices,
    predicted on larger ones with both statistics; Dice against the generator's truth."""
    import torch

    from napari_temseg.core.config.predict import PredictConfig
    from napari_temseg.core.config.train import TrainConfig
    from napari_temseg.core.data.synthetic.fibsem import make_fibsem
    from napari_temseg.core.evaluation.metrics import evaluate_stack
    from napari_temseg.core.inference.predict import predict_stack
    from napari_temseg.core.modelfile.format import load_model
    from napari_temseg.core.progress import run
    from napari_temseg.core.training.loop import fit

    torch.set_num_threads(args.threads)
    if args.model:
        model = load_model(args.model)
    else:  # as bench_predict.py's benchmark model
        img, mask = make_fibsem((6, 2, 256, 256), seed=1, dtype="uint8")
        tc = TrainConfig(seconds=args.seconds, patch=128, batch=4, device="cpu", val_fraction=0)
        model = run(fit(img, mask, train_cfg=tc))
    print("| stack | tile | Dice per tile | stack statistics | local (default) |")
    print("|---|---|---|---|---|")
    for size in (256, 512, 1024):
        img, truth = make_fibsem((3, 2, size, size), seed=3, dtype="uint8")
        dice = {}
        for stats in MODES:
            cfg = PredictConfig(device="cpu", tile=256, norm_stats=stats)
            res = run(predict_stack(model, img, cfg, channel_axis=1))
            dice[stats] = evaluate_stack(np.asarray(res.labels), truth)["overall"]["dice"]
        print(
            f"| 3 x {size}² | 256 | {dice['tile']:.3f} | {dice['stack']:.3f} "
            f"| {dice['local']:.3f} |",
            flush=True,
        )


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("data", choices=("isbi", "emps", "speed", "fibsem"))
    ap.add_argument("--model", default=None, help="fibsem: a model file instead of training")
    ap.add_argument("--repeat", type=int, default=3, help="speed: interleaved repetitions")
    ap.add_argument("--seconds", type=float, default=180.0, help="training budget per seed")
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    ap.add_argument("--tiles", type=int, nargs=2, default=[256, 512])
    ap.add_argument("--eval-limit", type=int, default=0, help="EMPS: first N held-out images")
    ap.add_argument("--cache", type=Path, default=None, help="folder to keep the models in")
    args = ap.parse_args(argv)
    if args.cache:
        os.makedirs(args.cache, exist_ok=True)
    {"speed": speed, "fibsem": fibsem}.get(args.data, bench)(args)


if __name__ == "__main__":
    main()
