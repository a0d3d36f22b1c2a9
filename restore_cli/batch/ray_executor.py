"""`--engine ray`: the batch's `Pipeline` steps on a Ray cluster, with nothing lost when a worker dies.

Planning, the per-image step (`batch.Pipeline.process_one`, which never raises) and reporting
(`executor.Reporter`) are the local engine's; only the scheduling differs. Each worker is a Ray
actor that builds the model once, from weights the driver resolved, verified and put in Ray's
object store, and then reads, restores and writes whole images itself: inputs and outputs live on
a filesystem every node sees, and only job descriptions and results cross the network.

Plain actors rather than Ray Data's `map_batches`: a result per image streams back the moment
it exists (progress, JSON lines, exactly one result per input), a Ctrl-C can cancel the work in
flight gracefully instead of killing writers mid-file, and a worker lost with its node is
replaced while the survivors take over its images — where Ray Data retries whole blocks and
waits for a restarted actor that may have nowhere to run. Ray places the actors, moves the
weights and detects deaths; this module only keeps each actor fed and counts deaths per image.

This is the only module that imports Ray, so `import restore_cli` and the local engine never do.
"""

from __future__ import annotations

import logging
import math
import os
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from typing import Any

import ray
from ray.exceptions import RayActorError, RayError

from restore_cli.batch.models import EngineSettings, Model, ModelChoice, ModelSpec
from restore_cli.batch.pipeline import FileOptions, Pipeline, Result, describe_error, settled
from restore_cli.batch.planning import Job
from restore_cli.batch.reporting import Reporter
from restore_cli.errors import WorkerError, current_spelling, install_spelling, setting
from restore_cli.io.files import leftover_temp_files

MAX_DEATHS = 3
"""An image whose worker died this many times while holding it is reported failed instead of
being retried again: a photo that kills every worker it meets (out of memory) must not take the
whole cluster down in turn."""
QUEUED_PER_WORKER = 2
"""Calls handed to each worker at a time: one running, one waiting, so a worker never idles
for a round trip to the driver."""
CANCEL_GRACE_SECONDS = 10.0
"""After Ctrl-C, how long the workers get to notice the cancellation and finish a write."""


@dataclass(frozen=True)
class RayOptions:
    """Where and how wide to run on the cluster, and how much each worker reserves."""

    address: str | None = None
    """None: RAY_ADDRESS if set, else a new local Ray instance on this machine's cores."""
    workers: int | None = None
    """None: as many as the cluster's CPUs (and GPUs, when workers take some) allow."""
    cpus_per_worker: float = 1.0
    gpus_per_worker: float = 0.0
    threads: int | None = None
    """Torch threads in each worker; None: one per CPU it reserves."""
    debug: bool = False
    """Let Ray's own logs and the workers' output through to the terminal."""


@dataclass(frozen=True)
class Weights:
    """A checkpoint read and checked once by the driver, as every worker builds its model from it."""

    state_dict: Any
    """The tensors on the driver; an ObjectRef to them once shipped."""
    source: str
    """The file it came from, for error messages."""


@dataclass(frozen=True)
class Recipe:
    """Everything a worker needs to build its pipeline; small, sent with each actor's creation."""

    settings: EngineSettings
    choice: ModelChoice
    weights: dict[ModelSpec, Weights]
    format: str | None
    quality: int
    max_pixels: int | None
    cpus: float
    gpus: float
    threads: int | None = None
    spelling: dict[str, str] = field(default_factory=current_spelling)
    files: FileOptions = field(default_factory=FileOptions)
    """How the driver's messages name settings, so a worker's say the same."""


def read_weights(settings: EngineSettings, choice: ModelChoice) -> dict[ModelSpec, Weights]:
    """Resolve (downloading if needed), verify and check every model the batch may use, on the
    driver: workers never touch the model cache, so a cluster needs no shared one. Both the colour
    and the gray model are read, since only a worker learns which images are gray."""
    from restore_cli.model.zoo import load_model

    weights = {}
    for spec in dict.fromkeys((choice.color, choice.gray)):
        path = settings.checkpoint(spec)
        weights[spec] = Weights(load_model(path).state_dict(), str(path))  # built once: a bad file fails here
    return weights


