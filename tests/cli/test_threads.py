"""`--threads N` on every command reaches torch (and the batch's reader and writer threads,
and the processes `restore bench` starts); without it, the default follows the CPUs' load."""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

from restore_cli import bench
from restore_cli.batch import pipeline
from restore_cli.cli.app import app
from restore_cli.engine import threads
from tests.cli.test_hardening_cli import _photo

runner = CliRunner()
WEIGHTS = Path(__file__).parents[1] / "data" / "golden" / "tiny_rgb_withbias.pth"


@pytest.fixture(autouse=True)
def torch_threads_restored() -> Iterator[None]:
    before = torch.get_num_threads()
    yield
    torch.set_num_threads(before)


def _invoke(*args: object):
    result = runner.invoke(app, [str(arg) for arg in args])
    assert result.exit_code == 0, result.output
    return result


def test_a_batch_computes_with_the_threads_given_and_reads_with_as_few(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for index in range(4):
        _photo(tmp_path / "in" / f"{index}.png", seed=index)
    read, readers = pipeline.Pipeline.read, set()

    def noted(self: pipeline.Pipeline, job: object) -> object:
        readers.add(threading.current_thread().name)
        return read(self, job)

    monkeypatch.setattr(pipeline.Pipeline, "read", noted)
    _invoke("run", "--weights", WEIGHTS, tmp_path / "in", "-o", tmp_path / "out", "--threads", 3)
    assert torch.get_num_threads() == 3

    readers.clear()
    _invoke("run", "--weights", WEIGHTS, tmp_path / "in", "-o", tmp_path / "out1", "--threads", 1)
    assert torch.get_num_threads() == 1 and len(readers) == 1


def test_train_and_eval_compute_with_the_threads_given(tmp_path: Path) -> None:
    for index in range(2):
        for folder in ("clean", "rainy"):
            _photo(tmp_path / folder / f"{index}.png", height=32, width=32, seed=index)
    _invoke("train", tmp_path / "clean", "--sigma", 25, "--size", "tiny", "--patch", 16, "--batch", 1, "--iters", 1,
            "--val-every", 0, "--threads", 2, "-o", tmp_path / "t.pth", "-q")  # fmt: skip
    assert torch.get_num_threads() == 2

    _invoke("eval", "--task", "derain", "--input", tmp_path / "rainy", "--target", tmp_path / "clean", "--weights", WEIGHTS, "--threads", 1)
    assert torch.get_num_threads() == 1


def test_bench_passes_the_threads_to_every_process_it_starts(monkeypatch: pytest.MonkeyPatch) -> None:
    seen = []
    monkeypatch.setattr(bench, "run_benchmark", lambda *args: seen.append(os.environ["OMP_NUM_THREADS"]) or [])
    monkeypatch.delenv("OMP_NUM_THREADS")

    result = _invoke("bench", "--sizes", 16, "--no-fidelity", "--threads", 5, "--json")

    assert seen == ["5"] and '"threads": 5' in result.stdout


def test_without_threads_a_busy_machine_gets_one_and_an_idle_one_torch_s_choice(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("OMP_NUM_THREADS")
    monkeypatch.setattr(threads, "affinity_cpus", lambda: 2)
    monkeypatch.setattr(threads, "_cgroup_quota", lambda: None)
    monkeypatch.setattr(threads, "_torch_default", lambda: 2)
    start = threads.CpuSample(wall=0.0, own=0.0, busy=100.0)

    def after(busy: float) -> None:  # one second later, this process having used 0.9 CPU seconds
        monkeypatch.setattr(threads, "sample", lambda: threads.CpuSample(wall=1.0, own=0.9, busy=100.0 + 0.9 + busy))

    after(busy=0.05)
    assert threads.default_threads(start) == 2
    after(busy=0.8)  # one other process on a core
    assert threads.default_threads(start) == 1
    after(busy=1.1)  # both cores busy (their share left after ours)
    assert threads.default_threads(start) == 1
    monkeypatch.setenv("OMP_NUM_THREADS", "3")
    assert threads.default_threads(start) == 3


def test_many_idle_cores_get_one_thread_per_physical_core_within_a_quota(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("OMP_NUM_THREADS")
    monkeypatch.setattr(threads, "affinity_cpus", lambda: 32)
    monkeypatch.setattr(threads, "_torch_default", lambda: 16)  # physical cores: hyper-threads are not counted
    monkeypatch.setattr(threads, "sample", lambda: threads.CpuSample(wall=1.0, own=1.0, busy=1.3))
    start = threads.CpuSample(wall=0.0, own=0.0, busy=0.0)
    monkeypatch.setattr(threads, "_cgroup_quota", lambda: None)
    assert threads.default_threads(start) == 16
    monkeypatch.setattr(threads, "_cgroup_quota", lambda: 4.0)  # a container limited to 4 CPUs
    assert threads.default_threads(start) == 4
