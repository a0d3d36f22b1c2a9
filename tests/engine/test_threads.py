"""Ray workers' torch threads stay within the CPUs they reserve (the command line's own
count, --threads and its default, is tested in tests/cli/test_threads.py)."""

from __future__ import annotations

import pytest

from restore_cli.engine.threads import worker_threads


@pytest.mark.parametrize(("cpus", "threads"), [(0.5, 1), (1.0, 1), (2.0, 2), (3.7, 3)])
def test_a_ray_worker_runs_no_more_threads_than_cpus_it_reserved(cpus: float, threads: int) -> None:
    assert worker_threads(cpus) == threads
