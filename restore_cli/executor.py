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
from typing import Any, Literal, Protocol, TextIO

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TaskID, TextColumn, TimeRemainingColumn

from restore_cli import jsonl
from restore_cli.batch import Loaded, Pipeline, Restored, Result, describe_error, settled
from restore_cli.planning import STDIO, Job

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
            executor.run(runnable, reporter)
    except KeyboardInterrupt:
        return reporter.interrupted(EXIT_INTERRUPTED)
    except Terminated:
        return reporter.interrupted(EXIT_TERMINATED)
    except Exception as error:  # the model could not be loaded: nothing can be restored
        return reporter.fatal(describe_error(error))
    return reporter.finish()


# ---------------------------------------------------------------- reporting


Display = Literal["live", "lines", "quiet"]
"""What stderr shows besides errors: a live progress display (a terminal is watching), one
plain line per image and a summary (a log: cron, CI, `2> log`), or nothing (--quiet)."""


@dataclass
class Reporter:
    """Everything a batch tells the user, whichever executor runs it: errors and progress on
    stderr, JSON lines on stdout with --json (see restore_cli.jsonl), and the exit code."""

    stdout: TextIO
    stderr: TextIO
    command: str = "run"
    json: bool = False
    display: Display = "quiet"
    log_tiles: bool = False
    """Without the live display, write plain tile counts (for logs of engine measurements)."""
    _console: Console = field(init=False)
    _bar: Progress | None = field(init=False, default=None)
    _images: TaskID = field(init=False, default=TaskID(0))
    _tiles: TaskID = field(init=False, default=TaskID(1))
    _started: float = field(init=False, default=0.0)
    _total: int = field(init=False, default=0)
    _counts: dict[str, int] = field(init=False, default_factory=lambda: dict.fromkeys(("ok", "skipped", "failed"), 0))
    _open_line: bool = field(init=False, default=False)
    """A tile count was written without its newline; the next message starts a line first."""

    def __post_init__(self) -> None:
        self._console = Console(file=self.stderr, soft_wrap=True, markup=False, highlight=False, emoji=False)

    def start(self, total: int) -> None:
        self._started = time.perf_counter()
        self._total = total
        if self.display != "live":
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
            self._open_line = done != total
            self.stderr.write(f"\rtiles {done}/{total}" + ("" if self._open_line else "\n"))
            self.stderr.flush()

    def result(self, result: Result) -> None:
        self._counts[result.status] += 1
        if result.error is not None:
            self._say(f"error: {result.error}")
        elif self.display == "lines":
            self._say(f"[{self._done}/{self._total}] {_outcome(result)}")
        if self.json:
            self._json_line(jsonl.line("image", **result.to_json()))
        if self._bar is not None:
            self._bar.advance(self._images)

    def notice(self, line: str) -> None:
        """A run-level warning, printed above the live display."""
        self._say(line)

    def finish(self) -> int:
        """The summary, and the exit code: 1 if any image failed."""
        code = EXIT_FAILED if self._counts["failed"] else EXIT_OK
        self._stop()
        if self.display != "quiet":
            counts = self._counts
            self._say(f"{counts['ok']} restored, {counts['skipped']} skipped, {counts['failed']} failed in {self._seconds():.1f} s")
        self._json_summary("failed" if code else "done", code)
        return code

    def interrupted(self, code: int) -> int:
        self._stop()
        self._say(f"interrupted after {self._done} image(s); every file written is complete")
        self._json_summary("interrupted" if code == EXIT_INTERRUPTED else "terminated", code)
        return code

    def fatal(self, message: str) -> int:
        """Nothing can be restored (the model did not load): one line, and exit 1."""
        self._stop()
        self._say(f"error: {message}")
        self._json_summary("error", EXIT_FAILED, error=message)
        return EXIT_FAILED

    @property
    def _done(self) -> int:
        return sum(self._counts.values())

    def _seconds(self) -> float:
        return time.perf_counter() - self._started

    def _say(self, text: str) -> None:
        if self._open_line:
            self.stderr.write("\n")
            self._open_line = False
        self._console.print(text)

    def _stop(self) -> None:
        if self._bar is not None:
            self._bar.stop()
            self._bar = None

    def _json_summary(self, status: jsonl.Status, code: int, **fields: Any) -> None:
        if self.json:
            totals = {"total": self._total, **self._counts, "seconds": round(self._seconds(), 3)}
            self._json_line(jsonl.summary(self.command, status, code, **totals, **fields))

    def _json_line(self, text: str) -> None:
        self.stdout.write(text + "\n")
        self.stdout.flush()


def _outcome(result: Result) -> str:
    if result.status == "skipped":
        return f"{result.input}: skipped, {result.output} exists"
    output = "<stdout>" if result.output == STDIO else result.output
    return f"{result.input} -> {output} ({result.seconds:.1f} s)"
