"""`restore models ...` end to end: real downloads from the local fake Hub, via Typer's runner."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from restore_cli.cli.models import models_app
from restore_cli.model import cache, manifest
from restore_cli.model import zoo as model_zoo
from tests.cli_assertions import assert_one_line_error
from tests.conftest import PINNED, RELEASE_ONLY, UNPINNED, Zoo

runner = CliRunner()


def _run(*args: str):
    return runner.invoke(models_app, list(args))


def _assert_one_line_error(result, code: int) -> None:
    assert_one_line_error(result, code)
    assert result.stdout == ""


@pytest.mark.usefixtures("hf_home")
def test_list_shows_every_official_model_and_the_licence() -> None:
    result = _run("list")
    assert result.exit_code == 0
    for name in manifest.load_manifest():
        assert name in result.stdout
    assert "non-commercial" in result.stdout and "Academic Public License" in result.stdout
    assert "32.92 dB (GoPro)" in result.stdout


@pytest.mark.usefixtures("hf_home")
def test_list_shows_a_paper_score_for_every_model() -> None:
    """Every official checkpoint has a published score (paper_tables.md, Tables 3-5)."""
    lines = {line.split()[0]: line for line in _run("list").stdout.splitlines()}
    names = manifest.load_manifest()
    assert all(" dB (" in lines[name] for name in names)
    assert "34.39 dB (CBSD68 σ=15)" in lines["gaussian_color_denoising_blind"]
    assert "28.00 dB (Set12 σ=50)" in lines["gaussian_gray_denoising_sigma50"]
    assert "26.66 dB (DPDD)" in lines["dual_pixel_defocus_deblurring"]


def test_list_json_reports_what_is_cached(zoo: Zoo) -> None:
    assert _run("download", PINNED, "-q").exit_code == 0
    lines = [json.loads(line) for line in _run("list", "--json").stdout.splitlines()]
    rows = {row["name"]: row for row in lines[:-1] if row["schema"] == 1 and row["type"] == "model"}
    summary = lines[-1]
    assert set(rows) == {PINNED, UNPINNED, RELEASE_ONLY}
    assert rows[PINNED]["cached"] and not rows[UNPINNED]["cached"]
    assert rows[UNPINNED]["pinned"] is False and rows[PINNED]["size"] == len(zoo.payload(PINNED))
    assert summary | {"licence_notice": ""} == {
        "schema": 1, "type": "summary", "command": "models list", "status": "done", "exit_code": 0, "total": 3,
        "licence_notice": "",
    }  # fmt: skip
    assert "non-commercial" in summary["licence_notice"]


def test_download_all_then_path_prints_only_the_path(zoo: Zoo) -> None:
    result = _run("download", "--all", "--quiet")
    assert result.exit_code == 0, result.output
    assert result.stdout == "" and f"{RELEASE_ONLY}: " in result.stderr
    shown = _run("path", RELEASE_ONLY, "--offline")
    assert shown.exit_code == 0
    assert Path(shown.stdout.strip()).read_bytes() == zoo.payload(RELEASE_ONLY)


def test_download_keeps_going_and_exits_1_when_one_fails(zoo: Zoo) -> None:
    zoo.hub.release_files.clear()  # motion_deblurring has no other source
    result = _run("download", RELEASE_ONLY, PINNED, "-q")
    assert result.exit_code == 1
    assert "could not download" in result.stderr and f"{PINNED}: " in result.stderr
    assert model_zoo.cached_path(PINNED) is not None


@pytest.mark.parametrize("args", [["download"], ["download", PINNED, "--all"], ["download", "derain"]])
def test_download_usage_errors_exit_2(zoo: Zoo, args: list[str]) -> None:
    result = _run(*args)
    assert result.exit_code == 2
    assert "Traceback" not in result.output


def test_unknown_model_is_a_one_line_usage_error(zoo: Zoo) -> None:
    _assert_one_line_error(_run("path", "derain"), code=2)


def test_path_offline_without_cache_is_a_one_line_error(zoo: Zoo) -> None:
    result = _run("path", PINNED, "--offline")
    _assert_one_line_error(result, code=1)
    assert "restore models import" in result.stderr
    assert zoo.hub.requests == []


def test_verify_reports_unpinned_models_as_unpinned(zoo: Zoo) -> None:
    assert _run("download", UNPINNED, PINNED, "-q").exit_code == 0
    result = _run("verify")
    assert result.exit_code == 0
    lines = dict(line.split(": ", 1) for line in result.stdout.splitlines())
    assert lines[UNPINNED].startswith("unpinned") and lines[PINNED].startswith("ok")
    assert lines[RELEASE_ONLY].startswith("missing")


def test_verify_exits_1_and_deletes_a_tampered_file(zoo: Zoo) -> None:
    assert _run("download", RELEASE_ONLY, "-q").exit_code == 0
    path = model_zoo.cached_path(RELEASE_ONLY)
    path.write_bytes(b"tampered")
    result = _run("verify", RELEASE_ONLY)
    assert result.exit_code == 1 and "mismatch" in result.stdout
    assert not path.exists()


def test_import_good_file_then_use_it_offline(zoo: Zoo, tmp_path: Path) -> None:
    source = tmp_path / "weights-from-usb.pth"
    source.write_bytes(zoo.payload(UNPINNED))
    sha = hashlib.sha256(zoo.payload(UNPINNED)).hexdigest()
    result = _run("import", str(source), "--name", UNPINNED, "--sha256", sha)
    assert result.exit_code == 0, result.output
    shown = _run("path", UNPINNED, "--offline")
    assert Path(shown.stdout.strip()).read_bytes() == zoo.payload(UNPINNED)


def test_import_bad_file_is_refused(zoo: Zoo, tmp_path: Path) -> None:
    source = tmp_path / "deraining.pth"
    source.write_bytes(b"wrong bytes")
    result = _run("import", str(source))
    _assert_one_line_error(result, code=1)
    assert "nothing was installed" in result.stderr
    assert model_zoo.cached_path(PINNED) is None


@pytest.mark.parametrize("name", [PINNED, RELEASE_ONLY])
def test_download_draws_a_progress_bar_on_stderr(zoo: Zoo, name: str) -> None:
    result = _run("download", name)
    assert result.exit_code == 0, result.output
    assert f"{name}.pth" in result.stderr and "kB" in result.stderr
    assert result.stdout == ""


def test_import_refuses_a_file_that_is_not_a_checkpoint_even_with_its_own_hash(zoo: Zoo, tmp_path: Path) -> None:
    notes = tmp_path / "notes.txt"
    notes.write_text("weights: see the shared drive\n")
    sha = hashlib.sha256(notes.read_bytes()).hexdigest()
    result = _run("import", str(notes), "--name", UNPINNED, "--sha256", sha)
    _assert_one_line_error(result, code=1)
    assert f"cannot import {notes}: {notes} is not a PyTorch checkpoint (it is a text file)" in result.stderr
    assert "nothing was installed" in result.stderr
    assert model_zoo.cached_path(UNPINNED) is None
    assert list((cache.zoo_dir() / "models").iterdir()) == []


@pytest.mark.parametrize("given", ["abc", "g" * 64, "0" * 63])
def test_import_sha256_must_be_64_hex_digits(zoo: Zoo, tmp_path: Path, given: str) -> None:
    source = tmp_path / f"{UNPINNED}.pth"
    source.write_bytes(zoo.payload(UNPINNED))
    result = _run("import", str(source), "--sha256", given)
    _assert_one_line_error(result, code=2)
    assert "64 hexadecimal digits" in result.stderr and repr(given) in result.stderr
    assert model_zoo.cached_path(UNPINNED) is None


def test_import_sha256_that_contradicts_the_pinned_value_is_refused(zoo: Zoo, tmp_path: Path) -> None:
    source = tmp_path / f"{PINNED}.pth"
    source.write_bytes(zoo.payload(PINNED))
    result = _run("import", str(source), "--sha256", "0" * 64)
    _assert_one_line_error(result, code=2)
    assert "not the pinned SHA-256 of deraining" in result.stderr
    assert model_zoo.cached_path(PINNED) is None


def test_verify_says_where_each_expected_hash_came_from(zoo: Zoo, tmp_path: Path) -> None:
    source = tmp_path / "from-a-colleague.pth"
    source.write_bytes(zoo.payload(UNPINNED))
    sha = hashlib.sha256(zoo.payload(UNPINNED)).hexdigest()
    imported = _run("import", str(source), "--name", UNPINNED, "--sha256", sha)
    assert imported.exit_code == 0 and "it matches the SHA-256 given to `restore models import --sha256`" in imported.stderr
    assert _run("download", PINNED, "-q").exit_code == 0
    lines = dict(line.split(": ", 1) for line in _run("verify").stdout.splitlines())
    assert lines[UNPINNED] == "unpinned — matches the SHA-256 given to `restore models import --sha256`; no pinned value"
    assert lines[PINNED] == "ok — matches the pinned SHA-256"
    model_zoo.cached_path(UNPINNED).unlink()
    assert _run("download", UNPINNED, "-q").exit_code == 0
    lines = dict(line.split(": ", 1) for line in _run("verify", UNPINNED).stdout.splitlines())
    assert lines[UNPINNED] == "unpinned — matches the SHA-256 the Hub reported; no pinned value"
