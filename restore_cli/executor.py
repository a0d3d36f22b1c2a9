"""Running a batch's steps and reporting them: threads, signals, progress, JSON, exit codes.

The executor is the small piece that decides how `Pipeline` steps are scheduled; it is kept
apart from the step (`batch`) so that it can be replaced without any change to what is done to
each image: `LocalExecutor` here, `ray_executor.RayExecutor` on a Ray cluster. `run_local`
overlaps the stages with reader and writer threads around inference on the main thread;
`execute` runs any executor with signal handling and the one `Reporter` every engine shares,
and turns the results into the process exit code.
"""

from __future__ import annotations

import signal
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Protocol, TextIO

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TaskID, TextColumn, TimeRemainingColumn

from restore_cli.batch import Loaded, Pipeline, Restored, Result, describe_error, settled
from restore_cli.planning import Job

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_INTERRUPTED, EXIT_TERMINATED = 0, 1, 2, 130, 143


# ---------------------------------------------------------------- executing a batch


def run_local(
    jobs: Sequence[Job],
    pipeline: Pipeline,
    on_result: Callable[[Result], None],
    *,
    readers: int = 2,
    writers: int = 2,
    ahead: int = 2,
) -> list[Result]:
    """Restore on this thread while threads decode the next images and encode the previous ones.

    At most ``ahead`` decoded images wait for the model and ``ahead`` restored ones for the
    writers, which bounds memory on big photos. Results are reported in job order. On an
    interrupt, reads not yet started are cancelled and writes already handed over finish
    (they are atomic, so every output on disk is whole).
    """
    results: list[Result] = []
    pending = iter(jobs)
    reads: deque[Future[Loaded | Result]] = deque()
    writes: deque[Future[Result]] = deque()
    read_pool = ThreadPoolExecutor(readers, thread_name_prefix="restore-read")
    write_pool = ThreadPoolExecutor(writers, thread_name_prefix="restore-write")

    def report(future: Future[Result]) -> None:
        results.append(future.result())
        on_result(results[-1])

    try:
        _read_ahead(read_pool, reads, pending, pipeline, ahead)
        while reads:
            loaded = reads.popleft().result()
            _read_ahead(read_pool, reads, pending, pipeline, ahead)
            restored = pipeline.restore(loaded) if isinstance(loaded, Loaded) else loaded
            writes.append(write_pool.submit(pipeline.write, restored) if isinstance(restored, Restored) else _done(restored))
            while writes and (writes[0].done() or len(writes) > ahead):
                report(writes.popleft())
    finally:
        read_pool.shutdown(wait=True, cancel_futures=True)
        write_pool.shutdown(wait=True)
        while writes:  # also on an interrupt: these files were written, so they are reported
            report(writes.popleft())
        pipeline.warn_dropped_metadata()
    return results


def _read_ahead(
    pool: ThreadPoolExecutor, reads: deque[Future[Loaded | Result]], pending: Iterator[Job], pipeline: Pipeline, ahead: int
) -> None:
    while len(reads) < ahead and (job := next(pending, None)) is not None:
        reads.append(pool.submit(pipeline.read, job))


def _done(result: Result) -> Future[Result]:
    future: Future[Result] = Future()
    future.set_result(result)
    return future


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

    def prepare(self) -> None:
        """Load what the batch needs (the model) before the first image; raising here ends
        the batch in one line."""

    def run(self, jobs: Sequence[Job], reporter: Reporter) -> list[Result]: ...


@dataclass
class LocalExecutor:
    """This process: `run_local`, with tile progress."""

    pipeline: Pipeline
    load: Callable[[], None] | None = None
    """What `prepare` runs: loading the model up front."""

    def prepare(self) -> None:
        if self.load is not None:
            self.load()

    def run(self, jobs: Sequence[Job], reporter: Reporter) -> list[Result]:
        self.pipeline.on_tiles = reporter.tiles
        self.pipeline.on_notice = reporter.notice
        return run_local(jobs, self.pipeline, reporter.result)


