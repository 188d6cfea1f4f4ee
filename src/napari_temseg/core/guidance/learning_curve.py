"""How much must I annotate? Accuracy against the number of training images (seed 002).

:func:`learning_curve` trains one model per (setting, seed, size) on nested random subsets
of the training images - for each seed one random order, the first ``n`` images for size
``n`` - with the same budget (``TrainConfig.seconds`` or ``epochs``) for every size, and
scores each on one held-out test set (given, or a fixed random ``test_fraction``).
Settings: the training options as given, and optionally the same without augmentation.
Scores are pooled over all test pixels: Dice and IoU of the foreground (binary), mean Dice
and mean IoU over all classes (K classes). One generator (Progress with an ETA over the
whole study, a StopToken honoured between and inside runs) for the CLI, the console and
any dock. :func:`write_csv`, :func:`plot` and :func:`table` report it.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Generator, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..config.choices import check, opt
from ..errors import InputError
from ..progress import Progress, StopToken

LADDER = (5, 10, 25, 50, 100, 150, 300, 500, 1000)  # seed 002 measured 5..300


@dataclass(frozen=True)
class CurveConfig:
    """The study's own options (the training options are TrainConfig / ModelConfig)."""

    sizes: tuple[int, ...] | None = None  # None: LADDER below the available count, + all
    seeds: int = opt(1, "random subsets (and trainings) per size", lo=1, hi=100)
    test_fraction: float = opt(
        0.2, "share of the images held out for testing when no test set is given", lo=0, hi=0.9
    )
    compare_augment: bool = opt(False, "also train every size without augmentation")
    flat_within: float = opt(0.02, "the curve is flat where within this of its best", lo=0, hi=1)

    def __post_init__(self) -> None:
        check(1 <= self.seeds <= 100, f"seeds must be 1..100, got {self.seeds}")
        check(0 <= self.test_fraction < 1, "test_fraction must be in [0, 1)")
        if self.sizes is not None:
            object.__setattr__(self, "sizes", tuple(sorted({int(s) for s in self.sizes})))
            check(bool(self.sizes) and self.sizes[0] >= 1, "sizes must be whole numbers >= 1")


@dataclass
class CurveResult:
    rows: list[dict] = field(default_factory=list)  # setting, seed, size, dice, iou, steps, s
    sizes: tuple[int, ...] = ()
    settings: tuple[str, ...] = ()
    metric: str = "Dice"  # "Dice" (binary) or "mean Dice" (K classes)
    test_images: int = 0
    stopped: bool = False


def ladder(n: int) -> tuple[int, ...]:
    """Default sizes for ``n`` training images: the paper's ladder below ``n``, then ``n``."""
    return tuple(s for s in LADDER if s < n) + (n,)


def split(n: int, test_fraction: float, seed: int = 12345) -> tuple[list[int], list[int]]:
    """(train, test) indices: a fixed random share held out (at least one of each)."""
    if n < 2:
        raise InputError("a learning curve needs at least 2 images (some to train, one to test)")
    order = np.random.default_rng(seed).permutation(n)
    k = min(n - 1, max(1, round(test_fraction * n)))
    return sorted(order[k:].tolist()), sorted(order[:k].tolist())


def _plan(n_train: int, cfg: CurveConfig, train_cfg: Any) -> tuple[tuple[int, ...], list]:
    sizes = cfg.sizes or ladder(n_train)
    if sizes[-1] > n_train:
        raise InputError(
            f"sizes up to {sizes[-1]} but only {n_train} training images: "
            f"use sizes <= {n_train} (or give more images)"
        )
    settings = [("augmentation " + train_cfg.augment, train_cfg)]
    if cfg.compare_augment and train_cfg.augment != "none":
        settings.append(("no augmentation", dataclasses.replace(train_cfg, augment="none")))
    runs = [(name, tc, s, n) for name, tc in settings for s in range(cfg.seeds) for n in sizes]
    return sizes, runs


def _classes(masks: Sequence[Any], train_cfg: Any, classes: Any) -> Any:
    """One class table for every subset (a small subset may lack a class)."""
    from ..config.classes import ClassTable, infer_k

    if classes is not None:
        return classes
    if train_cfg.classes or train_cfg.class_names:
        from ..config.classes import resolve

        return resolve(train_cfg.classes, train_cfg.class_names, None)
    values = set()
    for m in masks:
        values.update(np.unique(np.asarray(m)).tolist())
    return ClassTable.default(infer_k(values, train_cfg.sparse))


def _classes_in(mask: Any, k: int, sparse: bool) -> frozenset:
    """The class ids painted in a training mask (dense 0..K-1 or sparse 1..K)."""
    from ..config.classes import targets

    t, w = targets(np.asarray(mask), k, sparse)
    return frozenset(np.unique(np.asarray(t)[np.asarray(w) > 0]).tolist())


