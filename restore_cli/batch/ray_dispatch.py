"""Keeping every live Ray worker fed from one queue, and what happens when workers die.

Runs in the driver process (`ray_driver`). Each worker holds at most `QUEUED_PER_WORKER` calls.
When a worker dies, whatever killed it (see `ray_failures.classify`), the image it was
restoring counts a death and, if the kill was for memory, is retried with half the working
memory; the image queued behind it goes back uncounted; a replacement starts when the cluster
has room, within a bound. An image that meets `MAX_DEATHS` deaths fails alone. When no worker
is left and none can be placed, the batch ends with `Lost`, and the `restore` process gives
every unfinished input its result.
"""

from __future__ import annotations

import itertools
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import ray
from ray.exceptions import RayError

from restore_cli.batch.pipeline import Result, describe_error
from restore_cli.batch.planning import Job
from restore_cli.batch.ray_failures import Bug, Death, classify
from restore_cli.batch.ray_protocol import Finished, Lost, Notice, RayOptions, Recipe, remove_leftovers
from restore_cli.batch.ray_worker import Worker
from restore_cli.errors import WorkerError, setting

MAX_DEATHS = 3
"""An image whose worker died this many times while restoring it is reported failed instead of
being retried again: a photo that kills every worker it meets must not take the cluster down in turn."""
QUEUED_PER_WORKER = 2
"""Calls handed to each worker at a time: one running, one waiting, so a worker never idles
for a round trip to the driver. One at a time, so that a worker killed (for memory, say) is
counted against the one image it was restoring and the waiting one is retried uncounted."""
CANCEL_GRACE_SECONDS = 10.0
"""After Ctrl-C, how long the workers get to notice the cancellation and finish a write."""
PLACEMENT_GRACE_SECONDS = 300.0
"""How long the batch waits with no live worker while the cluster still has room for one,
before it counts the cluster as lost. Generous: a worker's start (imports, the model) can take
a minute on a loaded machine. A cluster without room for a worker is lost at once."""
POLL_SECONDS = 0.25
"""How often the wait for results looks at the cancellation flag and the cluster's state."""


@dataclass
class _Pending:
    """A job still to be reported, with its place in the batch and its history of deaths."""

    index: int
    job: Job
    deaths: int = 0
    halvings: int = 0
    """Kills for memory so far: each halves the working memory of the next attempt."""


@dataclass
class _Held:
    pending: _Pending
    worker: Any
    order: int
    """Submission order: a worker runs its calls in this order, so its oldest held call is the one running."""