def execute(jobs: Sequence[Job], executor: Executor, reporter: Reporter) -> int:
    """Run the batch with ``executor``, report it, and return the process exit code.

    Jobs that failed in planning (a missing input) are reported first; then the executor
    prepares (loads the model), only if some image is to be restored; an error there ends the
    batch in one line before any image is read.
    """
    reporter.start(len(jobs))
    planned_failures = [result for result in map(settled, jobs) if result is not None and result.status == "failed"]
    runnable = [job for job in jobs if job.problem is None]
    for result in planned_failures:
        reporter.result(result)
    try:
        with _sigterm_raises():
            if any(not job.skip for job in runnable):
                executor.prepare()
            results = planned_failures + executor.run(runnable, reporter)
    except KeyboardInterrupt:
        return reporter.interrupted(EXIT_INTERRUPTED)
    except Terminated:
        return reporter.interrupted(EXIT_TERMINATED)
    except Exception as error:  # the model could not be loaded: nothing can be restored
        return reporter.fatal(describe_error(error), EXIT_FAILED)
    reporter.finish(results)
    return EXIT_FAILED if any(result.status == "failed" for result in results) else EXIT_OK


# ---------------------------------------------------------------- reporting


@dataclass
class Reporter:
    """What a batch tells the user: errors on stderr, JSON on stdout with --json, and rich
    progress (images and tiles, with ETA) only when someone is watching stderr."""

    stdout: TextIO
    stderr: TextIO
    json: bool = False
    progress: bool = False
    log_tiles: bool = False
    """Without the live display, write plain tile counts (for logs of engine measurements)."""
    _console: Console = field(init=False)
    _bar: Progress | None = field(init=False, default=None)
    _images: TaskID = field(init=False, default=TaskID(0))
    _tiles: TaskID = field(init=False, default=TaskID(1))
    _started: float = field(init=False, default=0.0)
    _done: int = field(init=False, default=0)

    def __post_init__(self) -> None:
        self._console = Console(file=self.stderr, soft_wrap=True, markup=False, highlight=False, emoji=False)

    def start(self, total: int) -> None:
        self._started = time.perf_counter()
        if not self.progress:
            return
        self._bar = Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeRemainingColumn(),
            console=self._console,
            transient=True,
        )
        self._images = self._bar.add_task("images", total=total)
        self._tiles = self._bar.add_task("tiles", total=None)
        self._bar.start()

    def tiles(self, done: int, total: int) -> None:
        if self._bar is not None:
            self._bar.update(self._tiles, completed=done, total=total)
        elif self.log_tiles and total > 1:
            self.stderr.write(f"\rtiles {done}/{total}" + ("\n" if done == total else ""))
            self.stderr.flush()

    def result(self, result: Result) -> None:
        self._done += 1
        if result.error is not None:
            self._console.print(f"error: {result.error}")
        if self.json:
            self._json_line(result.to_json())
        if self._bar is not None:
            self._bar.advance(self._images)

    def notice(self, line: str) -> None:
        """A run-level warning, printed above the live display."""
        self._console.print(line)

    def finish(self, results: list[Result]) -> None:
        self._stop()
        counts = {status: sum(r.status == status for r in results) for status in ("ok", "skipped", "failed")}
        seconds = time.perf_counter() - self._started
        if self.json:
            self._json_line({"summary": {"total": len(results), **counts, "seconds": round(seconds, 3)}})
        if self.progress:
            self._console.print(
                f"{counts['ok']} restored, {counts['skipped']} skipped, {counts['failed']} failed in {seconds:.1f} s"
            )

    def fatal(self, message: str, code: int) -> int:
        self._stop()
        self._console.print(f"error: {message}")
        return code

    def interrupted(self, code: int) -> int:
        self._stop()
        self._console.print(f"interrupted after {self._done} image(s); every file written is complete")
        return code

    def _stop(self) -> None:
        if self._bar is not None:
            self._bar.stop()
            self._bar = None

    def _json_line(self, payload: dict[str, Any]) -> None:
        import json

        self.stdout.write(json.dumps(payload) + "\n")
        self.stdout.flush()
