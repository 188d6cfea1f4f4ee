"""Device choice and mixed precision, shared by training and inference."""

from __future__ import annotations

import contextlib
import functools
from typing import Any

from .errors import InputError


def resolve_device(name: str | Any = "auto") -> Any:
    """'auto' -> CUDA, then MPS, then CPU; or an explicit 'cpu' / 'cuda' / 'cuda:1' / 'mps'."""
    import torch

    if isinstance(name, torch.device):
        return name
    name = (name or "auto").lower()
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        mps = getattr(torch.backends, "mps", None)
        if mps is not None and mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise InputError(
            "device 'cuda' was asked for but torch sees no CUDA GPU: use device 'auto' or 'cpu', "
            "or install a CUDA build of torch (run `temseg doctor` for the command)"
        )
    if name == "mps" and not (
        getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()
    ):
        raise InputError("device 'mps' is not available on this machine: use 'auto' or 'cpu'")
    try:
        return torch.device(name)
    except RuntimeError:
        raise InputError(
            f"unknown device '{name}': use 'auto', 'cpu', 'cuda', 'cuda:N' or 'mps'"
        ) from None


@functools.lru_cache(maxsize=1)
def cpu_has_bf16() -> bool:
    """Native bf16 units (AVX512-BF16 / AMX, Linux): bf16 autocast is then ~2x faster on CPU."""
    try:
        with open("/proc/cpuinfo") as f:
            flags = f.read()
    except OSError:
        return False
    return " avx512_bf16" in flags or " amx_bf16" in flags


NATIVE_BF16_CAPABILITY = (8, 0)  # Ampere: bf16 tensor cores; older cards emulate bf16


def precision(device: Any, amp: bool | str = "auto") -> str:
    """The training / inference precision on ``device``: "bf16", "fp16" or "fp32".

    CUDA: bf16 on compute capability >= 8.0 (Ampere and newer), fp16 on older cards (to be
    trained with a GradScaler, :func:`grad_scaler`). Not ``torch.cuda.is_bf16_supported()``:
    it also says yes where bf16 is only emulated, several times slower than fp16 or fp32.
    CPU: ``amp`` "auto" = bf16 on CPUs with native bf16 units, True = bf16 on every CPU.
    MPS and ``amp`` False: fp32.
    """
    if amp is False:
        return "fp32"
    if device.type == "cuda":
        import torch

        native = torch.cuda.get_device_capability(device) >= NATIVE_BF16_CAPABILITY
        return "bf16" if native else "fp16"
    if device.type == "cpu" and (amp is True or cpu_has_bf16()):
        return "bf16"
    return "fp32"


def amp_dtype(device: Any, amp: bool | str = "auto") -> Any | None:
    """The autocast dtype of :func:`precision`, or None for fp32."""
    import torch

    return {"bf16": torch.bfloat16, "fp16": torch.float16}.get(precision(device, amp))


def grad_scaler(device: Any, amp: bool | str = "auto", init_scale: float | None = None) -> Any:
    """A ``torch.amp.GradScaler``, enabled for fp16 only: fp16's 5-bit exponent flushes
    small gradients to zero unless the loss is scaled up first (bf16 and fp32 have fp32's
    range). ``init_scale``: where a resumed run's scaler left off."""
    import torch

    on = precision(device, amp) == "fp16"
    kw = {"init_scale": float(init_scale)} if init_scale else {}
    return torch.amp.GradScaler(device.type, enabled=on, **kw)


PRECISION_TEXT = {
    "bf16": "bf16 mixed precision",
    "fp16": "fp16 mixed precision with loss scaling",
    "fp32": "fp32",
}


def describe(device: Any, amp: bool | str = "auto") -> str:
    """One phrase for status lines, e.g. "cuda (Tesla T4, compute 7.5), fp32"."""
    name = str(device)
    if device.type == "cuda":
        import torch

        major, minor = torch.cuda.get_device_capability(device)
        name += f" ({torch.cuda.get_device_name(device)}, compute {major}.{minor})"
    return f"{name}, {PRECISION_TEXT[precision(device, amp)]}"


def is_out_of_memory(e: BaseException) -> bool:
    """A device allocation failure (CUDA raises torch.OutOfMemoryError, MPS a RuntimeError)."""
    import torch

    return isinstance(e, torch.OutOfMemoryError) or (
        isinstance(e, RuntimeError) and "out of memory" in str(e)
    )


def free_cached_memory(device: Any) -> None:
    """Give the allocator's cached blocks back after an out-of-memory error, so a retry with a
    smaller batch starts from an empty pool rather than a fragmented one."""
    import torch

    if device.type == "cuda":
        torch.cuda.empty_cache()
    elif device.type == "mps":
        torch.mps.empty_cache()


def autocast(device: Any, amp: bool | str = "auto") -> Any:
    """An autocast context following :func:`amp_dtype`, or a no-op for fp32."""
    import torch

    dtype = amp_dtype(device, amp)
    if dtype is None:
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.type, dtype=dtype)


def channels_last_pays(
    device: Any, norm: str = "batch", training_amp: bool | str | None = None
) -> bool:
    """Whether to run the network in channels_last memory format on ``device``.

    CUDA: always. CPU inference (``training_amp`` None): always (batch norm 1.8x, instance
    norm as GroupNorm 2.1x faster than NCHW, bf16, measured). CPU training: only with batch
    norm and bf16 autocast (~1.8x per step); instance / group norm backward passes are
    1.1-1.7x slower in channels_last.
    """
    if device.type == "cuda":
        return True
    if device.type != "cpu":
        return False
    if training_amp is None:
        return True
    return norm == "batch" and amp_dtype(device, training_amp) is not None
