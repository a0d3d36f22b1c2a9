"""`--engine ray` against the local engine, on one real Ray cluster shared by the module.

The cluster is started with Ray's own test utility (`ray.cluster_utils.Cluster`: real raylets
and worker processes on this machine, 2 CPUs on the head node); nodes are added and removed
for the multi-node test. Workers are killed for real (SIGKILL) and the driver is interrupted
for real (SIGINT to a `restore` process). The two faults that destroy a Ray instance (its node's
agent killed, a memory monitor that kills every worker) get local instances of their own, which
`restore` starts when RAY_ADDRESS is unset. Without the `ray` extra these tests skip, except the
ones about not having it.
"""

from __future__ import annotations

import json
import logging
import re
import shlex
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import psutil
import pytest

import restore_cli
from restore_cli.io.decode import read_image
from tests.cli.test_hardening_cli import _digests, _photo
from tests.cli.test_tasks import RGB_WITHBIAS, Photos, _invoke, _json_lines, _subprocess, one_thread, photos  # noqa: F401
from tests.cli_assertions import LOG_LINE, assert_one_line_error

TIMEOUT = 180


@pytest.fixture(scope="module")
def cluster():
    """The cluster, which `--engine ray` joins through RAY_ADDRESS (its driver is a process of
    its own); this process joins it too, to add and remove nodes."""
    ray = pytest.importorskip("ray", reason='Ray is not installed (pip install -e ".[test]" installs it)')
    from ray.cluster_utils import Cluster

    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 2})
    ray.init(address=cluster.address, log_to_driver=False, logging_level=logging.ERROR)
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("RAY_ADDRESS", cluster.address)
        yield cluster
    ray.shutdown()
    cluster.shutdown()


def _restore(*args: str | Path, engine: str = "ray"):
    return _invoke("run", "--weights", RGB_WITHBIAS, "--engine", engine, *args)


def _in_background(*args: str | Path) -> tuple[threading.Thread, list]:
    """A batch on the Ray engine in a thread of this process, so the test can act during it."""
    outcome: list = []
    thread = threading.Thread(target=lambda: outcome.append(_restore(*args)), daemon=True)
    thread.start()
    return thread, outcome


def _wait_for(condition, running) -> None:
    deadline = time.monotonic() + TIMEOUT
    while running() and not condition() and time.monotonic() < deadline:
        time.sleep(0.02)


def _has_outputs(out: Path):
    return lambda: out.is_dir() and any(out.glob("*.png"))


def _assert_whole_outputs_only(out: Path, photos: list[Path]) -> None:
    """Every file below ``out`` is a finished output of the right size: no temp file, nothing cut short."""
    for path in out.rglob("*"):
        assert not path.name.startswith("."), f"temp file left behind: {path}"
    for path in out.iterdir():
        assert read_image(path).pixels.shape == read_image(photos[0]).pixels.shape


def _one_result_per_input(stdout: str, photos: list[Path]) -> dict[str, dict]:
    lines = _json_lines(stdout)
    by_input = {line["input"]: line for line in lines[:-1]}
    assert len(by_input) == len(lines) - 1 == len(photos) and set(by_input) == {str(p) for p in photos}
    assert lines[-1]["type"] == "summary" and lines[-1]["total"] == len(photos)
    return by_input


def _photos(folder: Path, count: int, height: int = 96, width: int = 128) -> list[Path]:
    return [_photo(folder / f"{index:02d}.png", height, width, seed=index) for index in range(count)]


# ---------------------------------------------------------------- the same batch, the same bytes


