"""The pixel classifier's races: tree libraries on scribbles, and prediction speed.

``race DATASET`` (metaldam | stem): the simulated careful annotator (``_scribbles``: four
48-px strokes per class per image, inside the class) paints ``--train`` images of the
training part; ``_realdata.hash_split`` holds out 25 % of the images by name hash for
scoring (every second pixel in y and x of each held-out image). The filter bank
(``core.nets.classifier.features``) is computed once per image; then each tree library is
trained on the same painted pixels and scored on the same features:
scikit-learn random forest and extra trees (100 trees, ilastik's default), the package's
backend (extra trees, 50 trees of at most 8 levels, leaves of >= 3 pixels), LightGBM,
XGBoost (hist) and CatBoost (convpaint's choice), 2 threads each. The reference row is a
plain scikit-image ``multiscale_basic_features`` + scikit-learn random forest (100 trees)
on the same strokes, its feature time included. ``--unet-seconds S`` adds U-Nets (small-unet)
trained S seconds on the same strokes (``fit`` defaults, sparse, its own validation part),
``--variants``: ``plain`` (strokes alone, ``teacher="none"``), ``taught`` (the default:
taught by the pixel classifier, ``training.teacher``; ``taught:teacher_weight=0.8`` with
other TrainConfig options;
the U-Net is scored even where the classifier would be kept) and ``autocontext`` (the
classifier's probabilities as extra input channels; its training and answers count in the
budget). ``--no-trees`` skips the tree libraries.
The ``ours`` row is the package end to end
(``fit`` with ``arch="pixel-classifier"`` on the sparse masks, ``predict_stack``): the
number a user gets. MetalDAM scores the mean IoU over all five phases; STEM without the
background.

``dots``: the FIB-SEM sample with 15 dots of foreground and 15 of background on each of two
slices, ``--seconds`` of training with and without the teacher, Dice on every slice.

``speed``: prediction Mpix/s on one 2048 x 2048 two-channel slice - the classifier vs the
default U-Net (small-unet, random weights), both through ``predict_stack`` on the CPU,
interleaved, best of ``--repeat``.
"""

from __future__ import annotations

import argparse
import time

import _realdata
import _scribbles
import numpy as np

THREADS = 2


def _features(img: np.ndarray) -> np.ndarray:
    """(H, W) uint8 -> (H, W, F) float32 with the package's filter bank."""
    import torch

    from napari_temseg.core.nets.classifier.features import filter_bank

    x = torch.from_numpy(img.astype(np.float32) / 255.0)[None, None]
    with torch.inference_mode():
        return filter_bank(x)[0].permute(1, 2, 0).numpy()


def _skimage_features(img: np.ndarray) -> np.ndarray:
    from skimage.feature import multiscale_basic_features

    return multiscale_basic_features(img.astype(np.float32) / 255.0, sigma_min=1, sigma_max=16)


def _contestants(k: int) -> dict:
    from catboost import CatBoostClassifier
    from sklearn.ensemble import ExtraTreesClassifier, RandomForestClassifier
    from xgboost import XGBClassifier

    from napari_temseg.core.nets.classifier.forest import make_forest

    class Ours:  # the package's backend, as it ships
        def __init__(self):
            self.f = make_forest(k)

        def fit(self, x, y):
            self.f.fit(x, y, threads=THREADS)
            return self

        def predict(self, x):
            return self.f.predict_proba(x, threads=THREADS).argmax(1)

    class LightGBM:
        def fit(self, x, y):
            import lightgbm as lgb

            p = dict(
                objective="multiclass",
                num_class=k,
                num_leaves=31,
                learning_rate=0.15,
                min_data_in_leaf=10,
                feature_fraction=0.7,
                bagging_fraction=0.8,
                bagging_freq=1,
                lambda_l2=1.0,
                max_bin=63,
                num_threads=THREADS,
                verbose=-1,
                seed=0,
            )
            self.b = lgb.train(p, lgb.Dataset(x, y), num_boost_round=60)
            return self

        def predict(self, x):
            return self.b.predict(x).argmax(1)

    return {
        "sklearn random forest": lambda: RandomForestClassifier(100, n_jobs=THREADS),
        "sklearn extra trees": lambda: ExtraTreesClassifier(100, n_jobs=THREADS),
        "package default: extra trees, 50, depth <= 8": Ours,
        "lightgbm (60 rounds, 31 leaves)": LightGBM,
        "xgboost hist": lambda: XGBClassifier(
            n_estimators=60, max_depth=6, learning_rate=0.15, tree_method="hist", n_jobs=THREADS
        ),
        "catboost": lambda: CatBoostClassifier(
            iterations=100, depth=6, thread_count=THREADS, verbose=0
        ),
    }


