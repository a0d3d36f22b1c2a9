"""What only a real process shows: a full disk, signals mid-batch, two runs racing on one folder.

Each test starts `python -m restore_cli` with the tiny golden weights and one thread, and
checks the files left behind: whole outputs only, no temp files, inputs byte-identical.
"""

from __future__ import annotations

import resource
import signal
import time
from pathlib import Path

import numpy as np
import pytest

from restore_cli.io.decode import read_image
from tests.cli.test_hardening_cli import _digests, _photo, _restore
from tests.cli.test_tasks import RGB_WITHBIAS, _json_lines, _subprocess, one_thread  # noqa: F401

TIMEOUT = 120


def _folder_of_photos(folder: Path, count: int, height: int, width: int) -> list[Path]:
    return [_photo(folder / f"{index:02d}.png", height, width, seed=index) for index in range(count)]


def _start(*args: str | Path, **options):
    return _subprocess("run", "--weights", RGB_WITHBIAS, *args, **options)


def _assert_only_whole_outputs(out: Path, height: int, width: int) -> None:
    for path in out.iterdir():
        assert not path.name.startswith("."), f"temp file left behind: {path.name}"
        assert read_image(path).pixels.shape == (height, width, 3)


def _small_file_limit(limit: int):
    """RLIMIT_FSIZE stands in for a full disk: writes past it fail with EFBIG. SIGXFSZ, which
    would otherwise kill the process, is ignored so the write error reaches restore."""

    def apply() -> None:
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)

    return apply


def test_a_full_disk_fails_only_the_files_that_do_not_fit_and_leaves_no_partial_file(tmp_path: Path) -> None:
    small = _photo(tmp_path / "in" / "small.png", 8, 8)
    big = _photo(tmp_path / "in" / "big.png", 64, 64, seed=1)  # ~12 kB of noise: over the limit
    out = tmp_path / "out"
    process = _start(tmp_path / "in", "-o", out, "--quiet", preexec_fn=_small_file_limit(4096))
    _, stderr = process.communicate(timeout=TIMEOUT)
    assert process.returncode == 1, stderr.decode()
    assert stderr.decode().splitlines() == [
        f"error: {big}: {out / 'big.png'}: cannot write ([Errno 27] File too large); "
        "free some disk space (or lift the file size limit)"
    ]
    assert sorted(path.name for path in out.iterdir()) == ["small.png"]
    assert read_image(out / "small.png").pixels.shape == read_image(small).pixels.shape


@pytest.mark.parametrize(("sent", "code"), [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_an_interrupted_batch_keeps_whole_outputs_and_skip_existing_finishes_it(tmp_path: Path, sent, code) -> None:
    photos = _folder_of_photos(tmp_path / "in", 16, 96, 128)
    inputs = _digests(photos)
    out = tmp_path / "out"
    process = _start(tmp_path / "in", "-o", out, "--tile", "0")
    deadline = time.monotonic() + TIMEOUT
    while process.poll() is None and not (out.is_dir() and any(out.glob("*.png"))) and time.monotonic() < deadline:
        time.sleep(0.02)
    process.send_signal(sent)
    _, stderr = process.communicate(timeout=TIMEOUT)

    assert process.returncode == code, stderr.decode()
    assert b"Traceback" not in stderr
    _assert_only_whole_outputs(out, 96, 128)
    finished = _digests(sorted(out.iterdir()))
    assert 1 <= len(finished) < len(photos)

    resumed = _restore(tmp_path / "in", "-o", out, "--skip-existing", "--json")
    assert resumed.exit_code == 0, resumed.stderr
    statuses = [line["status"] for line in _json_lines(resumed.stdout)[:-1]]
    assert statuses.count("skipped") == len(finished) and statuses.count("ok") == len(photos) - len(finished)
    assert len(list(out.iterdir())) == len(photos)
    assert _digests(list(finished)) == finished  # what the first run wrote was kept as it was
    assert _digests(photos) == inputs


def test_two_runs_racing_on_one_output_folder_leave_every_output_whole(tmp_path: Path) -> None:
    photos = _folder_of_photos(tmp_path / "in", 12, 48, 64)
    inputs = _digests(photos)
    out = tmp_path / "out"
    runs = [_start(tmp_path / "in", "-o", out, "--skip-existing", "--json", "--quiet") for _ in range(2)]
    reports = [run.communicate(timeout=TIMEOUT) for run in runs]

    for run, (stdout, stderr) in zip(runs, reports):
        assert run.returncode == 0 and stderr == b"", stderr.decode()
        assert {line["status"] for line in _json_lines(stdout.decode())[:-1]} <= {"ok", "skipped"}
    _assert_only_whole_outputs(out, 48, 64)
    reference = tmp_path / "reference"
    assert _restore(tmp_path / "in", "-o", reference).exit_code == 0
    for photo in photos:
        raced, alone = read_image(out / photo.name).pixels, read_image(reference / photo.name).pixels
        np.testing.assert_allclose(raced, alone, atol=1 / 255 + 1e-6)
    assert _digests(photos) == inputs
