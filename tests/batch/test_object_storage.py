"""URLs as inputs and outputs (``s3://``), against a real S3 server started once per session.

The server is SeaweedFS (`tests/s3_server.py`) on 127.0.0.1; `restore` finds it the standard
way, through AWS_ENDPOINT_URL and the AWS credential variables. Every batch here is compared
with the same batch on local paths: the store must change where bytes live, nothing else.
"""

from __future__ import annotations

import importlib
import logging
import signal
import sys
import threading
import time
from pathlib import Path

import pytest

from restore_cli.batch.local import run_local
from restore_cli.batch.planning import Naming, plan_jobs
from restore_cli.io import storage, stores
from tests.batch.test_batch import _invert, _pipeline
from tests.batch.test_ray_engine import TIMEOUT, _busy_workers, _photos
from tests.cli.test_hardening_cli import _photo
from tests.cli.test_tasks import RGB_WITHBIAS, Photos, _invoke, _json_lines, _subprocess, one_thread, photos  # noqa: F401
from tests.cli_assertions import assert_one_line_error
from tests.s3_server import FORBIDDEN_BUCKET, Bucket, SeaweedS3

TREE = {"a.png": "colour", "sub/g.png": "gray", "sub/deeper/d16.png": "deep", "sub/alpha.png": "alpha", "c.jpg": "jpeg", "d.tif": "deep_tiff"}


def _restore(*args: str | Path, stdin: bytes | None = None, engine: str = "local"):
    return _invoke("run", "--weights", RGB_WITHBIAS, "--engine", engine, *args, stdin=stdin)


def _tree(photos: Photos, folder: Path) -> Path:
    """Colour, gray, 16-bit PNG and TIFF, alpha and JPEG, in nested folders."""
    for name, kind in TREE.items():
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        (folder / name).write_bytes(getattr(photos, kind).read_bytes())
    return folder


def _files(folder: Path) -> dict[str, bytes]:
    return {path.relative_to(folder).as_posix(): path.read_bytes() for path in folder.rglob("*") if path.is_file()}


def _local_batch(folder: Path, out: Path, *args: str) -> dict[str, bytes]:
    result = _restore(folder, "-r", "-o", out, "--quiet", *args)
    assert result.exit_code == 0, result.output
    return _files(out)


# ---------------------------------------------------------------- the same batch, in the store


def test_a_tree_in_the_store_comes_out_byte_identical_to_the_same_batch_on_local_paths(
    bucket: Bucket, photos: Photos, tmp_path: Path
) -> None:
    tree = _tree(photos, tmp_path / "in")
    expected = _local_batch(tree, tmp_path / "out")
    bucket.upload(tree, "in")

    result = _restore(bucket.url("in"), "-r", "-o", bucket.url("out") + "/", "--json", "--quiet")

    assert result.exit_code == 0 and result.stderr == "", result.output
    assert bucket.objects("out") == expected  # 16-bit, alpha, gray, metadata: the same bytes
    assert bucket.fs.info(f"{bucket.prefix}/out/c.jpg")["ContentType"] == "image/jpeg"
    lines = _json_lines(result.stdout)
    assert {(line["input"], line["output"], line["status"]) for line in lines[:-1]} == {
        (bucket.url("in", name), bucket.url("out", name), "ok") for name in TREE
    }
    assert lines[-1]["ok"] == len(TREE) and lines[-1]["exit_code"] == 0

    mixed = _restore(bucket.url("in", "sub", "g.png"), "-o", tmp_path / "g.png")  # store in, local out
    assert mixed.exit_code == 0 and (tmp_path / "g.png").read_bytes() == expected["sub/g.png"]
    listed = _restore("--files-from", "-", "-o", bucket.url("listed") + "/", stdin=f"{bucket.url('in', 'c.jpg')}\n{tree / 'a.png'}\n".encode())
    assert listed.exit_code == 0 and bucket.objects("listed") == {"c.jpg": expected["c.jpg"], "a.png": expected["a.png"]}
    beside = _restore(bucket.url("in", "d.tif"))  # no -o: next to the input, in the bucket
    assert beside.exit_code == 0 and bucket.objects("in")["d_restored.tif"] == expected["d.tif"]
    globbed = _restore(bucket.url("in", "*", "*.png"), "-o", bucket.url("globbed") + "/")
    assert globbed.exit_code == 0 and bucket.objects("globbed") == {"g.png": expected["sub/g.png"], "alpha.png": expected["sub/alpha.png"]}


