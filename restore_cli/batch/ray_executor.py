"""`--engine ray`: the batch's `Pipeline` steps on a Ray cluster, every input accounted for whatever fails.

Planning, the per-image step (`Pipeline.process_one`, which never raises) and reporting
(`Reporter`) are the local engine's; only the scheduling differs. Workers are Ray actors
(`ray_worker`) that build the model once, from weights this process resolved and verified, and
read, restore and write whole images themselves: inputs and outputs live on a filesystem every
node sees, and only job descriptions and results cross the network.

Ray's driver runs in a child process (`ray_driver`, spoken to through `ray_protocol`), not here:
Ray ends a driver outright when its node or its cluster goes, and prints its own log lines on
the driver's stdout and stderr. Here, the child's output goes nowhere unless --debug, and its
end, however abrupt, is an event this process reports: every input not finished gets a failed
result saying the cluster was lost, the summary is still last, and one line says how to resume.
Results are reported in job order, as the local engine reports them.

Plain actors rather than Ray Data's `map_batches`: a result per image streams back the moment
it exists, a Ctrl-C can cancel the work in flight gracefully instead of killing writers
mid-file, and a worker lost with its node is replaced while the survivors take over its images.

This module does not import Ray (the driver and the workers do), but needs it installed.
"""

from __future__ import annotations

import importlib.util
import io
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path

from restore_cli.batch.models import EngineSettings, ModelChoice, ModelSpec
from restore_cli.batch.pipeline import FileOptions, Result, settled
from restore_cli.batch.planning import Job
from restore_cli.batch.ray_protocol import (
    Batch,
    Cancel,
    Channel,
    ChannelClosed,
    Connected,
    Done,
    Finished,
    Lost,
    Notice,
    RayOptions,
    Recipe,
    Refused,
    Start,
    Unreachable,
    Weights,
    remove_leftovers,
)
from restore_cli.batch.reporting import Reporter
from restore_cli.batch.video import VideoSettings
from restore_cli.batch.video_split import SplitVideos
from restore_cli.errors import UsageError, WorkerError, current_spelling, setting

if importlib.util.find_spec("ray") is None:  # as `import ray` would fail, for the CLI's hint
    raise ModuleNotFoundError("No module named 'ray'", name="ray")

__all__ = ["RayExecutor", "RayOptions", "connect_timeout", "read_weights"]

CONNECT_TIMEOUT_SECONDS = 30.0
"""How long to wait for a cluster given by address (--ray-address, RAY_ADDRESS) to answer;
RESTORE_RAY_CONNECT_TIMEOUT overrides it. Ray's own wait is minutes, with its log lines."""
LOCAL_START_TIMEOUT_SECONDS = 180.0
"""How long a new local Ray instance may take to start on a loaded machine."""
SHUTDOWN_SECONDS = 20.0
"""How long the driver gets to cancel the workers and shut Ray down before it is killed."""
KILLED_FOR_MEMORY_HOOK = "RESTORE_TEST_KILLED_FOR_MEMORY"
CONNECTION_LOST = Lost("the connection to the Ray cluster was lost (a node, its raylet or the cluster's head died)")


def connect_timeout() -> float:
    return float(os.environ.get("RESTORE_RAY_CONNECT_TIMEOUT", CONNECT_TIMEOUT_SECONDS))


def read_weights(settings: EngineSettings, choice: ModelChoice) -> dict[ModelSpec, Weights]:
    """Resolve (downloading if needed), verify and build every model the batch may use, here:
    workers never touch the model cache, so a cluster needs no shared one. Both the colour and
    the gray model are read, since only a worker learns which images are gray."""
    import torch

    from restore_cli.engine.onnx_runtime import OnnxNetwork, is_onnx, read_graph
    from restore_cli.model.zoo import load_model

    weights = {}
    for spec in dict.fromkeys((choice.color, choice.gray)):
        path = settings.checkpoint(spec)
        if is_onnx(path):  # an exported graph travels as its file; workers tell it by the name
            graph = read_graph(path)
            OnnxNetwork(graph, "cpu", str(path))  # opened once on the CPU: a bad graph fails here
            weights[spec] = Weights(graph, str(path))
            continue
        buffer = io.BytesIO()
        torch.save(load_model(path).state_dict(), buffer)  # built once: a bad file fails here
        weights[spec] = Weights(buffer.getvalue(), str(path))
    return weights


