"""The `restore` process's side of `--engine ray`, against a scripted driver: what it reports
when results come out of order, when the driver vanishes (the cluster lost), and when Ctrl-C
comes before, during or after all that. No Ray runs here; tests/batch/test_ray_engine.py runs
the same paths on a real cluster."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest

pytest.importorskip("ray", reason='Ray is not installed (pip install -e ".[test]" installs it)')

from restore_cli.batch.models import EngineSettings, ModelChoice  # noqa: E402
from restore_cli.batch.pipeline import Result  # noqa: E402
from restore_cli.batch.planning import Job  # noqa: E402
from restore_cli.batch.ray_executor import RayExecutor  # noqa: E402
from restore_cli.batch.ray_protocol import Cancel, ChannelClosed, Done, Finished, Notice, RayOptions, Recipe  # noqa: E402
from restore_cli.batch.reporting import Reporter  # noqa: E402


class ScriptedDriver:
    """Answers `receive` from a script; an exception (class or instance) in it is raised there,
    as Ctrl-C or the driver's death would be."""

    def __init__(self, *script: object) -> None:
        self.script = list(script)
        self.sent: list[object] = []

    def send(self, message: object) -> None:
        self.sent.append(message)

    def receive(self, timeout: float | None = None) -> object | None:
        item = self.script.pop(0)
        if isinstance(item, BaseException) or (isinstance(item, type) and issubclass(item, BaseException)):
            raise item
        return item

    def stop(self, grace: float) -> None:
        pass


def _batch(tmp_path: Path, count: int) -> list[Job]:
    return [Job((str(tmp_path / f"{i}.png"),), str(tmp_path / "out" / f"{i}.png")) for i in range(count)]


def _ok(job: Job) -> Result:
    return Result(job.name, job.output, "ok", model="m.pth", width=8, height=8, tiles=1)


def _run(jobs: list[Job], driver: ScriptedDriver) -> tuple[int | str, list[dict], str]:
    """Run the batch as `execute` does after prepare(); the exit code, or "interrupted"."""
    stdout, stderr = io.StringIO(), io.StringIO()
    reporter = Reporter(stdout=stdout, stderr=stderr, json=True, display="lines", resume="restore run in -o out --skip-existing")
    recipe = Recipe(EngineSettings(), ModelChoice.single(Path("m.pth")), {}, None, 95, None, cpus=1.0, gpus=0.0)
    executor = RayExecutor(RayOptions(), recipe, _driver=driver)  # type: ignore[arg-type]
    reporter.start(len(jobs))
    try:
        executor.run(jobs, reporter)
        code: int | str = reporter.finish()
    except KeyboardInterrupt:
        code = "interrupted"
        reporter.interrupted(130)
    return code, [json.loads(line) for line in stdout.getvalue().splitlines()], stderr.getvalue()


def test_results_that_finish_out_of_order_are_reported_in_job_order(tmp_path: Path) -> None:
    jobs = _batch(tmp_path, 3)
    script = [Finished(2, _ok(jobs[2])), Finished(0, _ok(jobs[0])), Notice("warning: x"), Finished(1, _ok(jobs[1])), Done()]
    code, lines, _ = _run(jobs, ScriptedDriver(*script))
    assert code == 0
    assert [line["input"] for line in lines[:-1]] == [job.name for job in jobs]


