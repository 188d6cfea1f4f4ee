"""gpucheck.py, `temseg doctor --gpu` and api.gpu_check: no GPU says so and exits cleanly;
the steps themselves run on the CPU here."""

from __future__ import annotations

import pytest
import torch

from napari_temseg.core.progress import run
from napari_temseg.core.training import gpucheck


@pytest.fixture
def no_gpu(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: False)


def test_without_a_gpu_it_says_so_and_checks_nothing(no_gpu):
    seen = []
    result = run(gpucheck.gpu_check(), seen.append)
    assert seen == [] and result.ok is None and result.device == "cpu"
    assert result.lines() == [gpucheck.NO_GPU] and "no GPU" in str(result)


def test_the_steps_run_and_agree_on_the_cpu():
    seen = []
    result = run(gpucheck.gpu_check("cpu", seconds=1.0, size=64, slices=2), seen.append)
    assert {p.stage for p in seen} == {"train", "predict"}
    assert result.ok is True and result.precision in ("fp32", "bf16")
    assert result.steps_per_s > 0 and result.mpix_per_s > 0
    assert 0 <= result.agree <= result.tolerance == gpucheck.TOLERANCE[result.precision]
    text = str(result)
    for word in ("device: cpu", "steps/s", "Mpix/s", "within", "CPU path works"):
        assert word in text, word


def test_a_mismatch_fails_the_check(monkeypatch):
    monkeypatch.setattr(gpucheck, "_compare", lambda model, image, prob0: (0.4, 0.9))
    result = run(gpucheck.gpu_check("cpu", seconds=0.5, size=64, slices=2))
    assert result.ok is False and "FAILS" in str(result) and "0.9000" in str(result)


def test_a_gpu_that_fails_is_a_failed_check_not_a_traceback(monkeypatch):
    def broken(*a, **k):
        raise RuntimeError("CUDA error: no kernel image is available for execution\nmore")
        yield

    monkeypatch.setattr(gpucheck, "_train", broken)
    result = run(gpucheck.gpu_check("cpu", size=64, slices=2))
    assert result.ok is False
    assert result.lines() == [
        "device: cpu",
        "GPU path FAILS: RuntimeError: CUDA error: no kernel image is available for execution",
    ]


def test_doctor_gpu_without_a_gpu_exits_cleanly(no_gpu, capsys):
    from napari_temseg.cli import main

    assert main(["doctor", "--gpu"]) == 0
    out = capsys.readouterr().out
    assert "CUDA available: False" in out and "GPU check:" in out and "no GPU" in out


def test_doctor_gpu_reports_the_figures_and_fails_on_a_mismatch(monkeypatch, capsys):
    from napari_temseg.cli import main

    def fake(seconds=5.0, **kw):
        yield from ()
        return gpucheck.GpuCheck(
            device="cuda (NVIDIA Fake, compute 7.5), fp16 mixed precision with loss scaling",
            precision="fp16",
            ok=False,
            steps_per_s=12.5,
            mpix_per_s=310.0,
            agree=0.2,
            max_diff=0.6,
            tolerance=0.05,
        )

    monkeypatch.setattr(gpucheck, "gpu_check", fake)
    assert main(["doctor", "--gpu", "-q"]) == 1
    out = capsys.readouterr().out
    assert "NVIDIA Fake" in out and "12.5 steps/s" in out and "310.0 Mpix/s" in out
    assert "FAILS" in out


def test_the_console_twin(no_gpu, capsys):
    from napari_temseg import api

    result = api.gpu_check()
    assert result.ok is None and "no GPU" in capsys.readouterr().out