def test_a_missing_key_a_forbidden_bucket_and_a_damaged_object_each_fail_alone(
    bucket: Bucket, s3_server: SeaweedS3, photos: Photos
) -> None:
    good = bucket.put("in/good.png", photos.colour.read_bytes())
    damaged = bucket.put("in/damaged.png", photos.colour.read_bytes()[:200])
    forbidden = f"s3://{FORBIDDEN_BUCKET}/{bucket.prefix}/x.png"
    s3_server.client().pipe(forbidden.removeprefix("s3://"), photos.colour.read_bytes())  # there, but not for this user
    missing = bucket.url("in", "missing.png")

    result = _restore(good, missing, forbidden, damaged, "-o", bucket.url("out") + "/", "--json")

    assert result.exit_code == 1
    by_input = {line["input"]: line for line in _json_lines(result.stdout)[:-1]}
    assert by_input[good]["status"] == "ok" and bucket.keys("out") == ["good.png"]
    reasons = {missing: "no such object or bucket", forbidden: "access denied", damaged: "cannot decode image"}
    errors = [line for line in result.stderr.splitlines() if line.startswith("error: ")]
    assert len(errors) == 3 and "Traceback" not in result.output
    for url, reason in reasons.items():
        assert by_input[url]["status"] == "failed" and reason in by_input[url]["error"], by_input[url]
        assert any(url in line and reason in line for line in errors)


def test_wrong_credentials_fail_each_file_and_no_secret_is_ever_shown(bucket: Bucket, photos: Photos) -> None:
    source = bucket.put("in/a.png", photos.colour.read_bytes())
    secret = "wrong-secret-do-not-print"
    result = _restore(source, "-o", bucket.url("out.png"), "--json", "--storage-option", "key=restore-test-user",
                      "--storage-option", f"secret={secret}", "--debug")  # fmt: skip
    assert_one_line_error(result, 1, source, "access denied")
    assert secret not in result.output and secret not in result.stderr
    assert bucket.keys("") == ["in/a.png"]


def test_skip_existing_learns_what_exists_from_one_listing_not_a_request_per_output(bucket: Bucket, photos: Photos, tmp_path: Path) -> None:
    names = [f"{folder}{index}.png" for folder in ("", "x/", "x/y/") for index in range(3)]
    for index, name in enumerate(names):
        _photo(tmp_path / "in" / name, seed=index)
    bucket.upload(tmp_path / "in", "in")
    for name in names[:-2]:
        bucket.put(f"out/{name}", b"an earlier output")
    calls = _count_s3_requests()

    result = _restore(bucket.url("in"), "-r", "-o", bucket.url("out"), "--skip-existing", "--json")

    assert result.exit_code == 0, result.output
    statuses = [line["status"] for line in _json_lines(result.stdout)[:-1]]
    assert statuses.count("skipped") == len(names) - 2 and statuses.count("ok") == 2
    assert bucket.objects("out")[names[0]] == b"an earlier output"
    assert calls.count("HeadObject") <= 4 and calls.count("ListObjectsV2") <= 4, calls  # not one per output
    assert calls.count("PutObject") == 2


def _count_s3_requests() -> list[str]:
    """Every S3 operation restore's client (fsspec's shared s3fs instance) sends from now on."""
    import fsspec

    calls: list[str] = []
    fs = fsspec.filesystem("s3")
    fs.connect()
    fs.s3.meta.events.register("before-call.s3", lambda model, **kwargs: calls.append(model.name))
    return calls


