"""Progress records and the cooperative stop token shared by every long operation.

Every long operation in napari-temseg is a generator that yields
:class:`Progress` and *returns* its result. The same generator is driven by

* the docks (``adapters/workers.py`` wraps it in a napari ``thread_worker``),
* the ``temseg`` commands and the console API (:func:`drive`: a one-line progress bar on
  stderr, :class:`TextBar`; the first Ctrl-C asks the generator to stop - it still returns
  its result, e.g. the best model so far -, a second one interrupts for real),
* tests and scripts (:func:`run`: to completion, with an optional callback).

Stopping: pass a :class:`StopToken`; the generator checks it at every yield and
*returns* normally (e.g. the best model so far) once ``request()`` was called.
``generator.close()`` also works but then there is no return value.
"""

from __future__ import annotations

import contextlib
import signal
import sys
import threading
import time
from collections.abc import Callable, Generator
from dataclasses import dataclass, field
from typing import Any, TypeVar

T = TypeVar("T")


@dataclass(frozen=True)
class Progress:
    """One progress report. ``stage`` is "train", "validate", "predict", ..."""

    stage: str
    step: int
    total: int | None = None
    message: str = ""
    elapsed: float = 0.0
    rate: float | None = None  # samples/s (train) or Mpix/s (predict)
    epoch: int | None = None
    loss: float | None = None
    val_dice: float | None = None
    val_iou: float | None = None
    warning: str | None = None  # e.g. "loss is flat: the model is not learning"
    preview: Any = None  # optional (Y, X) float32 probability of a preview slice
    preview_z: int | None = None  # the slice ``preview`` shows
    extra: dict = field(default_factory=dict)

    @property
    def fraction(self) -> float | None:
        """Done fraction: step/total, or ``extra["fraction"]`` (e.g. of a time budget)."""
        if self.total:
            return min(1.0, self.step / self.total)
        f = self.extra.get("fraction")
        return None if f is None else min(1.0, float(f))

    @property
    def eta(self) -> float | None:
        """Seconds left, from the done fraction and the time so far (None until it means
        something: under 2 % done or in the first second)."""
        f = self.fraction
        if f is None or f < 0.02 or f >= 1 or self.elapsed < 1:
            return None
        return self.elapsed * (1 - f) / f

    def line(self, eta: bool = True) -> str:
        """A compact one-line summary for logs, the CLI and napari's progress bar."""
        parts = [f"{self.stage} {self.step}" + (f"/{self.total}" if self.total else "")]
        if self.epoch is not None:
            parts.append(f"epoch {self.epoch}")
        if self.loss is not None:
            parts.append(f"loss {self.loss:.4f}")
        if self.val_dice is not None:
            parts.append(f"val Dice {self.val_dice:.3f}")
        if self.rate is not None:
            parts.append(f"{self.rate:.1f}/s")
        parts.append(f"{self.elapsed:.0f}s")
        if eta and self.eta is not None:
            parts.append(f"ETA {hms(self.eta)}")
        if self.message:
            parts.append(self.message)
        if self.warning:
            parts.append(f"WARNING: {self.warning}")
        return " | ".join(parts)


def hms(seconds: float) -> str:
    """45s, 3m05s, 2h10m."""
    s = int(round(seconds))
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m{s % 60:02d}s"
    return f"{s // 3600}h{s % 3600 // 60:02d}m"


class StopToken:
    """Thread-safe 'please stop at the next yield' flag."""

    def __init__(self) -> None:
        self._event = threading.Event()

    def request(self) -> None:
        self._event.set()

    @property
    def requested(self) -> bool:
        return self._event.is_set()

    def __bool__(self) -> bool:  # so ``if stop:`` reads naturally
        return self.requested


def run(
    gen: Generator[Progress, Any, T],
    on_progress: Callable[[Progress], None] | None = None,
) -> T:
    """Drive a progress generator to completion and return its result."""
    while True:
        try:
            p = next(gen)
        except StopIteration as done:
            return done.value
        if on_progress is not None:
            on_progress(p)


class TextBar:
    """A one-line progress printer for core Progress records (no dependencies)."""

    def __init__(self, quiet: bool = False, every: float = 1.0):
        self.quiet, self.every, self._last = quiet, every, 0.0
        self._warned: set[str] = set()

    def __call__(self, p: Any) -> None:
        warning = getattr(p, "warning", None)
        if warning and warning not in self._warned:  # on a line of its own, once: the bar
            self._warned.add(warning)  # cuts long lines and overwrites itself on a terminal
            lead = "\n" if self._last and sys.stderr.isatty() else ""
            print(f"{lead}WARNING: {warning}", file=sys.stderr, flush=True)
        now = time.monotonic()
        if self.quiet or (now - self._last < self.every and p.step != p.total):
            return
        self._last = now
        frac = p.fraction
        bar = ""
        if frac is not None:
            n = int(frac * 24)
            bar = "[" + "#" * n + "." * (24 - n) + f"] {100 * frac:5.1f}% "
        if getattr(p, "eta", None) is not None:  # first, so a long line never hides it
            bar += f"ETA {hms(p.eta)} | "
        end = "\n" if not sys.stderr.isatty() else "\r"
        line = f"{bar}{p.line(eta=False)}"[:160].ljust(100 if end == "\r" else 0)
        print(line, end=end, file=sys.stderr, flush=True)

    def close(self) -> None:
        if not self.quiet and sys.stderr.isatty():
            print(file=sys.stderr)


def _say(text: str) -> None:
    """Write to stderr's file descriptor directly (safe inside a signal handler)."""
    import os

    with contextlib.suppress(OSError, ValueError, AttributeError):  # no real stderr: quiet
        os.write(sys.stderr.fileno(), text.encode())


@contextlib.contextmanager
def ctrl_c_stops(stop: StopToken):
    """In the main thread, the first Ctrl-C sets ``stop``; a second one interrupts."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum: int, frame: Any) -> None:
        if stop.requested:
            raise KeyboardInterrupt
        stop.request()
        # not print(): the signal may arrive while the main thread is inside a print to
        # stderr, and a buffered stream is not reentrant ("reentrant call" RuntimeError)
        _say("\nstopping after this step (Ctrl-C again to abort)...\n")

    try:
        old = signal.signal(signal.SIGINT, handler)
    except ValueError:  # no signal handling here (e.g. an embedded interpreter)
        yield
        return
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, old)


def drive(gen: Any, stop: StopToken | None = None, quiet: bool = False) -> Any:
    """Run a core generator to its result, printing progress to stderr.

    With ``stop`` (the token the generator checks), the first Ctrl-C stops it gracefully.
    """
    bar = TextBar(quiet=quiet)
    try:
        if stop is None:
            return run(gen, bar)
        with ctrl_c_stops(stop):
            return run(gen, bar)
    finally:
        bar.close()