class _Driver:
    """The driver process: started on its own session (a terminal's Ctrl-C reaches `restore`
    only, which cancels the batch through the driver), with stdin for our messages, a pipe for
    its own, and its stdout and stderr on ours only with --debug."""

    def __init__(self, options: RayOptions) -> None:
        results_read, results_write = os.pipe()
        sink = _debug_sink() if options.debug else subprocess.DEVNULL
        package_root = str(Path(__file__).resolve().parents[2])
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [package_root, os.environ.get("PYTHONPATH")]))}
        try:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "restore_cli.batch.ray_driver", str(results_write)],
                stdin=subprocess.PIPE,
                stdout=sink,
                stderr=sink,
                pass_fds=(results_write,),
                start_new_session=True,
                env=env,
            )
        finally:
            os.close(results_write)
        assert self.process.stdin is not None
        self.channel = Channel(read_fd=results_read, write_fd=self.process.stdin.fileno())
        self.channel.send(Start(options, current_spelling()))

    def send(self, message: object) -> None:
        self.channel.send(message)

    def receive(self, timeout: float | None = None) -> object | None:
        return self.channel.receive(timeout)

    def stop(self, grace: float) -> None:
        """Let the driver finish shutting Ray down within ``grace`` seconds (closing its stdin
        cancels anything still running), then make sure it and what it started are gone."""
        assert self.process.stdin is not None
        try:
            self.process.stdin.close()
        except OSError:
            pass
        try:
            self.process.wait(grace)
        except (subprocess.TimeoutExpired, KeyboardInterrupt):  # a Ctrl-C here: stop waiting
            pass
        try:
            os.killpg(self.process.pid, signal.SIGKILL)  # the driver, and a local Ray's processes
        except (ProcessLookupError, PermissionError):
            pass
        self.process.wait()
        self.channel.close()


def _debug_sink() -> int:
    try:
        return sys.stderr.fileno()
    except (AttributeError, OSError, ValueError):  # not a real file (a test's capture)
        return subprocess.DEVNULL