def test_a_big_object_is_fetched_in_ranges_through_a_temporary_file(bucket: Bucket, monkeypatch: pytest.MonkeyPatch) -> None:
    """With the one-request limit lowered to 1000 bytes, a 5500-byte object comes in 6 ranges
    and back whole: a big TIFF streams rather than passing through memory twice."""
    data = bytes(range(256)) * 21 + b"end"
    url = bucket.put("big.bin", data[:5500])
    monkeypatch.setattr(storage, "_IN_ONE_GO", 1000)
    calls = _count_s3_requests()
    assert storage.read_bytes(url) == data[:5500]
    assert calls.count("GetObject") == 6


# ---------------------------------------------------------------- interruptions and outages


def test_ctrl_c_leaves_only_whole_objects_and_skip_existing_finishes(bucket: Bucket, s3_server: SeaweedS3, tmp_path: Path) -> None:
    photos = _photos(tmp_path / "in", 16, 96, 128)
    expected = _local_batch(tmp_path / "in", tmp_path / "out")
    bucket.upload(tmp_path / "in", "in")
    process = _subprocess("run", "--weights", RGB_WITHBIAS, bucket.url("in"), "-o", bucket.url("out"))  # the variables: inherited
    _wait_for(lambda: bucket.keys("out"), running=lambda: process.poll() is None)
    process.send_signal(signal.SIGINT)
    _, stderr = process.communicate(timeout=TIMEOUT)

    assert process.returncode == 130, stderr.decode()
    finished = bucket.objects("out")
    assert 1 <= len(finished) < len(photos)
    assert all(expected[key] == data for key, data in finished.items())  # whole, and nothing else
    assert bucket.uploads_in_progress() == []

    resumed = _restore(bucket.url("in"), "-o", bucket.url("out"), "--skip-existing", "--json")
    assert resumed.exit_code == 0, resumed.output
    statuses = [line["status"] for line in _json_lines(resumed.stdout)[:-1]]
    assert statuses.count("skipped") == len(finished) and statuses.count("ok") == len(photos) - len(finished)
    assert bucket.objects("out") == expected


def test_a_server_restarted_mid_batch_is_survived_by_retries(bucket: Bucket, s3_server: SeaweedS3, tmp_path: Path) -> None:
    for index in range(8):
        _photo(tmp_path / "in" / f"{index}.png", seed=index)
    bucket.upload(tmp_path / "in", "in")
    jobs = plan_jobs([bucket.url("in")], Naming("restored", output=bucket.url("out") + "/"))
    restarts: list[threading.Thread] = []

    def outage_after_the_first_image(result) -> None:
        if not restarts:
            s3_server.stop()  # down now, for the next reads and writes; back in a few seconds
            restarts.append(threading.Thread(target=s3_server.restart, kwargs={"down_for": 1.0}))
            restarts[0].start()

    results = run_local(jobs, _pipeline(_invert()), outage_after_the_first_image)
    restarts[0].join()

    assert [result.status for result in results] == ["ok"] * 8, [result.error for result in results]
    local = plan_jobs([str(tmp_path / "in")], Naming("restored", output=str(tmp_path / "out")))
    run_local(local, _pipeline(_invert()), lambda result: None)
    assert bucket.objects("out") == _files(tmp_path / "out")


def test_only_transient_store_errors_are_retried() -> None:
    from botocore.exceptions import EndpointConnectionError, NoCredentialsError

    assert stores.is_transient(EndpointConnectionError(endpoint_url="http://127.0.0.1:1"))
    assert stores.is_transient(OSError(121, "We encountered an internal error, please try again."))  # S3 500
    assert stores.is_transient(OSError(16, "Please reduce your request rate."))  # S3 503 SlowDown
    assert stores.is_transient(TimeoutError())
    for permanent in (FileNotFoundError("b/k"), PermissionError("Access Denied"), OSError(22, "InvalidBucketName"), NoCredentialsError()):
        assert not stores.is_transient(permanent)


# ---------------------------------------------------------------- Ray workers on the store


