"""device.py: the mixed-precision decision table (capabilities mocked), the loss scaler and
what counts as out of memory."""

from __future__ import annotations

import pytest
import torch

from napari_temseg.core import device

CUDA = torch.device("cuda")


@pytest.fixture
def gpu(monkeypatch):
    """A pretend CUDA card of the capability set on the returned dict."""
    card = {"cap": (9, 0), "name": "NVIDIA Fake"}
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda d=None: card["cap"])
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda d=None: card["name"])
    # recent torch says yes on every card (emulated bf16): the decision must not ask it
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: True)
    return card


@pytest.mark.parametrize(
    "cap, expected",
    [
        ((12, 0), "bf16"),  # Blackwell
        ((9, 0), "bf16"),  # H100
        ((8, 9), "bf16"),  # RTX 40xx
        ((8, 6), "bf16"),  # RTX 30xx, A40
        ((8, 0), "bf16"),  # A100
        ((7, 5), "fp16"),  # T4, RTX 20xx
        ((7, 0), "fp16"),  # V100
        ((6, 1), "fp16"),  # GTX 10xx
        ((6, 0), "fp16"),  # P100
    ],
)
def test_cuda_precision_follows_compute_capability(gpu, cap, expected):
    gpu["cap"] = cap
    assert device.precision(CUDA) == expected
    assert device.precision(CUDA, True) == expected
    assert device.precision(CUDA, False) == "fp32"
    dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}[expected]
    assert device.amp_dtype(CUDA) == dtype


@pytest.mark.parametrize(
    "native, amp, expected",
    [(False, "auto", "fp32"), (True, "auto", "bf16"), (False, True, "bf16"), (True, False, "fp32")],
)
def test_cpu_precision(monkeypatch, native, amp, expected):
    monkeypatch.setattr(device, "cpu_has_bf16", lambda: native)
    assert device.precision(torch.device("cpu"), amp) == expected


def test_mps_stays_fp32():
    assert device.precision(torch.device("mps")) == "fp32"
    assert device.amp_dtype(torch.device("mps")) is None


def test_only_fp16_gets_an_enabled_scaler(gpu, monkeypatch):
    gpu["cap"] = (7, 5)
    monkeypatch.setattr(device, "precision", lambda d, amp="auto": "fp16")
    s = device.grad_scaler(torch.device("cpu"), "auto", init_scale=1024.0)
    assert s.is_enabled() and s.get_scale() == 1024.0
    monkeypatch.setattr(device, "precision", lambda d, amp="auto": "bf16")
    assert not device.grad_scaler(torch.device("cpu")).is_enabled()


def test_describe_names_card_capability_and_precision(gpu):
    gpu["cap"], gpu["name"] = (7, 5), "Tesla T4"
    text = device.describe(CUDA)
    assert "Tesla T4" in text and "compute 7.5" in text and "fp16" in text and "scaling" in text
    gpu["cap"] = (8, 0)
    assert "bf16 mixed precision" in device.describe(CUDA)
    assert device.describe(torch.device("cpu"), False) == "cpu, fp32"


@pytest.mark.parametrize(
    "error, oom",
    [
        (torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB"), True),
        (RuntimeError("MPS backend out of memory (MPS allocated: 8 GB)"), True),
        (RuntimeError("mat1 and mat2 shapes cannot be multiplied"), False),
        (ValueError("out of memory"), False),
    ],
)
def test_out_of_memory_is_recognised(error, oom):
    assert device.is_out_of_memory(error) is oom


def test_freeing_memory_is_harmless_on_the_cpu():
    device.free_cached_memory(torch.device("cpu"))
