"""fit(): the training engine, one generator for the GUI, the CLI and the console.

``fit`` yields a :class:`Progress` after every batch and *returns* the trained
:class:`TrainedModel` (best validation Dice so far). It stops at the next yield
when its ``stop`` token is set, when the epochs or the time budget are used up,
or on early stopping - and in every case returns the best model.

Pipeline per step: a background thread draws numpy patches (foreground
oversampling, padding with zero loss weight) while the model trains - and on
the CPU also augments them there, so augmentation overlaps the step; on a GPU
the batch is moved to the device and augmented there (``augment.Augmenter``); it is trained
with a weighted BCE / Dice loss (weight 0 = unlabelled or padding).
"""

from __future__ import annotations

import copy
import itertools
import time
from collections.abc import Callable, Generator, Sequence
from typing import Any

import numpy as np

from ..config.classes import ClassTable
from ..config.model import InputSpec, ModelConfig
from ..config.train import TrainConfig, learning_rate, lr_factor
from ..errors import InputError
from ..modelfile.format import TrainedModel
from ..nets.registry import CLASSIFIER_ARCH
from ..progress import Progress, StopToken
from ..threads import Worker
from .objectives import background_counts, health_warning
from .sampling import validation_patches
from .teacher import keep_better, teach_session
from .trainset import training_data


def _make_net(
    model_cfg: ModelConfig | None,
    spec: InputSpec,
    resume: TrainedModel | None,
    device,
    classes: int = 1,
):
    from ..config.model import DEFAULT_MODEL
    from ..nets.build import build_model

    if resume is not None:
        if resume.input_spec.channels != spec.channels or resume.input_spec.context != spec.context:
            raise InputError(
                f"cannot continue training: the model takes {resume.input_spec.channels} "
                f"channel(s) with context {resume.input_spec.context}, "
                f"the data has {spec.channels} with context {spec.context}"
            )
        return copy.deepcopy(resume.net).to(device), resume.model_cfg
    base = model_cfg or DEFAULT_MODEL
    fields = {
        **base.__dict__,
        "in_channels": spec.network_channels,
        "slices": 2 * spec.context + 1,
        "classes": classes,
    }
    cfg = ModelConfig(**fields).resolved()
    return build_model(cfg).to(device), cfg


class _Session:
    """Everything fit() sets up before the first step (inputs, split, model, optimiser)."""

    def __init__(
        self,
        images,
        masks,
        cfg: TrainConfig,
        model_cfg,
        classes: ClassTable | None,
        channel_axis,
        val_images,
        val_masks,
        annotated,
        resume: TrainedModel | None,
    ):
        import torch

        from .augment.augmenter import Augmenter
        from .objectives import class_weights, loss_fn

        self.cfg = cfg
        torch.manual_seed(cfg.seed)
        inputs = (images, masks, channel_axis, val_images, val_masks, annotated)
        d, self.notice = training_data(cfg, inputs, classes, resume)
        self.data, self.classes, self.spec, self.sampler = d, d.classes, d.spec, d.sampler
        self.background = background_counts(cfg)  # class 0 scored like the others
        self.teacher_record: dict = {}  # the teacher's validation scores (training.teacher)
        self.val = validation_patches(d.val_sampler) if d.val_sampler else None
        self.history = list(resume.history) if resume is not None else []
        self._model(model_cfg, resume)
        opt = torch.optim.AdamW if cfg.optimizer == "adamw" else torch.optim.Adam
        wd = cfg.weight_decay if cfg.optimizer == "adamw" else 0.0
        self.lr = learning_rate(cfg, self.classes.binary)
        self.opt = opt(self.net.parameters(), lr=self.lr, weight_decay=wd)
        self.augment = Augmenter(cfg.augment, seed=cfg.seed)
        self.loss_fn = loss_fn(
            cfg.loss, d.classes.k, class_weights(d.train_pixels, cfg.class_weights)
        )

    def _model(self, model_cfg: ModelConfig | None, resume: TrainedModel | None) -> None:
        """The network on the training device, in the memory format that pays there."""
        import torch

        from ..device import channels_last_pays, resolve_device
        from ..nets.build import check_patch
        from .memory import OutOfMemory, Precision

        self.device = resolve_device(self.cfg.device)
        self.net, self.model_cfg = _make_net(
            model_cfg, self.spec, resume, self.device, self.classes.out_channels
        )
        check_patch(self.cfg.patch, self.model_cfg)
        self.amp = "auto" if self.cfg.amp else False
        self.precision = Precision(self.device, self.amp, self.history)
        self.oom = OutOfMemory(self.device, self.cfg.batch, self.cfg.patch, self.model_cfg)
        # memory format policy (and its measurements): device.channels_last_pays
        self.channels_last = self.cfg.channels_last and channels_last_pays(
            self.device, self.model_cfg.norm_layer, self.amp
        )
        # (a resumed network may still be in channels_last from predicting with it)
        fmt = torch.channels_last if self.channels_last else torch.contiguous_format
        self.net = self.net.to(memory_format=fmt)

    def make_batch(self):
        """One training batch as device tensors; augmented here when training on the CPU."""
        import torch

        x, y, w = (torch.from_numpy(a) for a in self.sampler.sample(self.oom.batch))
        if self.device.type == "cpu":
            return self.augment(x, y, w)
        return x, y, w

    def _on_device(self, batch):
        import torch

        x, y, w = (a.to(self.device, non_blocking=True) for a in batch)
        if self.device.type != "cpu":  # on a GPU augmentation is cheap on the device
            x, y, w = self.augment(x, y, w)
        if self.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        return x, y, w

    def forward(self, batch):
        from ..device import autocast

        x, y, w = self._on_device(batch)
        with autocast(self.device, self.amp):
            return self.net(x), y, w

    def step(self, batch, frac: float) -> float:
        for g in self.opt.param_groups:
            g["lr"] = self.lr * lr_factor(frac)
        # batches drawn before the batch was halved (memory.OutOfMemory) are cut to size
        logits, y, w = self.forward([a[: self.oom.batch] for a in batch])
        loss = self.loss_fn(logits.float(), y, w)
        self.opt.zero_grad(set_to_none=True)
        self.precision.backward_step(loss, self.opt)
        return float(loss.detach())

    def after_out_of_memory(self) -> str | None:
        """Clean up a failed step; None: retry it with the halved batch, else the line
        saying what to lower."""
        self.opt.zero_grad(set_to_none=True)
        self.precision.reset()
        return self.oom.shrink()


