"""fit() under fp16 with loss scaling (run on the CPU: its autocast and GradScaler take fp16)
and when a step runs out of memory (torch.OutOfMemoryError raised by a patched forward)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from napari_temseg.core import device
from napari_temseg.core.config.model import ModelConfig
from napari_temseg.core.config.train import TrainConfig
from napari_temseg.core.data.synthetic.fibsem import make_fibsem
from napari_temseg.core.errors import InputError
from napari_temseg.core.progress import run
from napari_temseg.core.training import loop
from napari_temseg.core.training.loop import fit

TINY = ModelConfig(arch="small-unet")


def cfg(**kw):
    base = dict(patch=64, batch=4, epochs=2, seconds=None, steps_per_epoch=3, augment="flips")
    base.update(seed=0, device="cpu", **kw)
    return TrainConfig(**base)


@pytest.fixture(scope="module")
def stack():
    return make_fibsem(shape=(4, 1, 64, 64), seed=3)


@pytest.fixture
def fp16(monkeypatch):
    """The decision a pre-Ampere CUDA card gets, here on the CPU."""
    monkeypatch.setattr(
        device, "precision", lambda d, amp="auto": "fp32" if amp is False else "fp16"
    )


def _fit(stack, seen=None, **kw):
    img, gt = stack
    return run(fit(img, gt, train_cfg=cfg(**kw), model_cfg=TINY), seen)


def test_fp16_trains_with_loss_scaling_and_records_it(stack, fp16, monkeypatch):
    scaled = []
    real = torch.amp.GradScaler.scale
    monkeypatch.setattr(
        torch.amp.GradScaler, "scale", lambda s, x: scaled.append(x.dtype) or real(s, x)
    )
    seen = []
    model = _fit(stack, seen.append)
    assert scaled and len(model.history) == 2
    for rec in model.history:
        assert rec["precision"] == "fp16" and rec["grad_scale"] > 0 and np.isfinite(rec["loss"])
    assert all(p.dtype == torch.float32 for p in model.net.parameters())
    assert "fp16 mixed precision with loss scaling" in seen[-1].extra["device"]


def test_continued_training_starts_at_the_last_scale(stack, fp16):
    img, gt = stack
    model = _fit(stack, epochs=1)
    model.history[-1]["grad_scale"] = 1024.0
    more = run(fit(img, gt, train_cfg=cfg(epochs=1), model_cfg=TINY, resume=model))
    assert more.history[-1]["grad_scale"] <= 1024.0  # 65536 would be a fresh scaler


def test_fp32_has_no_scale_in_the_history(stack):
    model = _fit(stack, epochs=1, amp=False)
    assert model.history[-1]["precision"] == "fp32" and "grad_scale" not in model.history[-1]


def _oom_above(monkeypatch, batch: int, after_steps: int = 0):
    """The training forward pass fails like a full GPU for batches larger than ``batch``
    (from step ``after_steps`` on)."""
    real, calls = loop._Session.forward, []

    def forward(self, b):
        calls.append(len(b[0]))
        if len(calls) > after_steps and len(b[0]) > batch:
            raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 1.00 GiB")
        return real(self, b)

    monkeypatch.setattr(loop._Session, "forward", forward)
    return calls


def test_out_of_memory_halves_the_batch_once_and_goes_on(stack, monkeypatch):
    calls = _oom_above(monkeypatch, batch=2)
    seen = []
    model = _fit(stack, seen.append)
    warnings = [p.warning for p in seen if p.warning]
    assert len(warnings) == 1 and "batch 4 does not fit" in warnings[0]
    assert "goes on with batch 2" in warnings[0]
    assert calls[:2] == [4, 2] and set(calls[2:]) == {2}  # the queued batches are cut too
    assert model.history[0]["batch"] == 2 and "halved to 2" in model.history[0]["out_of_memory"]
    assert "out_of_memory" not in model.history[1] and model.history[1]["batch"] == 2
    assert len(model.history) == 2 and model.history[-1]["step"] == 6


def test_out_of_memory_at_half_the_batch_says_what_to_lower(stack, monkeypatch):
    _oom_above(monkeypatch, batch=0)
    with pytest.raises(InputError) as e:
        _fit(stack)
    text = str(e.value)
    assert "\n" not in text and "out of memory on cpu" in text and "halved from 4" in text
    assert "lower the batch, the patch or the network width" in text
    assert "batch 1, patch 32 or base_width" in text


def test_out_of_memory_after_an_epoch_keeps_the_best_model(stack, monkeypatch):
    _oom_above(monkeypatch, batch=0, after_steps=4)  # epoch 1 done, then nothing fits
    seen = []
    model = _fit(stack, seen.append)
    assert len(model.history) == 1 and "lower the batch" in model.history[-1]["stopped"]
    assert "lower the batch" in seen[-1].warning and not model.net.training


def test_other_runtime_errors_are_not_taken_for_out_of_memory(stack, monkeypatch):
    def forward(self, b):
        raise RuntimeError("expected scalar type Float but found Half")

    monkeypatch.setattr(loop._Session, "forward", forward)
    with pytest.raises(RuntimeError, match="scalar type"):
        _fit(stack)
