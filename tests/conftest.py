"""Shared test set-up: offline, few threads, tiny synthetic data.

napari's ``make_napari_viewer`` fixture comes from napari's pytest plugin
(entry point ``napari.utils._testsupport``); pytest-xvfb starts a virtual X
server for it automatically. torch is NOT imported here (collection stays fast).
"""

from __future__ import annotations

import os
import sys

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("OMP_NUM_THREADS", "2")  # read by torch when (and if) a test imports it
os.environ.setdefault("MKL_NUM_THREADS", "2")

# GUI and torch tests share one process. Under Xvfb, OpenGL is Mesa llvmpipe, which loads a
# system libLLVM; triton (which torch imports lazily, e.g. when building an optimizer) carries
# its own LLVM, and the two in one process crash it - at random points, or at exit
# ("deallocating None"). napari-temseg never uses torch.compile, so triton is kept out of the
# test process altogether; in napari the docks do the same (adapters/runtime.py).
sys.modules.setdefault("triton", None)

if os.environ.get("PYTEST_DISABLE_PLUGIN_AUTOLOAD"):  # entry-point plugins are off: load napari's
    pytest_plugins = ["napari.utils._testsupport", "pytestqt.plugin"]


@pytest.fixture(autouse=True)
def _limit_torch_threads():
    """Keep torch to 2 threads once some test has imported it (the machine is shared)."""
    torch = sys.modules.get("torch")
    if torch is not None and torch.get_num_threads() > 2:
        torch.set_num_threads(2)
    yield


@pytest.fixture
def small_fibsem():
    """(image (4, 1, 64, 64) float32, mask (4, 64, 64) uint8): a tiny FIB-SEM-like stack."""
    from napari_temseg.core.data.synthetic.fibsem import make_fibsem

    return make_fibsem((4, 1, 64, 64), seed=0)


@pytest.fixture
def small_particles():
    """(image (64, 64) float32, mask (64, 64) uint8): a tiny TEM particle image."""
    from napari_temseg.core.data.synthetic.particles import make_particles

    return make_particles((64, 64), seed=0)