def _score(model: Any, images: Sequence[Any], masks: Sequence[Any], device: str) -> dict:
    from ..config.predict import PredictConfig
    from ..evaluation.metrics import class_scores, confusion
    from ..inference.predict import predict_stack
    from ..progress import run

    k = model.classes.k
    mat = np.zeros((k, k + 1), np.int64)
    for img, msk in zip(images, masks, strict=True):
        res = run(predict_stack(model, img, PredictConfig(device=device)))
        mat += confusion(np.asarray(res.labels).reshape(np.shape(msk)), np.asarray(msk), k)
    s = class_scores(mat)
    if k == 2:
        return {"dice": s["classes"][1]["dice"], "iou": s["classes"][1]["iou"]}
    return {"dice": s["mean_dice"], "iou": s["mean_iou"]}


def learning_curve(
    images: Sequence[Any],
    masks: Sequence[Any],
    cfg: CurveConfig | None = None,
    train_cfg: Any = None,
    model_cfg: Any = None,
    *,
    test_images: Sequence[Any] | None = None,
    test_masks: Sequence[Any] | None = None,
    classes: Any = None,
    stop: StopToken | None = None,
) -> Generator[Progress, None, CurveResult]:
    """Train and score every (setting, seed, size); yields Progress, returns a CurveResult."""
    from ..config.train import TrainConfig

    cfg, train_cfg = cfg or CurveConfig(), train_cfg or TrainConfig()
    if (test_images is None) != (test_masks is None):
        raise InputError("give both test images and test masks, or neither")
    if test_images is None:
        tr, te = split(len(images), cfg.test_fraction)
        test_images, test_masks = [images[i] for i in te], [masks[i] for i in te]
        images, masks = [images[i] for i in tr], [masks[i] for i in tr]
    sizes, runs = _plan(len(images), cfg, train_cfg)
    stop = stop if stop is not None else StopToken()  # a token is falsy until requested
    study = _Study(images, masks, test_images, test_masks, model_cfg, stop)
    study.table = _classes(list(masks) + list(test_masks), train_cfg, classes)
    study.sparse = train_cfg.sparse
    study.check_sizes(sizes, cfg.seeds)
    result = CurveResult(
        sizes=sizes,
        settings=tuple(dict.fromkeys(r[0] for r in runs)),
        metric="Dice" if study.table.binary else "mean Dice",
        test_images=len(test_images),
    )
    for i, (name, tc, seed, n) in enumerate(runs):
        row = yield from study.run(name, tc, seed, n, (i, len(runs)))
        result.rows.append(row)
        yield Progress(
            "curve",
            i + 1,
            len(runs),
            f"{name}, seed {seed}, {n} image(s): Dice {row['dice']:.3f} IoU {row['iou']:.3f}",
            elapsed=time.monotonic() - study.t0,
        )
        if study.stop.requested:
            result.stopped = True
            break
    return result


@dataclass
class _Study:
    images: Sequence[Any]
    masks: Sequence[Any]
    test_images: Sequence[Any]
    test_masks: Sequence[Any]
    model_cfg: Any
    stop: StopToken
    table: Any = None
    t0: float = field(default_factory=time.monotonic)
    present: list = field(default_factory=list)  # the classes in each training mask
    sparse: bool = False

    def order(self, seed: int) -> list[int]:
        """Seed ``seed``'s random order of the training images, except that it starts with
        images that together hold every class (a subset without one cannot learn it)."""
        if not self.present:
            self.present = [_classes_in(m, self.table.k, self.sparse) for m in self.masks]
        front, covered = [], set()
        perm = np.random.default_rng(1000 + seed).permutation(len(self.images)).tolist()
        for j in perm:
            if self.present[j] - covered:
                front.append(j)
                covered |= self.present[j]
        return front + [j for j in perm if j not in front]

    def check_sizes(self, sizes: Sequence[int], seeds: int) -> None:
        need = max(self.cover(s) for s in range(seeds))
        if sizes[0] < need:
            raise InputError(
                f"a subset of {sizes[0]} image(s) cannot hold every class: the smallest size "
                f"must be >= {need} here (--sizes)"
            )

    def cover(self, seed: int) -> int:
        order, covered = self.order(seed), set()
        every = set().union(*self.present)
        for i, j in enumerate(order):
            covered |= self.present[j]
            if covered == every:
                return i + 1
        return len(order)

    def run(
        self, name: str, tc: Any, seed: int, n: int, where: tuple[int, int]
    ) -> Generator[Progress, None, dict]:
        """Train on the first ``n`` images of seed ``seed``'s order, then score."""
        from ..training.loop import fit

        order = self.order(seed)[:n]
        tc = dataclasses.replace(tc, seed=tc.seed + seed)
        started = time.monotonic()
        gen = fit(
            [self.images[j] for j in order],
            [self.masks[j] for j in order],
            train_cfg=tc,
            model_cfg=self.model_cfg,
            classes=self.table,
            stop=self.stop,
        )
        what = f"{name}, seed {seed}, {n} image(s)"
        while True:
            try:
                p = next(gen)
            except StopIteration as done:
                model = done.value
                break
            yield _outer(p, where, self.t0, what)
        scores = _score(model, self.test_images, self.test_masks, tc.device)
        return {
            "setting": name,
            "seed": seed,
            "size": n,
            **scores,
            "steps": int(model.history[-1]["step"]) if model.history else 0,
            "seconds": round(time.monotonic() - started, 1),
        }


