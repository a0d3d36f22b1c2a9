"""The real entry point (console script / ``python -m restore_cli``), not Typer's test runner:
usage errors must end as one line on stderr with exit code 2."""

from __future__ import annotations

import subprocess
import sys

import pytest

from restore_cli import __version__
from restore_cli.cli.app import entry_point


def _restore(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "restore_cli", *args], capture_output=True, text=True, timeout=60)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["denoise", "x.png", "--quality", "500"], "--quality 500: must be at most 100"),
        (["denoise"], "Missing argument 'INPUT...'"),
        (["frobnicate"], "No such command 'frobnicate'"),
        (["derain", "--no-such-option", "x.png"], "No such option: --no-such-option"),
    ],
)
def test_usage_errors_are_one_line_with_exit_code_2(args: list[str], message: str) -> None:
    result = _restore(*args)
    assert result.returncode == 2
    assert result.stderr.startswith(f"error: {message}")
    assert result.stderr.count("\n") == 1, result.stderr
    assert "--help" in result.stderr
    assert result.stdout == ""


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["denoise", "x.png", "--format", "gif"], "--format gif: must be one of png, jpg, tif, webp, bmp, heic, avif, jxl"),
        (["denoise", "x.png", "--quality", "0"], "--quality 0: must be at least 1"),
        (["bench", "--repeat", "0"], "--repeat 0: must be at least 1"),
        (["train", "x", "-o", "t.pth", "--patch", "big"], "--patch big: must be a whole number"),
        (["train", "x", "-o", "t.pth", "--lr", "fast"], "--lr fast: must be a number"),
        (["eval", "--task", "dehaze"], "--task dehaze: must be one of denoise, derain, deblur"),
        (["run", "--weights", "w.pth", "x.png", "--threads", "0"], "--threads 0: must be at least 1"),
    ],
)
def test_bad_values_are_worded_as_the_rest_of_restore(
    args: list[str], message: str, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Typer checks ranges and choices with a validation library; its wording ("Input should be
    greater than or equal to 1", "Value error, 'gif' is not one of") never reaches the user."""
    monkeypatch.setattr(sys, "argv", ["restore", *args])
    with pytest.raises(SystemExit) as exited:
        entry_point()
    stderr = capsys.readouterr().err
    assert exited.value.code == 2
    assert stderr == f"error: {message} (see `restore {args[0]} --help`)\n"


def test_version_exits_cleanly() -> None:
    result = _restore("--version")
    assert result.returncode == 0
    assert result.stdout == f"restore {__version__}\n"
