"""Process-level workarounds for running torch inside napari (no Qt widgets, no napari import).

* :func:`avoid_triton_llvm_clash` - keep torch from loading triton next to Mesa's libLLVM
  (a segfault otherwise); called before any torch work from the docks and the console API.
* :func:`gl_renderer` / :func:`napari_progress_wanted` - detect software OpenGL, where
  napari's animated activity bar costs a CPU core (docs/experiments/, "GUI worker").
"""

from __future__ import annotations

import logging
import os
import sys

log = logging.getLogger("napari_temseg")


def avoid_triton_llvm_clash() -> bool:
    """Keep torch from importing triton when a system libLLVM is already in the process.

    With software OpenGL (Mesa llvmpipe: remote desktops, VMs, Xvfb) the viewer loads
    ``libLLVM``; importing ``triton`` afterwards (torch does so when it builds an
    optimizer) then segfaults the whole napari on an LLVM symbol clash. torch only needs
    triton for ``torch.compile`` on GPUs, which napari-temseg does not use, so in that
    case triton is marked unavailable (``import triton`` raises ImportError) instead.
    Returns True when it did so.
    """
    if "triton" in sys.modules:
        return False
    try:
        with open("/proc/self/maps") as f:
            clash = any("libLLVM" in line for line in f)
    except OSError:  # not Linux
        return False
    if clash:
        sys.modules["triton"] = None  # type: ignore[assignment]
        log.info("software OpenGL (libLLVM) is loaded: triton disabled to avoid a crash")
    return clash


SOFTWARE_GL = ("llvmpipe", "softpipe", "software", "swr", "swiftshader", "gdi generic")
_RENDERER: list[str] = []


def gl_renderer() -> str:
    """The OpenGL renderer string of this display (cached; '' when it cannot be asked)."""
    if not _RENDERER:
        name = ""
        try:
            from qtpy.QtGui import QOffscreenSurface, QOpenGLContext

            ctx, surface = QOpenGLContext(), QOffscreenSurface()
            surface.create()
            if ctx.create() and ctx.makeCurrent(surface):
                name = str(ctx.functions().glGetString(0x1F01) or "")  # GL_RENDERER
                ctx.doneCurrent()
        except Exception:  # noqa: BLE001 - no GL, no Qt GUI: treat as unknown
            name = ""
        _RENDERER.append(name)
    return _RENDERER[0]


def napari_progress_wanted() -> bool:
    """Whether to show napari's activity progress bar (env NAPARI_TEMSEG_NAPARI_PROGRESS=0/1
    decides).

    Default: yes, except with software OpenGL (Mesa llvmpipe on remote desktops / VMs).
    There napari's animated "in progress" indicator makes Qt re-compose the whole window
    (it holds an OpenGL canvas) on the CPU many times a second: it cost ~0.3 CPU cores
    and slowed CPU training ~1.5x on 2 cores (docs/experiments/, "GUI worker"). The docks
    show their own progress bar in every case.
    """
    env = os.environ.get("NAPARI_TEMSEG_NAPARI_PROGRESS")
    if env is not None:
        return env not in ("0", "false", "False", "")
    return not any(s in gl_renderer().lower() for s in SOFTWARE_GL)