class _Worker:
    """One Ray actor: the model built once, then one `process_one` per call."""

    def __init__(self, recipe: Recipe) -> None:
        import torch

        from restore_cli.batch.models import Models

        torch.set_num_threads(recipe.threads or max(1, math.floor(recipe.cpus)))  # a fraction of a CPU still needs a thread
        install_spelling(recipe.spelling)  # this process serves this batch alone
        self._recipe = recipe
        self._settings = _with_memory_share(recipe)
        models = Models(recipe.choice, self._load)
        self._notices: list[str] = []
        self._pipeline = Pipeline(
            models,
            format=recipe.format,
            quality=recipe.quality,
            max_pixels=recipe.max_pixels,
            files=recipe.files,
            on_tiles=_stop_if_cancelled,
            on_notice=self._notices.append,
        )
        self._problem: str | None = None
        try:
            models.get(recipe.choice.color)
        except Exception as error:  # kept for ready(): one clear line, not an actor death
            self._problem = describe_error(error)

    def _load(self, spec: ModelSpec) -> Model:
        from restore_cli.model.checkpoints import build_model

        weights = self._recipe.weights[spec]
        return self._settings.wrap(spec, build_model(ray.get(weights.state_dict), source=weights.source))

    def ready(self) -> str | None:
        """Answers once the model is built (None) or could not be (why, the same on every
        worker): the driver sends images only to workers that answered None."""
        return self._problem

    def process(self, job: Job) -> Result:
        return self._pipeline.process_one(job)

    def notices(self) -> list[str]:
        """The run-level warnings of this worker's images (metadata a format could not hold)."""
        self._pipeline.warn_dropped_metadata()
        return self._notices


def _with_memory_share(recipe: Recipe) -> EngineSettings:
    """Without --max-memory, a local run may plan tiles for most of the free memory; several
    workers on one node would each do so and together run it out. Each worker takes the share
    of its node's memory (or of its GPU's) that its reservation is of the node's CPUs (or GPU)."""
    from restore_cli.engine.budget import default_memory_budget
    from restore_cli.engine.device import resolve_device

    settings = recipe.settings
    if settings.max_memory is not None:
        return settings
    device = resolve_device(settings.device)
    if device.type == "cuda":
        share = min(1.0, recipe.gpus)
    else:
        node_id = ray.get_runtime_context().get_node_id()
        node_cpus = next(node["Resources"].get("CPU", 1.0) for node in ray.nodes() if node["NodeID"] == node_id)
        share = min(1.0, recipe.cpus / max(node_cpus, recipe.cpus))
    return replace(settings, max_memory=str(int(default_memory_budget(device) * share)))


def _stop_if_cancelled(done: int, total: int) -> None:
    """Tile progress inside a worker: where a cancelled image stops, between tiles. Raised as
    KeyboardInterrupt, which `process_one` does not turn into a result and Ray reads as a
    cancelled task; a write in progress is never interrupted, so files stay whole."""
    if ray.get_runtime_context().is_canceled():
        raise KeyboardInterrupt


@dataclass
class RayExecutor:
    """Runs a batch on Ray; `execute` drives it like the local executor."""

    options: RayOptions
    recipe: Recipe

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
    ) -> RayExecutor:
        recipe = Recipe(settings, choice, {}, format, quality, max_pixels, options.cpus_per_worker, options.gpus_per_worker, options.threads, files=files)
        return cls(options, recipe)

    def prepare(self) -> None:
        """Read the weights before the first image, so a missing or bad checkpoint is one error
        before the batch, as with the local engine."""
        self.recipe = replace(self.recipe, weights=read_weights(self.recipe.settings, self.recipe.choice))

    def run(self, jobs: Sequence[Job], reporter: Reporter) -> list[Result]:
        results: list[Result] = []

        def report(result: Result) -> None:
            results.append(result)
            reporter.result(result)

        todo = []
        for job in jobs:
            decided = settled(job)
            if decided is None:
                todo.append(job)
            else:
                report(decided)
        if todo:
            if not ray.is_initialized():  # seconds with nothing to show otherwise
                address = self.options.address or os.environ.get("RAY_ADDRESS")
                reporter.note(f"connecting to Ray at {address}…" if address else "starting Ray (first run takes ~10 s)…")
            with _connected(self.options):
                shipped = {spec: Weights(ray.put(w.state_dict), w.source) for spec, w in self.recipe.weights.items()}
                recipe = replace(self.recipe, weights=shipped)
                dispatcher = _Dispatcher(recipe, self.options, _worker_count(self.options, len(todo)), report)
                for line in dispatcher.run(todo):
                    reporter.notice(line)
        return results


