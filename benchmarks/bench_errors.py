"""Where a trained binary model's errors are, on the real held-out data.

Two reports on a saved model (e.g. from ``TEMSEG_BENCH_SAVE=<folder> bench_train.py ...``),
both predicted through the default ``predict_stack`` path (``PredictConfig()``):

* ``thresholds {isbi,emps} MODEL`` - pooled Dice / IoU / precision / recall on the held-out
  images for a range of probability thresholds: is 0.5 the right cut, are the
  probabilities compressed, is the error over- or under-segmentation?
* ``emps-images MODEL`` - per held-out EMPS micrograph: foreground share, particle count and
  median size, contrast polarity ((mean particle - mean background) / image std), Dice,
  precision, recall; then the mean per group, so the failing kind of image shows.
* ``boundary {isbi,emps} MODEL`` - how far the wrong pixels lie from the true outline:
  false positives by distance to the nearest true foreground pixel, false negatives by
  distance to the nearest true background pixel (1 px = the outline's own row). Errors
  within 1-2 px are the outline's placement and thickness; farther ones are objects missed
  or invented. For ISBI also: the Dice of the truth's own centre lines drawn 3 / 5 / 7 px
  wide against the truth (how far the membranes' width is from a fixed rule).

Run from the repository root (data in ../shared/data)::

    python benchmarks/bench_errors.py --threads 2 thresholds isbi /tmp/models/ours.safetensors
    python benchmarks/bench_errors.py --threads 2 emps-images /tmp/models/ours.safetensors
    python benchmarks/bench_errors.py --threads 2 boundary isbi /tmp/models/ours.safetensors
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
os.environ.setdefault("HF_HUB_OFFLINE", "1")

import _realdata  # noqa: E402

THRESHOLDS = (0.3, 0.4, 0.45, 0.5, 0.55, 0.6, 0.65, 0.7)


def _cases(dataset: str) -> list:
    """[(image, slices, truth)] of the held-out split of bench_train.py."""
    if dataset == "isbi":
        vol, lab = _realdata.isbi2012()
        return [("sections 15-19", vol, list(range(15, vol.shape[0])), lab[15:])]
    _, test = _realdata.emps_split(0.2, None, None)
    return [(name, img, None, mask[None]) for name, img, mask in test]


def _probabilities(model, image, slices, shape, tta=False) -> np.ndarray:
    return _realdata.default_probabilities(model, image, slices, tta=tta).reshape(shape)


def cmd_thresholds(args, model) -> None:
    from napari_temseg.core.evaluation.metrics import Counts, counts

    total = [Counts(0, 0, 0, 0) for _ in THRESHOLDS]
    for _, image, slices, truth in _cases(args.dataset):
        p = _probabilities(model, image, slices, truth.shape, args.tta)
        total = [c + counts(p > th, truth) for c, th in zip(total, THRESHOLDS, strict=True)]
    print(f"{'threshold':>9} {'Dice':>7} {'IoU':>7} {'prec':>6} {'recall':>6}")
    for th, c in zip(THRESHOLDS, total, strict=True):
        print(f"{th:>9.2f} {c.dice:>7.4f} {c.iou:>7.4f} {c.precision:>6.3f} {c.recall:>6.3f}")


def _image_row(name, image, p, truth) -> dict:
    from scipy import ndimage

    from napari_temseg.core.evaluation.metrics import counts

    t = truth[0] > 0
    labels, n = ndimage.label(t)
    sizes = np.bincount(labels.ravel())[1:]
    grey = image.astype(np.float32)
    grey = grey.mean(-1) if grey.ndim == 3 else grey
    polarity = (
        (grey[t].mean() - grey[~t].mean()) / (grey.std() + 1e-6) if 0 < t.sum() < t.size else 0
    )
    c = counts(p[0] > 0.5, t)
    med = float(np.median(sizes)) if n else 0.0
    return dict(
        name=name,
        fg=t.mean(),
        n=n,
        size=med,
        pol=polarity,
        dice=c.dice,
        prec=c.precision,
        rec=c.recall,
    )


def _groups(rows: list[dict], key: str, edges: tuple) -> None:
    for lo, hi in zip(edges[:-1], edges[1:], strict=True):
        sel = [r for r in rows if lo <= r[key] < hi]
        if sel:
            mean = {k: np.mean([r[k] for r in sel]) for k in ("dice", "prec", "rec")}
            print(
                f"  {key} [{lo:g}, {hi:g}): {len(sel):3d} images, Dice {mean['dice']:.3f}, "
                f"precision {mean['prec']:.3f}, recall {mean['rec']:.3f}"
            )


def cmd_emps_images(args, model) -> None:
    rows = []
    for name, image, slices, truth in _cases("emps"):
        p = _probabilities(model, image, slices, truth.shape, args.tta)
        rows.append(_image_row(name, image, p, truth))
        r = rows[-1]
        print(
            f"{r['name']:<14} fg {r['fg']:.3f} particles {r['n']:4d} median {r['size']:8.0f} px"
            f" polarity {r['pol']:+.2f}  Dice {r['dice']:.3f} prec {r['prec']:.3f}"
            f" rec {r['rec']:.3f}"
        )
    dice = np.array([r["dice"] for r in rows])
    print(f"\n{len(rows)} images, mean image Dice {dice.mean():.3f}, median {np.median(dice):.3f}")
    _groups(rows, "fg", (0, 0.05, 0.15, 0.3, 0.5, 1.01))
    _groups(rows, "size", (0, 1000, 5000, 20000, 1e12))
    _groups(rows, "pol", (-1e9, 0, 1e9))
    bad = [r for r in rows if r["dice"] < 0.4]
    over = [r for r in bad if r["prec"] < 0.3 and r["rec"] > 0.8]
    print(
        f"  Dice < 0.4: {len(bad)} images, {len(over)} of them over-segmented"
        " (precision < 0.3, recall > 0.8)"
    )


DISTANCES = (1, 2, 3, 5, 10)


def cmd_boundary(args, model) -> None:
    from scipy import ndimage

    from napari_temseg.core.evaluation.metrics import Counts, counts

    c, fp_d, fn_d, truths = Counts(0, 0, 0, 0), [], [], []
    for _, image, slices, truth in _cases(args.dataset):
        p = _probabilities(model, image, slices, truth.shape, args.tta)
        truths.extend(truth > 0)
        for pi, ti in zip(p > 0.5, truth > 0, strict=True):
            c = c + counts(pi, ti)
            if ti.any():  # distance to the nearest true foreground pixel
                fp_d.append(ndimage.distance_transform_edt(~ti)[pi & ~ti])
            if not ti.all():
                fn_d.append(ndimage.distance_transform_edt(ti)[~pi & ti])
    print(f"pooled Dice {c.dice:.4f}, precision {c.precision:.3f}, recall {c.recall:.3f}")
    for name, d in (("false positives", fp_d), ("false negatives", fn_d)):
        d = np.concatenate(d) if d else np.zeros(0)
        shares = " ".join(f"<= {k} px {np.mean(d <= k):.2f}" for k in DISTANCES) if d.size else ""
        print(f"{name:>16}: {d.size:9d} px, share within {shares}")
    fp_near = sum(int(np.sum(d <= 1)) for d in fp_d)
    fn_near = sum(int(np.sum(d <= 1)) for d in fn_d)
    fixed = Counts(c.tp + fn_near, c.fp - fp_near, c.fn - fn_near, c.tn + fp_near)
    print(f"Dice if every error within 1 px of the outline were right: {fixed.dice:.4f}")
    if args.dataset == "isbi":  # thin membranes: is their width a rule a network can learn?
        _fixed_width(truths)


def _fixed_width(truths: list) -> None:
    """How well a line of one width on the truth's own centre lines matches the truth."""
    from scipy import ndimage
    from skimage.morphology import disk, skeletonize

    from napari_temseg.core.evaluation.metrics import Counts, counts

    lines = [skeletonize(t) for t in truths]
    for r in (1, 2, 3):
        c = Counts(0, 0, 0, 0)
        for line, t in zip(lines, truths, strict=True):
            c = c + counts(ndimage.binary_dilation(line, disk(r)), t)
        print(f"truth's centre lines drawn {2 * r + 1} px wide: Dice {c.dice:.4f} vs the truth")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--threads", type=int, default=None, help="torch threads")
    ap.add_argument("--tta", action="store_true", help="predict with test-time augmentation")
    sub = ap.add_subparsers(dest="cmd", required=True)
    t = sub.add_parser("thresholds", help="pooled scores over a range of thresholds")
    t.add_argument("dataset", choices=("isbi", "emps"))
    t.add_argument("model")
    e = sub.add_parser("emps-images", help="per-image errors on the EMPS held-out split")
    e.add_argument("model")
    b = sub.add_parser("boundary", help="wrong pixels by distance to the true outline")
    b.add_argument("dataset", choices=("isbi", "emps"))
    b.add_argument("model")
    args = ap.parse_args()

    import torch

    from napari_temseg.core.modelfile.format import load_model

    if args.threads:
        torch.set_num_threads(args.threads)
    model = load_model(args.model)
    commands = {
        "thresholds": cmd_thresholds,
        "emps-images": cmd_emps_images,
        "boundary": cmd_boundary,
    }
    commands[args.cmd](args, model)


if __name__ == "__main__":
    main()
