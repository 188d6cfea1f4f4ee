"""Predict dock: tiled inference streamed into probability + labels layers; live threshold."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
from magicgui.widgets import ComboBox, Container, FileEdit, FloatSlider, Label, PushButton

from ..adapters import layers as L
from ..adapters import outputs as O
from ..adapters.workers import start_worker
from ..core.config.options import predict_config
from ..core.config.predict import PredictConfig
from ..core.data.volume import check_channels
from ..core.errors import InputError, TemsegError
from ..core.progress import StopToken
from . import session
from .common import (
    CHANNEL_AXIS_CHOICES,
    EXPORT_TYPES,
    add_qwidget,
    follow_layers,
    guarded,
    layer_combo,
    progress_widget,
    selected_image,
    show_fraction,
)
from .form import OptionForm

if TYPE_CHECKING:
    import napari

SESSION, FILE = "trained in this session", "model file"
TIPS = {
    False: "labels = probability >= threshold; starts at the model's threshold",
    True: "pixels whose most likely class is less probable than this get the label "
    "K ('unsure', white); 0 = off. Re-labels without predicting again",
}
REFRESH_S = 0.3  # layers are refreshed at most this often while slices stream in


class PredictWidget(Container):
    """Segment an image with the session's model or a model file."""

    def __init__(self, viewer: napari.viewer.Viewer):  # napari passes the viewer (by annotation)
        super().__init__(labels=True)
        self.viewer = viewer
        self.source = ComboBox(label="model", choices=(SESSION, FILE), value=SESSION)
        self.path = FileEdit(
            label="model file", mode="r", filter="*.safetensors *.zip", visible=False
        )
        self.path.tooltip = (
            "a napari-temseg model (.safetensors) or a bioimage.io model package (.zip; "
            "for an unpacked package type the path of its folder)"
        )
        self.model_info = Label(value="")
        self.model_info.native.setWordWrap(True)
        self.images = layer_combo(viewer, "image", "image(s)", multiple=True)
        self.channel_axis = ComboBox(
            label="channel axis", choices=CHANNEL_AXIS_CHOICES, value="auto"
        )
        # the slider is the threshold (binary) or the minimum confidence (K classes)
        self.form = OptionForm((PredictConfig,), skip=("threshold", "min_confidence"))
        self.form.attach(self)
        self.run_btn = PushButton(text="Predict")
        self.cancel_btn = PushButton(text="Cancel", enabled=False)
        self.export_btn = PushButton(text="Export model...")
        self.export_btn.tooltip = "ONNX (.onnx), TorchScript (.pt), bioimage.io (.zip): Fiji..."
        self.threshold = FloatSlider(
            label="threshold 0.50", value=0.5, min=0.01, max=0.99, step=0.01, tracking=False
        )
        self.threshold.tooltip = TIPS[False]
        self.status = Label(value="Train a model (Train dock) or choose a model file.")
        self.status.native.setWordWrap(True)
        self.extend(
            [
                self.source,
                self.path,
                self.model_info,
                self.images,
                self.channel_axis,
                *self.form.basic(),
                self.form.toggle,
                self.form.advanced,
                self.run_btn,
                self.cancel_btn,
                self.threshold,
                self.status,
                self.export_btn,
            ]
        )
        self.bar = progress_widget()
        add_qwidget(self, self.bar)
        self.job: Any = None
        self.result: dict = {}
        self.source.changed.connect(self._source_changed)
        self.path.changed.connect(lambda *_: self._show_model())
        self.run_btn.clicked.connect(self._on_run)
        self.cancel_btn.clicked.connect(self._on_cancel)
        self.export_btn.clicked.connect(self._on_export)
        self.threshold.changed.connect(self._on_threshold)
        unsubscribe = session.on_model(viewer, lambda m: self._show_model())
        self.native.destroyed.connect(lambda *_: unsubscribe())
        follow_layers(viewer, self)
        self.native.destroyed.connect(
            lambda *_: self.job and self.job.stop()
        )  # closed: stop the job
        self._show_model()

    # --- model --------------------------------------------------------------------------------
    def _source_changed(self, value: str) -> None:
        self.path.visible = value == FILE
        self._show_model()

    def model(self) -> Any:
        """The chosen TrainedModel; a clear InputError when there is none."""
        path = str(self.path.value or "")
        return session.chosen_model(self.viewer, self.source.value == SESSION, path, SESSION)

    @guarded("Export")
    def _on_export(self, *_: Any) -> None:
        """The chosen model as ONNX / TorchScript / bioimage.io package (checked, written)."""
        from qtpy.QtWidgets import QFileDialog

        from ..core.interop.formats import export

        model = self.model()
        path, _ = QFileDialog.getSaveFileName(
            self.native, "Export the model", "model.onnx", EXPORT_TYPES
        )
        if path:  # the dialog has asked before replacing a file
            self.status.value = f"Exported to {export(model, path, overwrite=True)}."

    def _show_model(self) -> None:
        """Describe the chosen model (or why there is none) without a notification."""
        try:
            model = self.model()
        except TemsegError as e:
            self.model_info.value = str(e)
            return
        self.model_info.value = repr(model)
        if self.job is None or not self.job.running:
            multi = not model.classes.binary
            self.threshold.min = 0.0 if multi else 0.01
            self.threshold.value = 0.0 if multi else float(model.threshold)
            self.threshold.tooltip = TIPS[multi]
            self._label_slider(self.threshold.value, multi)

    def _label_slider(self, value: float, multi: bool) -> None:
        self.threshold.label = f"{'minimum confidence' if multi else 'threshold'} {value:.2f}"

    # --- predict ------------------------------------------------------------------------------
    def _inputs(self, model: Any) -> tuple:
        layers, ca, vol = selected_image(
            self.images,
            self.channel_axis,
            "pick the image to segment (or the same channel layers the model was trained on)",
        )
        check_channels(
            model.channels,
            vol.shape[1],
            "the selection",
            "select the same channel layers (or channel axis) as for training",
        )
        return layers, (ca if len(layers) == 1 else None), vol

    def config(self, model: Any = None) -> PredictConfig:
        """The PredictConfig of the form and the slider (as the CLI builds one): the
        threshold of a binary model, the minimum confidence of a K-class one."""
        multi = model is not None and not model.classes.binary
        key = "min_confidence" if multi else "threshold"
        return predict_config({**self.form.values(), key: float(self.threshold.value)})

    @guarded("Predict")
    def _on_run(self, *_: Any) -> None:
        from ..core.inference.outputs import check_options
        from ..core.inference.predict import predict_stack

        if self.job is not None and self.job.running:
            raise InputError("a prediction is running: Cancel it first")
        model = self.model()
        cfg = self.config(model)
        check_options(model, cfg)
        layers, ca, vol = self._inputs(model)
        shape = L.spatial_shape(vol, L.is_2d(layers, ca))
        prob, labels, unc, folder = O.output_arrays(shape, cfg, k=model.classes.k)
        tr = L.transform(layers[0], ca)
        out = O.show_outputs(
            self.viewer, layers[0].name, prob, labels, unc, classes=model.classes, **tr
        )
        self.result = {
            "prob": prob,
            "labels": labels,
            **out,
            "cfg": cfg,
            "classes": model.classes,
            "threshold": cfg.threshold if model.classes.binary else cfg.min_confidence,
            "folder": folder,
            "res": None,
        }
        stop = StopToken()
        gen = predict_stack(
            model, vol, cfg, prob_out=prob, labels_out=labels, uncertainty_out=unc, stop=stop
        )
        self._set_running(True)
        self.bar.setValue(0)
        self.status.value = (
            f"Predicting {vol.shape[0]} slice(s) of {vol.shape[3]} x {vol.shape[2]} px..."
        )
        self.job = start_worker(
            gen,
            self._on_progress,
            self._on_done,
            stop=stop,
            desc="Predicting",
            min_interval=REFRESH_S,
            on_finished=self._finished,
        )

    def _on_cancel(self, *_: Any) -> None:
        if self.job is not None and self.job.running:
            self.job.stop()

    def _set_running(self, running: bool) -> None:
        self.run_btn.enabled = not running
        self.cancel_btn.enabled = running

    def _refresh(self) -> None:
        r = self.result
        layers = [r.get(k) for k in ("labels_layer", "unc_layer")] + (r.get("prob_layers") or [])
        for layer in [r.get("prob_layer"), *layers]:
            if layer is not None and layer in self.viewer.layers:
                layer.refresh()

    def _on_progress(self, p: Any) -> None:
        self.status.value = p.line()
        if p.warning:  # e.g. the tile batch halved to fit in the GPU's memory
            from napari.utils.notifications import show_warning

            show_warning(f"Predict: {p.warning}")
        show_fraction(self.bar, p)
        self._refresh()

    def _on_done(self, res: Any) -> None:
        self.result["res"] = res
        self._refresh()
        labels = self.result["labels"]
        z = labels.shape[0] if labels.ndim == 3 else 1
        head = (
            f"Cancelled: {len(res.slices)} of {z} slice(s) done"
            if res.stopped
            else f"Done: {len(res.slices)} slice(s)"
        )
        self.status.value = (
            f"{head} in {res.seconds:.1f} s ({res.mpix_per_s:.2f} Mpix/s on "
            f"{res.device}). Move the {self.threshold.label.rsplit(' ', 1)[0]} slider to "
            "re-label."
        )

    def _finished(self) -> None:
        """Last call of every job: buttons back, then a threshold moved meanwhile is applied."""
        self._set_running(False)
        r = self.result
        if (
            r
            and r.get("threshold") is not None
            and abs(self.threshold.value - r["threshold"]) > 1e-9
        ):
            self._on_threshold(self.threshold.value)

    # --- threshold ----------------------------------------------------------------------------
    @guarded("Threshold")
    def _on_threshold(self, value: float) -> None:
        r = self.result
        multi = bool(r) and not r["classes"].binary
        self._label_slider(value, multi)
        if not r or (self.job is not None and self.job.running):
            return  # applied when the running prediction finishes
        if r["prob_layer"] not in self.viewer.layers:
            return
        if r["labels_layer"] not in self.viewer.layers or L.is_released(r["labels_layer"]):
            O.new_labels_layer(self.viewer, r)  # the user's (edited/deleted) layer stays theirs
        r["threshold"] = float(value)
        prob, labels, cfg = r["prob"], r["labels"], r["cfg"]
        plain = not (cfg.min_size or cfg.fill_holes or cfg.instances or multi)
        if plain and isinstance(prob, np.ndarray) and isinstance(labels, np.ndarray):
            scale = 255 if prob.dtype == np.uint8 else 1
            np.greater_equal(prob, value * scale, out=labels, casting="unsafe")  # instant, in place
            r["labels_layer"].refresh()
            return
        relabel = O.relabel if multi else O.rethreshold
        self.job = start_worker(
            relabel(prob, labels, float(value), cfg),
            self._refresh_progress,
            lambda _: self._rethresholded(float(value)),
            desc="Re-threshold",
            min_interval=REFRESH_S,
            on_finished=self._finished,
        )
        self._set_running(True)

    def _rethresholded(self, value: float) -> None:
        self._refresh()
        what = "threshold" if self.result["classes"].binary else "minimum confidence"
        self.status.value = f"Labels re-made at {what} {value:.2f}."

    def _refresh_progress(self, p: Any) -> None:
        self.status.value = p.line()
        self._refresh()
