"""`temseg doctor`: what this installation can do, and how to fix the usual problems.

:func:`report` never raises: every probe is guarded, so it also runs where napari,
Qt or even torch are missing (it then says how to install them). The most common
problem it catches is a CPU-only torch wheel on a machine with an NVIDIA GPU; it
prints the pip command that installs a CUDA build instead.
"""

from __future__ import annotations

import os
import platform
import re
import shutil
import subprocess
import sys
from collections.abc import Callable

# PyTorch wheel indices (https://download.pytorch.org/whl/<tag>), oldest first.
# A driver runs wheels built for its CUDA version or older; recent torch releases
# are only published for the newer ones, so never suggest below MIN_CUDA_INDEX.
CUDA_INDICES = ((12, 6), (12, 8), (13, 0))
MIN_CUDA_INDEX = (12, 6)
DEFAULT_CUDA_INDEX = (12, 8)


def _version(module: str) -> str | None:
    """Installed version of a distribution / module, or None when it is not importable."""
    try:
        from importlib.metadata import PackageNotFoundError, version

        try:
            return version(module)
        except PackageNotFoundError:
            mod = __import__(module)
            return str(getattr(mod, "__version__", "unknown"))
    except Exception:
        return None


def _safe(probe: Callable[[], list[str]], what: str) -> list[str]:
    try:
        return probe()
    except Exception as e:  # a doctor must never crash
        return [f"{what}: could not check ({type(e).__name__}: {e})"]


# --- NVIDIA hardware, independent of torch -----------------------------------------------------
def nvidia_gpus() -> list[str]:
    """Names of NVIDIA GPUs seen by the driver (``nvidia-smi -L`` or /proc), [] if none."""
    exe = shutil.which("nvidia-smi")
    if exe:
        try:
            out = subprocess.run([exe, "-L"], capture_output=True, text=True, timeout=10).stdout
            names = [line.strip() for line in out.splitlines() if line.startswith("GPU")]
            if names:
                return names
        except (OSError, subprocess.SubprocessError):
            pass
    gpus = "/proc/driver/nvidia/gpus"
    if os.path.isdir(gpus):
        return [f"NVIDIA GPU at PCI {d}" for d in sorted(os.listdir(gpus))] or [
            "NVIDIA driver loaded"
        ]
    return []


def driver_cuda_version() -> tuple[int, int] | None:
    """Highest CUDA version the installed NVIDIA driver supports (from ``nvidia-smi``)."""
    exe = shutil.which("nvidia-smi")
    if not exe:
        return None
    try:
        out = subprocess.run([exe], capture_output=True, text=True, timeout=10).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    m = re.search(r"CUDA Version:\s*(\d+)\.(\d+)", out)
    return (int(m.group(1)), int(m.group(2))) if m else None


def cuda_install_command(driver: tuple[int, int] | None = None) -> str:
    """pip command installing a CUDA build of torch suited to the driver's CUDA version."""
    pick = DEFAULT_CUDA_INDEX
    if driver is not None:
        fitting = [v for v in CUDA_INDICES if v <= driver]
        pick = fitting[-1] if fitting else MIN_CUDA_INDEX
    tag = f"cu{pick[0]}{pick[1]}"
    return (
        f"{sys.executable} -m pip install --force-reinstall torch torchvision "
        f"--index-url https://download.pytorch.org/whl/{tag}"
    )


# --- sections ---------------------------------------------------------------------------------
def _system() -> list[str]:
    from ..version import __version__

    return [
        f"napari-temseg {__version__}",
        f"Python {platform.python_version()} ({sys.executable})",
        f"Platform {platform.platform()} ({platform.machine()})",
        f"CPU cores {os.cpu_count()}",
    ]


def _torch() -> list[str]:
    try:
        import torch
    except Exception as e:
        return [f"torch: NOT importable ({e}): pip install torch"]
    cuda = torch.version.cuda
    hip = getattr(torch.version, "hip", None)
    build = f"CUDA {cuda}" if cuda else (f"ROCm {hip}" if hip else "CPU-only")
    lines = [f"torch {torch.__version__} ({build} build), {torch.get_num_threads()} CPU threads"]
    lines += _safe(lambda: _cuda_devices(torch), "CUDA devices")
    cudnn = torch.backends.cudnn
    lines.append(f"cuDNN {cudnn.version()}" if cudnn.is_available() else "cuDNN not available")
    mps = getattr(torch.backends, "mps", None)
    lines.append(f"MPS (Apple GPU) available: {bool(mps and mps.is_available())}")
    return lines


