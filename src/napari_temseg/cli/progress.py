"""Driving a core generator from a terminal: a one-line progress bar and Ctrl-C handling.

Used by the ``temseg`` commands and by the console API (``api.py``): the first Ctrl-C
asks the generator to stop (it still returns its result, e.g. the best model so far), a
second Ctrl-C interrupts for real.
"""

from __future__ import annotations

import contextlib
import signal
import sys
import threading
import time
from typing import Any

from ..core.progress import StopToken, hms, run


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


__all__ = ["TextBar", "ctrl_c_stops", "drive"]
