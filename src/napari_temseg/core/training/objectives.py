"""What training optimises and how validation scores it, for binary and K-class models.

Binary (one logit, sigmoid): weighted BCE and/or soft Dice, exactly as before multi-class
existed. K classes (K logits, softmax): the same names mean weighted cross-entropy
("bce") and a multi-class soft Dice (mean over classes), both ignoring pixels of
weight 0 (unlabelled or padding); optional class weights scale the cross-entropy of each
class. Validation: Dice / IoU (binary), or per-class Dice / IoU and their mean over the
scored classes that the validation data holds (K classes, :func:`scored_classes`).
"""

from __future__ import annotations

import numpy as np


def class_weights(pixels: np.ndarray, mode: str) -> np.ndarray | None:
    """(K,) cross-entropy weights from the labelled pixels per class ('balanced':
    1 / sqrt(share), normalised to mean 1 over the classes present; at most 10x)."""
    if mode == "none":
        return None
    share = pixels / max(1, pixels.sum())
    w = np.where(share > 0, 1.0 / np.sqrt(np.maximum(share, 1e-12)), 0.0)
    present = w > 0
    w[present] /= w[present].mean()
    return np.clip(w, 0.0, 10.0).astype(np.float32)


def loss_fn(name: str, k: int = 2, weights: np.ndarray | None = None):
    """``loss(logits, y, w)``; y holds class ids (N, 1, H, W), w the pixel weights."""
    if k == 2:
        return _binary(name)
    import torch

    cw = None if weights is None else torch.as_tensor(weights)
    ce_w = cw

    def ce(logits, y, w):
        nonlocal ce_w
        import torch.nn.functional as F

        t = y[:, 0].long()
        if ce_w is not None and ce_w.device != logits.device:
            ce_w = ce_w.to(logits.device)
        per = F.cross_entropy(logits, t, weight=ce_w, reduction="none")
        norm = w[:, 0] * (ce_w[t] if ce_w is not None else 1.0)
        return (per * w[:, 0]).sum() / norm.sum().clamp_min(1)

    def dice(logits, y, w):
        import torch.nn.functional as F

        p = torch.softmax(logits, 1) * w
        oh = F.one_hot(y[:, 0].long(), k).permute(0, 3, 1, 2).to(p.dtype) * w
        inter = (p * oh).sum((0, 2, 3))
        den = p.sum((0, 2, 3)) + oh.sum((0, 2, 3))
        return 1 - ((2 * inter + 1) / (den + 1)).mean()

    return {"bce": ce, "dice": dice, "bce+dice": lambda lo, y, w: ce(lo, y, w) + dice(lo, y, w)}[
        name
    ]


def _binary(name: str):
    import torch
    import torch.nn.functional as F

    def bce(logits, y, w):
        return (
            F.binary_cross_entropy_with_logits(logits, y, reduction="none") * w
        ).sum() / w.sum().clamp_min(1)

    def dice(logits, y, w):
        p = torch.sigmoid(logits) * w
        inter = (p * y).sum()
        return 1 - (2 * inter + 1) / (p.sum() + (y * w).sum() + 1)

    return {"bce": bce, "dice": dice, "bce+dice": lambda lo, y, w: bce(lo, y, w) + dice(lo, y, w)}[
        name
    ]


def _predict_classes(net, x: np.ndarray, device, amp, k: int) -> np.ndarray:
    import torch

    from ..device import autocast

    out = []
    net.eval()
    with torch.inference_mode(), autocast(device, amp):
        for i in range(0, len(x), 4):
            lg = net(torch.from_numpy(x[i : i + 4]).to(device)).float()
            out.append((lg[:, 0] > 0 if k == 2 else lg.argmax(1)).cpu().numpy())
    net.train()
    return np.concatenate(out).astype(np.int64)


def background_counts(cfg) -> bool:
    """Whether class 0 counts like the other classes (:func:`scored_classes`): painted
    background (scribbles), or a background that is a phase (``background_phase``)."""
    return cfg is not None and bool(cfg.sparse or getattr(cfg, "background_phase", False))


def scored_classes(k: int, background: bool, present=None) -> list[int]:
    """The classes of a K-class model (K >= 3) that validation averages and patch sampling
    oversamples, of those in ``present`` (None: all that could count).

    ``background`` (:func:`background_counts`): painted background (sparse scribbles) is a
    class the user chose to teach, and a matrix phase is a phase like the others, so they
    count: a model that forgets them must score lower. Otherwise background in a dense mask
    is whatever is left over and plentiful; scoring it would flatter every model alike.
    """
    first = 0 if background else 1
    return [c for c in range(first, k) if present is None or c in present]


def validate(
    net, val, device, amp: bool | str, k: int = 2, background: bool = False
) -> tuple[dict, bool]:
    """Validation record ({val_dice, val_iou[, per class]}) and whether the prediction is
    one class everywhere. Per-class scores of a class without a true pixel in the
    validation data are None: nothing was there to find, so no score is earned."""
    from ..evaluation.metrics import class_scores, confusion, counts

    x, y, w = val
    pred = _predict_classes(net, x, device, amp, k)
    valid = w[:, 0] > 0
    vp = pred[valid]
    constant = vp.size > 0 and bool(np.all(vp == vp.flat[0]))
    if k == 2:
        c = counts(pred, y[:, 0], valid=valid)
        return {"val_dice": c.dice, "val_iou": c.iou}, constant
    truth = y[:, 0].astype(np.int64)
    m = confusion(pred, truth, k, valid=valid)
    per = class_scores(m)["classes"]
    held = {c for c in range(k) if m[c].sum() > 0}  # classes the validation data holds
    scored = scored_classes(k, background, held)

    def mean(key: str) -> float:
        return float(np.mean([per[c][key] for c in scored])) if scored else 0.0

    def each(key: str) -> list[float | None]:
        return [round(per[c][key], 4) if c in held else None for c in range(k)]

    rec = {
        "val_dice": mean("dice"),
        "val_iou": mean("iou"),
        "val_dice_classes": each("dice"),
        "val_iou_classes": each("iou"),
    }
    return rec, constant


def per_class_text(names, scores, classes=None, digits: int = 3) -> str:
    """'disks 0.912, squares -' for ``classes`` (None: all): '-' for a class without a
    score (absent from the validation data, or from an older record)."""
    shown = range(len(names)) if classes is None else classes

    def score(c: int) -> str:
        d = scores[c] if c < len(scores) else None
        return "-" if d is None else f"{d:.{digits}f}"

    return ", ".join(f"{names[c]} {score(c)}" for c in shown)


FLAT_EPOCHS = 4  # epochs after which an unchanged loss is reported as "not learning"


def health_warning(history: list[dict], constant: bool) -> str | None:
    """The warning an epoch's history and validation call for, or None."""
    if constant:
        return (
            "the model predicts the same class everywhere on the validation data: train longer, "
            "paint more foreground, or lower the learning rate"
        )
    losses = [h["loss"] for h in history]
    if len(losses) >= FLAT_EPOCHS and losses[-1] > 0.98 * losses[0]:
        return (
            "the loss is flat: the model is not learning. Check that the masks mark the "
            "structures, or try another learning rate / model"
        )
    return None
