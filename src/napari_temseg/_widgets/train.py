"""Train dock: settings form over ``core.train.fit``, live loss / Dice plot and live preview."""

from __future__ import annotations

import collections
from pathlib import Path
from typing import TYPE_CHECKING, Any

from magicgui.widgets import (CheckBox, ComboBox, Container, FloatSpinBox, Label, PushButton,
                              SpinBox)

from ..core.config import AUGMENT_PRESETS, NATIVE_ARCHS, NORM_LAYERS, ModelConfig, TrainConfig
from ..core.errors import InputError
from ..core.progress import StopToken
from . import _layers as L
from . import _session
from ._common import (CHANNEL_AXIS_CHOICES, add_qwidget, follow_layers, guarded, layer_combo,
                      progress_widget, selected_image, show_fraction)
from ._workers import start_worker

if TYPE_CHECKING:
    import napari

DEVICES = ("auto", "cpu", "cuda", "mps")
NORMS = ("auto", *NORM_LAYERS)
UPDATE_S = 0.5  # GUI updates (plot, label, bars) at most twice a second; see _workers.thinned
SMP_ARCHS = ("Unet", "UnetPlusPlus", "FPN", "Linknet", "DeepLabV3Plus")
ENCODERS = ("resnet18", "resnet34", "mobilenet_v2", "efficientnet-b0")


def _arch_choices() -> list[str]:
    return list(NATIVE_ARCHS) + list(SMP_ARCHS)


