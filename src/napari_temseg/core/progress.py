"""Progress records and the cooperative stop token shared by every long operation.

Every long operation in napari-temseg is a generator that yields
:class:`Progress` and *returns* its result. The same generator is driven by

* the GUI (``_widgets/_workers.py`` wraps it in a napari ``thread_worker``),
* the CLI (``cli.py`` prints a progress bar),
* the console (``api.py`` runs it to completion with :func:`run`).

Stopping: pass a :class:`StopToken`; the generator checks it at every yield and
*returns* normally (e.g. the best model so far) once ``request()`` was called.
``generator.close()`` also works but then there is no return value.
"""

from __future__ import annotations

import threading
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
