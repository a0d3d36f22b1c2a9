"""While Ray starts (about ten seconds the first time), a line says so instead of a still
progress display. Ray itself is not started here: joining the cluster is stood in for, as
is the dispatching of the images, so the test sees only what the user is told first."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.cli.test_tasks import RGB_WITHBIAS, Photos, _invoke, one_thread, photos  # noqa: F401


@pytest.fixture
def ray_not_started(monkeypatch: pytest.MonkeyPatch) -> list[object]:
    ray_executor = pytest.importorskip("restore_cli.batch.ray_executor", reason="Ray is not installed")
    joined: list[object] = []

    @contextlib.contextmanager
    def connected(options: object) -> Iterator[None]:
        joined.append(options)
        yield

    monkeypatch.setattr(ray_executor.ray, "is_initialized", lambda: False)
    monkeypatch.setattr(ray_executor.ray, "put", lambda value: value)
    monkeypatch.setattr(ray_executor, "_connected", connected)
    monkeypatch.setattr(ray_executor, "_worker_count", lambda options, jobs: 1)
    monkeypatch.setattr(ray_executor._Dispatcher, "run", lambda self, jobs: [])
    return joined


@pytest.mark.parametrize(("address", "line"), [(None, "starting Ray (first run takes ~10 s)…"), ("10.0.0.5:6379", "connecting to Ray at 10.0.0.5:6379…")])
def test_a_line_says_ray_is_starting(ray_not_started: list[object], photos: Photos, address: str | None, line: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    extra = ["--ray-address", address] if address else []
    result = _invoke("run", "--weights", RGB_WITHBIAS, photos.colour, "--engine", "ray", *extra)
    assert result.exit_code == 0 and result.stderr.splitlines()[0] == line and len(ray_not_started) == 1


def test_quiet_keeps_it_quiet(ray_not_started: list[object], photos: Photos, tmp_path: Path) -> None:
    result = _invoke("run", "--weights", RGB_WITHBIAS, photos.colour, "--engine", "ray", "-q", "-o", tmp_path / "o.png")
    assert result.stderr == "" and len(ray_not_started) == 1