def test_ray_writes_the_same_bytes_and_reports_as_local_with_a_damaged_file_failing_alone(
    cluster, photos: Photos, tmp_path: Path
) -> None:
    """One Ray worker thread against one local thread: PyTorch's CPU kernels round differently
    with another thread count, for either engine (see the README)."""
    folder = tmp_path / "in"
    for name, source in [("a.png", photos.colour), ("sub/g.png", photos.gray), ("sub/deeper/d16.png", photos.deep),
                         ("sub/alpha.png", photos.alpha), ("c.jpg", photos.jpeg), ("d.tif", photos.deep_tiff)]:
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        (folder / name).write_bytes(source.read_bytes())
    (folder / "sub" / "broken.png").write_bytes(photos.colour.read_bytes()[:200])

    runs = {engine: _restore(folder, "-r", "-o", tmp_path / engine, "--json", "--quiet", engine=engine) for engine in ("local", "ray")}

    assert runs["ray"].exit_code == runs["local"].exit_code == 1
    assert runs["ray"].stderr == runs["local"].stderr  # the one error line, nothing from Ray
    assert_one_line_error(runs["ray"], 1, str(folder / "sub" / "broken.png"))
    reports = {}
    for engine, run in runs.items():
        lines = _json_lines(run.stdout)
        reports[engine] = [  # in job order, whichever engine ran (Ray's finish in any order)
            {**line, "seconds": 0, "memory_budget": None, "output": Path(line["output"]).relative_to(tmp_path / engine).as_posix()}
            for line in lines[:-1]
        ]
        budgets = {line["memory_budget"] for line in lines[:-1] if line["status"] == "ok"}
        assert budgets == {None} if engine == "local" else None not in budgets and min(budgets) > 2**20
        assert lines[-1] | {"seconds": 0} == {
            "schema": 1, "type": "summary", "command": "run", "status": "failed", "exit_code": 1,
            "total": 7, "ok": 6, "skipped": 0, "failed": 1, "seconds": 0,
        }  # fmt: skip
    assert reports["ray"] == reports["local"]
    written = sorted(p.relative_to(tmp_path / "local") for p in (tmp_path / "local").rglob("*") if p.is_file())
    assert len(written) == 6
    assert sorted(p.relative_to(tmp_path / "ray") for p in (tmp_path / "ray").rglob("*") if p.is_file()) == written
    for relative in written:
        assert (tmp_path / "ray" / relative).read_bytes() == (tmp_path / "local" / relative).read_bytes(), relative


# ---------------------------------------------------------------- faults


def _busy_workers() -> list[psutil.Process]:
    """Restore workers in the middle of an image, found by the title Ray gives actor processes
    while they run a method (`ray::Worker.process`)."""
    found = []
    for process in psutil.process_iter(["cmdline"]):
        cmdline = process.info["cmdline"] or []
        if cmdline and cmdline[0].startswith("ray::Worker.process"):
            found.append(process)
    return found


def test_a_worker_killed_mid_batch_loses_nothing(cluster, tmp_path: Path) -> None:
    photos = _photos(tmp_path / "in", 16)
    out = tmp_path / "out"
    thread, outcome = _in_background(tmp_path / "in", "-o", out, "--json", "--workers", "2")
    _wait_for(_has_outputs(out), running=thread.is_alive)
    busy = _busy_workers()
    assert busy, "no worker was restoring an image"
    busy[0].send_signal(signal.SIGKILL)
    thread.join(TIMEOUT)

    (result,) = outcome
    assert result.exit_code == 0, result.output
    by_input = _one_result_per_input(result.stdout, photos)
    assert {line["status"] for line in by_input.values()} == {"ok"}
    assert len(list(out.iterdir())) == len(photos)
    _assert_whole_outputs_only(out, photos)


def test_ctrl_c_exits_130_reporting_every_whole_file_and_skip_existing_finishes(cluster, tmp_path: Path) -> None:
    photos = _photos(tmp_path / "in", 16)
    inputs = _digests(photos)
    out = tmp_path / "out"
    process = _subprocess(
        "run", "--weights", RGB_WITHBIAS, tmp_path / "in", "-o", out, "--engine", "ray", "--ray-address", cluster.address, "--json"
    )
    _wait_for(_has_outputs(out), running=lambda: process.poll() is None)
    process.send_signal(signal.SIGINT)
    stdout, stderr = process.communicate(timeout=TIMEOUT)

    assert process.returncode == 130, stderr.decode()
    assert b"interrupted after" in stderr and b"Traceback" not in stderr
    _assert_whole_outputs_only(out, photos)
    finished = _digests(sorted(out.iterdir()))
    assert 1 <= len(finished) < len(photos)
    lines = _json_lines(stdout.decode())
    assert lines[-1]["status"] == "interrupted" and lines[-1]["ok"] == len(finished)  # every output on disk is counted
    assert sorted(Path(line["output"]) for line in lines[:-1] if line["status"] == "ok") == sorted(finished)

    resumed = _restore(tmp_path / "in", "-o", out, "--skip-existing", "--json")
    assert resumed.exit_code == 0, resumed.output
    statuses = [line["status"] for line in _one_result_per_input(resumed.stdout, photos).values()]
    assert statuses.count("skipped") == len(finished) and statuses.count("ok") == len(photos) - len(finished)
    assert _digests(list(finished)) == finished and len(list(out.iterdir())) == len(photos)
    assert _digests(photos) == inputs


