"""The worker adapter with fake generators: results, Stop, errors, thinning, progress bar."""

from __future__ import annotations

import time

import pytest
from _widget_helpers import errors_since, n_records

pytestmark = pytest.mark.gui


def _counting(n, stop, dt=0.0):
    from napari_temseg.core.progress import Progress

    for i in range(1, n + 1):
        if stop is not None and stop.requested:
            return ("stopped", i - 1)
        time.sleep(dt)
        yield Progress("train", i, n, loss=1.0 / i)
    return ("done", n)


def _failing(exc):
    from napari_temseg.core.progress import Progress

    yield Progress("train", 1, 3)
    raise exc


def _start(gen, **kw):
    from napari_temseg.adapters.workers import start_worker

    seen = []
    job = start_worker(gen, on_progress=seen.append, **kw)
    return job, seen


def test_result_and_progress(make_napari_viewer, qtbot, monkeypatch):
    monkeypatch.setenv("NAPARI_TEMSEG_NAPARI_PROGRESS", "1")  # napari's bar even on software GL
    make_napari_viewer()
    from napari_temseg.core.progress import StopToken

    stop = StopToken()
    job, seen = _start(_counting(20, stop, 0.005), stop=stop, min_interval=0.0)
    qtbot.waitUntil(lambda: not job.running, timeout=10000)
    assert job.result == ("done", 20) and job.error is None
    assert [p.step for p in seen] == list(range(1, 21))
    assert job.pbar.total == 1000 and job.pbar.n == 1000  # finished = full bar


def test_thinning_keeps_last_and_important(make_napari_viewer, qtbot):
    from napari_temseg.adapters.workers import thinned
    from napari_temseg.core.progress import Progress, run

    def gen():
        for i in range(1, 1001):
            yield Progress("train", i, 1000, val_dice=0.5 if i % 250 == 0 else None)
        return "r"

    kept = []
    assert run(thinned(gen(), 10.0), kept.append) == "r"
    steps = [p.step for p in kept]
    assert steps[0] == 1 and 1000 in steps and 250 in steps and 500 in steps
    assert len(steps) <= 6  # the first, the 4 validation records (incl. the last)


def test_stop_returns_result_instead_of_killing(make_napari_viewer, qtbot):
    make_napari_viewer()
    from napari_temseg.core.progress import StopToken

    stop = StopToken()
    job, seen = _start(_counting(10_000, stop, 0.002), stop=stop)
    qtbot.waitUntil(lambda: len(seen) >= 2, timeout=10000)
    job.stop()
    qtbot.waitUntil(lambda: not job.running, timeout=10000)
    state, steps = job.result
    assert state == "stopped" and 0 < steps < 10_000


@pytest.mark.parametrize("kind", ["user", "bug"])
def test_error_becomes_notification_and_viewer_survives(make_napari_viewer, qtbot, kind):
    from napari_temseg.core.errors import InputError

    viewer = make_napari_viewer()
    start = n_records()
    exc = InputError("paint some foreground") if kind == "user" else ZeroDivisionError("oops")
    finished = []
    job, _ = _start(_failing(exc), on_finished=lambda: finished.append(1))
    qtbot.waitUntil(lambda: not job.running, timeout=10000)
    assert job.error is exc and job.result is None and finished == [1]
    msgs = errors_since(start)
    assert len(msgs) == 1, msgs  # reported once, not twice
    want = "paint some foreground" if kind == "user" else "ZeroDivisionError: oops"
    assert want in msgs[0]
    viewer.add_points([[1, 1]])  # the viewer is alive and usable
    assert len(viewer.layers) == 1


def test_napari_bar_off_on_software_gl(make_napari_viewer, monkeypatch):
    from napari_temseg.adapters import runtime

    make_napari_viewer()
    monkeypatch.delenv("NAPARI_TEMSEG_NAPARI_PROGRESS", raising=False)
    renderer = runtime.gl_renderer().lower()
    software = any(s in renderer for s in runtime.SOFTWARE_GL)
    assert runtime.napari_progress_wanted() is (not software)
    monkeypatch.setattr(runtime, "_RENDERER", ["NVIDIA GeForce RTX 4090/PCIe/SSE2"])
    assert runtime.napari_progress_wanted() is True
    monkeypatch.setattr(runtime, "_RENDERER", ["llvmpipe (LLVM 15.0.6, 256 bits)"])
    assert runtime.napari_progress_wanted() is False
    monkeypatch.setenv("NAPARI_TEMSEG_NAPARI_PROGRESS", "1")
    assert runtime.napari_progress_wanted() is True


def test_fraction_uses_time_budget_estimate():
    from napari_temseg.adapters.workers import fraction
    from napari_temseg.core.progress import Progress

    assert fraction(Progress("train", 5, 20)) == 0.25
    assert fraction(Progress("train", 5, None, extra={"fraction": 0.4})) == 0.4
    assert fraction(Progress("train", 5, None)) is None


_TRITON_PROBE = """
import sys, numpy as np, napari
v = napari.Viewer(show=True)
v.add_image(np.zeros((8, 8)))
from qtpy.QtWidgets import QApplication
QApplication.processEvents()
from napari_temseg.adapters.runtime import avoid_triton_llvm_clash
clash = avoid_triton_llvm_clash() if sys.argv[1] == "guard" else None
import torch
torch.optim.AdamW(torch.nn.Linear(2, 2).parameters())  # torch imports triton here
print("ok", clash, flush=True)
"""


def test_training_in_a_software_gl_viewer_does_not_crash():
    """In a fresh process (the test session keeps triton out, see conftest.py): a viewer is
    open, then torch builds an optimizer. With the guard it works; where the guard found a
    system libLLVM, the same process without the guard crashes (so the guard is needed)."""
    import os
    import subprocess
    import sys

    env = {**os.environ, "HF_HUB_OFFLINE": "1"}

    def run(mode):
        return subprocess.run(
            [sys.executable, "-c", _TRITON_PROBE, mode],
            env=env,
            capture_output=True,
            text=True,
            timeout=170,
        )

    guarded = run("guard")
    assert guarded.returncode == 0 and "ok" in guarded.stdout, guarded.stderr[-2000:]
    if "ok True" in guarded.stdout:  # libLLVM was loaded: show that the guard is what saves us
        bare = run("bare")
        assert bare.returncode != 0, "expected the unguarded process to crash (LLVM clash)"


def test_every_progress_display_shows_an_eta(qtbot, capsys):
    """The CLI bar and napari's bar (both print Progress.line()) and the docks'
    bars show the time left, estimated from the done fraction and the time so far."""
    from napari_temseg._widgets.common import progress_widget, show_fraction
    from napari_temseg.core.progress import Progress, TextBar, hms

    p = Progress("predict", 25, 100, elapsed=30.0)
    assert p.eta == pytest.approx(90.0) and "ETA 1m30s" in p.line()
    assert Progress("predict", 1, 100, elapsed=30.0).eta is None  # too early to say
    assert (hms(5), hms(185), hms(7800)) == ("5s", "3m05s", "2h10m")
    TextBar()(p)
    assert "ETA 1m30s" in capsys.readouterr().err
    bar_ = TextBar()  # a warning gets a line of its own, once, even between throttled lines
    for step in (1, 2, 3):
        bar_(Progress("train", step, 100, warning="binning 2 would merge away small areas"))
    lines = capsys.readouterr().err.splitlines()
    assert lines.count("WARNING: binning 2 would merge away small areas") == 1
    bar = progress_widget()
    qtbot.addWidget(bar)
    show_fraction(bar, p)
    assert bar.value() == 250 and bar.text().endswith("ETA 1m30s")
