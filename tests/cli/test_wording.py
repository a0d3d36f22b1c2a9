"""Library messages name the user's settings by parameter; the command line names them by flag.

The library never spells a flag: it calls `errors.setting(name)`, and the CLI installs its
own spellings for the duration of a command (`cli.console.flag_spelling`).
"""

from __future__ import annotations

import io
import re
from pathlib import Path

import pytest
import typer
from PIL import Image
from typer.testing import CliRunner

import restore_cli
from restore_cli.cli.app import app
from restore_cli.cli.console import flags_of
from restore_cli.errors import ImageError
from restore_cli.io.decode import read_image
from tests.model.test_zoo import _closed_port

PACKAGE = Path(restore_cli.__file__).parent
WEIGHTS = Path(__file__).parents[1] / "data" / "golden" / "tiny_rgb_withbias.pth"
SETTING = re.compile(r"""\bsetting\(\s*["'](\w+)["']\s*\)""")


def _small_png() -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (40, 30)).save(buffer, "PNG")
    return buffer.getvalue()


def test_a_python_caller_reads_the_parameter_name() -> None:
    with pytest.raises(ImageError, match="pass max_pixels 1200"):
        read_image(io.BytesIO(_small_png()), max_pixels=1199)


def test_the_same_message_through_the_cli_names_the_flag(tmp_path: Path) -> None:
    photo = tmp_path / "p.png"
    photo.write_bytes(_small_png())
    result = CliRunner().invoke(app, ["run", "--weights", str(WEIGHTS), str(photo), "-o", str(tmp_path / "o.png"), "--max-pixels", "1199"])
    assert result.exit_code == 1
    assert "pass --max-pixels 1200" in result.stderr and "max_pixels" not in result.stderr


def test_every_setting_a_library_message_names_is_a_flag_of_the_cli() -> None:
    named = {
        name
        for path in PACKAGE.rglob("*.py")
        if "cli" not in path.relative_to(PACKAGE).parts
        for name in SETTING.findall(path.read_text(encoding="utf-8"))
    }
    flags = flags_of([typer.main.get_command(app)])
    assert named, "no library message names a setting: the scan is broken"
    assert sorted(named - set(flags)) == []


def test_library_code_spells_no_flag() -> None:
    """Outside cli/, no string literal holds a --flag (docstrings and comments aside): advice
    names settings through errors.setting, or quotes a whole command in backticks."""
    offenders = []
    for path in PACKAGE.rglob("*.py"):
        if "cli" in path.relative_to(PACKAGE).parts or path.relative_to(PACKAGE).as_posix() == "bench/compare.py":
            continue
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            code = line.split("#", 1)[0]
            for literal in re.findall(r'''(?<!")"([^"]*)"(?!")''', code):
                if re.search(r"(?<![\w`-])--[a-z]", literal) and "`" not in literal:
                    offenders.append(f"{path.relative_to(PACKAGE)}:{number}: {literal}")
    assert offenders == []


def test_every_warning_says_warning(tmp_path: Path, zoo, monkeypatch: pytest.MonkeyPatch) -> None:
    """The library's warnings go through logging; the command line prints each as a
    `warning:` line, like its own: TLC's note on narrow tiles, the Hub fallback."""
    photo = tmp_path / "p.png"
    photo.write_bytes(_small_png())
    narrow = CliRunner().invoke(app, ["run", "--weights", str(WEIGHTS), str(photo), "-o", str(tmp_path / "o.png"), "--tlc", "--tile", "16", "--overlap", "4", "-q"])
    assert narrow.exit_code == 0, narrow.output
    assert narrow.stderr.startswith("warning: 16-pixel tiles are narrower than the 384-pixel TLC window")

    monkeypatch.setenv("HF_ENDPOINT", f"http://127.0.0.1:{_closed_port()}")
    fallback = CliRunner().invoke(app, ["models", "download", "deraining"])
    assert fallback.exit_code == 0, fallback.output
    assert fallback.stderr.startswith("warning: deraining: the Hub at ")


@pytest.mark.parametrize("subfolder", [False, True])
def test_an_empty_folder_suggests_recursive_only_when_it_has_subfolders(tmp_path: Path, subfolder: bool) -> None:
    folder = tmp_path / "shoot"
    folder.mkdir()
    if subfolder:
        (folder / "day1").mkdir()
    result = CliRunner().invoke(app, ["run", "--weights", str(WEIGHTS), str(folder), "-q"])
    assert result.exit_code == 1
    hint = " (pass --recursive to include its subfolders)" if subfolder else ""
    assert result.stderr == f"error: {folder}: no images in this folder{hint}\n"