def test_ctrl_c_after_the_last_image_is_not_an_interruption(cluster, tmp_path: Path) -> None:
    """The SIGINT arrives once every image is reported, while Ray shuts down: the batch is done."""
    photos = _photos(tmp_path / "in", 3)
    process = _subprocess(
        "run", "--weights", RGB_WITHBIAS, tmp_path / "in", "-o", tmp_path / "out", "--engine", "ray", "--json",
        "--ray-address", cluster.address,
    )  # fmt: skip
    assert process.stdout is not None
    lines = [json.loads(process.stdout.readline()) for _ in photos]
    process.send_signal(signal.SIGINT)
    rest, stderr = process.communicate(timeout=TIMEOUT)

    assert process.returncode == 0, stderr.decode()
    assert [line["status"] for line in lines] == ["ok"] * len(photos)
    assert [json.loads(line)["status"] for line in rest.decode().splitlines()] == ["done"]
    assert b"interrupted" not in stderr


def test_a_node_removed_mid_batch_leaves_the_batch_to_the_other_nodes(cluster, tmp_path: Path) -> None:
    """Three one-CPU workers fill the head (2 CPUs) and a second node (1 CPU), which goes away;
    its worker's replacement finds no room, so the head's two workers finish the batch."""
    node = cluster.add_node(num_cpus=1)
    cluster.wait_for_nodes()
    photos = _photos(tmp_path / "in", 24)
    out = tmp_path / "out"
    thread, outcome = _in_background(tmp_path / "in", "-o", out, "--json", "--workers", "3")
    _wait_for(lambda: len(_busy_workers()) == 3, running=thread.is_alive)  # the node's worker among them
    cluster.remove_node(node)
    thread.join(TIMEOUT)

    (result,) = outcome
    assert result.exit_code == 0, result.output
    assert {line["status"] for line in _one_result_per_input(result.stdout, photos).values()} == {"ok"}
    assert len(list(out.iterdir())) == len(photos)
    _assert_whole_outputs_only(out, photos)


def test_workers_the_cluster_cannot_hold_are_one_error_not_a_wait(cluster, tmp_path: Path) -> None:
    _photo(tmp_path / "in" / "a.png")
    result = _restore(tmp_path / "in", "-o", tmp_path / "out", "--gpus-per-worker", "1")
    assert_one_line_error(result, 1, "CPUs and 0 GPUs, too few for one worker", "--gpus-per-worker 1")
    assert not (tmp_path / "out").exists()


# ---------------------------------------------------------------- options, and Ray kept out of the local path


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--workers", "2"], "--workers applies to --engine ray only"),
        (["--engine", "ray", "--device", "cuda"], "--gpus-per-worker"),
        (["--engine", "ray", "--cpus-per-worker", "0"], "--cpus-per-worker must be more than 0"),
        (["--engine", "ray", "-o", "-"], "- (stdin/stdout) needs --engine local"),
    ],
)
def test_contradictory_engine_options_are_usage_errors(photos: Photos, args: list[str], message: str) -> None:
    pytest.importorskip("ray", reason="Ray is not installed")
    result = _invoke("run", "--weights", RGB_WITHBIAS, photos.colour, *args)
    assert_one_line_error(result, 2, message)


def test_without_ray_the_ray_engine_is_a_usage_error_naming_the_extra(photos: Photos, monkeypatch) -> None:
    monkeypatch.setitem(sys.modules, "ray", None)  # what `import ray` meets where it is not installed
    monkeypatch.delitem(sys.modules, "restore_cli.batch.ray_executor", raising=False)
    monkeypatch.delattr(restore_cli.batch, "ray_executor", raising=False)
    result = _invoke("run", "--weights", RGB_WITHBIAS, photos.colour, "--engine", "ray")
    assert_one_line_error(result, 2, 'pip install "restore-cli[ray]"')


def test_the_package_and_the_local_engine_never_import_ray(photos: Photos, tmp_path: Path) -> None:
    script = (
        "import sys\n"
        "from restore_cli.cli.app import entry_point\n"
        f"sys.argv = ['restore', 'run', '--weights', {str(RGB_WITHBIAS)!r}, {str(photos.colour)!r}, '-o', {str(tmp_path / 'o.png')!r}]\n"
        "try:\n"
        "    entry_point()\n"
        "except SystemExit as done:\n"
        "    assert done.code == 0, done.code\n"
        "assert not [name for name in sys.modules if name == 'ray' or name.startswith('ray.')], 'ray was imported'\n"
    )
    completed = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=TIMEOUT)
    assert completed.returncode == 0, completed.stderr
    assert (tmp_path / "o.png").is_file()


