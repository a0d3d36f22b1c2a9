"""The Ray engine's decisions that need no cluster: how each Ray error is classified, and the
memory budget a worker plans within, first and after kills for memory."""

from __future__ import annotations

import pytest

pytest.importorskip("ray", reason='Ray is not installed (pip install -e ".[test]" installs it)')

from ray.exceptions import (  # noqa: E402
    ActorDiedError,
    ActorUnavailableError,
    NodeDiedError,
    ObjectLostError,
    OutOfMemoryError,
    RayTaskError,
    WorkerCrashedError,
)

from restore_cli.batch.ray_failures import Bug, Death, classify  # noqa: E402
from restore_cli.batch.ray_worker import retry_budget, retry_tile, worker_memory_budget, workers_on_node  # noqa: E402

GiB = 2**30


def _raised_in_worker(error: BaseException) -> RayTaskError:
    """What `ray.get` raises for an exception raised inside an actor method."""
    return RayTaskError("Worker.process", "Traceback (most recent call last): ...", error).as_instanceof_cause()


@pytest.mark.parametrize(
    ("error", "verdict"),
    [
        (OutOfMemoryError("Task was killed due to the node running low on memory."), Death(for_memory=True)),
        (_raised_in_worker(OutOfMemoryError("killed")), Death(for_memory=True)),
        (ActorDiedError(), Death(for_memory=False)),
        (ActorUnavailableError("restarting", None), Death(for_memory=False)),
        (NodeDiedError("node gone"), Death(for_memory=False)),
        (WorkerCrashedError(), Death(for_memory=False)),
        (ObjectLostError("0" * 56, "owner", "call site"), Death(for_memory=False)),
    ],
)
def test_every_kind_of_worker_death_is_a_death(error: BaseException, verdict: Death) -> None:
    assert classify(error) == verdict


def test_an_actor_reported_dead_for_memory_is_a_death_for_memory() -> None:
    died = ActorDiedError()
    died.error_msg = "The actor is dead because it was killed due to the node running low on memory."
    assert classify(died) == Death(for_memory=True)


def test_our_own_code_raising_in_a_worker_is_a_bug_of_that_image_not_a_death() -> None:
    error = ValueError("a bug")
    verdict = classify(_raised_in_worker(error))
    assert isinstance(verdict, Bug) and verdict.error is error


@pytest.mark.parametrize(
    ("node_cpus", "cpus_per_worker", "workers", "expected"),
    [(8, 1, 16, 8), (8, 1, 3, 3), (8, 3, 16, 2), (2, 4, 1, 1), (4, 0.5, 100, 8)],
)
def test_workers_that_share_a_node_are_those_its_cpus_hold(node_cpus, cpus_per_worker, workers, expected) -> None:
    assert workers_on_node(workers, node_cpus, cpus_per_worker) == expected


def test_workers_that_share_a_node_are_also_bounded_by_its_gpus() -> None:
    assert workers_on_node(16, node_cpus=32, cpus_per_worker=1, node_gpus=2, gpus_per_worker=0.5) == 4


def test_the_workers_of_a_node_together_plan_for_half_its_available_memory() -> None:
    held = GiB // 2
    budgets = [worker_memory_budget(held, available=16 * GiB, workers_here=n) for n in (1, 2, 4)]
    assert budgets == [held + 8 * GiB, held + 4 * GiB, held + 2 * GiB]
    assert 4 * (budgets[2] - held) == 8 * GiB


def test_each_kill_for_memory_halves_the_working_memory_down_to_the_smallest_tile() -> None:
    held, budget, floor = GiB, 5 * GiB, GiB // 4
    assert [retry_budget(budget, held, floor, halvings) for halvings in range(6)] == [
        5 * GiB, 3 * GiB, 2 * GiB, held + GiB // 2, held + floor, held + floor,
    ]  # fmt: skip


def test_a_fixed_tile_halves_its_area_per_kill_down_to_the_smallest_tile() -> None:
    assert [retry_tile(512, halvings, smallest=64) for halvings in range(8)] == [512, 360, 256, 176, 128, 88, 64, 64]
    assert retry_tile("auto", 3, smallest=64) == "auto"
    assert retry_tile(0, 0, smallest=64) == 0 and retry_tile(0, 1, smallest=64) == "auto"
    assert retry_tile(32, 2, smallest=64) == 32  # already below the smallest: kept
