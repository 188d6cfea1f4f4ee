"""The Annotate dock's live preview: a pixel classifier retrained on every stroke.

No button: once ticked, each paint stroke (debounced) retrains the trees on all strokes so
far and redraws ``<image> live preview`` for the slice in view, in a worker thread; strokes
that arrive during an update are taken by the next one. 'Use as model' hands the trained
classifier to the Predict dock (model: this session) and the Train dock.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from magicgui.widgets import CheckBox, Container, Label, PushButton

from ..adapters import layers as L
from ..adapters.workers import start_worker, user_message
from ..core.errors import InputError
from . import session
from .annotate_parts import single_shot
from .common import channel_axis_value, guarded

DEBOUNCE_MS = 250  # a stroke's last paint event -> retrain (napari emits one per drag step)
OFF_TEXT = "Tick to see a pixel classifier's answer after each stroke (seconds)."


class LivePanel(Container):
    """Live preview on/off, its status, and 'Use as model'."""

    def __init__(self, viewer: Any, dock: Any):
        super().__init__(labels=False)
        self.viewer, self.dock = viewer, dock
        self.toggle = CheckBox(text="Live preview (pixel classifier, retrained on each stroke)")
        self.use = PushButton(text="Use as model")
        self.use.enabled = False
        self.status = Label(value=OFF_TEXT)
        self.status.native.setWordWrap(True)
        self.extend([self.toggle, self.use, self.status])
        self._live: Any = None  # core LiveSession of the current (image, classes, mode)
        self._key: tuple | None = None
        self._job: Any = None
        self._dirty = False
        self._timer = single_shot(DEBOUNCE_MS, self.refresh)
        self.toggle.changed.connect(self._on_toggle)
        self.use.clicked.connect(self._on_use)
        step = viewer.dims.events.current_step
        step.connect(self._on_step)
        self.native.destroyed.connect(
            lambda *_: (step.disconnect(self._on_step), self._timer.stop())
        )

    # --- triggers ----------------------------------------------------------------------------
    def stroke(self) -> None:
        """The Annotate dock saw paint land: retrain soon (debounced)."""
        if self.toggle.value:
            self._timer.start()

    def _on_step(self, *_: Any) -> None:
        try:
            if self.toggle.value and self._live is not None:
                self._timer.start()
        except RuntimeError:  # the dock was closed (Qt objects deleted)
            self.viewer.dims.events.current_step.disconnect(self._on_step)

    def _on_toggle(self, on: bool) -> None:
        if on:
            self.status.value = "Live preview on: paint strokes of two classes or more."
            self._timer.start()
        else:
            self._timer.stop()
            self.status.value = OFF_TEXT

    # --- one update --------------------------------------------------------------------------
    def busy(self) -> bool:
        return self._job is not None and self._job.running

    def refresh(self) -> None:
        """Retrain and redraw now (or right after the update that is running)."""
        try:
            if not self.toggle.value:
                return
        except RuntimeError:  # the dock was closed while a stroke waited
            return
        if self.busy():
            self._dirty = True
            return
        try:
            live, painted, z = self._inputs()
        except InputError as e:
            self.status.value = str(e)
            return
        if not painted:
            self.status.value = "Live preview on: paint strokes of two classes or more."
            return
        self._job = start_worker(
            live.update(painted, z),
            on_done=self._on_done,
            on_error=self._on_error,
            progress_bar=False,
            on_finished=self._after,
            desc="live preview",
        )

    def _inputs(self) -> tuple[Any, dict, int]:
        """The session (new when the image, classes or mode changed), painted slices, z."""
        d = self.dock
        image, mask = d.image.value, d.mask.value
        if image is None or mask is None:
            raise InputError("pick an image and make a mask ('New mask') to paint on")
        ca = channel_axis_value(d.channel_axis.value)
        sparse = bool(d.sparse.value)
        key = (id(image), ca, d.table, sparse)
        if key != self._key:
            from ..core.training.live import LiveSession

            self._live = LiveSession(L.image_volume(image, ca), d.table, sparse=sparse)
            self._key, self.use.enabled = key, False
        data = L.layer_data(mask)
        stack = data if data.ndim == 3 else data[None]
        painted = {z: np.array(stack[z]) for z in d.annotated() if z < stack.shape[0]}
        return self._live, painted, L.current_z(mask, self.viewer)

    def _on_done(self, r: Any) -> None:
        from ..adapters.outputs import show_preview

        image, ca = self.dock.image.value, channel_axis_value(self.dock.channel_axis.value)
        if image is None or image not in self.viewer.layers:
            return
        prob = r.prob if r.prob.shape[0] > 2 else r.prob[1]
        show_preview(self.viewer, image, ca, f"{image.name} live", prob, r.z, self.dock.table)
        binned = self._live.binning
        self.status.value = f"Live: {r.pixels} px painted, trees {r.fit_seconds:.1f} s, " + (
            f"preview {r.predict_seconds:.1f} s" + (f", binned {binned}x" if binned > 1 else "")
        )
        self.use.enabled = True

    def _on_error(self, exc: BaseException) -> None:
        self.status.value = f"Live preview: {user_message(exc)}"

    def _after(self) -> None:
        if self._dirty and self.toggle.value:
            self._dirty = False
            self._timer.start()

    @guarded("Use as model")
    def _on_use(self, *_: Any) -> None:
        from napari.utils.notifications import show_info

        if self._live is None:
            raise InputError("no live classifier yet: tick 'Live preview' and paint")
        session.set_model(self.viewer, self._live.model())
        show_info(
            "The live pixel classifier is this session's model: predict the stack in the "
            "Predict dock (model: this session) or save it from the Train dock"
        )