class TrainWidget(Container):
    """Train a U-Net on the painted mask; Stop keeps the best model; Save / Continue."""

    def __init__(self, viewer: napari.viewer.Viewer):  # napari passes the viewer (by annotation)
        super().__init__(labels=True)
        self.viewer = viewer
        self._build_form(viewer)
        self.model: Any = None
        self.job: Any = None
        self.preview_every = 5.0
        self._preview_zs: collections.deque = collections.deque(maxlen=8)
        self._view_z = 0
        self._warned: set[str] = set()
        self._run_info: dict = {}
        self._step0 = 0
        self.start_btn.clicked.connect(lambda: self._start(resume=False))
        self.continue_btn.clicked.connect(lambda: self._start(resume=True))
        self.stop_btn.clicked.connect(self._stop)
        self.save_btn.clicked.connect(self._on_save)
        self.arch.changed.connect(self._arch_changed)
        self.mask.changed.connect(self._mask_changed)
        viewer.dims.events.current_step.connect(self._track_view)
        follow_layers(viewer, self)
        self.native.destroyed.connect(lambda *_: self.job and self.job.stop())  # closed: stop the job
        self._mask_changed(self.mask.value)

    def _build_form(self, viewer: Any) -> None:
        self.images = layer_combo(viewer, "image", "image(s)", multiple=True)
        self.images.tooltip = "One image, or several same-shape layers used as channels (ctrl-click)"
        self.channel_axis = ComboBox(label="channel axis", choices=CHANNEL_AXIS_CHOICES, value="auto")
        self.mask = layer_combo(viewer, "labels", "mask")
        self.sparse = CheckBox(text="sparse scribbles (1 fg, 2 bg, 0 ignored)")
        self.arch = ComboBox(label="model", choices=_arch_choices(), value="small-unet")
        self.encoder = ComboBox(label="encoder", choices=ENCODERS, value="resnet18", visible=False)
        self.base_width = SpinBox(label="base width", value=0, min=0, max=128,
                                  tooltip="channels of the first level; 0 = the architecture's default")
        self.norm = ComboBox(label="normalisation layers", choices=NORMS, value="auto",
                             tooltip="auto: instance norm for small-unet, batch norm for unet/resunet")
        self.patch = SpinBox(label="patch (px)", value=256, min=32, max=2048, step=16)
        self.batch = SpinBox(label="batch", value=4, min=1, max=256)
        self.seconds = SpinBox(label="time budget (s)", value=120, min=0, max=7 * 24 * 3600,
                               tooltip="0 = no time limit (then set epochs)")
        self.epochs = SpinBox(label="epochs", value=0, min=0, max=100000,
                              tooltip="0 = no epoch limit (then set a time budget)")
        self.lr = FloatSpinBox(label="learning rate", value=1e-3, min=1e-6, max=0.5, step=1e-4)
        self.lr.native.setDecimals(6)
        self.augment = ComboBox(label="augmentation", choices=AUGMENT_PRESETS, value="default")
        self.val_fraction = FloatSpinBox(label="validation fraction", value=0.2, min=0.0, max=0.8,
                                         step=0.05)
        self.context = SpinBox(label="context slices (2.5D)", value=0, min=0, max=8)
        self.per_image = CheckBox(text="normalise each image by its own contrast")
        self.device = ComboBox(label="device", choices=DEVICES, value="auto")
        self.preview = CheckBox(text="live preview of the slice in view", value=True)
        self.start_btn = PushButton(text="Start training")
        self.stop_btn = PushButton(text="Stop (keep best)", enabled=False)
        self.continue_btn = PushButton(text="Continue training", enabled=False)
        self.save_btn = PushButton(text="Save model...", enabled=False)
        self.status = Label(value="Paint a mask (Annotate dock), then Start.")
        self.status.native.setWordWrap(True)
        self.extend([self.images, self.channel_axis, self.mask, self.sparse, self.arch, self.encoder,
                     self.base_width, self.norm, self.patch, self.batch, self.seconds, self.epochs, self.lr,
                     self.augment, self.val_fraction, self.context, self.per_image, self.device,
                     self.preview,
                     self.start_btn, self.stop_btn, self.continue_btn, self.save_btn, self.status])
        from ._plot import LivePlot

        self.bar = progress_widget()
        self.plot = LivePlot()
        add_qwidget(self, self.bar)
        add_qwidget(self, self.plot)

    # --- settings -> configs --------------------------------------------------------------------
    def train_config(self) -> TrainConfig:
        return TrainConfig(
            patch=self.patch.value, batch=self.batch.value, lr=float(self.lr.value),
            seconds=float(self.seconds.value) or None, epochs=self.epochs.value or None,
            augment=self.augment.value, val_fraction=float(self.val_fraction.value),
            sparse=bool(self.sparse.value), device=self.device.value,
            normalize="image" if self.per_image.value else "dataset",
        )

    def model_config(self) -> ModelConfig:
        arch = self.arch.value
        if arch in NATIVE_ARCHS:
            return ModelConfig(arch=arch, base_width=self.base_width.value or None, norm=self.norm.value)
        return ModelConfig(arch=arch, encoder=self.encoder.value)

    def _arch_changed(self, arch: str) -> None:
        self.encoder.visible = arch not in NATIVE_ARCHS
        self.base_width.visible = self.norm.visible = arch in NATIVE_ARCHS

    def _inputs(self) -> tuple:
        layers, ca, vol = selected_image(self.images, self.channel_axis, "pick the image to train on "
                                         "(or several same-shape layers used as channels)")
        two_d = L.is_2d(layers, ca)
        if self.mask.value is None:
            raise InputError("no mask layer: click 'New mask' in the Annotate dock and paint on it")
        mask = L.mask_array(self.mask.value, vol, two_d)
        return layers, ca, vol, mask

    # --- actions -------------------------------------------------------------------------------
    @guarded("Training")
    def _start(self, resume: bool = False) -> None:
        from ..core.train import fit

        if self.job is not None and self.job.running:
            raise InputError("training is already running: Stop it first")
        layers, ca, vol, mask = self._inputs()
        cfg, mcfg = self.train_config(), self.model_config()
        if resume and self.model is None:
            raise InputError("no model to continue: Start training first")
        self._run_info = {"layer": layers[0], "ca": ca if len(layers) == 1 else None, "vol": vol,
                          "name": layers[0].name}
        self._track_view()
        stop = StopToken()
        gen = fit(vol, mask, train_cfg=cfg, model_cfg=mcfg, context=self.context.value,
                  resume=self.model if resume else None, stop=stop,
                  preview=self._preview_request if self.preview.value else None,
                  preview_every=self.preview_every)
        if not resume:
            self.plot.clear()
        self._step0 = self.plot.last_x() if resume else 0
        self._warned.clear()
        self._set_running(True)
        self.status.value = "Starting (reading data, building the model)..."
        self.bar.setValue(0)
        self.job = start_worker(gen, self._on_progress, self._on_done, stop=stop, desc="Training",
                                min_interval=UPDATE_S,
                                on_finished=lambda: self._set_running(False))

    def _stop(self, *_: Any) -> None:
        if self.job is not None and self.job.running:
            self.job.stop()
            self.status.value = "Stopping after this step (the best model so far is kept)..."

    def _set_running(self, running: bool) -> None:
        self.start_btn.enabled = not running
        self.stop_btn.enabled = running
        self.continue_btn.enabled = not running and self.model is not None
        self.save_btn.enabled = not running and self.model is not None

    @guarded("Save model")
    def _on_save(self, *_: Any) -> None:
        from qtpy.QtWidgets import QFileDialog

        if self.model is None:
            raise InputError("no trained model yet: Start training first")
        name = f"{self._run_info.get('name', 'model')}.safetensors".replace(" ", "_")
        path, _ = QFileDialog.getSaveFileName(self.native, "Save model", name,
                                              "napari-temseg model (*.safetensors)")
        if path:  # the dialog has asked before replacing an existing file
            self.save_to(path)

    def save_to(self, path: str | Path) -> Path:
        path = Path(path)
        if path.suffix != ".safetensors":
            path = path.with_name(path.name + ".safetensors")
        out = self.model.save(path, overwrite=True)
        self.status.value = f"Saved {out}"
        return out

    # --- worker callbacks (GUI thread) ----------------------------------------------------------
    def _on_progress(self, p: Any) -> None:
        self.plot.add(self._step0 + p.step, p.loss, p.val_dice)
        show_fraction(self.bar, p)
        self.status.value = p.line()
        if p.warning and p.warning not in self._warned:
            from napari.utils.notifications import show_warning

            self._warned.add(p.warning)
            show_warning(f"Training: {p.warning}")
        if p.preview is not None:
            z = self._preview_zs.popleft() if self._preview_zs else self._view_z
            self._show_preview(p.preview, z)

    def _on_done(self, model: Any) -> None:
        self.model = model
        self.bar.setValue(1000)
        _session.set_model(self.viewer, model)
        last = model.history[-1] if model.history else {}
        dice = max((h.get("val_dice", -1) for h in model.history), default=-1)
        stopped = self.job is not None and self.job.stopping
        what = "Stopped: kept the best model so far" if stopped else "Done"
        self.status.value = (f"{what} ({len(model.history)} epochs"
                             + (f", best validation Dice {dice:.3f}" if dice >= 0 else "")
                             + f", {last.get('elapsed', 0):.0f} s). Predict it, Save it, or paint "
                             "more and Continue.")

    # --- live preview ---------------------------------------------------------------------------
    def _track_view(self, *_: Any) -> None:
        info = self._run_info or {}
        layer = info.get("layer") or (self.images.value[0] if self.images.value else None)
        if layer is not None and layer in self.viewer.layers:
            self._view_z = L.current_z(layer, self.viewer, info.get("ca"))

    def _preview_request(self) -> tuple | None:
        """Called by fit in the training thread: which slice to preview (the one in view)."""
        z = self._view_z
        self._preview_zs.append(z)
        return self._run_info["vol"], z

    def _show_preview(self, prob: Any, z: int) -> None:
        info = self._run_info
        layer, ca = info["layer"], info["ca"]
        tr = L.transform(layer, ca)
        two_d = len(tr["scale"]) == 2
        data = prob if two_d else prob[None]
        translate = list(tr["translate"])
        if not two_d:
            translate[0] += z * tr["scale"][0]
        L.put_layer(self.viewer, "image", data, role="preview", source=info["name"],
                    name=f"{info['name']} preview", scale=tr["scale"], translate=tuple(translate),
                    colormap="magma", blending="additive", contrast_limits=(0.0, 1.0), opacity=0.7)

    def _mask_changed(self, layer: Any) -> None:
        meta = layer.metadata.get(L.TAG) if layer is not None and L.is_ours(layer) else None
        if isinstance(meta, dict) and "sparse" in meta:
            self.sparse.value = bool(meta["sparse"])
