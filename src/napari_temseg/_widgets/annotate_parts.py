"""Qt parts of the Annotate dock: the class list and its buttons, a timer, the channel
axis choice."""

from __future__ import annotations

from typing import Any

from magicgui.widgets import Container, PushButton

from .common import CHANNEL_AXIS_CHOICES


def single_shot(ms: int, slot: Any) -> Any:
    from qtpy.QtCore import QTimer

    t = QTimer()
    t.setSingleShot(True)
    t.setInterval(ms)
    t.timeout.connect(slot)
    return t


def class_editor() -> tuple[Any, Any, list]:
    """The class list (colour swatch, 'value: name') above a row of buttons."""
    from qtpy.QtWidgets import QListWidget

    buttons = [PushButton(text=t) for t in ("Add class", "Rename", "Colour…", "Remove")]
    buttons[3].tooltip = "Remove the last class (only if nothing is painted with it)"
    row = Container(layout="horizontal", labels=False, widgets=buttons)
    box = Container(label="classes", labels=False, widgets=[row])
    row.margins = box.margins = (0, 0, 0, 0)
    rows = QListWidget()
    rows.setMaximumHeight(110)
    rows.setToolTip("Click a class to paint it (sets the label of the mask layer)")
    box.native.layout().insertWidget(0, rows)
    return box, rows, buttons


def class_item(color: str, text: str) -> Any:
    from qtpy.QtGui import QColor, QIcon, QPixmap
    from qtpy.QtWidgets import QListWidgetItem

    swatch = QPixmap(14, 14)
    swatch.fill(QColor(color))
    return QListWidgetItem(QIcon(swatch), text)


def channel_combo():
    from magicgui.widgets import ComboBox

    return ComboBox(
        label="channel axis",
        choices=CHANNEL_AXIS_CHOICES,
        value="auto",
        tooltip="Which axis of the image holds channels (detectors). 'auto': none for "
        "3D stacks, guessed for 4D. Several layers can also be used as channels.",
    )
