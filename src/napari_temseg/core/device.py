"""Device choice and mixed precision, shared by training and inference."""

from __future__ import annotations

import contextlib
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
    if name == "mps" and not (getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()):
        raise InputError("device 'mps' is not available on this machine: use 'auto' or 'cpu'")
    try:
        return torch.device(name)
    except RuntimeError:
        raise InputError(f"unknown device '{name}': use 'auto', 'cpu', 'cuda', 'cuda:N' or 'mps'") from None


def amp_dtype(device: Any) -> Any | None:
    """bf16 where the GPU supports it, else fp16; None (no autocast) off CUDA."""
    import torch

    if device.type != "cuda":
        return None
    return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16


def autocast(device: Any, enabled: bool = True) -> Any:
    """An autocast context on CUDA (bf16/fp16), a no-op elsewhere."""
    import torch

    dtype = amp_dtype(device) if enabled else None
    if dtype is None:
        return contextlib.nullcontext()
    return torch.autocast(device_type="cuda", dtype=dtype)
