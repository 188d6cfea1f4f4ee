"""A tiny live plot (QPainter, no matplotlib): training loss and validation Dice vs step
(K-class models: also each class's validation Dice, dashed, in the class colour; a U-Net
taught by the pixel classifier: the classifier's validation Dice, dotted)."""

from __future__ import annotations

import math

from qtpy.QtCore import QPointF, Qt
from qtpy.QtGui import QColor, QPainter, QPen, QPolygonF
from qtpy.QtWidgets import QWidget

LOSS_COLOR = QColor(255, 140, 0)  # orange
DICE_COLOR = QColor(80, 200, 255)  # light blue
TEACHER_COLOR = QColor(120, 220, 120)  # green


class LivePlot(QWidget):
    """Two polylines: loss (left axis, auto range) and validation Dice (right axis, 0..1)."""

    def __init__(self, parent=None, max_points: int = 2000):
        super().__init__(parent)
        self.setMinimumHeight(110)
        self.max_points = max_points
        self.loss: list[tuple[float, float]] = []
        self.dice: list[tuple[float, float]] = []
        # K-class models: validation Dice per scored class, in its colour
        self.classes: dict[str, list[tuple[float, float]]] = {}
        self.class_colors: dict[str, QColor] = {}
        self.teacher: float | None = None  # the pixel classifier's validation Dice

    def clear(self) -> None:
        self.loss, self.dice, self.classes, self.teacher = [], [], {}, None
        self.update()

    def set_teacher(self, dice: float | None) -> None:
        """The teacher's validation Dice on the same held-out strokes (a dotted line)."""
        if dice is not None and math.isfinite(dice) and dice != self.teacher:
            self.teacher = float(dice)
            self.update()

    def add_classes(self, step: float, names, colors, dice, shown=None) -> None:
        """Per-class validation Dice (thin lines) of the classes ``shown`` (None: those other
        than background); a class without a score (None) adds no point."""
        for c in range(1, len(names)) if shown is None else shown:
            d = dice[c] if c < len(dice) else None
            if d is not None and math.isfinite(d):
                self.classes.setdefault(names[c], []).append((float(step), float(d)))
                self.class_colors[names[c]] = QColor(colors[c])
        self.update()

    def last_x(self) -> float:
        xs = [x for x, _ in self.loss[-1:] + self.dice[-1:]]
        return max(xs) if xs else 0.0

    def add(self, step: float, loss: float | None = None, dice: float | None = None) -> None:
        if loss is not None and math.isfinite(loss):
            self.loss.append((float(step), float(loss)))
        if dice is not None and math.isfinite(dice):
            self.dice.append((float(step), float(dice)))
        for series in (self.loss, self.dice, *self.classes.values()):
            if len(series) > self.max_points:  # keep every other point: bounded cost per repaint
                del series[1:-1:2]
        self.update()

    def _polyline(self, pts, x0, x1, y0, y1, rect) -> QPolygonF:
        poly = QPolygonF()
        sx = rect.width() / max(x1 - x0, 1e-9)
        sy = rect.height() / max(y1 - y0, 1e-9)
        for x, y in pts:
            poly.append(QPointF(rect.left() + (x - x0) * sx, rect.bottom() - (y - y0) * sy))
        return poly

    def paintEvent(self, _event) -> None:  # noqa: N802 - Qt name
        p = QPainter(self)
        p.setRenderHint(QPainter.RenderHint.Antialiasing)
        rect = self.rect().adjusted(34, 16, -34, -8)
        p.setPen(QPen(QColor(128, 128, 128), 1))
        p.drawRect(rect)
        xs = [x for x, _ in self.loss + self.dice]
        if not xs:
            p.drawText(rect, Qt.AlignmentFlag.AlignCenter, "loss / validation Dice appear here")
            return
        x0, x1 = min(xs), max(max(xs), min(xs) + 1)
        if self.loss:
            ys = [y for _, y in self.loss]
            lo, hi = min(0.0, min(ys)), max(ys) * 1.05 or 1.0
            p.setPen(QPen(LOSS_COLOR, 1.5))
            p.drawPolyline(self._polyline(self.loss, x0, x1, lo, hi, rect))
            p.drawText(2, rect.top() + 10, f"{hi:.2g}")
            p.drawText(rect.left(), 12, f"loss {ys[-1]:.3f}")
        for name, pts in self.classes.items():
            p.setPen(QPen(self.class_colors[name], 1.0, Qt.PenStyle.DashLine))
            p.drawPolyline(self._polyline(pts, x0, x1, 0.0, 1.0, rect))
        if self.teacher is not None:
            p.setPen(QPen(TEACHER_COLOR, 1.5, Qt.PenStyle.DotLine))
            p.drawPolyline(
                self._polyline([(x0, self.teacher), (x1, self.teacher)], x0, x1, 0, 1, rect)
            )
            p.drawText(rect.left() + 4, rect.bottom() - 4, f"pixel classifier {self.teacher:.3f}")
        if self.dice:
            p.setPen(QPen(DICE_COLOR, 1.5))
            p.drawPolyline(self._polyline(self.dice, x0, x1, 0.0, 1.0, rect))
            p.drawText(rect.right() + 4, rect.top() + 10, "1.0")
            what = "mean val Dice" if self.classes else "val Dice"
            p.drawText(rect.center().x(), 12, f"{what} {self.dice[-1][1]:.3f}")
        p.end()
