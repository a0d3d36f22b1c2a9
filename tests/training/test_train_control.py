"""`restore train` tells the truth about time, answers Ctrl-C at once, and never loses the
weights to a write that fails mid-run. Tiny networks and crops; what is expected comes from
an uninterrupted run or from the files themselves, never from the code's own messages."""

from __future__ import annotations

import errno
import os
import re
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import pytest
import torch

from restore_cli.io import files
from restore_cli.model.zoo import load_model
from restore_cli.training import control, data, loop, state
from restore_cli.training.sizes import new_model
from tests.cli_assertions import assert_one_line_error
from tests.training.test_train import PHOTO, crops, invoke, one_torch_thread  # noqa: F401

TINY = ["--sigma", 25, "--size", "tiny", "--patch", 16, "--batch", 2, "--lr", 1e-3, "--val-every", 0]


@pytest.fixture(scope="module")
def clean(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return crops(PHOTO, tmp_path_factory.mktemp("clean"), 3)


# --------------------------------------------------------------------------- time


def test_speed_and_time_left_show_from_the_first_iteration(clean: Path, tmp_path: Path) -> None:
    result = invoke(clean, *TINY, "--iters", 10, "-o", tmp_path / "t.pth")

    assert result.exit_code == 0, result.output
    lines = result.stderr.splitlines()
    amount, rate = r"[\d.]+ (s|min)", r"[\d.]+ (it/s|s/it|min/it)"
    assert re.fullmatch(rf"about {amount} per iteration: 10 iterations take about {amount}", lines[0])
    assert re.fullmatch(rf"iteration 1/10: loss [\d.]+, {rate}, {amount} left", lines[1])
    assert re.fullmatch(rf"iteration 10/10: loss [\d.]+, {rate}", lines[10])


def test_the_first_estimate_comes_before_the_first_step_ends(clean: Path, tmp_path: Path) -> None:
    events: list[tuple[str, object]] = []

    class Recorder:
        def started(self, iteration: int, total: int) -> None:
            events.append(("started", iteration))

        def estimated(self, pace: loop.Pace) -> None:
            events.append(("estimated", pace))

        def stepped(self, iteration: int, loss: float, lr: float) -> None:
            events.append(("stepped", iteration))

        def validated(self, iteration: int, score: object) -> None:
            pass

        def saved(self, iteration: int) -> None:
            pass

    from restore_cli.training import train

    train(clean, output=tmp_path / "t.pth", reporter=Recorder(), sigma=25, size="tiny", patch=16, batch=2, iters=3, val_every=0, save_every=0)

    assert [name for name, _ in events] == ["started", "estimated", "stepped", "stepped", "stepped"]
    pace = events[1][1]
    assert isinstance(pace, loop.Pace) and pace.steps_left == 3 and pace.seconds_per_step > 0
    assert pace.on_cpu and not pace.full_size_on_cpu


def test_the_full_size_network_counts_as_full_size_and_small_does_not() -> None:
    parameters = {size: sum(p.numel() for p in new_model(size, 3, True).parameters()) for size in ("small", "base")}
    assert parameters["small"] < loop.FULL_SIZE_PARAMETERS <= parameters["base"]


def test_a_full_size_network_on_the_cpu_warns_with_the_duration_and_what_to_do(
    clean: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(loop, "FULL_SIZE_PARAMETERS", 0)  # the tiny network stands in for the full-size one

    result = invoke(clean, *TINY, "--iters", 2, "--device", "cpu", "-o", tmp_path / "t.pth", "-q")

    assert result.exit_code == 0, result.output
    (warning,) = result.stderr.splitlines()
    assert re.fullmatch(
        r"warning: the full-size network trains on the CPU at about [\d.]+ (s|min) per iteration, so 2 iterations take "
        r"about [\d.]+ (s|min); try --size tiny or --size small, or fewer --iters, or a GPU",
        warning,
    )


# --------------------------------------------------------------------------- Ctrl-C


def test_ctrl_c_is_acknowledged_at_once_and_honoured_after_the_step(clean: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    batch, calls = data.Sampler.batch, []

    def ctrl_c_at_the_third_batch(self: data.Sampler, *args: object) -> object:
        calls.append(len(calls) + 1)
        if len(calls) == 3:
            signal.raise_signal(signal.SIGINT)  # pressed while step 3 is being prepared
        return batch(self, *args)

    monkeypatch.setattr(data.Sampler, "batch", ctrl_c_at_the_third_batch)
    output = tmp_path / "t.pth"

    result = invoke(clean, *TINY, "--iters", 100, "--save-every", 1000, "-o", output, "-q")

    assert result.exit_code == 130
    assert result.stderr.splitlines() == [
        "stopping after this step… (Ctrl-C again to stop now)",
        f"interrupted: stopped at iteration 3; {tmp_path / 't.state'} holds it: continue with the same options and --resume {tmp_path / 't.state'}",
    ]
    assert state.read_state(tmp_path / "t.state")["iteration"] == 3 and calls == [1, 2, 3] and not output.exists()


def test_a_second_ctrl_c_stops_at_once_keeping_the_last_completed_step(tmp_path: Path) -> None:
    """A step long enough to tell (8 crops of 128 px); the second Ctrl-C lands in the first
    step's backward pass: the run ends without finishing it, and nothing half-done is kept."""
    big = crops(PHOTO, tmp_path / "big", 2, side=160)
    output = tmp_path / "t.pth"
    command = [sys.executable, "-m", "restore_cli", "train", str(big), "--sigma", "25", "--size", "tiny", "--patch", "128",
               "--batch", "8", "--iters", "50", "--val-every", "0", "--threads", "1", "-o", str(output)]  # fmt: skip
    process = subprocess.Popen(command, stderr=subprocess.PIPE, text=True)
    assert process.stderr is not None
    estimate = process.stderr.readline()  # written after the first forward pass, before its backward
    amount, unit = re.match(r"about ([\d.]+) (s|min) per iteration", estimate).groups()  # type: ignore[union-attr]
    per_step = float(amount) * (60 if unit == "min" else 1)
    process.send_signal(signal.SIGINT)
    acknowledged = process.stderr.readline()
    process.send_signal(signal.SIGINT)
    second = time.monotonic()
    rest = process.stderr.read()
    process.wait(timeout=60)

    assert acknowledged == "stopping after this step… (Ctrl-C again to stop now)\n"
    assert process.returncode == 130 and rest == "interrupted: stopped at iteration 0, before any state was saved\n"
    assert time.monotonic() - second < per_step / 3  # sooner than the step's backward pass could have ended
    assert sorted(path.name for path in tmp_path.iterdir()) == ["big"]


def test_a_step_abandoned_by_ctrl_c_changes_nothing_and_saves_the_last_completed_one(clean: Path, tmp_path: Path) -> None:
    """The library side of the second Ctrl-C: a step cancelled before it commits leaves the
    weights, optimiser and generator as the step before left them."""
    from restore_cli.training.loop import Trainer

    trainer = Trainer(new_model("tiny", 3, True), torch.device("cpu"), torch.float32, lr=1e-3, iterations=5, warmup=1,
                      clip=0.01, ema_decay=0.0, seed=0)  # fmt: skip
    batch = (torch.rand(2, 3, 16, 16), torch.rand(2, 3, 16, 16))
    trainer.step(*batch)
    before = {key: value.clone() for key, value in trainer.state_dict()["model"].items()}
    generator = trainer.state_dict()["generator"].clone()
    torch.rand(1, generator=trainer.generator)  # the next batch is drawn before its step commits
    cancelled = threading.Event()
    cancelled.set()

    with pytest.raises(control.Cancelled):
        trainer.step(*batch, cancelled=cancelled)

    after = trainer.state_dict()
    assert after["iteration"] == 1 and torch.equal(after["generator"], generator)
    assert all(torch.equal(before[key], value) for key, value in after["model"].items())


# --------------------------------------------------------------------------- failed writes


def _disk_full_in(folder: Path, monkeypatch: pytest.MonkeyPatch, fallback: Path) -> None:
    """Writes into ``folder`` fail as on a full disk; the system temp folder is ``fallback``."""
    atomic_write = files.atomic_write

    def full(path: Path, payload: bytes) -> None:
        if path.parent == folder:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(path))
        atomic_write(path, payload)

    monkeypatch.setattr(state, "atomic_write", full)
    fallback.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(fallback))


def test_a_checkpoint_that_cannot_be_written_goes_to_a_fallback_named_in_one_line(
    clean: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    reference = tmp_path / "reference.pth"
    assert invoke(clean, *TINY, "--iters", 3, "-o", reference, "-q").exit_code == 0
    (tmp_path / "out").mkdir()
    _disk_full_in(tmp_path / "out", monkeypatch, tmp_path / "fallback")

    result = invoke(clean, *TINY, "--iters", 3, "-o", tmp_path / "out" / "t.pth", "-q")

    kept = tmp_path / "fallback" / "t.pth"
    assert_one_line_error(result, 1, f"cannot write {tmp_path / 'out' / 't.pth'} (No space left on device)", f"went to {kept} instead")
    expected, got = torch.load(reference, weights_only=True), torch.load(kept, weights_only=True)
    assert all(torch.equal(expected["params"][key], got["params"][key]) for key in expected["params"])
    assert load_model(kept).config.dim == 8


def test_a_state_file_that_cannot_be_written_mid_run_stops_it_with_the_state_in_a_fallback(
    clean: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "out").mkdir()
    _disk_full_in(tmp_path / "out", monkeypatch, tmp_path / "fallback")

    result = invoke(clean, *TINY, "--iters", 6, "--save-every", 2, "-o", tmp_path / "out" / "t.pth", "-q")

    kept = tmp_path / "fallback" / "t.state"
    assert_one_line_error(result, 1, f"cannot write {tmp_path / 'out' / 't.state'}", f"--resume {kept}")
    assert state.read_state(kept)["iteration"] == 2 and not (tmp_path / "out" / "t.pth").exists()
