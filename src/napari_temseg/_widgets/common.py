"""Small helpers shared by the docks: layer dropdowns that follow the viewer, error guard."""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable
from typing import Any

from ..adapters.layers import TAG, is_ours, layers_of
from ..core.errors import TemsegError
from ..core.progress import hms

OUTPUT_ROLES = (
    "probability",
    "uncertainty",
    "preview",
)  # our own outputs are not offered as input images

log = logging.getLogger("napari_temseg")

CHANNEL_AXIS_CHOICES = ("auto", "0", "1", "2", "3")

# file-dialog types of core/interop/formats.py's formats (SUFFIX), for the Export / Save dialogs
EXPORT_TYPES = "ONNX (*.onnx);;TorchScript (*.pt);;bioimage.io package (*.zip)"


def channel_axis_value(text: str) -> int | None:
    return None if text == "auto" else int(text)


def selected_image(images: Any, channel_axis: Any, hint: str) -> tuple:
    """(layers, channel axis or None, canonical volume) of a dock's image dropdown."""
    from ..adapters import layers as L
    from ..core.errors import InputError

    layers = list(images.value or [])
    if not layers:
        raise InputError(f"no image layer selected: {hint}")
    ca = channel_axis_value(channel_axis.value)
    return layers, ca, L.image_volume(layers, ca)


def layer_choices(viewer: Any, kind: str) -> Callable:
    def choices(_widget: Any = None) -> list:
        return [
            (la.name, la)
            for la in layers_of(viewer, kind)
            if not (is_ours(la) and la.metadata[TAG].get("role") in OUTPUT_ROLES)
        ]

    return choices


def compact(qwidget: Any, height: int) -> None:
    """At most ``height`` px high and not growing: a list's default "Expanding" vertical
    policy made its form row take the dock's spare height (a gap under the row above)."""
    from qtpy.QtWidgets import QSizePolicy

    policy = qwidget.sizePolicy()
    policy.setVerticalPolicy(QSizePolicy.Policy.Maximum)
    qwidget.setSizePolicy(policy)
    qwidget.setMaximumHeight(height)


def layer_combo(viewer: Any, kind: str, label: str, nullable: bool = False, multiple: bool = False):
    """A ComboBox (or multi-Select) listing the viewer's ``kind`` layers."""
    from magicgui.widgets import ComboBox, Select

    if multiple:
        w = Select(label=label, choices=layer_choices(viewer, kind), allow_multiple=True)
        compact(w.native, 80)
        return w
    return ComboBox(label=label, choices=layer_choices(viewer, kind), nullable=nullable)


def follow_layers(viewer: Any, container: Any) -> None:
    """Refresh ``container``'s layer dropdowns when layers are added, removed or renamed
    (and guard layer removal, see ``adapters.layers.guard_layer_removal``)."""
    from ..adapters.layers import guard_layer_removal

    guard_layer_removal(viewer)

    def refresh(*_: Any) -> None:
        try:
            container.reset_choices()
        except RuntimeError:  # the dock was closed (Qt object deleted)
            disconnect()

    def on_inserted(event: Any) -> None:
        event.value.events.name.connect(refresh)
        refresh()

    def disconnect() -> None:
        for ev, cb in hooks:
            ev.disconnect(cb)

    hooks = [
        (viewer.layers.events.inserted, on_inserted),
        (viewer.layers.events.removed, refresh),
        (viewer.layers.events.moved, refresh),
    ]
    for ev, cb in hooks:
        ev.connect(cb)
    for la in viewer.layers:
        la.events.name.connect(refresh)
    container.native.destroyed.connect(lambda *_: disconnect())


def guarded(what: str) -> Callable:
    """Decorator for button handlers: errors become a napari notification, never a crash."""

    def deco(fn: Callable) -> Callable:
        @functools.wraps(fn)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            from napari.utils.notifications import show_error

            try:
                return fn(*args, **kwargs)
            except TemsegError as e:
                show_error(f"{what}: {e}")
            except Exception as e:  # a bug: say so, keep the viewer running
                log.exception("%s failed", what)
                show_error(f"{what} failed ({type(e).__name__}: {e}). Details are in the log.")
            return None

        return wrapper

    return deco


def add_qwidget(container: Any, qwidget: Any) -> None:
    """Append a plain Qt widget (plot, table) to a magicgui Container."""
    container.native.layout().addWidget(qwidget)


def progress_widget():
    """A plain determinate QProgressBar for a dock (0..1000)."""
    from qtpy.QtWidgets import QProgressBar

    bar = QProgressBar()
    bar.setRange(0, 1000)
    bar.setValue(0)
    bar.setTextVisible(True)
    return bar


def show_fraction(bar: Any, p: Any) -> None:
    from ..adapters.workers import fraction

    f = fraction(p)
    if f is not None:
        bar.setValue(int(1000 * f))
        eta = getattr(p, "eta", None)
        bar.setFormat("%p%" + (f"  ETA {hms(eta)}" if eta is not None else ""))
