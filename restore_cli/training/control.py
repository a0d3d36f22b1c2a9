"""Ctrl-C during training, answered at once however long a step takes.

A step of the full-size network on a CPU can take minutes, most of it in one call into
torch's backward pass, during which Python runs no signal handler. So each step runs on a
thread of its own (:func:`run_step`) while the main thread waits, free to answer a signal the
moment it comes. The first Ctrl-C is acknowledged and stops the run after the step in
progress (:class:`Interrupts`); the next one stops it at once: the step in flight is
abandoned before it changes any weight (``Trainer.step`` commits under a lock and checks for
cancellation first), so the weights, optimiser and generator saved are exactly those of the
last completed step.
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Callable
from types import FrameType, TracebackType
from typing import TypeVar

T = TypeVar("T")
THREAD_NAME = "restore-train-step"


class Interrupts:
    """While active (on the main thread), SIGINT asks the run to stop after the current step
    (``requested``; ``on_first`` is called at once to say so), and any later one raises
    KeyboardInterrupt to stop now."""

    def __init__(self, on_first: Callable[[], None]) -> None:
        self.requested = False
        self._on_first = on_first
        self._previous: object = None

    def __enter__(self) -> Interrupts:
        if threading.current_thread() is threading.main_thread():
            self._previous = signal.signal(signal.SIGINT, self._handle)
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None) -> None:
        if self._previous is not None:
            signal.signal(signal.SIGINT, self._previous)  # type: ignore[arg-type]

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        if self.requested:
            raise KeyboardInterrupt
        self.requested = True
        self._on_first()


class Cancelled(Exception):
    """Raised inside a step that was abandoned before it committed: it changed nothing."""


def run_step(step: Callable[[threading.Event], T]) -> T:
    """Run ``step(cancelled)`` on its own thread and wait for it. A KeyboardInterrupt while
    waiting sets ``cancelled`` (the step then discards its work instead of committing it) and
    is raised at once, without waiting for the step's thread."""
    cancelled = threading.Event()
    outcome: dict[str, object] = {}
    finished = threading.Event()

    def work() -> None:
        try:
            outcome["value"] = step(cancelled)
        except Cancelled:
            pass
        except BaseException as error:  # handed to the waiting thread, which raises it
            outcome["error"] = error
        finally:
            finished.set()

    threading.Thread(target=work, name=THREAD_NAME).start()
    try:
        finished.wait()
    except BaseException:
        cancelled.set()
        raise
    if "error" in outcome:
        raise outcome["error"]  # type: ignore[misc]
    return outcome["value"]  # type: ignore[return-value]


def step_in_flight() -> bool:
    """Whether an abandoned step is still computing: a process exiting now must not wait for
    it (nor tear torch down under it)."""
    return any(thread.name == THREAD_NAME and thread.is_alive() for thread in threading.enumerate())