# ---------------------------------------------------------------- the cluster lost, memory, an unreachable address

def _only_our_lines(stderr: str) -> list[str]:
    """Every stderr line is one `restore` writes (a batch's log line or an error): Ray's own
    (timestamps, `core_worker.cc:609:`) are none of them. Returns the errors."""
    lines = stderr.splitlines()
    assert [line for line in lines if not (LOG_LINE.fullmatch(line) or line.startswith("error: "))] == []
    assert not re.search(r"\.cc:\d+|\b[0-9a-f]{24,}\b|\bIP\b|Traceback", stderr)  # no Ray text, node IDs or addresses
    return [line for line in lines if line.startswith("error: ")]


def test_the_cluster_lost_mid_batch_gives_every_input_a_result_and_the_command_to_resume(
    cluster, tmp_path: Path, monkeypatch
) -> None:
    """A local Ray instance of its own (no RAY_ADDRESS), whose node dies with its agent: Ray
    ends its driver outright. Then the command `restore` names finishes the batch, on the
    shared cluster (RAY_ADDRESS), leaving the outputs already written untouched."""
    photos = _photos(tmp_path / "in", 12)
    out = tmp_path / "out"
    with monkeypatch.context() as without_address:
        without_address.delenv("RAY_ADDRESS")
        process = _subprocess("run", "--weights", RGB_WITHBIAS, tmp_path / "in", "-o", out, "--engine", "ray", "--json")
    _wait_for(_has_outputs(out), running=lambda: process.poll() is None)
    agents = [p for p in psutil.Process(process.pid).children(recursive=True) if "DashboardAgent" in " ".join(p.cmdline())]
    assert agents, "the local Ray instance has no node agent to kill"
    agents[0].kill()
    killed = time.monotonic()
    stdout, stderr = process.communicate(timeout=TIMEOUT)

    assert process.returncode == 1 and time.monotonic() - killed < 60
    by_input = _one_result_per_input(stdout.decode(), photos)  # stdout is JSON lines only, summary last
    lost = {name: line for name, line in by_input.items() if line["status"] == "failed"}
    assert lost and {line["failure"] for line in lost.values()} == {"cluster"}
    assert all("not restored: the connection to the Ray cluster was lost" in line["error"] for line in lost.values())
    finished = _digests(sorted(out.iterdir()))
    assert sorted(Path(line["output"]) for line in by_input.values() if line["status"] == "ok") == sorted(finished)
    _assert_whole_outputs_only(out, photos)
    (message,) = _only_our_lines(stderr.decode())
    assert f"{len(lost)} of {len(photos)} input(s) not restored, {len(finished)} restored" in message
    resume = re.search(r"finish the batch with `(restore [^`]*--skip-existing)`$", message)
    assert resume is not None, message

    resumed = _invoke(*shlex.split(resume.group(1))[1:])
    assert resumed.exit_code == 0, resumed.output
    statuses = [line["status"] for line in _one_result_per_input(resumed.stdout, photos).values()]
    assert statuses.count("skipped") == len(finished) and statuses.count("ok") == len(lost)
    assert _digests(list(finished)) == finished


def test_workers_killed_for_memory_every_time_end_the_batch_with_a_result_per_input(tmp_path: Path, monkeypatch) -> None:
    """Ray's memory monitor made strict for a Ray instance of this test's own: every worker is
    killed as it starts."""
    pytest.importorskip("ray", reason="Ray is not installed")
    photos = _photos(tmp_path / "in", 3)
    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    monkeypatch.setenv("RAY_memory_usage_threshold", "0.01")
    started = time.monotonic()
    result = _restore(tmp_path / "in", "-o", tmp_path / "out", "--json", "--workers", "1")

    assert result.exit_code == 1 and time.monotonic() - started < TIMEOUT
    by_input = _one_result_per_input(result.stdout, photos)
    assert {line["status"] for line in by_input.values()} == {"failed"}
    assert all("killed for memory" in line["error"] for line in by_input.values())
    (message,) = _only_our_lines(result.stderr)
    assert "every Ray worker was killed for memory; lower --workers or --max-memory" in message
    assert not (tmp_path / "out").exists() or not list((tmp_path / "out").iterdir())


