"""The real entry point (console script / ``python -m restore_cli``), not Typer's test runner:
usage errors must end as one line on stderr with exit code 2."""

from __future__ import annotations

import subprocess
import sys

import pytest

from restore_cli import __version__


def _restore(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "restore_cli", *args], capture_output=True, text=True, timeout=60)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["denoise", "x.png", "--quality", "500"], "Invalid value for '--quality'"),
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


def test_version_exits_cleanly() -> None:
    result = _restore("--version")
    assert result.returncode == 0
    assert result.stdout == f"restore {__version__}\n"