class _Loop:
    """The step / epoch / stop bookkeeping of one fit() call."""

    def __init__(self, s: _Session, stop, preview, preview_every: float, t0: float | None = None):
        self.s, self.stop, self.preview, self.preview_every = s, stop, preview, preview_every
        cfg = s.cfg
        self.total = cfg.epochs * cfg.steps_per_epoch if cfg.epochs else None
        self.step = self.samples = 0
        self.epoch = len(s.history)
        self.losses: list[float] = []
        self.best_dice, self.best_state, self.since_best = -1.0, None, 0
        self.warning: str | None = s.notice  # until the first epoch's check
        self.pending: str | None = None  # a one-off warning for the next Progress
        self.batches: Any = None  # the training batches (precise batch norm draws from them)
        self.last_preview = time.monotonic()
        self.t0 = self.last_preview if t0 is None else t0  # the time budget counts from t0

    def fraction(self) -> float:
        cfg, el = self.s.cfg, time.monotonic() - self.t0
        f = [self.step / self.total] if self.total else []
        f += [el / cfg.seconds] if cfg.seconds else []
        return min(1.0, max(f))

    def run(self) -> Generator[Progress, None, None]:
        # numpy sampling and (on the CPU) torch augmentation release the GIL, so making
        # the next batch in a thread overlaps the training step instead of adding to it
        batches = Worker(producer=iter(self.s.make_batch, None), depth=2)
        it = self.batches = iter(batches)
        try:
            while True:
                loss = self._step(next(it))
                if loss is None:  # out of memory even at the halved batch: keep the best
                    yield self.progress(None, {}, None)
                    return
                self.step += 1
                self.samples += self.s.oom.batch
                self.losses.append(loss)
                finished = self.fraction() >= 1.0
                end_epoch = self.step % self.s.cfg.steps_per_epoch == 0 or finished
                record = self.end_epoch() if end_epoch else {}
                yield self.progress(loss, record, self._preview())
                if self.stop is not None and self.stop.requested:
                    if not end_epoch:
                        self.end_epoch()
                    return
                early = (
                    self.s.cfg.early_stop is not None and self.since_best >= self.s.cfg.early_stop
                )
                if finished or early:
                    return
        finally:
            batches.close(wait=False)

    def _step(self, batch) -> float | None:
        """One training step; out of memory: retried once at half the batch, then an
        InputError - or None where a best model is there to keep (the reason in the
        history and the warning)."""
        from ..device import is_out_of_memory

        while True:
            try:
                return self.s.step(batch, self.fraction())
            except RuntimeError as e:
                if not is_out_of_memory(e):
                    raise
            # out of the except block: the failed step's tensors are released
            line = self.s.after_out_of_memory()
            if line is None:
                self.pending = self.s.oom.notice
                continue
            if self.best_state is None:
                raise InputError(line)
            self.pending = line
            self.s.history[-1]["stopped"] = line
            return None

    def end_epoch(self) -> dict:
        s = self.s
        rec = {
            "epoch": self.epoch + 1,
            "step": self.step,
            "loss": float(np.mean(self.losses) if self.losses else 0),
            "lr": s.opt.param_groups[0]["lr"],
            "elapsed": round(time.monotonic() - self.t0, 2),
            **s.precision.record(),
            **s.oom.record(),
            **s.teacher_record,
        }
        if s.cfg.precise_bn:  # population statistics for validation and the kept model
            from .precise_bn import recalibrate

            batches = itertools.islice(self.batches, s.cfg.precise_bn) if self.batches else ()
            recalibrate(s.net, batches, s.forward)
        constant = False
        if s.val is not None:
            from .objectives import validate

            val, constant = validate(s.net, s.val, s.device, s.amp, s.classes.k, s.background)
            rec.update(val)
        score = rec.get("val_dice", self.step)  # without validation the latest model is the best
        if score >= self.best_dice:
            self.best_dice, self.since_best = score, 0
            self.best_state = {
                k: v.detach().to("cpu", copy=True) for k, v in s.net.state_dict().items()
            }
        else:
            self.since_best += 1
        self.losses = []
        self.epoch += 1
        s.history.append(rec)
        self.warning = health_warning(s.history, constant)
        return rec

    def _preview(self) -> tuple[Any, int] | None:
        """(probability, slice) of the slice the front end asked for, every preview_every s."""
        now = time.monotonic()
        if self.preview is None or now - self.last_preview < self.preview_every:
            return None
        self.last_preview = now
        req = self.preview()
        if req is None:
            return None
        from ..config.predict import PredictConfig
        from ..inference.predict import predict_slice

        # per-tile statistics: the stack's calibration (~1 Mpix every preview) would take
        # training time from a picture that changes every few seconds anyway
        cfg = PredictConfig(device=str(self.s.device), norm_stats="tile")
        prob = predict_slice(self.model(), req[0], req[1], cfg)
        self.s.net.train()
        return prob, req[1]

    def progress(self, loss: float | None, rec: dict, preview: tuple | None) -> Progress:
        el = time.monotonic() - self.t0
        warning, self.pending = self.pending or self.warning, None
        return Progress(
            stage="train",
            step=self.step,
            total=self.total,
            elapsed=el,
            epoch=self.epoch,
            rate=self.samples / max(el, 1e-9),
            loss=loss,
            val_dice=rec.get("val_dice"),
            val_iou=rec.get("val_iou"),
            warning=warning,
            preview=preview[0] if preview else None,
            preview_z=preview[1] if preview else None,
            message="epoch done" if rec else "",
            extra={
                "fraction": self.fraction(),
                "epoch_record": rec or None,
                "device": self.s.precision.text,
            },
        )

    def model(self) -> TrainedModel:
        s = self.s
        return TrainedModel(
            net=s.net,
            model_cfg=s.model_cfg,
            input_spec=s.spec,
            threshold=s.cfg.threshold,
            classes=s.classes,
            train_cfg=s.cfg,
            history=s.history,
        )

    def result(self) -> TrainedModel:
        if self.best_state is not None:
            self.s.net.load_state_dict(self.best_state)
        self.s.net.eval()
        return self.model()


