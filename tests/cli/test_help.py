"""Help reads like a hand-written man page: values named as the text names them, no Python
types, no empty error after the help of a bare `restore` or `restore models`."""

from __future__ import annotations

import re
import subprocess
import sys

import pytest
from typer.testing import CliRunner

from restore_cli.cli.app import app

COMMANDS = [
    ["denoise"], ["derain"], ["deblur"], ["defocus"], ["run"], ["eval"], ["bench"], ["train"],
    ["models", "list"], ["models", "download"], ["models", "path"], ["models", "verify"], ["models", "import"],
]  # fmt: skip
PYTHON_TYPES = ("<bool>", "<str>", "<int", "<float>", "<path>", "<list", "<denoise|derain>", "<png|", "{")
"""How Typer shows a parameter it has no metavar for: its Python type, and {REQUIRED}..."""

runner = CliRunner()


@pytest.mark.parametrize("command", COMMANDS, ids=" ".join)
def test_help_names_values_not_python_types(command: list[str]) -> None:
    result = runner.invoke(app, [*command, "--help"])
    assert result.exit_code == 0, result.output
    assert result.stdout.startswith(f"Usage: restore {' '.join(command)} [OPTIONS]")
    assert not [marker for marker in PYTHON_TYPES if marker in result.stdout], result.stdout
    assert "╭" not in result.stdout  # plain text, not boxes


@pytest.mark.parametrize(
    ("command", "usage"),
    [(["run"], "INPUT..."), (["eval"], "[PRED GT]"), (["models", "download"], "[NAME]..."), (["models", "import"], "FILE")],
)
def test_usage_lines_show_arguments_as_written(command: list[str], usage: str) -> None:
    first = runner.invoke(app, [*command, "--help"]).stdout.splitlines()[0]
    assert first == f"Usage: restore {' '.join(command)} [OPTIONS] {usage}"


@pytest.mark.parametrize(("command", "name"), [("run", "<stem>_restored.<ext>"), ("denoise", "<stem>_denoise.<ext>")])
def test_output_help_gives_the_name_each_command_writes(command: str, name: str) -> None:
    text = " ".join(runner.invoke(app, [command, "--help"]).stdout.split())
    assert f"Default: next to each input as {name}." in text


def test_examples_stay_one_per_line() -> None:
    lines = [line.strip() for line in runner.invoke(app, ["denoise", "--help"]).stdout.splitlines()]
    assert "restore denoise scan.tif --sigma 25 --model gaussian" in lines
    assert "cat noisy.png | restore denoise - -o - > clean.png" in lines
    train = [line.strip() for line in runner.invoke(app, ["train", "--help"]).stdout.splitlines()]
    assert "restore train clean_photos/ --sigma 0-50 --size small -o blind.pth  # a blind denoiser" in train


def test_train_names_its_values_in_words() -> None:
    text = runner.invoke(app, ["train", "--help"]).stdout
    for option in ("--sigma SIGMA", "--patch PIXELS", "--batch N", "--iters N", "--lr RATE", "--size base|small|tiny", "--threads N"):
        assert option in text


@pytest.mark.parametrize("args", [[], ["models"]])
def test_no_arguments_print_the_help_and_no_error(args: list[str]) -> None:
    result = subprocess.run([sys.executable, "-m", "restore_cli", *args], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0 and result.stderr == ""
    assert re.match(rf"Usage: restore {' '.join(args)} ?\[OPTIONS\] COMMAND \[ARGS\]\.\.\.", result.stdout)
    assert "Commands:" in result.stdout