@dataclass
class RayExecutor:
    """Runs a batch on Ray; `execute` drives it like the local executor."""

    options: RayOptions
    recipe: Recipe
    video: VideoSettings = field(default_factory=VideoSettings)
    """How the batch's videos are written; they are split and joined here, so workers only
    ever see segments."""
    _driver: _Driver | None = None

    @classmethod
    def for_batch(
        cls,
        options: RayOptions,
        settings: EngineSettings,
        choice: ModelChoice,
        *,
        format: str | None,
        quality: int,
        max_pixels: int | None,
        files: FileOptions = FileOptions(),
        video: VideoSettings = VideoSettings(),
    ) -> RayExecutor:
        hook = frozenset(filter(None, os.environ.get(KILLED_FOR_MEMORY_HOOK, "").split(os.pathsep)))
        recipe = Recipe(
            settings, choice, {}, format, quality, max_pixels, options.cpus_per_worker, options.gpus_per_worker,
            threads=options.threads, files=files, killed_for_memory_once=hook,
        )  # fmt: skip
        address = options.address or os.environ.get("RAY_ADDRESS") or None
        return cls(replace(options, address=address), recipe, video)

    def prepare(self, note: Callable[[str], None]) -> None:
        """Before the first image: start the driver (Ray takes seconds to join or start), read
        the weights meanwhile, then wait, within a bound, until the cluster holds a worker. An
        unreachable cluster is a usage error (exit 2); a bad checkpoint or a cluster too small
        is one error (exit 1), as with the local engine."""
        address = self.options.address
        if address not in (None, "auto", "local"):
            _check_listening(address)
        note(f"connecting to Ray at {address}…" if address not in (None, "local") else "starting Ray (first run takes ~10 s)…")
        self._driver = _Driver(self.options)
        try:
            self.recipe = replace(self.recipe, weights=read_weights(self.recipe.settings, self.recipe.choice))
            self._wait_connected()
        except BaseException:
            self.close(grace=0.0)  # nothing runs on the cluster yet; Ray may still be joining
            raise

    def _wait_connected(self) -> None:
        assert self._driver is not None
        address = self.options.address
        bound = LOCAL_START_TIMEOUT_SECONDS if address in (None, "local") else connect_timeout()
        started = time.monotonic()
        try:
            answer = self._driver.receive(timeout=bound)
        except ChannelClosed:
            answer = Unreachable("the Ray driver process ended")
        waited = time.monotonic() - started
        if isinstance(answer, Connected):
            return
        if isinstance(answer, Refused):
            raise WorkerError(answer.message)
        why = answer.why if isinstance(answer, Unreachable) else "no answer"
        if address in (None, "local"):
            raise WorkerError(f"a local Ray instance could not be started ({why}, after {waited:.0f} s)")
        raise UsageError(
            f"cannot reach the Ray cluster at {address}: {why} (waited {waited:.0f} s); "
            f"check {setting('ray_address')} and that the cluster is up (`ray status` on its head node)"
        )

    def close(self, grace: float = SHUTDOWN_SECONDS) -> None:
        if self._driver is not None:
            self._driver.stop(grace)
            self._driver = None

    def run(self, jobs: Sequence[Job], reporter: Reporter) -> list[Result]:
        in_order = _Routes(jobs, _InOrder(reporter.result), self.video, self.recipe.max_pixels, reporter)
        todo = []
        for index, job in enumerate(jobs):
            decided = settled(job)
            if decided is not None:
                in_order.add(index, decided)
            elif job.video:
                todo.extend(in_order.segments(index, job))  # a video's segments are spread over the workers
            else:
                todo.append((index, job))
        if not todo:
            self.close()
            return in_order.results
        assert self._driver is not None, "prepare() starts the driver"
        started = time.time()
        lost: Lost | None = None
        try:
            self._driver.send(Batch(self.recipe, todo))
            lost = self._follow(in_order, reporter)
        except ChannelClosed:
            lost = CONNECTION_LOST
        except Exception:
            raise
        except BaseException:  # Ctrl-C, SIGTERM
            lost = self._cancelled(in_order, reporter)
            if lost is None and not all(in_order.has(index) for index, _ in todo):
                self.close()
                self._account_for_outputs(todo, in_order, started)
                in_order.flush()
                raise
            # else every input is reported: nothing was interrupted
        finally:
            self.close()
        if lost is not None:
            with _interrupts_ignored():
                missing = self._account_for_outputs(todo, in_order, started)
                inputs_missing = in_order.unreported()
                for index, job in missing:
                    in_order.add(index, _not_restored(job, lost.why))
                reporter.lost(lost.why, inputs_missing)
        return in_order.results

    def _account_for_outputs(self, todo: list[tuple[int, Job]], in_order: _Routes, started: float) -> list[tuple[int, Job]]:
        """Once the driver is gone: an output this batch wrote whole whose result was lost on
        the way (the driver died just after the worker wrote it) is reported ok; what a killed
        write left is removed. Returns the jobs with no output."""
        missing = []
        choice = self.recipe.choice
        model = str(choice.color) if choice.color == choice.gray else None
        for index, job in todo:
            if in_order.has(index):
                continue
            remove_leftovers(job)
            if _written_since(job, started):
                in_order.add(index, Result(job.name, job.output, "ok", model=model))
            else:
                missing.append((index, job))
        return missing

    def _follow(self, in_order: _Routes, reporter: Reporter, deadline: float | None = None) -> Lost | None:
        """Report what the driver sends until it is done (None) or the batch is lost."""
        assert self._driver is not None
        lost = None
        while True:
            timeout = None if deadline is None else max(0.0, deadline - time.monotonic())
            try:
                message = self._driver.receive(timeout)
            except ChannelClosed:  # Ray ended the driver: its node, its raylet or the head died
                return lost or CONNECTION_LOST
            if message is None or isinstance(message, Done):
                return lost
            if isinstance(message, Finished):
                in_order.add(message.index, message.result)
            elif isinstance(message, Notice):
                reporter.notice(message.line)
            elif isinstance(message, Lost):
                lost = message
            elif isinstance(message, Refused):
                raise WorkerError(message.message)

    def _cancelled(self, in_order: _Routes, reporter: Reporter) -> Lost | None:
        """Ctrl-C or SIGTERM: the driver cancels the work and reports what finishes, within a
        grace period; a second Ctrl-C stops waiting."""
        assert self._driver is not None
        try:
            self._driver.send(Cancel())
            return self._follow(in_order, reporter, deadline=time.monotonic() + SHUTDOWN_SECONDS)
        except ChannelClosed:
            return CONNECTION_LOST
        except KeyboardInterrupt:
            return None