def _score(preds: list[np.ndarray], truths: list[np.ndarray], k: int, fg_only: bool) -> tuple:
    from napari_temseg.core.evaluation.metrics import class_scores, confusion

    m = sum(confusion(p, t, k) for p, t in zip(preds, truths, strict=True))
    s = class_scores(m)
    ious = [c["iou"] for c in s["classes"]]
    return (s["mean_iou_fg"] if fg_only else s["mean_iou"]), ious


def _painted(masks: list[np.ndarray], k: int, seed: int) -> list[np.ndarray]:
    return [_scribbles.scribbles(m, k, seed + i) for i, m in enumerate(masks)]


def _training_rows(feats: list[np.ndarray], sparse: list[np.ndarray], k: int):
    xs, ys = [], []
    for f, s in zip(feats, sparse, strict=True):
        ids, painted = _scribbles.dense(s, k)
        xs.append(f[painted])
        ys.append(ids[painted])
    return np.concatenate(xs), np.concatenate(ys)


def _race_trees(k, train_f, sparse, test_f, test_t, fg_only, rows: dict) -> None:
    x, y = _training_rows(train_f, sparse, k)
    print(f"  {len(y)} painted pixels, {x.shape[1]} features", flush=True)
    for name, make in _contestants(k).items():
        t = time.perf_counter()
        clf = make().fit(x, y)
        fit_s = time.perf_counter() - t
        t, preds = time.perf_counter(), []
        for f in test_f:
            h, w, nf = f.shape
            preds.append(np.asarray(clf.predict(f.reshape(-1, nf))).reshape(h, w))
        pred_s = time.perf_counter() - t
        mpix = sum(p.size for p in preds) / 1e6
        rows[name] = (fit_s, mpix / pred_s, *_score(preds, test_t, k, fg_only))
        print(f"  {name}: fit {fit_s:.1f}s, mIoU {rows[name][2]:.3f}", flush=True)


def _reference(k, train_imgs, sparse, test_imgs, test_t, fg_only, rows: dict) -> None:
    from sklearn.ensemble import RandomForestClassifier

    t = time.perf_counter()
    x, y = _training_rows([_skimage_features(i) for i in train_imgs], sparse, k)
    clf = RandomForestClassifier(100, n_jobs=THREADS).fit(x, y)
    fit_s = time.perf_counter() - t
    t = time.perf_counter()
    preds = [clf.predict(_skimage_features(i)[::2, ::2].reshape(-1, x.shape[1])) for i in test_imgs]
    preds = [p.reshape(t_.shape) for p, t_ in zip(preds, test_t, strict=True)]
    pred_s = time.perf_counter() - t
    mpix = sum(p.size for p in preds) / 1e6
    rows["reference: skimage features + sklearn RF"] = (
        fit_s,
        mpix / pred_s,
        *_score(preds, test_t, k, fg_only),
    )


def _train(arch, seconds, images, sparse, channel_axis=None, **options):
    from napari_temseg.core.config.model import ModelConfig
    from napari_temseg.core.config.train import TrainConfig
    from napari_temseg.core.progress import run
    from napari_temseg.core.training import fit

    budget = {} if seconds is None else {"seconds": seconds, "epochs": None}
    if arch == "pixel-classifier":
        options = {"val_fraction": 0.0, **options}
    cfg = TrainConfig(sparse=True, device="cpu", **budget, **options)
    vols = [i[None] for i in images]
    masks = [s[None] for s in sparse]
    return run(
        fit(vols, masks, model_cfg=ModelConfig(arch=arch), train_cfg=cfg, channel_axis=channel_axis)
    )


def _predict(model, img, channel_axis=None) -> np.ndarray:
    from napari_temseg.core.config.predict import PredictConfig
    from napari_temseg.core.inference.predict import predict_slice

    p = predict_slice(model, img, 0, PredictConfig(device="cpu"), channel_axis=channel_axis)
    return p if p.ndim == 3 else np.stack([1 - p, p])


def _score_model(name, t, model, test_imgs, test_t, k, fg_only, rows, prepare=None) -> None:
    fit_s = time.perf_counter() - t
    t, preds = time.perf_counter(), []
    for img in test_imgs:
        if prepare is None:
            p = _predict(model, img[None])
        else:
            p = _predict(model, prepare(img), channel_axis=0)
        preds.append(p.argmax(0)[::2, ::2])
    pred_s = time.perf_counter() - t
    mpix = sum(i.size for i in test_imgs) / 1e6
    rows[name] = (fit_s, mpix / pred_s, *_score(preds, test_t, k, fg_only))
    print(f"  {name}: fit {fit_s:.1f}s, mIoU {rows[name][2]:.3f}", flush=True)


