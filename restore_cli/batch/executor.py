"""Running a batch with any executor: signals, the model loaded up front, the exit code.

An executor decides how `Pipeline` steps are scheduled (`local.LocalExecutor` in this process,
`ray_executor.RayExecutor` on a Ray cluster); ``execute`` runs one with signal handling and
the one `Reporter` every engine shares, and turns the results into the process exit code.
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Protocol

from restore_cli.batch.pipeline import Result, describe_error, settled
from restore_cli.batch.planning import Job
from restore_cli.batch.reporting import EXIT_INTERRUPTED, EXIT_TERMINATED, Reporter
from restore_cli.errors import UsageError


class Terminated(BaseException):
    """SIGTERM, raised like KeyboardInterrupt so that the same clean-up runs."""


@contextmanager
def _sigterm_raises() -> Iterator[None]:
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum: int, frame: object) -> None:
        raise Terminated()

    previous = signal.signal(signal.SIGTERM, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


class Executor(Protocol):
    """How a batch's steps are run. Every executor reports each result through the same
    `Reporter` as it arrives, so progress, JSON and exit codes never depend on the engine."""

    def prepare(self, note: Callable[[str], None]) -> None:
        """Load what the batch needs (the model) before the first image; raising here ends
        the batch in one line. ``note`` tells the user what a slow start is waiting for."""

    def run(self, jobs: Sequence[Job], reporter: Reporter) -> list[Result]: ...


def execute(jobs: Sequence[Job], executor: Executor, reporter: Reporter) -> int:
    """Run the batch with ``executor``, report it, and return the process exit code.

    The executor prepares (loads the model; Ray's joins the cluster) only if some image is to be
    restored; a `UsageError` there (an unreachable cluster) ends it before anything is
    written, not even JSON. Jobs that failed in planning (a missing input) are reported next.
    A model that cannot be loaded, in `prepare` or when an image first needs it, ends the
    batch: every input not yet reported fails with that one reason (see `Reporter.fatal`).
    """
    reporter.start(len(jobs))
    planned_failures = [result for result in map(settled, jobs) if result is not None and result.status == "failed"]
    runnable = [job for job in jobs if job.problem is None]

    def report_planned_failures() -> None:
        while planned_failures:
            reporter.result(planned_failures.pop(0))

    try:
        with _sigterm_raises():
            if any(not job.skip for job in runnable):
                executor.prepare(reporter.note)
            report_planned_failures()
            executor.run(runnable, reporter)
    except UsageError:
        reporter.abandon()
        raise
    except KeyboardInterrupt:
        report_planned_failures()
        return reporter.interrupted(EXIT_INTERRUPTED)
    except Terminated:
        report_planned_failures()
        return reporter.interrupted(EXIT_TERMINATED)
    except Exception as error:  # the model could not be loaded: nothing more can be restored
        report_planned_failures()
        return reporter.fatal(describe_error(error), runnable)
    return reporter.finish()
