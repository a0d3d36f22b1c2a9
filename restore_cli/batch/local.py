"""The local engine: a batch's steps in this process, reading and writing on threads while
the model runs on the main thread."""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass

from restore_cli.batch.pipeline import Loaded, Pipeline, Restored, Result
from restore_cli.batch.planning import Job
from restore_cli.batch.reporting import Reporter


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


@dataclass
class LocalExecutor:
    """This process: `run_local`, with tile progress."""

    pipeline: Pipeline
    load: Callable[[], None] | None = None
    """What `prepare` runs: loading the model up front."""
    io_threads: int = 2
    """Reader threads, and writer threads, beside inference (fewer when the run is given fewer threads)."""

    def prepare(self, note: Callable[[str], None]) -> None:
        if self.load is not None:
            self.load()

    def run(self, jobs: Sequence[Job], reporter: Reporter) -> list[Result]:
        self.pipeline.on_tiles = reporter.tiles
        self.pipeline.on_frames = reporter.frames
        self.pipeline.on_notice = reporter.notice
        return run_local(jobs, self.pipeline, reporter.result, readers=self.io_threads, writers=self.io_threads)
