"""Plain-text reports of multi-class results (CLI, console): per-class table, confusion
matrix, per-slice class shares; the one-line binary scores (console)."""

from __future__ import annotations

from typing import Any


def class_table_text(res: dict[str, Any], per_slice: bool = True) -> str:
    """The result of ``metrics.evaluate_classes`` as an aligned text table."""
    o = res["overall"]
    names = list(res["names"])
    w = max(12, *(len(n) for n in names))
    lines = [
        f"{'class':<{w}} {'Dice':>7} {'IoU':>7} {'prec':>7} {'recall':>7} "
        f"{'true %':>7} {'pred %':>7}"
    ]
    for c in o["classes"]:
        lines.append(
            f"{c['name']:<{w}} {c['dice']:7.4f} {c['iou']:7.4f} {c['precision']:7.4f} "
            f"{c['recall']:7.4f} {100 * c['true_share']:7.2f} {100 * c['pred_share']:7.2f}"
        )
    lines.append(
        f"mean IoU {o['mean_iou']:.4f}  mean IoU without background {o['mean_iou_fg']:.4f}  "
        f"pixel accuracy {o['accuracy']:.4f}"
    )
    lines.append("")
    lines.append("confusion matrix (rows: truth, columns: prediction; 'unsure' last)")
    head = [n[:8] for n in names] + ["unsure"]
    lines.append(" " * w + " " + " ".join(f"{h:>10}" for h in head))
    for name, row in zip(names, res["confusion"], strict=True):
        lines.append(f"{name:<{w}} " + " ".join(f"{v:>10}" for v in row))
    rows = res.get("per_slice") or []
    if per_slice and len(rows) > 1:
        lines.append("")
        lines.append(
            f"{'slice':>6} {'mIoU':>7} {'mIoU-bg':>7} "
            + " ".join(f"{'IoU ' + n[:6]:>11}" for n in names)
        )
        for r in rows:
            lines.append(
                f"{r['slice']:>6} {r['mean_iou']:7.4f} {r['mean_iou_fg']:7.4f} "
                + " ".join(f"{r['iou ' + n]:11.4f}" for n in names)
            )
    return "\n".join(lines)


def scores_text(overall: dict[str, Any]) -> str:
    """The overall binary scores of ``metrics.evaluate_stack`` on one line."""
    o = overall
    return (
        f"Dice {o['dice']:.3f}  IoU {o['iou']:.3f}  precision {o['precision']:.3f}  "
        f"recall {o['recall']:.3f}"
    )


__all__ = ["class_table_text", "scores_text"]
