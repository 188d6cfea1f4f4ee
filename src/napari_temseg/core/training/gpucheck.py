"""The GPU self-check behind ``temseg doctor --gpu`` and ``api.gpu_check``: does training and
prediction work on this machine's GPU, in which precision, and how fast.

:func:`gpu_check` trains a small U-Net for a few seconds on a synthetic FIB-SEM stack on the
GPU, predicts a larger copy of the stack there (timed: Mpix/s), predicts one slice again on
the CPU in fp32 and compares the two probability maps: with mixed precision they differ by
rounding (bf16 keeps 8 bits of mantissa, fp16 11), so the check passes when 99.9 % of the
pixels agree within :data:`TOLERANCE`. Without a GPU it says so and checks nothing; with
``device="cpu"`` it runs the same steps on the CPU (how the tests exercise it).
"""

from __future__ import annotations

import time
from collections.abc import Generator
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..progress import Progress, StopToken

# |p_gpu - p_cpu| allowed for 99.9 % of the pixels: mixed precision, and fp32 (TF32 convs)
TOLERANCE = {"bf16": 0.05, "fp16": 0.05, "fp32": 0.01}
NO_GPU = (
    "no GPU: torch sees no CUDA or MPS device, so there is nothing to check "
    "(`temseg doctor` says whether a CUDA build of torch would help)"
)


@dataclass
class GpuCheck:
    """What :func:`gpu_check` found. ``ok`` None: no GPU to check."""

    device: str
    precision: str | None = None
    ok: bool | None = None
    steps_per_s: float | None = None
    mpix_per_s: float | None = None
    agree: float | None = None  # 99.9th percentile of |p_gpu - p_cpu|
    max_diff: float | None = None
    tolerance: float | None = None
    seconds: float = 0.0
    note: str = ""

    def lines(self) -> list[str]:
        if self.ok is None:
            return [self.note or NO_GPU]
        if self.steps_per_s is None:  # it failed before any figure
            return [f"device: {self.device}", f"GPU path FAILS: {self.note}"]
        verdict = "works" if self.ok else "FAILS: its probabilities differ from the CPU's"
        path = "CPU" if self.device.startswith("cpu") else "GPU"
        return [
            f"device: {self.device}",
            f"training: {_figure(self.steps_per_s)} steps/s",
            f"prediction: {_figure(self.mpix_per_s)} Mpix/s",
            f"against the CPU in fp32: 99.9 % of pixels within {self.agree:.4f} "
            f"(tolerance {self.tolerance}), largest difference {self.max_diff:.4f}",
            f"{path} path {verdict} ({self.seconds:.0f} s)"
            + (f"; {self.note}" if self.note else ""),
        ]

    def __str__(self) -> str:
        return "\n".join(self.lines())


def _figure(x: float) -> str:
    """12.3, 0.0421: a tenth where that is precise enough, else three digits."""
    return f"{x:.1f}" if x >= 10 else f"{x:.3g}"


def _stack(size: int, slices: int) -> tuple[np.ndarray, np.ndarray]:
    from ..data.synthetic.fibsem import make_fibsem

    return make_fibsem(shape=(slices, 1, size, size), seed=0)


def _steps_per_s(history: list[dict]) -> float:
    """Steps per second after the first epoch (which pays for start-up and kernel tuning)."""
    if len(history) >= 2:
        a, b = history[0], history[-1]
        return (b["step"] - a["step"]) / max(b["elapsed"] - a["elapsed"], 1e-9)
    last = history[-1] if history else {"step": 0, "elapsed": 1.0}
    return last["step"] / max(last["elapsed"], 1e-9)


def _train(image, truth, dev, seconds: float, size: int, stop) -> Generator[Progress, None, Any]:
    from ..config.train import TrainConfig
    from .loop import fit

    cfg = TrainConfig(
        patch=min(128, size // 16 * 16),
        batch=8,
        seconds=seconds,
        epochs=None,
        steps_per_epoch=10,
        augment="flips",
        seed=0,
        device=str(dev),
    )
    return (yield from fit(image, truth, train_cfg=cfg, stop=stop))


def _compare(model, image, prob0: np.ndarray) -> tuple[float, float]:
    """(99.9th percentile, max) of |p - p_cpu| on slice 0, the CPU in fp32."""
    from ..config.predict import PredictConfig
    from ..inference.predict import predict_slice

    ref = predict_slice(model, image, 0, PredictConfig(device="cpu", amp=False))
    diff = np.abs(prob0.astype(np.float64) - ref)
    if not np.isfinite(prob0).all():
        return float("inf"), float("inf")
    return float(np.quantile(diff, 0.999)), float(diff.max())


def gpu_check(
    device: str = "auto",
    seconds: float = 5.0,
    size: int = 512,
    slices: int = 4,
    stop: StopToken | None = None,
) -> Generator[Progress, None, GpuCheck]:
    """Train for ``seconds`` and predict a synthetic stack on the GPU (``device`` "auto": the
    one ``resolve_device`` picks; "cpu" runs the steps on the CPU). Yields the training and
    prediction Progress; returns a :class:`GpuCheck` (``stop`` ends the training early).
    A GPU that fails (a torch build without kernels for the card, out of memory...) is a
    failed check with the error's first line, not an exception."""
    from ..device import resolve_device
    from ..errors import TemsegError

    t0 = time.monotonic()
    dev = resolve_device(device)
    if dev.type == "cpu" and device != "cpu":
        return GpuCheck(device="cpu", note=NO_GPU)
    try:
        return (yield from _checked(dev, seconds, size, slices, stop, t0))
    except (RuntimeError, TemsegError) as e:
        first = (str(e).strip().splitlines() or [""])[0]
        return GpuCheck(device=str(dev), ok=False, note=f"{type(e).__name__}: {first}")


def _checked(dev, seconds: float, size: int, slices: int, stop, t0: float) -> Generator:
    from ..config.predict import PredictConfig
    from ..device import describe, precision
    from ..inference.predict import predict_slice, predict_stack

    image, truth = _stack(size, slices)
    model = yield from _train(image, truth, dev, seconds, size, stop)
    cfg = PredictConfig(device=str(dev))
    # the slice compared with the CPU's; also the warm-up (kernel choice, allocator pool)
    prob0 = predict_slice(model, image, 0, cfg)
    # timed on a larger stack (4x the pixels per slice, twice the slices) where a GPU is fast
    big = image if dev.type == "cpu" else np.tile(image, (2, 1, 2, 2))
    res = yield from predict_stack(model, big, cfg)
    p999, top = _compare(model, image, prob0)
    name = precision(dev, "auto")
    return GpuCheck(
        device=describe(dev, "auto"),
        precision=name,
        ok=p999 <= TOLERANCE[name],
        steps_per_s=_steps_per_s(model.history),
        mpix_per_s=res.mpix_per_s,
        agree=p999,
        max_diff=top,
        tolerance=TOLERANCE[name],
        seconds=time.monotonic() - t0,
    )


__all__ = ["GpuCheck", "TOLERANCE", "gpu_check"]
