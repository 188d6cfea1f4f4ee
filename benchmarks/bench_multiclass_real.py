"""Multi-class on real data: the defaults vs two baselines, same CPU budget, one run.

Two sub-commands, one per data set (``../shared/data``, see its README.md):

* ``metaldam`` - MetalDAM SEM micrographs, 5 classes (matrix, austenite,
  martensite/austenite, precipitate, defect; the last two rare).
* ``stem`` - HAADF-STEM alumina/Pt patches, 3 classes (background/pores, gamma-alumina,
  Pt particles; the particles tiny and rare).

Both: a deterministic ~25 % of the images held out by name hash
(``_realdata.hash_split``), the rest is the training folder. Three contestants get the
same training budget of ``--seconds`` each:

* ``ours`` - ``fit(images, masks, train_cfg=TrainConfig(seconds=S), classes=ClassTable(names))``
  with the package defaults (device cpu); held-out images predicted with
  ``predict_stack(model, img, PredictConfig(device="cpu"))``.
* ``plain`` - a hand-written smp U-Net loop: resnet34 encoder (random init, offline),
  per-image min-max normalisation, random 256 px crops, random flips + rot90, softmax
  cross-entropy + multi-class soft Dice, Adam 1e-3, batch 4; whole-image prediction (padded
  to a multiple of 32), argmax.
* ``rf`` - the classical ilastik-like pixel classifier: scikit-image
  ``multiscale_basic_features`` (intensity + edges + texture, sigma 1..16, 20 features, one
  worker) of the raw image, scikit-learn ``RandomForestClassifier`` (``--rf-trees`` trees,
  n_jobs=1, ``class_weight=--rf-class-weight``). Training images are taken in a random
  order; per image ``--rf-pixels`` labelled pixels are drawn uniformly at random into a pool.
  Feature computation stops when all images are done or ``--rf-feature-share`` of the budget
  is used; then the forest's time per tree is calibrated (3 trees on 50k px, counted), the
  pool is subsampled to the size whose ``--rf-trees`` trees are estimated to fit the rest of
  the budget, and trees are added in chunks of 10 (warm start) until all are grown or the
  budget is used. Everything in training (features, calibration, fitting) is counted.

The three run interleaved in a round robin of ``--slice`` seconds (bench_train.race) so
that the shared machine's load drift hits all alike; fit() sees only its own time through
a virtual clock (bench_train.Ours). Prediction time is not counted for anyone. Scores:
``core.evaluation.metrics.confusion`` summed over the held-out images, ``class_scores`` -> per-class
IoU / Dice, mean IoU with and without background (class 0).

Run from the repository root; the commands of the recorded numbers (docs/experiments/,
"Multi-class: real data")::

    python benchmarks/bench_multiclass_real.py --threads 1 metaldam --seconds 300
    python benchmarks/bench_multiclass_real.py --threads 1 stem --seconds 300

(recorded with the package of commit 8ccca40 exported by ``git archive HEAD src`` and put
first on ``PYTHONPATH``, since ``src/`` of the shared working tree was being edited; the
script prints HEAD and where ``napari_temseg`` was imported from).

A quick end-to-end check: ``... --threads 1 stem --seconds 20 --slice 10``.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
import warnings
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
os.environ.setdefault("HF_HUB_OFFLINE", "1")

import _realdata
from _common import git_head, machine, pad_to, torch_threads
from bench_train import Ours, Reference, parse_variant, race


def _minmax(img: np.ndarray) -> np.ndarray:
    x = img.astype(np.float32)
    lo, hi = float(x.min()), float(x.max())
    return (x - lo) / (hi - lo) if hi > lo else x - lo


# --------------------------------------------------------------------------- contestants
class Plain(Reference):
    """The plain multi-class loop: smp.Unet(resnet34, random init), per-image min-max, random
    256 crops + flips/rot90, softmax CE + soft Dice, Adam 1e-3, batch 4 (bench_train.Reference's
    time keeping, multi-class step)."""

    name = "plain"

    def __init__(
        self,
        images: list[np.ndarray],
        masks: list[np.ndarray],
        k: int,
        seconds: float,
        patch: int = 256,
        batch: int = 4,
        lr: float = 1e-3,
        seed: int = 0,
    ):
        import segmentation_models_pytorch as smp
        import torch

        torch.manual_seed(seed)
        self.images = [_minmax(im) for im in images]
        self.masks, self.k, self.seconds = masks, k, seconds
        self.patch, self.batch = patch, batch
        self.rng = np.random.default_rng(seed)
        areas = np.array([im.size for im in images], np.float64)
        self.p = areas / areas.sum()
        self.net = smp.Unet("resnet34", encoder_weights=None, in_channels=1, classes=k)
        self.opt = torch.optim.Adam(self.net.parameters(), lr=lr)
        self.steps, self.elapsed, self.setup_s = 0, 0.0, 0.0

    def describe(self) -> str:
        return (
            f"plain loop: smp.Unet resnet34 (random init), per-image min-max, random "
            f"{self.patch} crops, flips + rot90, softmax CE + soft Dice, Adam lr 1e-3 constant, "
            f"batch {self.batch}"
        )

    def seen(self) -> str:
        return f"{self.steps} steps ({self.steps * self.batch} crops)"

    def _crop(self):
        k = int(self.rng.choice(len(self.images), p=self.p))
        im, m, p = self.images[k], self.masks[k], self.patch
        h, w = im.shape
        top = int(self.rng.integers(max(1, h - p + 1)))
        left = int(self.rng.integers(max(1, w - p + 1)))
        x, y = im[top : top + p, left : left + p], m[top : top + p, left : left + p]
        x = np.pad(x, ((0, p - x.shape[0]), (0, p - x.shape[1])), mode="reflect")
        y = np.pad(y, ((0, p - y.shape[0]), (0, p - y.shape[1])), mode="reflect")
        if self.rng.random() < 0.5:
            x, y = x[:, ::-1], y[:, ::-1]
        if self.rng.random() < 0.5:
            x, y = x[::-1], y[::-1]
        r = int(self.rng.integers(4))
        return np.rot90(x, r), np.rot90(y, r)

    def step(self) -> float:
        import torch
        import torch.nn.functional as F

        crops = [self._crop() for _ in range(self.batch)]
        x = torch.from_numpy(np.stack([c[0] for c in crops])[:, None].copy())
        y = torch.from_numpy(np.stack([c[1] for c in crops]).astype(np.int64))
        self.net.train()
        logits = self.net(x)
        prob = logits.softmax(1)
        onehot = F.one_hot(y, self.k).permute(0, 3, 1, 2).float()
        inter = (prob * onehot).sum((0, 2, 3))
        denom = prob.sum((0, 2, 3)) + onehot.sum((0, 2, 3))
        dice = 1 - ((2 * inter + 1) / (denom + 1)).mean()
        loss = F.cross_entropy(logits, y) + dice
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        self.opt.step()
        return float(loss.detach())

    def predict_labels(self, image: np.ndarray) -> np.ndarray:
        import torch

        xp, (h, w) = pad_to(_minmax(image)[None], 32)
        self.net.eval()
        with torch.inference_mode():
            logits = self.net(torch.from_numpy(np.ascontiguousarray(xp))[None])[0, :, :h, :w]
        return logits.argmax(0).numpy().astype(np.uint8)


def _features(img: np.ndarray) -> np.ndarray:
    """20 features (4 per sigma 1, 2, 4, 8, 16), one thread."""
    import inspect

    from skimage.feature import multiscale_basic_features

    params = inspect.signature(multiscale_basic_features).parameters
    one = {"workers" if "workers" in params else "num_workers": 1}  # renamed in 0.26
    return multiscale_basic_features(
        img, intensity=True, edges=True, texture=True, sigma_min=1, sigma_max=16, **one
    ).astype(np.float32, copy=False)


class Forest:
    """ilastik-like: multiscale features + random forest, within the same time budget."""

    name = "rf"
    CHUNK = 10  # trees per warm-start round

    def __init__(
        self,
        images: list[np.ndarray],
        masks: list[np.ndarray],
        seconds: float,
        pixels: int = 20000,
        trees: int = 100,
        feature_share: float = 0.5,
        class_weight: str | None = "balanced_subsample",
        seed: int = 0,
        predict_jobs: int = 1,
    ):
        self.images, self.masks, self.seconds = images, masks, seconds
        self.pixels, self.trees, self.feature_share = pixels, trees, feature_share
        self.class_weight, self.seed, self.predict_jobs = class_weight, seed, predict_jobs
        from sklearn.ensemble import RandomForestClassifier  # import outside the timing

        self._rf_class = RandomForestClassifier
        self.rng = np.random.default_rng(seed)
        self.order = list(self.rng.permutation(len(images)))
        self.pool_x: list[np.ndarray] = []
        self.pool_y: list[np.ndarray] = []
        self.feat_times: list[float] = []
        self.phase = "features"  # -> "trees" -> "done"
        self.forest, self.n_fit, self.t_tree, self.last_chunk = None, 0, None, None
        self.elapsed, self.setup_s = 0.0, 0.0

    @property
    def finished(self) -> bool:
        return self.phase == "done"

    @property
    def steps(self) -> str:
        trees = self.forest.n_estimators if self.forest is not None else 0
        return f"{len(self.feat_times)}img+{trees}trees"

    def seen(self) -> str:
        trees = self.forest.n_estimators if self.forest is not None else 0
        return f"{len(self.feat_times)}/{len(self.images)} images, {self.n_fit} px, {trees} trees"

    def describe(self) -> str:
        return (
            f"random forest: multiscale_basic_features (intensity+edges+texture, sigma 1-16) "
            f"of the raw image, {self.pixels} random px per image into the pool, "
            f"{self.trees} trees max, class_weight {self.class_weight}, features until "
            f"{self.feature_share:.0%} of the budget; feature time per image "
            f"{np.mean(self.feat_times):.1f}s, tree time calibrated "
            f"{(self.t_tree or 0):.2f}s per tree on {self.n_fit} px"
        )

    # one unit of work per call, each timed into self.elapsed
    def _feature_one(self) -> None:
        i = self.order[len(self.feat_times)]
        t = time.monotonic()
        f = _features(self.images[i])
        m = self.masks[i]
        idx = self.rng.choice(m.size, min(self.pixels, m.size), replace=False)
        self.pool_x.append(f.reshape(-1, f.shape[-1])[idx].copy())
        self.pool_y.append(m.ravel()[idx].copy())
        self.feat_times.append(time.monotonic() - t)

    def _new_forest(self, n_estimators: int, warm_start: bool = True):
        return self._rf_class(
            n_estimators=n_estimators,
            n_jobs=1,
            class_weight=self.class_weight,
            random_state=self.seed,
            warm_start=warm_start,
        )

    def _start_trees(self) -> None:
        """Calibrate the time per tree, subsample the pool to what fits the rest of the budget."""
        x, y = np.concatenate(self.pool_x), np.concatenate(self.pool_y)
        self.pool_x, self.pool_y = [], []
        n0 = min(len(y), 50000)
        sel = self.rng.choice(len(y), n0, replace=False)
        t = time.monotonic()
        self._new_forest(3, warm_start=False).fit(x[sel], y[sel])
        per_tree0 = (time.monotonic() - t) / 3

        def est(n: int) -> float:  # a tree is ~ n log n (a bit more: 1.15 margin below)
            return per_tree0 * (n * np.log2(max(n, 2))) / (n0 * np.log2(max(n0, 2)))

        left = self.seconds - self.elapsed - (time.monotonic() - t)
        n = len(y)
        while n > n0 and 1.15 * self.trees * est(n) > left:
            n = int(n * 0.9)
        keep = self.rng.choice(len(y), n, replace=False) if n < len(y) else slice(None)
        self.x, self.y = x[keep], y[keep]
        self.n_fit, self.t_tree = len(self.y), est(n)
        self.forest = self._new_forest(0)
        self.phase = "trees"

    def _grow(self) -> None:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # warm start + balanced class weights: same data
            self.forest.set_params(
                n_estimators=min(self.trees, self.forest.n_estimators + self.CHUNK)
            )
            self.forest.fit(self.x, self.y)

    def advance(self, until: float) -> None:
        while not self.finished and self.elapsed < until:
            t = time.monotonic()
            if self.phase == "features":
                done = len(self.feat_times)
                next_t = np.mean(self.feat_times) if self.feat_times else 0.0
                if done == len(self.images) or (
                    done and self.elapsed + next_t > self.feature_share * self.seconds
                ):
                    self._start_trees()
                else:
                    self._feature_one()
            else:
                n = self.forest.n_estimators
                chunk_est = self.last_chunk or self.CHUNK * self.t_tree
                if n >= self.trees or (n and self.elapsed + chunk_est > self.seconds):
                    self.phase = "done"
                    del self.x, self.y
                    break
                self._grow()
                self.last_chunk = time.monotonic() - t
            self.elapsed += time.monotonic() - t

    def predict_labels(self, image: np.ndarray) -> np.ndarray:
        f = _features(image)
        self.forest.set_params(n_jobs=self.predict_jobs)
        flat = f.reshape(-1, f.shape[-1])
        out = np.concatenate(
            [self.forest.predict(flat[i : i + 262144]) for i in range(0, len(flat), 262144)]
        )
        return out.reshape(image.shape).astype(np.uint8)


def _ours_labels(c: Ours, image: np.ndarray) -> np.ndarray:
    from napari_temseg.core.config.predict import PredictConfig
    from napari_temseg.core.inference.predict import predict_stack
    from napari_temseg.core.progress import run

    res = run(predict_stack(c.model, image, PredictConfig(device="cpu")))
    return np.asarray(res.labels).reshape(image.shape)


def _ours_seen(c: Ours) -> str:
    return f"{c.steps} steps ({c.steps * c.train_cfg.batch} patches), {len(c.model.history)} epochs"


# --------------------------------------------------------------------------- run
def _table(results: dict, names: list[str], contestants: list, key: str, title: str) -> None:
    short = [n[:12] for n in names]
    print(f"\n{title}")
    head = f"{'contestant':<8} " + " ".join(f"{n:>12}" for n in short)
    print(head + f" {'mean':>7} {'mean fg':>7} {'train s':>8}  seen")
    for c in contestants:
        s = results[c.name]
        per = " ".join(f"{cl[key]:>12.3f}" for cl in s["classes"])
        mean = s["mean_iou"] if key == "iou" else s["mean_dice"]
        mean_fg = s["mean_iou_fg"] if key == "iou" else s["mean_dice_fg"]
        seen = _ours_seen(c) if isinstance(c, Ours) else c.seen()
        print(f"{c.name:<8} {per} {mean:>7.3f} {mean_fg:>7.3f} {c.elapsed:>8.0f}  {seen}")


def bench(args, dataset: str) -> None:
    from napari_temseg.core.config.classes import ClassTable
    from napari_temseg.core.evaluation.metrics import class_scores, confusion
    from napari_temseg.core.inference.predict import predict_stack  # noqa: F401  (import all code now)

    if dataset == "metaldam":
        names_img, images, masks = _realdata.metaldam()
        classes = list(_realdata.METALDAM_CLASSES)
    else:
        names_img, images, masks = _realdata.stem()
        classes = list(_realdata.STEM_CLASSES)
    k = len(classes)
    train, test = _realdata.hash_split(names_img, args.held_out)
    tr_im, tr_m = [images[i] for i in train], [masks[i] for i in train]
    print(
        f"{dataset}: {len(train)} training images, {len(test)} held out by name hash "
        f"({', '.join(names_img[i] for i in test)}); classes {classes}; budget "
        f"{args.seconds:.0f}s each, slice {args.slice:.0f}s, seed {args.seed}",
        flush=True,
    )
    print(f"machine: {machine()}", flush=True)
    print(f"git HEAD {git_head()}", flush=True)
    overrides = {"seed": args.seed} if args.seed else {}
    variants = [parse_variant(v) for v in args.variant]
    contestants = [
        Ours("ours", tr_im, tr_m, args.seconds, 0, overrides, classes=ClassTable(classes)),
        *(
            Ours(
                name,
                tr_im,
                tr_m,
                args.seconds,
                0,
                {**overrides, **extra},
                classes=ClassTable(classes),
            )
            for name, extra in variants
        ),
        Plain(tr_im, tr_m, k, args.seconds, seed=args.seed),
        Forest(
            tr_im,
            tr_m,
            args.seconds,
            pixels=args.rf_pixels,
            trees=args.rf_trees,
            feature_share=args.rf_feature_share,
            class_weight=None if args.rf_class_weight == "none" else args.rf_class_weight,
            seed=args.seed,
            predict_jobs=args.threads or 1,
        ),
    ]
    if args.no_reference:  # fit() contestants only (variants of the defaults)
        contestants = [c for c in contestants if isinstance(c, Ours)]
    t0 = time.monotonic()
    race(contestants, args.seconds, args.slice)
    print(f"training done in {time.monotonic() - t0:.0f}s wall; predicting", flush=True)
    results, shares = {}, {}
    for c in contestants:
        t = time.monotonic()
        mat = np.zeros((k, k + 1), np.int64)
        for i in test:
            pred = (
                _ours_labels(c, images[i]) if isinstance(c, Ours) else c.predict_labels(images[i])
            )
            mat += confusion(pred, masks[i], k)
        results[c.name] = class_scores(mat, classes)
        shares[c.name] = [cl["pred_share"] for cl in results[c.name]["classes"]]
        print(f"  {c.name}: predicted in {time.monotonic() - t:.0f}s", flush=True)
    true_share = [cl["true_share"] for cl in results["ours"]["classes"]]
    print(f"\n{dataset}: {len(test)} held-out images, budget {args.seconds:.0f}s per contestant")
    print(f"machine: {machine()}")
    print(f"git HEAD {git_head()}")
    _table(results, classes, contestants, "iou", "per-class IoU")
    _table(results, classes, contestants, "dice", "per-class Dice")
    print("\nclass share of the held-out pixels, true and predicted (%)")
    print(f"{'truth':<8} " + " ".join(f"{100 * s:>12.2f}" for s in true_share))
    for c in contestants:
        print(f"{c.name:<8} " + " ".join(f"{100 * s:>12.2f}" for s in shares[c.name]))
    print()
    for c in contestants:
        print(f"  {c.name}: {c.describe()}")
        if isinstance(c, Ours):
            print(f"    fit() setup {c.setup_s or 0:.1f}s (outside its own clock)")
            vd = [round(h.get("val_dice", float("nan")), 3) for h in c.model.history]
            print(f"    fit() epochs {len(c.model.history)}, internal val Dice per epoch {vd}")
    best = max(contestants, key=lambda c: results[c.name]["mean_iou"])
    for c in contestants:
        s = results[c.name]
        print(
            f"RESULT {dataset} {c.name}: mIoU {s['mean_iou']:.3f} mIoU(fg) {s['mean_iou_fg']:.3f}"
            f" | " + " ".join(f"{cl['name']}={cl['iou']:.3f}" for cl in s["classes"])
        )
    print(f"best mean IoU: {best.name} | done | {machine()}")


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--threads", type=int, default=None, help="torch threads (use 1)")
    sub = ap.add_subparsers(dest="cmd", required=True)
    for name in ("metaldam", "stem"):
        s = sub.add_parser(name, help=f"{name}: ours vs plain smp loop vs random forest")
        s.add_argument("--seconds", type=float, default=300.0, help="training budget each")
        s.add_argument("--slice", type=float, default=30.0, help="round-robin time slice (s)")
        s.add_argument("--seed", type=int, default=0)
        s.add_argument(
            "--variant",
            action="append",
            default=[],
            help="another fit() contestant: name:key=value,... (TrainConfig/ModelConfig keys)",
        )
        s.add_argument(
            "--no-reference", action="store_true", help="skip the plain smp loop and the forest"
        )
        s.add_argument("--held-out", type=float, default=0.25, help="share of images held out")
        s.add_argument("--rf-pixels", type=int, default=20000, help="rf: pixels drawn per image")
        s.add_argument("--rf-trees", type=int, default=100, help="rf: trees at most")
        s.add_argument(
            "--rf-feature-share", type=float, default=0.5, help="rf: budget share for features"
        )
        s.add_argument(
            "--rf-class-weight",
            default="balanced_subsample",
            choices=("balanced_subsample", "balanced", "none"),
        )
    args = ap.parse_args(argv)
    torch_threads(args.threads)
    bench(args, args.cmd)


if __name__ == "__main__":
    main()