def _fit_and_score(
    name, arch, seconds, k, train_imgs, sparse, test_imgs, test_t, fg_only, rows, **options
):
    """The package end to end: ``fit`` on the sparse masks, ``predict_slice`` held out."""
    t = time.perf_counter()
    model = _train(arch, seconds, train_imgs, sparse, **options)
    _score_model(name, t, model, test_imgs, test_t, k, fg_only, rows)


def _autocontext(name, seconds, k, train_imgs, sparse, test_imgs, test_t, fg_only, rows) -> None:
    """Auto-context: the classifier's probabilities as extra input channels of a U-Net
    trained on the strokes; the classifier's training and answers count in the budget."""
    t = time.perf_counter()
    clf = _train("pixel-classifier", None, train_imgs, sparse)

    def prepare(img):  # (C, H, W): the image, then the classifier's K probabilities
        return np.concatenate([img[None].astype(np.float32), _predict(clf, img[None])])

    stacks = [prepare(i) for i in train_imgs]
    left = max(10.0, seconds - (time.perf_counter() - t))
    model = _train("small-unet", left, stacks, sparse, channel_axis=1, teacher="none")
    _score_model(name, t, model, test_imgs, test_t, k, fg_only, rows, prepare)


def _value(text: str):
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            pass
    return {"true": True, "false": False}.get(text.lower(), text)


UNET_VARIANTS = {  # --variants: the U-Net contestants on the same strokes
    "plain": {"teacher": "none"},
    "taught": {"teacher": "pixel-classifier", "keep_better": False},
    "autocontext": None,
}


def _table(title: str, rows: dict, names: list[str]) -> None:
    print(f"\n{title}")
    print("| contestant | fit s | predict Mpix/s | mean IoU | " + " | ".join(names) + " |")
    print("|---|---|---|---|" + "---|" * len(names))
    for name, (fit_s, mps, miou, ious) in rows.items():
        cells = " | ".join(f"{v:.3f}" for v in ious)
        print(f"| {name} | {fit_s:.1f} | {mps:.2f} | **{miou:.3f}** | {cells} |")


def race(args) -> None:
    if args.dataset == "metaldam":
        names, images, masks = _realdata.metaldam()
        classes, fg_only = _realdata.METALDAM_CLASSES, False
    else:
        names, images, masks = _realdata.stem()
        classes, fg_only = _realdata.STEM_CLASSES, True
    k = len(classes)
    train, test = _realdata.hash_split(names, 0.25)
    train = train[: args.train]
    train_imgs, test_imgs = [images[i] for i in train], [images[i] for i in test]
    sparse = _painted([masks[i] for i in train], k, args.seed)
    share = sum((s > 0).sum() for s in sparse) / sum(s.size for s in sparse)
    print(
        f"{args.dataset}: {len(train)} painted training images ({100 * share:.2f} % of their "
        f"pixels), {len(test)} held out by name hash: {', '.join(names[i] for i in test)}"
    )
    test_t = [masks[i][::2, ::2].astype(np.int64) for i in test]
    rows: dict = {}
    t = time.perf_counter()
    train_f = [_features(i) for i in train_imgs]
    test_f = [_features(i)[::2, ::2] for i in test_imgs]
    print(f"  filter bank: {time.perf_counter() - t:.1f}s for {len(train) + len(test)} images")
    if not args.no_trees:
        _race_trees(k, train_f, sparse, test_f, test_t, fg_only, rows)
    del train_f, test_f
    _reference(k, train_imgs, sparse, test_imgs, test_t, fg_only, rows)
    data = (k, train_imgs, sparse, test_imgs, test_t, fg_only, rows)
    _fit_and_score("ours end to end (fit + predict_stack)", "pixel-classifier", None, *data)
    for v in args.variants.split(",") if args.unet_seconds else ():
        name = f"U-Net {v} (small-unet), {args.unet_seconds:.0f} s"
        if v == "autocontext":
            _autocontext(name, args.unet_seconds, *data)
        else:  # "taught:teacher_weight=0.8": a variant with other TrainConfig options
            base, *pairs = v.split(":")
            given = dict(p.split("=") for p in pairs)
            options = {**UNET_VARIANTS[base], **{k: _value(x) for k, x in given.items()}}
            _fit_and_score(name, "small-unet", args.unet_seconds, *data, **options)
    what = "without background" if fg_only else "over all classes"
    _table(f"{args.dataset} scribbles: held-out mean IoU {what}", rows, list(classes))