def test_an_image_whose_worker_is_killed_for_memory_is_retried_with_half_the_memory(
    cluster, tmp_path: Path, monkeypatch
) -> None:
    """The test hook makes the first attempt at one image raise Ray's OutOfMemoryError, as a
    worker killed by the memory monitor does; the other images are not touched."""
    photos = _photos(tmp_path / "in", 4)
    monkeypatch.setenv("RESTORE_TEST_KILLED_FOR_MEMORY", str(photos[1]))
    runs = {engine: _restore(tmp_path / "in", "-o", tmp_path / engine, "--json", engine=engine) for engine in ("local", "ray")}

    assert runs["ray"].exit_code == runs["local"].exit_code == 0, runs["ray"].output
    _only_our_lines(runs["ray"].stderr)
    lines = list(_one_result_per_input(runs["ray"].stdout, photos).values())
    retried, others = lines[1], [lines[0], *lines[2:]]
    assert retried["status"] == "ok" and retried["attempts"] == 2
    assert {line["attempts"] for line in others} == {1}
    assert retried["memory_budget"] < 0.75 * min(line["memory_budget"] for line in others)
    for photo in photos:
        assert (tmp_path / "ray" / photo.name).read_bytes() == (tmp_path / "local" / photo.name).read_bytes()


@pytest.fixture
def silent_port():
    """A port that accepts connections and never answers, as a wrong service or a firewall would."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        yield listener.getsockname()[1]


def test_an_unreachable_cluster_is_one_line_within_the_bound(tmp_path: Path, silent_port: int, monkeypatch) -> None:
    pytest.importorskip("ray", reason="Ray is not installed")
    _photo(tmp_path / "in" / "a.png")
    monkeypatch.setenv("RESTORE_RAY_CONNECT_TIMEOUT", "3")
    started = time.monotonic()
    result = _restore(tmp_path / "in", "-o", tmp_path / "out", "--json", "--ray-address", f"127.0.0.1:{silent_port}")
    assert time.monotonic() - started < 20
    assert_one_line_error(result, 2, f"cannot reach the Ray cluster at 127.0.0.1:{silent_port}", "(waited 3 s)", "--ray-address")
    assert result.stdout == "" and not (tmp_path / "out").exists()

    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]
    refused = _restore(tmp_path / "in", "-o", tmp_path / "out", "--ray-address", f"127.0.0.1:{port}")
    assert_one_line_error(refused, 2, f"cannot reach the Ray cluster at 127.0.0.1:{port}: connection refused")
# ---------------------------------------------------------------- videos


def test_a_video_spread_over_ray_workers_is_the_same_file_as_restored_locally(cluster, tmp_path: Path) -> None:
    """Two workers take one segment each (each decodes its own from the shared path); the
    driver joins them into the same bytes the local engine writes."""
    from tests.video_clips import Clip, make_clip

    clip = make_clip(tmp_path / "clip.mp4", Clip(frames=24, audio=True))  # two segments of 12 frames
    runs = {
        engine: _restore(clip, "-o", tmp_path / f"{engine}.mp4", "--json", "--quiet", *options, engine=engine)
        for engine, options in (("local", ()), ("ray", ("--workers", "2")))
    }

    for engine, run in runs.items():
        assert run.exit_code == 0, run.output
        (line,) = _json_lines(run.stdout)[:-1]
        assert (line["type"], line["frames"], line["output"]) == ("video", 24, str(tmp_path / f"{engine}.mp4"))
    assert (tmp_path / "ray.mp4").read_bytes() == (tmp_path / "local.mp4").read_bytes()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["clip.mp4", "local.mp4", "ray.mp4"]  # work folders gone


def test_an_onnx_model_on_ray_writes_the_same_bytes_as_locally(cluster, tiny_onnx, tmp_path: Path) -> None:
    """The driver checks the graph and ships its bytes; each worker builds its own session."""
    folder = tmp_path / "in"
    _photos(folder, 2)
    runs = {
        engine: _invoke("run", "--weights", tiny_onnx.path, folder, "-o", tmp_path / engine, "--engine", engine, "--quiet")
        for engine in ("local", "ray")
    }
    assert runs["ray"].exit_code == runs["local"].exit_code == 0, runs["ray"].output
    assert sorted(path.name for path in (tmp_path / "ray").iterdir()) == ["00.png", "01.png"]
    for path in (tmp_path / "local").iterdir():
        assert (tmp_path / "ray" / path.name).read_bytes() == path.read_bytes(), path.name