def test_a_driver_that_vanishes_leaves_every_unfinished_input_failed_for_the_cluster(tmp_path: Path) -> None:
    jobs = _batch(tmp_path, 4)
    (tmp_path / "out").mkdir()
    Path(jobs[3].output).write_bytes(b"written whole just before the loss")  # type: ignore[arg-type]
    (tmp_path / "out" / ".1.png.abcd1234.tmp").write_bytes(b"a write cut short")
    code, lines, stderr = _run(jobs, ScriptedDriver(Finished(2, _ok(jobs[2])), Finished(0, _ok(jobs[0])), ChannelClosed()))

    assert code == 1
    assert [(line["input"], line["status"], line["failure"]) for line in lines[:-1]] == [
        (jobs[0].name, "ok", None), (jobs[1].name, "failed", "cluster"), (jobs[2].name, "ok", None), (jobs[3].name, "ok", None),
    ]  # fmt: skip
    assert "not restored: the connection to the Ray cluster was lost" in lines[1]["error"]
    assert lines[-1]["type"] == "summary" and lines[-1]["status"] == "failed" and "skip-existing" in lines[-1]["error"]
    errors = [line for line in stderr.splitlines() if line.startswith("error: ")]
    assert errors == [f"error: {lines[-1]['error']}"] and stderr.endswith(errors[0] + "\n")  # one line, last
    assert "1 of 4 input(s) not restored, 3 restored; finish the batch with `restore run in -o out --skip-existing`" in errors[0]
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["3.png"]  # the cut write is gone


def test_ctrl_c_during_a_loss_still_gives_every_input_a_result(tmp_path: Path) -> None:
    jobs = _batch(tmp_path, 3)
    driver = ScriptedDriver(Finished(0, _ok(jobs[0])), KeyboardInterrupt, ChannelClosed())
    code, lines, _ = _run(jobs, driver)
    assert code == 1 and isinstance(driver.sent[-1], Cancel)
    assert [line["status"] for line in lines[:-1]] == ["ok", "failed", "failed"] and lines[-1]["status"] == "failed"


def test_ctrl_c_mid_batch_reports_what_finished_while_cancelling_and_is_an_interruption(tmp_path: Path) -> None:
    jobs = _batch(tmp_path, 4)
    driver = ScriptedDriver(Finished(1, _ok(jobs[1])), KeyboardInterrupt, Finished(3, _ok(jobs[3])), Done())
    code, lines, _ = _run(jobs, driver)
    assert code == "interrupted" and isinstance(driver.sent[-1], Cancel)
    assert [line["input"] for line in lines[:-1]] == [jobs[1].name, jobs[3].name]
    assert lines[-1] | {"seconds": 0} == {
        "schema": 1, "type": "summary", "command": "run", "status": "interrupted", "exit_code": 130,
        "total": 4, "ok": 2, "skipped": 0, "failed": 0, "seconds": 0,
    }  # fmt: skip


def test_ctrl_c_once_every_input_is_reported_is_not_an_interruption(tmp_path: Path) -> None:
    jobs = _batch(tmp_path, 2)
    code, lines, stderr = _run(jobs, ScriptedDriver(Finished(0, _ok(jobs[0])), Finished(1, _ok(jobs[1])), KeyboardInterrupt, Done()))
    assert code == 0 and lines[-1]["status"] == "done" and "interrupted" not in stderr


def test_a_video_goes_out_as_segments_and_comes_back_as_one_result_in_its_place(tmp_path: Path) -> None:
    """Workers get the video's segments, never the whole video; when the cluster is lost with
    none of them in, the video gets one failed line in its place and counts as one input."""
    from tests.video_clips import Clip, make_clip

    clip = make_clip(tmp_path / "clip.mp4", Clip(frames=24))  # 2 s: two segments
    image, video = _batch(tmp_path, 1)[0], Job((str(clip),), str(tmp_path / "out" / "clip.mp4"), video=True)
    driver = ScriptedDriver(Finished(0, _ok(image)), ChannelClosed())
    code, lines, stderr = _run([image, video], driver)

    (batch,) = driver.sent
    sent = [job for _, job in batch.jobs]  # type: ignore[attr-defined]
    assert sent[0] == image and len(sent) == 3 and all(job.segment is not None and not job.video for job in sent[1:])
    assert [index for index, _ in batch.jobs] == [0, 2, 3]  # type: ignore[attr-defined]
    assert [(line["input"], line["type"], line["status"], line["failure"]) for line in lines[:-1]] == [
        (image.name, "image", "ok", None), (video.name, "video", "failed", "cluster"),
    ]  # fmt: skip
    assert lines[1]["output"] == video.output
    assert "1 of 2 input(s) not restored, 1 restored" in stderr