@contextmanager
def _connected(options: RayOptions) -> Iterator[None]:
    """Join the cluster (or start a local Ray) for the batch; a process already connected, such
    as a script using this library, keeps its connection."""
    with _cluster_errors_kept_off_stdout(options.debug):
        if ray.is_initialized():
            yield
            return
        address = options.address or os.environ.get("RAY_ADDRESS") or "local"
        ray.init(
            address=address,
            include_dashboard=False if address == "local" else None,
            log_to_driver=options.debug,
            logging_level=logging.INFO if options.debug else logging.ERROR,
        )
        try:
            yield
        finally:
            ray.shutdown()


@contextmanager
def _cluster_errors_kept_off_stdout(debug: bool) -> Iterator[None]:
    """A Ray driver prints the cluster's error events ("a worker died...") to stdout, where
    --json writes, whatever `log_to_driver` says. Here a dead worker is an expected event that
    the dispatcher handles, so they are dropped, or sent to stderr with --debug. Ray offers no
    setting for this; its driver looks the printer up at each message, so it is swapped for
    the batch."""
    from ray._private import worker as ray_worker

    original = ray_worker.print_to_stdstream

    def to_stderr_when_debugging(data: dict, ignore_prefix: bool) -> None:
        if debug:
            original({**data, "is_err": True}, ignore_prefix)

    ray_worker.print_to_stdstream = to_stderr_when_debugging
    try:
        yield
    finally:
        ray_worker.print_to_stdstream = original


