"""The one place that runs a core generator in a napari thread worker.

``start_worker(gen, on_progress, on_done, on_error, stop)`` drives a generator that
yields :class:`~napari_temseg.core.progress.Progress` and returns a result:

* in a superqt ``GeneratorWorker`` (the class behind napari's ``thread_worker``; a
  QThreadPool thread), so the viewer stays live;
* with a napari progress bar (activity dock) fed from ``Progress.step / total`` (or the
  time-budget fraction), except on software OpenGL (see :func:`napari_progress_wanted`);
* Stop = ``Job.stop()`` sets the :class:`StopToken` the generator checks at every
  yield, so it *returns* its result (e.g. the best model so far) instead of being killed;
* records are thinned out in the worker thread (at most one per ``min_interval``
  seconds, except records that carry a preview, a validation score, a warning or the kept model),
  so a fast generator does not flood the GUI thread with signals;
* errors become one napari notification; user errors (TemsegError) show their
  message only, anything else shows the exception type too.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Generator
from typing import Any

from ..core.errors import TemsegError
from ..core.progress import Progress, StopToken
from .runtime import avoid_triton_llvm_clash, napari_progress_wanted

log = logging.getLogger("napari_temseg")


def fraction(p: Any) -> float | None:
    """0..1 done, from step/total or (time budgets) the generator's own estimate."""
    if not isinstance(p, Progress):
        return None
    f = p.fraction
    if f is None and isinstance(p.extra, dict) and p.extra.get("fraction") is not None:
        f = float(p.extra["fraction"])
    return f


def _important(p: Any) -> bool:
    return isinstance(p, Progress) and (
        p.preview is not None
        or p.val_dice is not None
        or p.warning is not None
        or (p.total is not None and p.step >= p.total)
        or "kept" in p.extra  # which model training kept (training.teacher)
    )


def thinned(gen: Generator, min_interval: float) -> Generator:
    """Re-yield ``gen``'s records at most every ``min_interval`` s (important ones always)."""
    last = 0.0
    while True:
        try:
            p = next(gen)
        except StopIteration as done:
            return done.value
        now = time.monotonic()
        if _important(p) or now - last >= min_interval:
            last = now
            yield p


def user_message(exc: BaseException) -> str:
    """What to show for an exception raised in a worker."""
    if isinstance(exc, TemsegError):
        return str(exc)
    return f"{type(exc).__name__}: {exc}"


def notify_error(exc: BaseException, what: str = "") -> None:
    from napari.utils.notifications import show_error

    prefix = f"{what} failed: " if what else ""
    show_error(prefix + user_message(exc))


def _safe(fn: Callable, *args: Any) -> None:
    """Run a GUI callback; an error in it becomes a notification, not a Qt crash."""
    try:
        fn(*args)
    except RuntimeError as e:
        if "already deleted" in str(e):  # the dock was closed while the job ran: nothing to show
            return
        log.exception("GUI callback failed")
        notify_error(e)
    except Exception as e:  # noqa: BLE001 - reported to the user
        log.exception("GUI callback failed")
        notify_error(e)


BAR_STEPS = 1000


def _update_bar(pbar: Any, p: Any) -> None:
    f = fraction(p)
    if pbar is None or f is None:
        return
    if pbar.total != BAR_STEPS:
        pbar.total = BAR_STEPS
    delta = int(f * BAR_STEPS) - pbar.n
    if delta > 0:
        pbar.update(delta)
    pbar.set_description(f"{p.stage}: {p.line()}"[:90])


class Job:
    """A running generator: ``stop()`` asks it to finish early; its worker's signals land here
    (in the GUI thread) and go on to the dock's callbacks."""

    def __init__(self, stop: StopToken, pbar: Any, callbacks: dict):
        self.worker: Any = None
        self.stop_token, self.pbar, self.callbacks = stop, pbar, callbacks
        self.running = True
        self.result: Any = None
        self.error: BaseException | None = None
        self.records = 0

    def stop(self) -> None:
        self.stop_token.request()

    @property
    def stopping(self) -> bool:
        return self.stop_token.requested

    def connect(self, worker: Any) -> None:
        self.worker = worker
        worker.yielded.connect(self._yielded)
        worker.returned.connect(self._returned)
        worker.errored.connect(self._errored)
        worker.finished.connect(self._finished)

    def _call(self, name: str, *args: Any) -> None:
        fn = self.callbacks.get(name)
        if fn is not None:
            _safe(fn, *args)

    def _yielded(self, p: Any) -> None:
        self.records += 1
        _safe(_update_bar, self.pbar, p)
        self._call("progress", p)

    def _returned(self, result: Any) -> None:
        self.result = result
        self._call("done", result)

    def _errored(self, exc: BaseException) -> None:
        self.error = exc
        (self.callbacks.get("error") or notify_error)(exc)

    def _finished(self) -> None:
        self.running = False
        if self.pbar is not None:
            self.pbar.close()
        self._call("finished")


def start_worker(
    gen: Generator,
    on_progress: Callable[[Any], None] | None = None,
    on_done: Callable[[Any], None] | None = None,
    on_error: Callable[[BaseException], None] | None = None,
    stop: StopToken | None = None,
    *,
    desc: str = "napari-temseg",
    min_interval: float = 0.1,
    progress_bar: bool = True,
    on_finished: Callable[[], None] | None = None,
) -> Job:
    """Run ``gen`` in a napari thread worker; callbacks run in the GUI thread.

    ``on_error`` defaults to a napari error notification. ``on_finished`` runs last in
    every case (done, error), e.g. to re-enable buttons. ``progress_bar``: show napari's
    activity progress bar (unless :func:`napari_progress_wanted` says no).
    """
    from superqt.utils import create_worker

    avoid_triton_llvm_clash()
    pbar = None
    if progress_bar and napari_progress_wanted():
        from napari.utils import progress

        pbar = progress(total=0, desc=desc)

    def run():  # a generator function, as create_worker needs
        return (yield from thinned(gen, min_interval))

    job = Job(
        stop if stop is not None else StopToken(),
        pbar,
        {"progress": on_progress, "done": on_done, "error": on_error, "finished": on_finished},
    )
    # superqt's worker (what napari.qt.threading wraps), not napari's create_worker: that one
    # reports errors a second time and its task-status slot breaks on `errored` (napari 0.9.2)
    job.connect(create_worker(run, _start_thread=False, _ignore_errors=True))
    job.worker.start()
    return job