@pytest.fixture(scope="module")
def cluster_with_s3(s3_server: SeaweedS3):
    """A Ray cluster whose worker processes get the S3 variables, as a node configured for its
    store would (workers inherit the raylet's environment)."""
    ray = pytest.importorskip("ray", reason='Ray is not installed (pip install -e ".[test]" installs it)')
    from ray.cluster_utils import Cluster

    with pytest.MonkeyPatch.context() as patch:
        for name, value in s3_server.environment().items():
            patch.setenv(name, value)
        cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 2})
    ray.init(address=cluster.address, log_to_driver=False, logging_level=logging.ERROR)
    yield cluster
    ray.shutdown()
    cluster.shutdown()


def test_ray_workers_read_and_write_the_store_directly_and_a_killed_one_leaves_no_partial_object(
    cluster_with_s3, bucket: Bucket, photos: Photos, tmp_path: Path
) -> None:
    """The tree of every kind of photo, and enough plain ones to be mid-batch when a busy worker
    is SIGKILLed: the outputs are the local engine's bytes, with no partial or temporary object
    and no multipart upload left behind, and every input has exactly one result."""
    tree = _tree(photos, tmp_path / "in")
    plain = _photos(tmp_path / "in" / "plain", 12)
    expected = _local_batch(tree, tmp_path / "out")
    bucket.upload(tree, "in")
    bucket.put("in/sub/broken.png", photos.colour.read_bytes()[:200])
    outcome: list = []
    args = (bucket.url("in"), "-r", "-o", bucket.url("out"), "--json", "--quiet", "--workers", "2")
    thread = threading.Thread(target=lambda: outcome.append(_restore(*args, engine="ray")), daemon=True)
    thread.start()
    _wait_for(lambda: bucket.keys("out"), running=thread.is_alive)
    busy = _busy_workers()
    assert busy, "no worker was restoring an image"
    busy[0].send_signal(signal.SIGKILL)
    thread.join(TIMEOUT)

    (result,) = outcome
    assert_one_line_error(result, 1, bucket.url("in", "sub", "broken.png"), "cannot decode image")
    assert bucket.objects("out") == expected
    assert bucket.uploads_in_progress() == []
    lines = _json_lines(result.stdout)[:-1]
    inputs = [*TREE, *(f"plain/{photo.name}" for photo in plain), "sub/broken.png"]
    assert sorted(line["input"] for line in lines) == sorted(bucket.url("in", name) for name in inputs)


def _wait_for(condition, running) -> None:
    deadline = time.monotonic() + TIMEOUT
    while running() and not condition() and time.monotonic() < deadline:
        time.sleep(0.05)


# ---------------------------------------------------------------- set-up errors, without a server


def test_a_url_whose_extra_is_missing_is_one_line_naming_it(photos: Photos, monkeypatch: pytest.MonkeyPatch) -> None:
    registry = importlib.import_module("fsspec.registry")  # the module: fsspec.registry is its mapping
    monkeypatch.setitem(sys.modules, "s3fs", None)  # what `import s3fs` meets where it is not installed
    monkeypatch.delitem(registry._registry, "s3", raising=False)
    result = _restore("s3://bucket/a.png", "-o", "s3://bucket/out/")
    assert_one_line_error(result, 2, "s3://bucket/a.png", 'pip install "restore-cli[s3]"')


@pytest.mark.parametrize(
    ("args", "shown", "hidden"),
    [
        (["s3://bucket/a.png", "--storage-option", "endpoint_url"], "--storage-option (a pair without =): give KEY=VALUE", None),
        (["s3://AKIAEXAMPLE:very-secret@bucket/a.png"], "s3://***@bucket/a.png: a password in a URL", "very-secret"),
    ],
)
def test_storage_settings_that_cannot_work_are_usage_errors(args: list[str], shown: str, hidden: str | None) -> None:
    pytest.importorskip("s3fs")
    result = _restore(*args)
    assert_one_line_error(result, 2, shown)
    assert hidden is None or hidden not in result.output