def _check_listening(address: str) -> None:
    """A HOST:PORT nothing listens on is refused at once, rather than after Ray's long retries."""
    host, _, port = address.removeprefix("ray://").rpartition(":")
    if not host or not port.isdigit():
        return
    try:
        socket.create_connection((host, int(port)), timeout=min(5.0, connect_timeout())).close()
    except OSError as error:
        reason = "connection refused" if isinstance(error, ConnectionRefusedError) else error.strerror or type(error).__name__
        raise UsageError(
            f"cannot reach the Ray cluster at {address}: {reason}; "
            f"check {setting('ray_address')} and that the cluster is up (`ray status` on its head node)"
        ) from None


class _InOrder:
    """Reports results in job order, holding those that finish early until the ones before them
    are in; a consumer then needs no knowledge of the engine to pair lines with inputs."""

    def __init__(self, report: Callable[[Result], None]) -> None:
        self._report = report
        self._next = 0
        self._waiting: dict[int, Result] = {}
        self._seen: set[int] = set()
        self.results: list[Result] = []

    def add(self, index: int, result: Result) -> None:
        self._seen.add(index)
        self._waiting[index] = result
        while self._next in self._waiting:
            self._emit(self._waiting.pop(self._next))
            self._next += 1

    def has(self, index: int) -> bool:
        return index in self._seen

    def flush(self) -> None:
        """Interrupted: report whatever is held, in order, leaving gaps for what never finished."""
        for index in sorted(self._waiting):
            self._emit(self._waiting.pop(index))

    def _emit(self, result: Result) -> None:
        self.results.append(result)
        self._report(result)


class _Routes:
    """Results by job index. An input's go to their place in the report's order; a video's
    segments (numbered after the inputs) go to `SplitVideos`, which joins each video once its
    segments are in and puts the video's one result in the video's place."""

    def __init__(self, jobs: Sequence[Job], in_order: _InOrder, video: VideoSettings, max_pixels: int | None, reporter: Reporter) -> None:
        self._in_order = in_order
        self._inputs = len(jobs)
        self._next_segment = len(jobs)
        self._segments_in: set[int] = set()
        self._video_index = {job.output: index for index, job in enumerate(jobs) if job.video}
        self._videos = SplitVideos(video, max_pixels, self._video_done, reporter.notice, reporter.frames)

    @property
    def results(self) -> list[Result]:
        return self._in_order.results

    def segments(self, index: int, job: Job) -> list[tuple[int, Job]]:
        """A video's unfinished segments as jobs for the workers (a video that cannot be split,
        or has nothing left to restore, gets its result here)."""
        works = self._videos.expand([job])
        first, self._next_segment = self._next_segment, self._next_segment + len(works)
        return list(enumerate(works, start=first))

    def add(self, index: int, result: Result) -> None:
        if index < self._inputs:
            self._in_order.add(index, result)
        else:
            self._segments_in.add(index)
            self._videos.report(result)

    def has(self, index: int) -> bool:
        return index in self._segments_in if index >= self._inputs else self._in_order.has(index)

    def unreported(self) -> int:
        """How many inputs have no result yet."""
        return sum(not self._in_order.has(index) for index in range(self._inputs))

    def flush(self) -> None:
        self._in_order.flush()

    def _video_done(self, result: Result) -> None:
        self._in_order.add(self._video_index[result.output], result)


def _not_restored(job: Job, why: str) -> Result:
    return Result(job.name, job.output, "failed", error=f"{job.name}: not restored: {why}", failure="cluster")


def _written_since(job: Job, started: float) -> bool:
    """The job's output exists and was written after ``started``: by this batch, and whole,
    since every write is a rename of a finished temp file. (A second of slack: some
    filesystems keep whole-second times.)"""
    try:
        return job.output is not None and os.stat(job.output).st_mtime >= started - 1.0
    except OSError:
        return False


@contextmanager
def _interrupts_ignored() -> Iterator[None]:
    """While the last results of a lost batch are written: a Ctrl-C then would interrupt
    nothing (every input gets its result), so it must not cut the report short."""
    try:
        previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    except ValueError:  # not the main thread: signals go elsewhere
        yield
        return
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)
