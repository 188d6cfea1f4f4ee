"""Train dock: settings form over ``core.training.fit``, live loss / Dice plot, live preview."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from magicgui.widgets import CheckBox, ComboBox, Container, Label, PushButton

from ..adapters import layers as L
from ..adapters.workers import start_worker
from ..core.config.model import ModelConfig
from ..core.config.options import train_configs
from ..core.config.recipes import RECIPES
from ..core.config.train import TrainConfig
from ..core.errors import InputError
from ..core.interop.formats import SUFFIX
from ..core.nets.registry import arch_of
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

UPDATE_S = 0.5  # GUI updates (plot, label, bars) at most twice a second; see workers.thinned


EXPORTS = tuple(SUFFIX.values())  # endings core/interop/formats.py writes
SAVE_KINDS = "napari-temseg model (*.safetensors);;" + EXPORT_TYPES


class TrainWidget(Container):
    """Train a U-Net on the painted mask; Stop keeps the best model; Save / Continue."""

    def __init__(self, viewer: napari.viewer.Viewer):  # napari passes the viewer (by annotation)
        super().__init__(labels=True)
        self.viewer = viewer
        self._build_form(viewer)
        self.model: Any = None
        self.job: Any = None
        self.preview_every = 5.0
        self._view_z = 0
        self._warned: set[str] = set()
        self._classes: Any = None  # the class table of the run (None: binary or inferred)
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
        self.native.destroyed.connect(
            lambda *_: self.job and self.job.stop()
        )  # closed: stop the job
        unsubscribe = session.on_model(viewer, self._adopt)
        self.native.destroyed.connect(lambda *_: unsubscribe())
        self._mask_changed(self.mask.value)

    def _build_form(self, viewer: Any) -> None:
        self.images = layer_combo(viewer, "image", "image(s)", multiple=True)
        self.images.tooltip = (
            "One image, or several same-shape layers used as channels (ctrl-click)"
        )
        self.channel_axis = ComboBox(
            label="channel axis", choices=CHANNEL_AXIS_CHOICES, value="auto"
        )
        self.mask = layer_combo(viewer, "labels", "mask")
        self.form = OptionForm((ModelConfig, TrainConfig))
        self.form.attach(self)
        self.form.follow("recipe", {n: r.values for n, r in RECIPES.items()})
        self.preview = CheckBox(text="live preview of the slice in view", value=True)
        self.start_btn = PushButton(text="Start training")
        self.stop_btn = PushButton(text="Stop (keep best)", enabled=False)
        self.continue_btn = PushButton(text="Continue training", enabled=False)
        self.save_btn = PushButton(text="Save / export model...", enabled=False)
        self.status = Label(value="Paint a mask (Annotate dock), then Start.")
        self.status.native.setWordWrap(True)
        self.extend([self.images, self.channel_axis, self.mask, *self.form.basic(), self.preview])
        self.extend([self.form.toggle, self.form.advanced, self.start_btn, self.stop_btn])
        self.extend([self.continue_btn, self.save_btn, self.status])
        from .plot import LivePlot

        self.bar = progress_widget()
        self.plot = LivePlot()
        add_qwidget(self, self.bar)
        add_qwidget(self, self.plot)
        self._arch_changed(self.arch.value)

    # --- settings -> configs --------------------------------------------------------------------
    def configs(self) -> tuple[TrainConfig, ModelConfig]:
        """(TrainConfig, ModelConfig) of the form, built like the CLI's and the console's."""
        return train_configs(self.form.values())

    def train_config(self) -> TrainConfig:
        return self.configs()[0]

    def model_config(self) -> ModelConfig:
        return self.configs()[1]

    def _arch_changed(self, arch: str) -> None:
        spec = arch_of(arch)  # its registry entry says which options it has
        for name in ("encoder", "encoder_weights"):
            self.form.set_applicable(name, spec.encoder)
        self.form.set_applicable("base_width", spec.base_width is not None)
        self.form.set_applicable("norm_layer", spec.norm is not None)
        self.form.set_applicable("depth", spec.depth)

    def _inputs(self) -> tuple:
        layers, ca, vol = selected_image(
            self.images,
            self.channel_axis,
            "pick the image to train on (or several same-shape layers used as channels)",
        )
        two_d = L.is_2d(layers, ca)
        if self.mask.value is None:
            raise InputError("no mask layer: click 'New mask' in the Annotate dock and paint on it")
        mask = L.mask_array(self.mask.value, vol, two_d)
        return layers, ca, vol, mask

    # --- actions -------------------------------------------------------------------------------
    @guarded("Training")
    def _start(self, resume: bool = False) -> None:
        from ..core.training.loop import fit

        if self.job is not None and self.job.running:
            raise InputError("training is already running: Stop it first")
        layers, ca, vol, mask = self._inputs()
        self._mask_changed(self.mask.value)  # scribbles or dense: as the Annotate dock says now
        cfg, mcfg = self.configs()
        self._classes = self._class_table(resume)
        if resume and self.model is None:
            raise InputError("no model to continue: Start training first")
        from ..core.training.objectives import background_counts

        self._run_info = {
            "layer": layers[0],
            "ca": ca if len(layers) == 1 else None,
            "vol": vol,
            "name": layers[0].name,
            "sparse": cfg.sparse,
            "background": background_counts(cfg),  # class 0 scored like the others
        }
        self._track_view()
        stop = StopToken()
        gen = fit(
            vol,
            mask,
            train_cfg=cfg,
            model_cfg=mcfg,
            resume=self.model if resume else None,
            classes=self._classes,
            stop=stop,
            preview=self._preview_request if self.preview.value else None,
            preview_every=self.preview_every,
        )
        if not resume:
            self.plot.clear()
        self._step0 = self.plot.last_x() if resume else 0
        self._warned.clear()
        self._set_running(True)
        self.status.value = "Starting (reading data, building the model)..."
        self.bar.setValue(0)
        self.job = start_worker(
            gen,
            self._on_progress,
            self._on_done,
            stop=stop,
            desc="Training",
            min_interval=UPDATE_S,
            on_finished=lambda: self._set_running(False),
        )

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
        """Save the model file, or export it (ONNX, TorchScript, bioimage.io) for other tools."""
        from qtpy.QtWidgets import QFileDialog

        if self.model is None:
            raise InputError("no trained model yet: Start training first")
        name = f"{self._run_info.get('name', 'model')}.safetensors".replace(" ", "_")
        path, kind = QFileDialog.getSaveFileName(self.native, "Save model", name, SAVE_KINDS)
        if not path:  # cancelled; otherwise the dialog has asked before replacing a file
            return
        typed = kind[kind.find("*.") + 1 : kind.rfind(")")] if "*." in kind else ""
        if Path(path).suffix.lower() not in EXPORTS and typed in EXPORTS:
            path += typed  # a name without its ending, an export type chosen
        if Path(path).suffix.lower() in EXPORTS:
            from ..core.interop.formats import export

            self.status.value = f"Exported to {export(self.model, path, overwrite=True)}."
        else:
            self.save_to(path)

    def save_to(self, path: str | Path) -> Path | None:
        """Save the model (core/modelfile/save.py); where it cannot go, into the rescue
        folder, else it stays here: the status and a notification say which."""
        from ..core.modelfile.save import save_or_rescue

        path = Path(path)
        if path.suffix != ".safetensors":
            path = path.with_name(path.name + ".safetensors")
        done = save_or_rescue(self.model, path, overwrite=True)
        if done.problem is None:
            self.status.value = f"Saved {done.path}"
            return done.path
        from napari.utils.notifications import show_warning

        text = done.message(
            "the trained model is kept in this dock until you close napari: free some space "
            "and Save again"
        )
        self.status.value = f"Not saved there: {text}"
        show_warning(f"Save model: {text}")
        return done.path

    # --- worker callbacks (GUI thread) ----------------------------------------------------------
    def _on_progress(self, p: Any) -> None:
        self.plot.add(self._step0 + p.step, p.loss, p.val_dice)
        rec = (p.extra or {}).get("epoch_record") or {}
        self.plot.set_teacher(rec.get("teacher_val_dice"))
        if "val_dice_classes" in rec:
            from ..core.config.classes import ClassTable
            from ..core.training.objectives import scored_classes

            t = self._classes or ClassTable.default(len(rec["val_dice_classes"]))
            shown = scored_classes(t.k, (self._run_info or {}).get("background", False))
            self.plot.add_classes(
                self._step0 + p.step, t.names, t.colors, rec["val_dice_classes"], shown
            )
        show_fraction(self.bar, p)
        where = (p.extra or {}).get("device")  # device and precision (bf16 / fp16 / fp32)
        self.status.value = p.line() + (f" | {where}" if where else "")
        if p.warning and p.warning not in self._warned:
            from napari.utils.notifications import show_warning

            self._warned.add(p.warning)
            show_warning(f"Training: {p.warning}")
        if p.preview is not None:
            self._show_preview(p.preview, p.preview_z)

    def _adopt(self, model: Any) -> None:
        """A model made elsewhere in the session (the Annotate dock's live classifier)."""
        if model is self.model or (self.job is not None and self.job.running):
            return
        self.model = model
        self._set_running(False)
        self.status.value = (
            f"Model from the live preview ({model.model_cfg.arch}): Save it, or Start "
            "training a U-Net"
        )

    def _on_done(self, model: Any) -> None:
        self.model = model
        self.bar.setValue(1000)
        session.set_model(self.viewer, model)
        last = model.history[-1] if model.history else {}
        dice = max((h.get("val_dice", -1) for h in model.history), default=-1)
        best = max(model.history, key=lambda h: h.get("val_dice", -1), default={})
        per_text = ""
        if "val_dice_classes" in best:
            from ..core.training.objectives import (
                background_counts,
                per_class_text,
                scored_classes,
            )

            shown = scored_classes(model.classes.k, background_counts(model.train_cfg))
            per = per_class_text(model.classes.names, best["val_dice_classes"], shown, 2)
            per_text = f"; per class {per}"
        stopped = self.job is not None and self.job.stopping
        what = "Stopped: kept the best model so far" if stopped else "Done"
        from ..core.training.teacher import comparison

        kept = comparison(model)  # a taught U-Net: which of the two models is kept, and why
        what = f"{what}: {kept}" if kept else what
        if last.get("stopped"):  # out of memory even at half the batch
            what = f"Stopped, {last['stopped']}; kept the best model so far"
        self.status.value = (
            f"{what} ({len(model.history)} epochs"
            + (f", best validation Dice {dice:.3f}" if dice >= 0 else "")
            + per_text
            + f", {last.get('elapsed', 0):.0f} s"
            + (f", {last['precision']}" if "precision" in last else "")
            + "). Predict it, Save it, or paint "
            "more and Continue."
        )

    # --- live preview ---------------------------------------------------------------------------
    def _track_view(self, *_: Any) -> None:
        info = self._run_info or {}
        layer = info.get("layer") or (self.images.value[0] if self.images.value else None)
        if layer is not None and layer in self.viewer.layers:
            self._view_z = L.current_z(layer, self.viewer, info.get("ca"))

    def _preview_request(self) -> tuple | None:
        """Called by fit in the training thread: which slice to preview (the one in view)."""
        return self._run_info["vol"], self._view_z

    def _show_preview(self, prob: Any, z: int) -> None:
        from ..adapters.outputs import show_preview

        info = self._run_info
        if info["layer"] in self.viewer.layers:  # the image was deleted: no orphan preview
            show_preview(
                self.viewer, info["layer"], info["ca"], info["name"], prob, z, self._classes
            )

    def _class_table(self, resume: bool) -> Any:
        """The mask layer's class table (Annotate dock); None: binary or from the mask values."""
        from ..adapters.layers import classes_of

        table = classes_of(self.mask.value)
        if table is None and resume and self.model is not None:
            return self.model.classes
        return table

    def _mask_changed(self, layer: Any) -> None:
        meta = layer.metadata.get(L.TAG) if layer is not None and L.is_ours(layer) else None
        if isinstance(meta, dict) and "sparse" in meta:
            self.sparse.value = bool(meta["sparse"])
