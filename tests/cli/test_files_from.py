"""`--files-from FILE|-` (and `-0`): many files through one process, planned like a folder."""

from __future__ import annotations

import io
import json
import os
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from restore_cli.batch.planning import read_name_list
from restore_cli.cli.app import app
from tests.cli_assertions import assert_one_line_error

WEIGHTS = Path(__file__).parents[1] / "data" / "golden" / "tiny_rgb_withbias.pth"
ODD_NAMES = ["a b.png", "ünï cödé.png", "-dash.png", "--help.png", "new\nline.png", "tab\there.png", "-"]
"""Spaces, unicode, leading dashes (which must not be read as options), a newline, a tab,
and a file called "-" (which must not be read as stdin)."""
runner = CliRunner()


def _run(*args: str, stdin: bytes | None = None):
    return runner.invoke(app, ["run", "--weights", str(WEIGHTS), "--quiet", *args], input=stdin)


@pytest.fixture
def shoot(tmp_path: Path) -> Path:
    """A folder holding one small PNG per odd name (all with a .png extension but "-")."""
    folder = tmp_path / "shoot"
    folder.mkdir()
    rng = np.random.default_rng(0)
    for name in ODD_NAMES:
        pixels = rng.integers(0, 256, (16, 24, 3), dtype=np.uint8)
        Image.fromarray(pixels).save(folder / name, format="PNG")
    return folder


def test_names_are_split_on_newlines_or_nuls_and_taken_literally() -> None:
    assert read_name_list(io.BytesIO(b"a.png\n\nb c.png\n")) == ["a.png", "b c.png"]
    assert read_name_list(io.BytesIO(b"x\ny.png\0*.png\0"), null_separated=True) == ["x\ny.png", "*.png"]
    assert read_name_list(io.BytesIO(b"-\n")) == [os.path.abspath("-")]


def test_names_that_are_not_utf8_survive_the_round_trip() -> None:
    raw = b"caf\xe9.png"
    (name,) = read_name_list(io.BytesIO(raw + b"\n"))
    assert os.fsencode(name) == raw


def test_a_nul_separated_list_restores_every_odd_name_as_arguments_would(shoot: Path, tmp_path: Path) -> None:
    listed = b"".join(os.fsencode(shoot / name) + b"\0" for name in ODD_NAMES)
    from_list, from_folder = tmp_path / "from_list", tmp_path / "from_folder"

    result = _run("--files-from", "-", "-0", "-o", str(from_list), "--format", "png", "--json", stdin=listed)
    folder_result = _run(str(shoot / "a b.png"), str(shoot / "-dash.png"), "-o", str(from_folder), "--format", "png")

    assert result.exit_code == 0, result.output
    assert folder_result.exit_code == 0, folder_result.output
    reports = [json.loads(line) for line in result.stdout.splitlines()]
    assert sorted(report["input"] for report in reports[:-1]) == sorted(str(shoot / name) for name in ODD_NAMES)
    assert sorted(os.listdir(from_list)) == sorted(Path(name).stem + ".png" for name in ODD_NAMES)
    for name in ("a b.png", "-dash.png"):
        assert (from_list / name).read_bytes() == (from_folder / name).read_bytes()


def test_a_newline_list_from_a_file_keeps_going_past_a_missing_name(shoot: Path, tmp_path: Path) -> None:
    names = tmp_path / "names.txt"
    names.write_text(f"{shoot / 'a b.png'}\n{shoot / 'gone.png'}\n{shoot / '-dash.png'}\n", encoding="utf-8")

    result = _run("--files-from", str(names), "-o", str(tmp_path / "out"))

    assert result.exit_code == 1
    assert "gone.png" in result.stderr
    assert sorted(os.listdir(tmp_path / "out")) == ["-dash.png", "a b.png"]


def test_listed_names_and_arguments_are_planned_together(shoot: Path, tmp_path: Path) -> None:
    """Same refusals as any batch: two inputs bound for one output stop the run up front."""
    (shoot / "sub").mkdir()
    Image.open(shoot / "a b.png").save(shoot / "sub" / "a b.png")
    listed = f"{shoot / 'sub' / 'a b.png'}\n".encode()

    result = _run(str(shoot / "a b.png"), "--files-from", "-", "-o", str(tmp_path / "out"), stdin=listed)

    assert_one_line_error(result, 2, "would both be written")
    assert not (tmp_path / "out").exists()


def test_recursive_keeps_the_listed_folders_below_the_output(shoot: Path, tmp_path: Path, monkeypatch) -> None:
    (shoot / "sub").mkdir()
    Image.open(shoot / "a b.png").save(shoot / "sub" / "a b.png")
    monkeypatch.chdir(shoot)

    result = _run("--files-from", "-", "-r", "-o", str(tmp_path / "out"), stdin=b"a b.png\nsub/a b.png\n")

    assert result.exit_code == 0, result.output
    assert (tmp_path / "out" / "a b.png").is_file() and (tmp_path / "out" / "sub" / "a b.png").is_file()


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        (["-0", "x.png"], "--files-from"),
        (["--files-from", "-", "-"], "stdin"),
        (["--files-from", "no/such/list.txt"], "no/such/list.txt"),
        ([], "INPUT"),
    ],
)
def test_misuse_is_a_one_line_usage_error(args: list[str], fragment: str) -> None:
    assert_one_line_error(_run(*args, stdin=b""), 2, fragment)