@dataclass
class Dispatcher:
    """Runs a batch's jobs on ``size`` workers, reporting every result through ``send``."""

    recipe: Recipe
    options: RayOptions
    size: int
    send: Callable[[object], None]
    cancelled: threading.Event
    _queue: deque[_Pending] = field(default_factory=deque)
    _starting: dict[Any, Any] = field(default_factory=dict)
    """ready() reference -> worker, for workers still building their model."""
    _live: dict[Any, int] = field(default_factory=dict)
    """Worker -> calls it holds."""
    _held: dict[Any, _Held] = field(default_factory=dict)
    """process() reference -> what it holds."""
    _workers: list[Any] = field(default_factory=list)
    _replacements: int = 0
    _last_death: Death | None = None
    _unstaffed_since: float | None = None
    _order: itertools.count = field(default_factory=itertools.count)

    def run(self, jobs: Sequence[tuple[int, Job]]) -> None:
        """Report every job, or end with `Lost`; after a cancellation, report what finished."""
        self._queue.extend(_Pending(index, job) for index, job in jobs)
        self._replacements = self.size * MAX_DEATHS
        try:
            for _ in range(self.size):
                self._start_worker()
            while (self._queue or self._held) and not self.cancelled.is_set():
                self._feed()
                lost = self._lost()
                if lost is not None:
                    self.send(lost)
                    return
                done, _ = ray.wait([*self._held, *self._starting], num_returns=1, timeout=POLL_SECONDS)
                for ref in done:
                    self._settle(ref)
            if self.cancelled.is_set():
                self._drain()
            else:
                for line in self._notices():
                    self.send(Notice(line))
        finally:
            self._stop_workers()

    def _lost(self) -> Lost | None:
        """The batch cannot go on: no worker is left and none will be (memory kills used up the
        replacements), or none has been placed for a grace period, or no node is left."""
        if self._live:
            self._unstaffed_since = None
            return None
        if not self._starting:
            return Lost(self._why_no_worker())
        now = time.monotonic()
        self._unstaffed_since = self._unstaffed_since or now
        if not any(node["Alive"] for node in ray.nodes()):
            return Lost("the Ray cluster has no node left")
        resources = ray.cluster_resources()
        if resources.get("CPU", 0) < self.options.cpus_per_worker or resources.get("GPU", 0) < self.options.gpus_per_worker:
            return Lost("the Ray cluster has no room left for a worker (the nodes that had it are gone)")
        if now - self._unstaffed_since > PLACEMENT_GRACE_SECONDS:
            return Lost(f"no Ray worker could be placed on the cluster for {PLACEMENT_GRACE_SECONDS:.0f} s")
        return None

    def _why_no_worker(self) -> str:
        if self._last_death is not None and self._last_death.for_memory:
            return f"every Ray worker was killed for memory; lower {setting('workers')} or {setting('max_memory')}"
        return "no Ray worker could be started or kept alive"

    def _notices(self) -> list[str]:
        answers = [worker.notices.remote() for worker in self._live]
        lines: dict[str, None] = {}
        for answer in answers:
            try:
                lines.update(dict.fromkeys(ray.get(answer)))
            except RayError:
                pass  # died after its last image: its warnings go with it
        return list(lines)

    def _start_worker(self) -> None:
        worker = (
            ray.remote(concurrency_groups={"control": 1})(Worker)
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
                pending = self._queue.popleft()
                self._held[worker.process.remote(pending.job, pending.halvings)] = _Held(pending, worker, next(self._order))
                calls += 1
            self._live[worker] = calls

    def _settle(self, ref: Any) -> None:
        if ref in self._starting:
            worker = self._starting.pop(ref)
            try:
                problem = ray.get(ref)
            except RayError as error:
                self._died(worker, classify(error))
                return
            if problem is not None:
                raise WorkerError(problem)
            self._live[worker] = 0
            return
        held = self._held.pop(ref)
        try:
            result = ray.get(ref)
        except RayError as error:
            verdict = classify(error)
            if isinstance(verdict, Bug):
                self._live[held.worker] -= 1
                self._report(held.pending, _failed(held.pending.job, describe_error(verdict.error), "image"))
            else:
                self._died(held.worker, verdict, held)
            return
        self._live[held.worker] -= 1
        if result is None:  # cancelled before it finished: no output, nothing to report
            remove_leftovers(held.pending.job)
        else:
            self._report(held.pending, result)

    def _report(self, pending: _Pending, result: Result) -> None:
        self.send(Finished(pending.index, replace(result, attempts=pending.deaths + 1)))

    def _died(self, worker: Any, death: Death, first: _Held | None = None) -> None:
        """A worker died (or must be taken for dead): the image it was restoring counts a death
        (and, killed for memory, gets half the working memory next time); every image it held
        goes back to the queue, after its half-written temp files are removed."""
        self._last_death = death
        self._live.pop(worker, None)
        _kill(worker)
        holdings = sorted(
            [*([first] if first else []), *(self._held.pop(ref) for ref in [r for r, h in self._held.items() if h.worker is worker])],
            key=lambda held: held.order,
        )
        for position, held in enumerate(holdings):
            remove_leftovers(held.pending.job)
            pending = held.pending
            if position == 0:
                pending.deaths += 1
                pending.halvings += death.for_memory
            if pending.deaths >= MAX_DEATHS:
                self._report(pending, _died_too_often(pending, death))
            else:
                self._queue.appendleft(pending)
        if self._replacements > 0 and self._queue and not self.cancelled.is_set():
            self._replacements -= 1
            self._start_worker()

    def _drain(self) -> None:
        """Cancelled: queued jobs are dropped, running ones stop at their next tile, and whatever
        finishes within the grace period (writes included) is still reported."""
        for worker in [*self._live, *self._starting.values()]:
            worker.cancel.remote()
        self._queue.clear()
        deadline = time.monotonic() + CANCEL_GRACE_SECONDS
        while self._held and time.monotonic() < deadline:
            done, _ = ray.wait(list(self._held), num_returns=1, timeout=max(0.0, deadline - time.monotonic()))
            for ref in done:
                self._settle(ref)

    def _stop_workers(self) -> None:
        """Kill every worker, wait until Ray has seen them die, then remove what a write killed
        midway left (only after a cancellation or a loss can a worker still hold an image here)."""
        for worker in self._workers:
            _kill(worker)
        deaths = [worker.ready.remote() for worker in self._workers]
        ray.wait(deaths, num_returns=len(deaths), timeout=CANCEL_GRACE_SECONDS)
        for held in self._held.values():
            remove_leftovers(held.pending.job)


def _kill(worker: Any) -> None:
    try:
        ray.kill(worker, no_restart=True)
    except (RayError, ValueError):
        pass  # already gone


def _failed(job: Job, error: str, failure: str) -> Result:
    return Result(job.name, job.output, "failed", error=error, failure=failure)  # type: ignore[arg-type]


def _died_too_often(pending: _Pending, death: Death) -> Result:
    job = pending.job
    if death.for_memory:
        return _failed(
            job,
            f"{job.name}: the Ray worker restoring it was killed for memory on every try ({pending.deaths} tries, "
            "each with half the memory of the one before); "
            f"lower {setting('workers')} or {setting('max_memory')}, then rerun with {setting('skip_existing')}",
            "worker",
        )
    return _failed(
        job,
        f"{job.name}: the Ray worker restoring it died {pending.deaths} times; "
        f"rerun with {setting('skip_existing')} (if it keeps dying, lower {setting('workers')} or {setting('max_memory')})",
        "worker",
    )
