"""While Ray starts (about ten seconds the first time), a line says so instead of a still
progress display. No Ray runs here: the driver process is stood in for by one that answers
at once, so the test sees only what the user is told first."""

from __future__ import annotations

from pathlib import Path

import pytest

from restore_cli.batch.pipeline import Result
from tests.cli.test_tasks import RGB_WITHBIAS, Photos, _invoke, one_thread, photos  # noqa: F401


class AnsweringDriver:
    """Connects at once and reports every job it is sent as restored."""

    started: list[object] = []

    def __init__(self, options: object) -> None:
        from restore_cli.batch.ray_protocol import Connected

        AnsweringDriver.started.append(options)
        self.answers: list[object] = [Connected()]

    def send(self, message: object) -> None:
        from restore_cli.batch.ray_protocol import Batch, Done, Finished

        if isinstance(message, Batch):
            self.answers += [Finished(index, Result(job.name, job.output, "ok")) for index, job in message.jobs]
            self.answers.append(Done())

    def receive(self, timeout: float | None = None) -> object | None:
        return self.answers.pop(0)

    def stop(self, grace: float) -> None:
        pass


@pytest.fixture
def ray_not_started(monkeypatch: pytest.MonkeyPatch) -> list[object]:
    ray_executor = pytest.importorskip("restore_cli.batch.ray_executor", reason="Ray is not installed")
    monkeypatch.setattr(ray_executor, "_Driver", AnsweringDriver)
    monkeypatch.setattr(ray_executor, "_check_listening", lambda address: None)
    monkeypatch.setattr(AnsweringDriver, "started", [])
    return AnsweringDriver.started


@pytest.mark.parametrize(("address", "line"), [(None, "starting Ray (first run takes ~10 s)…"), ("10.0.0.5:6379", "connecting to Ray at 10.0.0.5:6379…")])
def test_a_line_says_ray_is_starting(ray_not_started: list[object], photos: Photos, address: str | None, line: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    extra = ["--ray-address", address] if address else []
    result = _invoke("run", "--weights", RGB_WITHBIAS, photos.colour, "--engine", "ray", *extra)
    assert result.exit_code == 0 and result.stderr.splitlines()[0] == line and len(ray_not_started) == 1


def test_quiet_keeps_it_quiet(ray_not_started: list[object], photos: Photos, tmp_path: Path) -> None:
    result = _invoke("run", "--weights", RGB_WITHBIAS, photos.colour, "--engine", "ray", "-q", "-o", tmp_path / "o.png")
    assert result.stderr == "" and len(ray_not_started) == 1
