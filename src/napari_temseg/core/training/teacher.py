"""The U-Net taught by the pixel classifier (scribbles).

Strokes cover 0.4-1 % of the pixels: a U-Net trained on them alone sees little of each class
and nothing of the class frequencies. Before the first step, :func:`teach` trains the pixel
classifier on the strokes of the training part (seconds), predicts every pixel of the
training regions with it, and gives the patch sampler its answer: an unpainted pixel learns
the classifier's class with a loss weight of ``teacher_weight`` x its confidence (0 where
the classifier hesitates between classes, 1 where it is sure); painted pixels keep weight 1.
Patches are then drawn anywhere in the regions (every pixel teaches), so the classes come in
the proportions the classifier sees, not in the strokes' (a few dots of a rare class do not
make it half of the image).

The classifier is validated on the same held-out strokes as the U-Net; :func:`better`
keeps whichever scores higher and says so.
"""

from __future__ import annotations

import time
from collections.abc import Generator

import numpy as np

from ..progress import Progress, StopToken
from .classifier import (
    TILE,
    check_classes,
    classifier_model,
    collect,
    halo_features,
    new_classifier,
    train_trees,
)


def teaching(cfg) -> bool:
    """Whether fit() teaches the U-Net with the classifier (``teacher`` option)."""
    if cfg.teacher == "auto":
        return bool(cfg.sparse)
    return cfg.teacher == "pixel-classifier"


def confidence(p: np.ndarray) -> np.ndarray:
    """(K, ...) probabilities -> (...) confidence in [0, 1]: 0 at 1/K, 1 at certainty."""
    k = p.shape[0]
    return np.clip((p.max(0) - 1.0 / k) / (1.0 - 1.0 / k), 0.0, 1.0)


def region_answer(net, sampler, i: int, device) -> np.ndarray:
    """The classifier's (K, h, w) float16 probabilities over region ``i``."""
    r = sampler.regions[i]
    h, w = r.shape
    out = np.zeros((net.k, h, w), np.float16)
    trees = net.trees()
    for y0 in range(0, h, TILE):
        for x0 in range(0, w, TILE):
            y1, x1 = min(h, y0 + TILE), min(w, x0 + TILE)
            box = (r.y0 + y0, r.y0 + y1, r.x0 + x0, r.x0 + x1)
            f = halo_features(net, sampler.volumes[r.image], r.z, sampler.spec, box, device)
            p = trees.predict_proba(f.reshape(f.shape[0], -1).T).T.reshape(-1, y1 - y0, x1 - x0)
            out[:, y0:y1, x0:x1] = p
    return out


def image_priors(probs: list[np.ndarray], trained: np.ndarray, iters: int = 30) -> np.ndarray:
    """The class shares of the images, estimated from a classifier trained on shares
    ``trained`` (the strokes') by EM (Saerens, Latinne & Decaestecker 2002): posteriors
    re-weighted by new / trained shares until the shares they imply stop changing."""
    k = len(trained)
    sample = np.concatenate([p.reshape(k, -1)[:, ::7].astype(np.float32) for p in probs], 1)
    pi = trained.copy()
    for _ in range(iters):
        adj = sample * (pi / trained)[:, None]
        adj /= adj.sum(0, keepdims=True).clip(1e-12)
        pi = adj.mean(1).clip(1e-3)
        pi /= pi.sum()
    return pi


