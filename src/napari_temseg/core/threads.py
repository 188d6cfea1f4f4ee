"""A daemon thread linked to the caller by a bounded queue: a producer or a consumer.

* ``Worker(producer=iterator)``: runs the iterator in the thread; iterate the Worker to
  get its items (at most ``depth`` are made ahead). ``close(wait=False)`` cancels it.
* ``Worker(consumer=fn)``: ``submit(*args)`` queues ``fn(*args)`` calls (blocking when
  ``depth`` are pending); ``close()`` runs what is queued and re-raises its first error.

Exceptions in the thread are re-raised in the caller, never lost.
"""

from __future__ import annotations

import contextlib
import queue
import threading
from collections.abc import Callable, Iterator
from typing import Any

_DONE = object()


class Worker:
    """Run ``producer()`` (an iterator) or consume ``submit``-ted items in a daemon thread.

    A bounded queue links it to the caller; exceptions are re-raised in the caller.
    """

    def __init__(
        self, producer: Iterator | None = None, consumer: Callable | None = None, depth: int = 2
    ):
        self.q: queue.Queue = queue.Queue(depth)
        self.cancel = threading.Event()
        self.error: BaseException | None = None
        target = self._produce if producer is not None else self._consume
        self.thread = threading.Thread(target=target, args=(producer or consumer,), daemon=True)
        self.thread.start()

    def _put(self, item: Any) -> bool:
        while not self.cancel.is_set():
            try:
                self.q.put(item, timeout=0.05)
                return True
            except queue.Full:
                continue
        return False

    def _produce(self, it: Iterator) -> None:
        try:
            for item in it:
                if not self._put(item):
                    return
            self._put(_DONE)
        except BaseException as e:  # noqa: BLE001 - re-raised in the caller
            self._put(e)

    def __iter__(self) -> Iterator:
        while True:
            item = self.q.get()
            if item is _DONE:
                return
            if isinstance(item, BaseException):
                raise item
            yield item

    def _consume(self, fn: Callable) -> None:
        while True:
            item = self.q.get()
            if item is _DONE:
                return
            if self.error is None:
                try:
                    fn(*item)
                except BaseException as e:  # noqa: BLE001
                    self.error = e

    def submit(self, *item: Any) -> None:
        if self.error is not None:
            raise self.error
        self._put(item)

    def close(self, wait: bool = True, raise_errors: bool = True) -> None:
        """Producer: cancel and drain. Consumer: finish queued items, then re-raise its error."""
        if self.thread is None:
            return
        if wait:
            self.q.put(_DONE)
        else:
            self.cancel.set()
            while self.thread.is_alive():
                with contextlib.suppress(queue.Empty):
                    self.q.get(timeout=0.05)
        self.thread.join()
        self.thread = None
        if wait and raise_errors and self.error is not None:
            raise self.error


__all__ = ["Worker"]
