"""doctor.py / `temseg doctor`: versions, devices, and the CUDA-build advice."""

from __future__ import annotations

import sys

import pytest

from napari_temseg.cli import doctor


def test_report_names_versions_and_devices():
    import torch

    text = doctor.report()
    assert f"torch {torch.__version__}" in text
    assert sys.version.split()[0] in text
    for word in (
        "CUDA available",
        "MPS",
        "cuDNN",
        "CPU threads",
        "napari",
        "magicgui",
        "segmentation-models-pytorch",
        "scipy",
    ):
        assert word in text, word


def test_cli_doctor_prints_the_report(capsys):
    from napari_temseg.cli import main

    assert main(["doctor"]) == 0
    out = capsys.readouterr().out
    import torch

    assert f"torch {torch.__version__}" in out and "CUDA available" in out


def test_cpu_torch_on_nvidia_machine_gets_install_command(monkeypatch):
    import torch

    monkeypatch.setattr(torch.version, "cuda", None)
    monkeypatch.setattr(doctor, "nvidia_gpus", lambda: ["GPU 0: NVIDIA Fake (UUID: GPU-0)"])
    monkeypatch.setattr(doctor, "driver_cuda_version", lambda: (12, 9))
    text = doctor.report()
    assert "CPU-only build" in text and "NVIDIA Fake" in text
    assert "pip install --force-reinstall torch" in text
    assert "--index-url https://download.pytorch.org/whl/cu128" in text


def test_no_advice_without_gpu_or_with_cuda_build(monkeypatch):
    import torch

    monkeypatch.setattr(doctor, "nvidia_gpus", lambda: [])
    monkeypatch.setattr(torch.version, "cuda", None)
    assert "--index-url" not in doctor.report()
    monkeypatch.setattr(doctor, "nvidia_gpus", lambda: ["GPU 0: NVIDIA Fake"])
    monkeypatch.setattr(torch.version, "cuda", "12.8")
    assert "--index-url" not in doctor.report()


@pytest.mark.parametrize(
    "driver, tag",
    [
        (None, "cu128"),
        ((12, 4), "cu126"),
        ((12, 6), "cu126"),
        ((12, 8), "cu128"),
        ((13, 2), "cu130"),
    ],
)
def test_cuda_index_matches_driver(driver, tag):
    cmd = doctor.cuda_install_command(driver)
    assert cmd.endswith(f"whl/{tag}") and "-m pip install" in cmd


def test_gpu_detection_reads_nvidia_smi(monkeypatch, tmp_path):
    exe = tmp_path / "nvidia-smi"
    exe.write_text(
        "#!/bin/sh\nif [ \"$1\" = -L ]; then echo 'GPU 0: NVIDIA H100 (UUID: x)';\n"
        "else echo '| NVIDIA-SMI 580.1  Driver Version: 580.1  CUDA Version: 12.9 |'; fi\n"
    )
    exe.chmod(0o755)
    monkeypatch.setenv("PATH", str(tmp_path))
    assert doctor.nvidia_gpus() == ["GPU 0: NVIDIA H100 (UUID: x)"]
    assert doctor.driver_cuda_version() == (12, 9)


def test_missing_qt_binding_is_reported_not_raised(monkeypatch):
    monkeypatch.setitem(sys.modules, "qtpy", None)  # import qtpy -> ImportError
    monkeypatch.setattr(
        doctor, "_version", lambda name: None if name in ("napari", "magicgui") else "1.0"
    )
    text = doctor.report()
    assert "no Qt binding installed: pip install 'napari-temseg[qt]'" in text
    assert "napari: not installed" in text