def fit(
    images: Any,
    masks: Any,
    *,
    train_cfg: TrainConfig | None = None,
    model_cfg: ModelConfig | None = None,
    channel_axis: int | None = None,
    val_images: Any = None,
    val_masks: Any = None,
    annotated: Sequence[int] | None = None,
    resume: TrainedModel | None = None,
    classes: ClassTable | None = None,
    stop: StopToken | None = None,
    preview: Callable[[], tuple[Any, int] | None] | None = None,
    preview_every: float = 5.0,
) -> Generator[Progress, None, TrainedModel]:
    """Train a model on painted masks; see the module docstring.
    Yields Progress, returns the model.

    ``classes``: the class table (names, colours) of the masks; by default it comes from
    ``train_cfg.classes`` / ``class_names``, a resumed model, or the mask values
    (``core/config/classes.py`` has the label conventions).
    """
    cfg = train_cfg or TrainConfig()
    if (resume.model_cfg if resume else model_cfg or ModelConfig()).arch == CLASSIFIER_ARCH:
        from .classifier import fit_classifier

        inputs = (images, masks, channel_axis, val_images, val_masks, annotated)
        return (yield from fit_classifier(cfg, model_cfg, inputs, classes, resume, stop))
    t0 = time.monotonic()
    s = _Session(
        images,
        masks,
        cfg,
        model_cfg,
        classes,
        channel_axis,
        val_images,
        val_masks,
        annotated,
        resume,
    )
    teacher = yield from teach_session(s, stop)
    loop = _Loop(s, stop, preview, preview_every, t0)
    yield from loop.run()
    return (yield from keep_better(loop, loop.result(), teacher))
