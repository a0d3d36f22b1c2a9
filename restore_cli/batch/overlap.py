"""Three stages at once: a producer thread, the work on the calling thread, a consumer thread.

A video is decoded on one thread and encoded on another while the model runs on the caller's
thread, so the model never waits for the codecs (and torch keeps the thread it was set up
on). Bounded queues hold at most ``depth`` items between stages, which keeps memory flat
whatever the video's length. An error in any stage, or Ctrl-C, stops all three: the
producer stops at its next item and the consumer is told to `abort` rather than `close`,
so it can throw away what it had not finished.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable, Iterator
from typing import Any, Generic, Protocol, TypeVar

In = TypeVar("In")
Out = TypeVar("Out")
Out_contra = TypeVar("Out_contra", contravariant=True)

_POLL_SECONDS = 0.1
_END = object()


class Consumer(Protocol[Out_contra]):
    def put(self, item: Out_contra) -> None: ...

    def close(self) -> None:
        """Every item was put: finish the work."""

    def abort(self) -> None:
        """The run stopped early: keep nothing unfinished."""


class _Failure:
    def __init__(self, error: BaseException) -> None:
        self.error = error


class _Stage(Generic[In]):
    """A bounded queue between two threads, which either side can call off."""

    def __init__(self, depth: int, stop: threading.Event) -> None:
        self._queue: queue.Queue[Any] = queue.Queue(maxsize=depth)
        self._stop = stop

    def put(self, item: Any) -> bool:
        """False when the run was called off while waiting for room."""
        while not self._stop.is_set():
            try:
                self._queue.put(item, timeout=_POLL_SECONDS)
                return True
            except queue.Full:
                continue
        return False

    def get(self) -> Any:
        while True:
            try:
                return self._queue.get(timeout=_POLL_SECONDS)
            except queue.Empty:
                if self._stop.is_set():
                    return _END


def run_overlapped(produce: Iterator[In], work: Callable[[In], Out], consumer: Consumer[Out], depth: int = 2) -> None:
    """Feed ``produce``'s items through ``work`` (on this thread) into ``consumer``; raise the
    first error of any stage after all three have stopped."""
    stop = threading.Event()
    inbox: _Stage[In] = _Stage(depth, stop)
    outbox: _Stage[Out] = _Stage(depth, stop)
    failures: list[BaseException] = []

    def producing() -> None:
        try:
            for item in produce:
                if not inbox.put(item):
                    return
            inbox.put(_END)
        except BaseException as error:
            inbox.put(_Failure(error))

    def consuming() -> None:
        try:
            while (item := outbox.get()) is not _END:
                consumer.put(item)
            if stop.is_set():
                consumer.abort()
            else:
                consumer.close()
        except BaseException as error:
            failures.append(error)
            stop.set()
            consumer.abort()

    threads = [threading.Thread(target=target, name=f"restore-video-{role}", daemon=True) for role, target in (("decode", producing), ("encode", consuming))]
    for thread in threads:
        thread.start()
    try:
        while (item := inbox.get()) is not _END:
            if isinstance(item, _Failure):
                raise item.error
            if not outbox.put(work(item)):
                break
        else:
            outbox.put(_END)
    except BaseException:
        stop.set()
        _join(threads)
        raise
    _join(threads)
    if failures:
        raise failures[0]


def _join(threads: list[threading.Thread]) -> None:
    for thread in reversed(threads):
        thread.join()