def _worker_count(options: RayOptions, jobs: int) -> int:
    """--workers, or as many as the cluster holds; a cluster that cannot hold even one worker is
    an error now rather than a batch that waits forever for room."""
    resources = ray.cluster_resources()
    cpus, gpus = resources.get("CPU", 0), resources.get("GPU", 0)
    fit = int(cpus // options.cpus_per_worker)
    if options.gpus_per_worker > 0:
        fit = min(fit, int(gpus // options.gpus_per_worker))
    if fit == 0:
        raise WorkerError(
            f"the Ray cluster has {cpus:g} CPUs and {gpus:g} GPUs, too few for one worker with "
            f"{setting('cpus_per_worker')} {options.cpus_per_worker:g} {setting('gpus_per_worker')} {options.gpus_per_worker:g}; "
            "lower them or add nodes"
        )
    return min(options.workers if options.workers is not None else fit, jobs)


@dataclass
class _Held:
    """A job handed to a worker, and how many workers have died holding it."""

    job: Job
    deaths: int
    worker: Any


@dataclass
class _Dispatcher:
    """Keeps every live worker fed from one queue; when a worker dies, its images go back to the
    queue for the others (and a replacement is started, within a bound)."""

    recipe: Recipe
    options: RayOptions
    size: int
    report: Callable[[Result], None]
    _queue: deque[tuple[Job, int]] = field(default_factory=deque)
    _starting: dict[Any, Any] = field(default_factory=dict)
    """ready() reference -> worker, for workers still building their model."""
    _live: dict[Any, int] = field(default_factory=dict)
    """Worker -> calls it holds."""
    _held: dict[Any, _Held] = field(default_factory=dict)
    """process() reference -> what it holds."""
    _workers: list[Any] = field(default_factory=list)
    _replacements: int = 0

    def run(self, jobs: Sequence[Job]) -> list[str]:
        """Report every job; return the workers' run-level warnings, each once."""
        self._queue.extend((job, 0) for job in jobs)
        self._replacements = self.size * MAX_DEATHS
        try:
            for _ in range(self.size):
                self._start_worker()
            while self._queue or self._held:
                self._feed()
                if not self._live and not self._starting:
                    self._give_up("no Ray worker could be started or kept alive")
                    break
                (done,), _ = ray.wait([*self._held, *self._starting], num_returns=1)
                self._settle(done)
            return self._notices()
        except BaseException:
            self._cancel()
            raise
        finally:
            self._stop_workers()

    def _notices(self) -> list[str]:
        answers = [worker.notices.remote() for worker in self._live]
        lines: dict[str, None] = {}
        for answer in answers:
            try:
                lines.update(dict.fromkeys(ray.get(answer)))
            except RayActorError:
                pass  # died after its last image: its warnings go with it
        return list(lines)

    def _start_worker(self) -> None:
        worker = (
            ray.remote(_Worker)
            .options(
                num_cpus=self.options.cpus_per_worker,
                num_gpus=self.options.gpus_per_worker,
                max_restarts=0,
                max_task_retries=0,
                scheduling_strategy="SPREAD",
            )
            .remote(self.recipe)
        )
        self._workers.append(worker)
        self._starting[worker.ready.remote()] = worker

    def _feed(self) -> None:
        for worker, calls in self._live.items():
            while calls < QUEUED_PER_WORKER and self._queue:
                job, deaths = self._queue.popleft()
                self._held[worker.process.remote(job)] = _Held(job, deaths, worker)
                calls += 1
            self._live[worker] = calls

    def _settle(self, done: Any) -> None:
        if done in self._starting:
            worker = self._starting.pop(done)
            try:
                problem = ray.get(done)
            except RayActorError:
                self._replace(worker)
                return
            if problem is not None:
                raise WorkerError(problem)
            self._live[worker] = 0
            return
        held = self._held.pop(done)
        try:
            result = ray.get(done)
        except RayActorError:
            self._lost(held.worker, held)
            return
        self._live[held.worker] -= 1
        self.report(result)

    def _lost(self, worker: Any, first: _Held) -> None:
        """A worker died (killed, out of memory, its node gone): everything it held goes back
        to the queue, after its half-written temp files are removed."""
        self._live.pop(worker, None)
        others = [ref for ref, held in self._held.items() if held.worker is worker]
        for held in [first, *(self._held.pop(ref) for ref in others)]:
            _remove_leftovers(held.job)
            if held.deaths + 1 >= MAX_DEATHS:
                self.report(_died(held.job, held.deaths + 1))
            else:
                self._queue.appendleft((held.job, held.deaths + 1))
        self._replace(worker)

    def _replace(self, worker: Any) -> None:
        self._live.pop(worker, None)
        if self._replacements > 0 and self._queue:
            self._replacements -= 1
            self._start_worker()

    def _give_up(self, why: str) -> None:
        while self._queue:
            job, _ = self._queue.popleft()
            self.report(Result(job.name, job.output, "failed", error=f"{job.name}: {why}; rerun with {setting('skip_existing')}"))

    def _cancel(self) -> None:
        """Ctrl-C: queued calls are dropped, running ones stop at their next tile, and whatever
        finishes within the grace period (writes included) is still reported."""
        pending = list(self._held)
        for ref in pending:
            ray.cancel(ref)
        finished, _ = ray.wait(pending, num_returns=len(pending), timeout=CANCEL_GRACE_SECONDS) if pending else ([], [])
        for ref in finished:
            try:
                self.report(ray.get(ref))
            except RayError:
                pass
            self._held.pop(ref)

    def _stop_workers(self) -> None:
        """Kill every worker, wait until Ray has seen them die, then remove what a write killed
        midway left (only after an interrupt can a worker still hold an image here)."""
        for worker in self._workers:
            ray.kill(worker, no_restart=True)
        deaths = [worker.ready.remote() for worker in self._workers]
        ray.wait(deaths, num_returns=len(deaths), timeout=CANCEL_GRACE_SECONDS)
        for held in self._held.values():
            _remove_leftovers(held.job)


def _remove_leftovers(job: Job) -> None:
    if job.output is not None:
        for path in leftover_temp_files(job.output):
            path.unlink(missing_ok=True)


def _died(job: Job, deaths: int) -> Result:
    return Result(
        job.name,
        job.output,
        "failed",
        error=f"{job.name}: the Ray worker restoring it died {deaths} times (out of memory?); "
        f"give workers more memory ({setting('cpus_per_worker')}) or a smaller {setting('tile')}, then rerun with {setting('skip_existing')}",
    )