def _outer(p: Progress, where: tuple[int, int], t0: float, what: str) -> Progress:
    """The inner training progress as a step of the whole study, with its ETA."""
    i, total = where
    done = (i + (p.fraction or 0.0)) / total
    elapsed = time.monotonic() - t0
    msg = f"run {i + 1}/{total} ({what}): {p.line(eta=False)} | whole study:"
    return Progress("curve", i, None, msg, elapsed=elapsed, extra={"fraction": done})


def summary(result: CurveResult, flat_within: float = 0.02) -> list[dict]:
    """Per setting and size: mean and std over seeds; and per setting the flat point."""
    out = []
    for name in result.settings:
        rows = [r for r in result.rows if r["setting"] == name]
        by = {n: [r for r in rows if r["size"] == n] for n in result.sizes}
        means = {n: float(np.mean([r["dice"] for r in rs])) for n, rs in by.items() if rs}
        if not means:
            continue
        best = max(means.values())
        flat = min(n for n, m in means.items() if m >= best - flat_within)
        for n, rs in by.items():
            if rs:
                d, j = [r["dice"] for r in rs], [r["iou"] for r in rs]
                out.append(
                    {
                        "setting": name,
                        "size": n,
                        "dice": float(np.mean(d)),
                        "dice_std": float(np.std(d)),
                        "iou": float(np.mean(j)),
                        "iou_std": float(np.std(j)),
                        "seeds": len(rs),
                        "flat": n == flat,
                    }
                )
    return out


def table(result: CurveResult, flat_within: float = 0.02) -> str:
    """The printed summary: one line per setting and size, and where the curve flattens."""
    rows = summary(result, flat_within)
    lines = [f"{'setting':<26} {'images':>6} {result.metric:>10} {'IoU':>12}  seeds"]
    for r in rows:
        flat = "  <- flat" if r["flat"] else ""
        lines.append(
            f"{r['setting']:<26} {r['size']:>6} {r['dice']:>6.3f}+-{r['dice_std']:.3f} "
            f"{r['iou']:>6.3f}+-{r['iou_std']:.3f}  {r['seeds']}{flat}"
        )
    for name in result.settings:
        flat = [r["size"] for r in rows if r["setting"] == name and r["flat"]]
        if flat and flat[0] == max(r["size"] for r in rows if r["setting"] == name):
            lines.append(
                f"{name}: still rising at {flat[0]} image(s) (no smaller size is within "
                f"{flat_within:.2f} {result.metric}): annotating more may help"
            )
        elif flat:
            lines.append(
                f"{name}: {flat[0]} image(s) reach within {flat_within:.2f} "
                f"{result.metric} of the best size"
            )
    return "\n".join(lines)


def write_csv(result: CurveResult, path: Any) -> None:
    """One row per trained model (setting, seed, size, dice, iou, steps, seconds)."""
    import csv

    keys = ["setting", "seed", "size", "dice", "iou", "steps", "seconds"]
    with open(path, "w", newline="") as f:
        w = csv.DictWriter(f, keys)
        w.writeheader()
        w.writerows({k: r[k] for k in keys} for r in result.rows)


def plot(result: CurveResult, path: Any, flat_within: float = 0.02) -> None:
    """PNG: Dice and IoU against the number of training images, one line per setting,
    error bars over seeds (matplotlib, no display needed)."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    from matplotlib.figure import Figure

    rows = summary(result, flat_within)
    fig = Figure(figsize=(9, 4), dpi=100)
    for ax, key, title in zip(
        fig.subplots(1, 2), ("dice", "iou"), (result.metric, "IoU"), strict=True
    ):
        for name in result.settings:
            rs = [r for r in rows if r["setting"] == name]
            ax.errorbar(
                [r["size"] for r in rs],
                [r[key] for r in rs],
                yerr=[r[key + "_std"] for r in rs],
                marker="o",
                capsize=3,
                label=name,
            )
        ax.set_xscale("log")
        ax.set_xlabel("training images")
        ax.set_ylabel(title)
        ax.set_title(f"{title} on {result.test_images} held-out image(s)")
        ax.grid(alpha=0.3)
    fig.axes[0].legend()
    fig.tight_layout()
    fig.savefig(str(path))


__all__ = [
    "CurveConfig",
    "CurveResult",
    "LADDER",
    "ladder",
    "split",
    "learning_curve",
    "summary",
    "table",
    "write_csv",
    "plot",
]