def _cuda_devices(torch) -> list[str]:
    if not torch.cuda.is_available():
        return ["CUDA available: False"]
    lines = [f"CUDA available: True, {torch.cuda.device_count()} device(s)"]
    for i in range(torch.cuda.device_count()):
        p = torch.cuda.get_device_properties(i)
        lines.append(
            f"  cuda:{i} {p.name}, {p.total_memory / 2**30:.1f} GiB, "
            f"compute capability {p.major}.{p.minor}"
        )
    return lines


def _gui() -> list[str]:
    lines = []
    for name in ("napari", "magicgui"):
        v = _version(name)
        lines.append(f"{name} {v}" if v else f"{name}: not installed (pip install napari-temseg)")
    lines += _safe(_qt, "Qt")
    return lines


def _qt() -> list[str]:
    if _version("qtpy") is None:
        return ["qtpy: not installed (pip install qtpy)"]
    try:
        import qtpy
    except Exception:  # qtpy raises QtBindingsNotFoundError when no binding is installed
        return ["no Qt binding installed: pip install 'napari-temseg[qt]'"]
    return [
        f"Qt binding {qtpy.API_NAME} {getattr(qtpy, 'PYQT_VERSION', None) or qtpy.PYSIDE_VERSION}, "
        f"Qt {qtpy.QT_VERSION} (qtpy {qtpy.__version__})"
    ]


def _libraries() -> list[str]:
    out = []
    for dist, label in (
        ("segmentation-models-pytorch", "segmentation-models-pytorch (smp)"),
        ("scipy", "scipy"),
        ("numpy", "numpy"),
        ("zarr", "zarr"),
    ):
        v = _version(dist)
        out.append(f"{label} {v}" if v else f"{label}: not installed")
    return out


def _advice() -> list[str]:
    """What to do about a CPU-only torch on an NVIDIA machine (or nothing)."""
    try:
        import torch

        cuda_build = torch.version.cuda is not None
    except Exception:
        return []
    gpus = nvidia_gpus()
    if cuda_build or not gpus:
        return []
    return [
        f"WARNING: this torch is a CPU-only build but an NVIDIA GPU is present ({gpus[0]}).",
        "Training will be slow. Install a CUDA build of torch with:",
        "  " + cuda_install_command(driver_cuda_version()),
    ]


def report() -> str:
    """A multi-line, human-readable report of versions, devices and advice."""
    sections = [
        ("System", _system),
        ("PyTorch", _torch),
        ("Viewer", _gui),
        ("Libraries", _libraries),
    ]
    out = []
    for title, probe in sections:
        out.append(f"{title}:")
        out += ["  " + line for line in _safe(probe, title)]
    advice = _safe(_advice, "GPU advice")
    if advice:
        out += [""] + advice
    return "\n".join(out)


__all__ = ["report", "nvidia_gpus", "driver_cuda_version", "cuda_install_command"]


def _add(sub) -> None:
    p = sub.add_parser(
        "doctor",
        help="print versions, GPU availability and how to get a CUDA build",
        description="Print versions, devices and advice. With --gpu, also train a small "
        "model for a few seconds and predict a synthetic stack on the GPU: device, "
        "precision, steps/s, Mpix/s and whether its probabilities match the CPU's.",
    )
    p.add_argument(
        "--gpu", action="store_true", help="check the GPU path end to end (about a minute)"
    )
    p.add_argument(
        "--seconds", type=float, default=5.0, help="training time of the --gpu check (default 5)"
    )
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bar for --gpu")


def _run(args) -> int:
    print(report())
    if not getattr(args, "gpu", False):
        return 0
    from ..core.progress import drive
    from ..core.training.gpucheck import gpu_check

    print("\nGPU check:", flush=True)
    if _version("torch") is None:
        print("  needs torch: pip install torch (see above)")
        return 1
    result = drive(gpu_check(seconds=args.seconds), quiet=args.quiet)
    print("\n".join("  " + line for line in result.lines()))
    return 1 if result.ok is False else 0


COMMANDS = [(_add, _run)]