def answer(p: np.ndarray, ratio: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
    """(class id uint8, confidence float16) of (K, h, w) probabilities, re-weighted by the
    prior ``ratio`` (K,) when given."""
    p = p.astype(np.float32)
    if ratio is not None:
        p = p * ratio[:, None, None]
        p /= p.sum(0, keepdims=True).clip(1e-12)
    return p.argmax(0).astype(np.uint8), confidence(p).astype(np.float16)


def _fit_teacher(d, cfg, device, stop, t0):
    net, mcfg = new_classifier(d)
    x, y = yield from collect(net, d.sampler, d.classes.k, device, cfg.seed, stop=stop)
    check_classes(y, bool(stop))
    shares = np.bincount(y, minlength=d.classes.k).astype(np.float64)
    shares = (shares / shares.sum()).clip(1e-3)
    return net, mcfg, train_trees(net, x, y, d, t0), shares / shares.sum()


def teach(d, cfg, stop: StopToken | None = None) -> Generator[Progress, None, object]:
    """Train the classifier on ``d``'s training strokes, hand its answer to ``d.sampler``
    (``PatchSampler.teach``); yields Progress, returns the classifier's TrainedModel (its
    history: one record with its validation scores)."""
    from ..device import resolve_device

    t0, device = time.monotonic(), resolve_device(cfg.device)
    net, mcfg, rec, trained = yield from _fit_teacher(d, cfg, device, stop, t0)
    probs = []
    for i in range(len(d.sampler.regions)):
        if stop:
            break
        probs.append(region_answer(net, d.sampler, i, device))
        yield Progress(
            stage="teach",
            step=i + 1,
            total=len(d.sampler.regions),
            elapsed=time.monotonic() - t0,
            message=f"pixel classifier's answer on {i + 1} of {len(d.sampler.regions)} slices",
        )
    if len(probs) == len(d.sampler.regions):
        ratio = None
        if cfg.teacher_priors:
            pi = image_priors(probs, trained)
            ratio = pi / trained
            rec["teacher_priors"] = [round(float(v), 4) for v in pi]
        d.sampler.teach([answer(p, ratio) for p in probs], cfg.teacher_weight)
    rec["elapsed"] = round(time.monotonic() - t0, 2)
    return classifier_model(net, mcfg, d, cfg, rec)


def apply(session, teacher) -> None:
    """After :func:`teach`: the session's epoch records carry the classifier's scores, and
    balanced class weights follow the classes the classifier sees, not the strokes."""
    from .objectives import class_weights, loss_fn

    session.teacher_record = teacher_scores(teacher)
    sampler, cfg = session.sampler, session.cfg
    if cfg.class_weights == "none" or sampler.teacher is None:
        return
    k = session.classes.k
    seen = sum(np.bincount(lab[tw > 0].ravel(), minlength=k)[:k] for lab, tw in sampler.teacher)
    session.loss_fn = loss_fn(cfg.loss, k, class_weights(seen + sampler.class_pixels(), "balanced"))


def teacher_scores(teacher) -> dict:
    """{'teacher_val_dice', 'teacher_val_iou'} of the classifier (empty without validation)."""
    rec = teacher.history[0] if teacher is not None else {}
    return {f"teacher_{k}": rec[k] for k in ("val_dice", "val_iou") if rec.get(k) is not None}


def better(unet, best_dice: float, teacher) -> tuple[object, str | None]:
    """The model to keep - the U-Net, unless the classifier scored a higher validation Dice
    on the same held-out strokes - and the line that says which (:func:`comparison`)."""
    t = teacher_scores(teacher).get("teacher_val_dice")
    if t is None or best_dice < 0:
        return unet, None
    if t > best_dice:
        teacher.history[-1]["unet_val_dice"] = round(float(best_dice), 4)
        return teacher, comparison(teacher)
    return unet, comparison(unet)


def comparison(model) -> str | None:
    """'the U-Net scored ... vs the pixel classifier's ...' from a taught training's kept
    model (None for any other model)."""
    hist = model.history or []
    if hist and "unet_val_dice" in hist[-1]:
        t, u = hist[-1].get("val_dice", 0.0), hist[-1]["unet_val_dice"]
        return (
            f"the pixel classifier scored higher on the held-out strokes than the U-Net "
            f"(Dice {t:.3f} vs {u:.3f}): it is the model kept. Train again with a longer "
            "time budget, or paint strokes where the two disagree"
        )
    scored = [h for h in hist if "teacher_val_dice" in h and h.get("val_dice") is not None]
    if not scored:
        return None
    u, t = max(h["val_dice"] for h in scored), scored[-1]["teacher_val_dice"]
    return (
        f"the U-Net (validation Dice {u:.3f}) is kept over its teacher, the pixel "
        f"classifier ({t:.3f})"
    )


def teach_session(session, stop: StopToken | None):
    """fit()'s first stage: the classifier taught to the session's sampler (``teacher``
    option); returns it, or None when the U-Net learns from the strokes alone."""
    if not teaching(session.cfg):
        return None
    teacher = yield from teach(session.data, session.cfg, stop)
    apply(session, teacher)
    return teacher


def keep_better(loop, model, teacher):
    """fit()'s last stage: the better of the trained U-Net and the teacher (``keep_better``
    option), with a last Progress saying which it is."""
    if teacher is None or not loop.s.cfg.keep_better:
        return model
    kept, line = better(model, loop.best_dice, teacher)
    if line:  # the console's and the CLI's progress printers show it
        import dataclasses

        last = loop.progress(None, {}, None)
        warn = line if kept is teacher else last.warning
        yield dataclasses.replace(
            last, message=line, warning=warn, extra={**last.extra, "kept": line}
        )
    return kept
