"""The Annotate dock's "where should I paint next?" section: suggest regions where the
session's model is unsure, step through them, refresh after each training round."""

from __future__ import annotations

from typing import Any

from magicgui.widgets import CheckBox, Container, Label, PushButton

from ..adapters import layers as L
from ..adapters import suggest as S
from ..adapters.workers import start_worker
from ..core.config.options import build
from ..core.config.suggest import SuggestConfig
from ..core.errors import InputError
from ..core.progress import StopToken
from . import session
from .common import channel_axis_value, guarded, progress_widget, show_fraction
from .form import OptionForm

DENSE_NOTE = (
    " The mask is dense: painting here makes the whole slice count as annotated (unpainted = "
    "background). Tick 'sparse scribbles' to label only the region."
)


class SuggestPanel(Container):
    """Suggest regions / Next region, fed by the Annotate dock's image, mask and mode."""

    def __init__(self, viewer: Any, dock: Any):
        super().__init__(labels=True, label="suggest")
        self.viewer, self.dock = viewer, dock
        self.form = OptionForm((SuggestConfig,))
        self.suggest_btn = PushButton(text="Suggest regions")
        self.next_btn = PushButton(text="Next region")
        self.show_map = CheckBox(text="show the uncertainty under them", value=True)
        self.auto_refresh = CheckBox(text="refresh after each training", value=True)
        self.info = Label(value="Train a model (Train dock), then ask where to paint next.")
        self.info.native.setWordWrap(True)
        self.bar = progress_widget()
        self.bar.setVisible(False)
        self.extend([*self.form.basic(), self.form.toggle, self.form.advanced])
        self.extend([self.show_map, self.auto_refresh, self.suggest_btn, self.next_btn, self.info])
        self.native.layout().addWidget(self.bar)
        self.next_btn.enabled = False
        self.result: Any = None
        self.source: tuple | None = None  # (layer name, transform, is 2D) of the result
        self.at, self.job = -1, None
        self.suggest_btn.clicked.connect(self._on_run)
        self.next_btn.clicked.connect(self._on_next)
        unsubscribe = session.on_model(viewer, self._on_model)
        self.native.destroyed.connect(lambda *_: unsubscribe())

    def _inputs(self) -> tuple:
        model = session.get_model(self.viewer)
        if model is None:
            raise InputError("no model trained in this session yet: train one in the Train dock")
        layer = self.dock.image.value
        if layer is None:
            raise InputError("no image layer: pick the image in this dock first")
        ca = channel_axis_value(self.dock.channel_axis.value)
        vol = L.image_volume([layer], ca)
        two_d = L.is_2d([layer], ca)
        mask = self.dock.mask.value
        data = None if mask is None else L.mask_array(mask, vol, two_d)
        return model, layer, ca, vol, two_d, data

    @guarded("Suggest regions")
    def _on_run(self, *_: Any) -> None:
        if self.job is not None and self.job.running:
            self.job.stop()
            return
        from ..core.guidance.suggest import suggest_regions

        model, layer, ca, vol, two_d, mask = self._inputs()
        cfg = build(SuggestConfig, self.form.values())
        stop = StopToken()
        gen = suggest_regions(model, vol, mask, cfg, sparse=bool(self.dock.sparse.value), stop=stop)
        self.source = (layer.name, L.transform(layer, ca), two_d)
        self.job = start_worker(
            gen,
            lambda p: show_fraction(self.bar, p),
            self._on_done,
            stop=stop,
            desc="Suggesting regions",
            on_finished=self._finished,
        )
        self.suggest_btn.text, self.next_btn.enabled = "Stop", False
        self.bar.setVisible(True)
        self.bar.setValue(0)

    def _finished(self) -> None:
        self.suggest_btn.text = "Suggest regions"
        self.bar.setVisible(False)
        self.next_btn.enabled = bool(self.result is not None and self.result.regions)

    def _on_done(self, result: Any) -> None:
        name, tr, two_d = self.source
        self.result, self.at = result, -1
        S.show_regions(self.viewer, result, name, tr, two_d)
        if self.show_map.value:
            S.show_score_map(self.viewer, result, name, tr, two_d)
        self.info.value = (
            f"{len(result.regions)} region(s), numbered by priority (scored {result.scored} of "
            f"{result.candidates} unannotated squares in {result.seconds:.0f} s). Click 'Next "
            "region' to go to one."
        )

    @guarded("Next region")
    def _on_next(self, *_: Any) -> None:
        res = self.result
        if res is None or not res.regions:
            raise InputError("no suggestions yet: click 'Suggest regions'")
        self.at = (self.at + 1) % len(res.regions)
        r = res.regions[self.at]
        _, tr, two_d = self.source
        mask = self.dock.mask.value
        S.go_to(self.viewer, r, tr, two_d, mask)
        where = "" if two_d else f"slice {r.z}, "
        self.info.value = (
            f"Region {r.rank} of {len(res.regions)} ({where}uncertainty {r.score:.2f}): paint "
            "every class inside the rectangle, background too; then 'Continue training' in "
            "the Train dock." + ("" if self.dock.sparse.value or mask is None else DENSE_NOTE)
        )

    def _on_model(self, _model: Any) -> None:
        """A training round ended: refresh the suggestions the user asked for before."""
        busy = self.job is not None and self.job.running
        if self.auto_refresh.value and self.result is not None and not busy:
            self._on_run()


__all__ = ["SuggestPanel"]
