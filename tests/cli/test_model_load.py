"""One rule for a model that cannot be loaded, in every task command: it is found before the
first image; without --json it is one error line (not one per image), with --json every
input still gets its line, failed for that one reason, then the summary; exit code 1.

The models are unavailable for real: an empty, private model cache and --offline."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from restore_cli.cli.app import app
from tests.cli.test_hardening_cli import _photo
from tests.cli_assertions import assert_one_line_error

runner = CliRunner()


@pytest.fixture
def batch(tmp_path: Path) -> Path:
    """Two colour photos and a gray one: denoise would need both of its models."""
    folder = tmp_path / "in"
    for index in range(2):
        _photo(folder / f"{index}.png", seed=index)
    gray = _photo(folder / "gray.png", seed=7)
    from PIL import Image

    Image.open(gray).convert("L").save(gray)
    return folder


def _invoke(*args: object):
    return runner.invoke(app, [str(arg) for arg in args])


COMMANDS = {
    "derain": (["derain"], "deraining is not in the cache"),
    "denoise": (["denoise"], "is not in the cache"),
    "missing weights": (["run", "--weights", "missing.pth"], "no checkpoint file or zoo model named 'missing.pth'"),
}


@pytest.mark.parametrize("command", COMMANDS)
def test_without_json_it_is_one_error_line(command: str, batch: Path, tmp_path: Path, hf_home: Path) -> None:
    args, reason = COMMANDS[command]
    result = _invoke(*args, batch, "-o", tmp_path / "out", "--offline")
    assert_one_line_error(result, 1, reason)
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("command", COMMANDS)
def test_with_json_every_input_fails_with_the_same_reason(command: str, batch: Path, tmp_path: Path, hf_home: Path) -> None:
    args, reason = COMMANDS[command]
    result = _invoke(*args, batch, "-o", tmp_path / "out", "--offline", "--json")

    assert result.exit_code == 1
    *images, summary = [json.loads(line) for line in result.stdout.splitlines()]
    error = result.stderr.removeprefix("error: ").rstrip("\n")
    assert reason in error and "\n" not in error
    assert sorted(Path(row["input"]).name for row in images) == ["0.png", "1.png", "gray.png"]
    assert all(row["type"] == "image" and row["status"] == "failed" and row["error"] == error for row in images)
    assert {key: summary[key] for key in ("type", "status", "exit_code", "total", "ok", "skipped", "failed", "error")} == {
        "type": "summary", "status": "error", "exit_code": 1, "total": 3, "ok": 0, "skipped": 0, "failed": 3, "error": error,
    }  # fmt: skip


def test_weights_given_a_folder_say_it_is_a_folder(batch: Path, tmp_path: Path) -> None:
    folder = tmp_path / "models"
    folder.mkdir()
    (folder / "mine.pth").write_bytes(b"")
    result = _invoke("run", "--weights", folder, batch, "-o", tmp_path / "out")
    assert_one_line_error(result, 1, f"{folder} is a folder, not a checkpoint", "(it holds mine.pth)")