def dots(args) -> None:
    """The issue's new-user case: the FIB-SEM sample, ~30 dots of foreground and of background
    on two slices, a short training; Dice on every slice against the sample's ground truth."""
    from napari_temseg._sample_data import FIBSEM_SHAPE, SEED
    from napari_temseg.core.config.model import ModelConfig
    from napari_temseg.core.config.predict import PredictConfig
    from napari_temseg.core.config.train import TrainConfig
    from napari_temseg.core.data.synthetic.fibsem import make_fibsem
    from napari_temseg.core.evaluation.metrics import dice
    from napari_temseg.core.inference.predict import predict_stack
    from napari_temseg.core.progress import run
    from napari_temseg.core.training import fit

    img, truth = make_fibsem(FIBSEM_SHAPE, seed=SEED)
    rng = np.random.default_rng(args.seed)
    mask = np.zeros_like(truth)
    for z in (4, 11):  # 15 dots (3 x 3 px) of each class per slice
        for value, where in ((1, truth[z] == 1), (2, truth[z] == 0)):
            for y, x in np.argwhere(where)[rng.choice(int(where.sum()), 15, replace=False)]:
                mask[z, max(0, y - 1) : y + 2, max(0, x - 1) : x + 2] = value
    print(f"fibsem sample {img.shape}, {100 * truth.mean():.0f} % foreground, dots on 2 slices")
    for teacher, priors in (
        ("none", False),
        ("pixel-classifier", False),
        ("pixel-classifier", True),
    ):
        cfg = TrainConfig(
            sparse=True, device="cpu", seconds=args.seconds, teacher=teacher, keep_better=False
        )
        cfg = TrainConfig(**{**cfg.__dict__, "teacher_priors": priors})
        t = time.perf_counter()
        model = run(fit(img, mask, train_cfg=cfg, model_cfg=ModelConfig(), channel_axis=1))
        fit_s = time.perf_counter() - t
        prob = np.zeros(truth.shape, np.float32)
        run(predict_stack(model, img, PredictConfig(device="cpu"), prob_out=prob, channel_axis=1))
        pred = prob > 0.5
        print(
            f"  teacher {teacher}{', priors' if priors else ''}: fit {fit_s:.0f}s, "
            f"Dice {dice(pred, truth):.3f}, "
            f"predicted foreground {100 * pred.mean():.0f} %"
        )


def speed(args) -> None:
    from napari_temseg.core.config.model import ModelConfig
    from napari_temseg.core.config.predict import PredictConfig
    from napari_temseg.core.data.synthetic import make_phases
    from napari_temseg.core.progress import run
    from napari_temseg.core.training import fit

    img, lab = make_phases((2, args.size, args.size), channels=2, seed=0)
    from napari_temseg.core.config.train import TrainConfig

    k = int(lab.max()) + 1
    mask = np.zeros_like(lab)  # dots of every class: a quick model of each kind
    dots = lab[0, ::7, ::7]
    mask[0, ::7, ::7] = np.where(dots == 0, k, dots)
    models = {}

    for arch in ("pixel-classifier", "small-unet"):
        cfg = TrainConfig(sparse=True, device="cpu", seconds=5, val_fraction=0.0)
        models[arch] = run(
            fit(img[:1], mask[:1], model_cfg=ModelConfig(arch=arch), train_cfg=cfg, channel_axis=1)
        )
    from napari_temseg.core.inference.predict import predict_slice

    best = {a: float("inf") for a in models}
    for _ in range(args.repeat):
        for arch, m in models.items():
            t = time.perf_counter()
            predict_slice(m, img[1], 0, PredictConfig(device="cpu"), channel_axis=0)
            best[arch] = min(best[arch], time.perf_counter() - t)
    mpix = args.size * args.size / 1e6
    for arch, s in best.items():
        print(f"{arch}: {s:.2f}s for {mpix:.1f} Mpix x 2 channels = {mpix / s:.2f} Mpix/s")
    print(f"classifier / small-unet speed: {best['small-unet'] / best['pixel-classifier']:.2f}")


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    r = sub.add_parser("race", help="tree libraries on simulated scribbles")
    r.add_argument("dataset", choices=("metaldam", "stem"))
    r.add_argument("--train", type=int, default=10, help="painted training images")
    r.add_argument("--seed", type=int, default=0)
    r.add_argument("--unet-seconds", type=float, default=0, help="also the U-Net variants")
    r.add_argument(
        "--variants", default="plain,taught", help=f"U-Net variants: {', '.join(UNET_VARIANTS)}"
    )
    r.add_argument("--no-trees", action="store_true", help="skip the tree libraries' race")
    d = sub.add_parser("dots", help="FIB-SEM sample, dots on two slices: plain vs taught")
    d.add_argument("--seconds", type=float, default=60)
    d.add_argument("--seed", type=int, default=0)
    s = sub.add_parser("speed", help="prediction Mpix/s: classifier vs small-unet")
    s.add_argument("--size", type=int, default=2048)
    s.add_argument("--repeat", type=int, default=2)
    args = ap.parse_args(argv)
    {"race": race, "dots": dots, "speed": speed}[args.cmd](args)


if __name__ == "__main__":
    main()
