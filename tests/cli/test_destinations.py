"""Nothing computed is lost to a destination that cannot be written: every command tries its
destinations before any work and refuses in one line (exit 2), naming the path.

Unwritable even for root (tests often run as root, whom file modes do not stop): a path
under /proc, and a read-only bind mount where this machine allows mounting.
"""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from restore_cli.cli.app import app
from tests.cli_assertions import assert_one_line_error
from tests.cli.test_hardening_cli import _photo

runner = CliRunner()
BOGUS = b"not a checkpoint"


@pytest.fixture(params=["proc", "read-only mount"])
def unwritable(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Path]:
    """A folder no one can create files in: below /proc, or a read-only bind mount."""
    if request.param == "proc":
        yield Path("/proc")
        return
    folder = tmp_path / "ro"
    folder.mkdir()
    mounted = subprocess.run(["mount", "--bind", "-o", "ro", str(folder), str(folder)], capture_output=True).returncode == 0
    if mounted and subprocess.run(["touch", str(folder / "probe")], capture_output=True).returncode == 0:
        subprocess.run(["umount", str(folder)], check=True)
        mounted = False  # an old mount(8) ignores ro with --bind
    if not mounted:
        pytest.skip("this machine does not allow a read-only bind mount")
    try:
        yield folder
    finally:
        subprocess.run(["umount", str(folder)], check=True)


def _invoke(*args: object):
    return runner.invoke(app, [str(arg) for arg in args])


@pytest.mark.parametrize("below", ["", "new/"], ids=["folder", "folder to create"])
def test_a_batch_into_an_unwritable_folder_is_refused_before_the_model_loads(unwritable: Path, tmp_path: Path, below: str) -> None:
    photos = [_photo(tmp_path / "in" / f"{index}.png", seed=index) for index in range(3)]
    bogus = tmp_path / "bogus.pth"
    bogus.write_bytes(BOGUS)  # were it loaded, the error would be about the checkpoint (exit 1)
    target = unwritable / below

    result = _invoke("run", "--weights", bogus, tmp_path / "in", "-o", target, "--json")

    what = "create folders" if below else "write files"
    assert_one_line_error(result, 2, f"{target / photos[0].name}: cannot {what} in {unwritable}", "choose another -o")
    assert result.stdout == ""


def test_a_single_output_file_in_an_unwritable_folder_is_refused(unwritable: Path, tmp_path: Path) -> None:
    photo = _photo(tmp_path / "p.png")
    result = _invoke("denoise", photo, "-o", unwritable / "p.png", "--weights", tmp_path / "missing.pth")
    assert_one_line_error(result, 2, f"{unwritable / 'p.png'}: cannot write files in {unwritable}")


def test_training_into_an_unwritable_folder_is_refused_before_the_first_step(unwritable: Path, tmp_path: Path) -> None:
    clean = tmp_path / "clean"
    for index in range(2):
        _photo(clean / f"{index}.png", height=32, width=32, seed=index)

    result = _invoke("train", clean, "--sigma", 25, "--size", "tiny", "--patch", 16, "--iters", 2, "--save-every", 1,
                     "-o", unwritable / "t.pth")  # fmt: skip

    assert_one_line_error(result, 2, f"{unwritable / 't.pth'}: cannot write files in {unwritable}", "choose another -o")
    assert "iteration" not in result.stderr


def test_before_after_views_into_an_unwritable_folder_are_refused_before_any_work(unwritable: Path, tmp_path: Path) -> None:
    photo = _photo(tmp_path / "p.png")
    batch = _invoke("run", "--weights", tmp_path / "missing.pth", photo, "-o", tmp_path / "out.png", "--compare", f"{unwritable}/views/")
    assert_one_line_error(batch, 2, f"cannot create folders in {unwritable}", "choose another --compare")
    for folder in ("in", "gt"):
        _photo(tmp_path / folder / "p.png")
    scored = _invoke("eval", "--task", "derain", "--input", tmp_path / "in", "--target", tmp_path / "gt",
                     "--weights", tmp_path / "missing.pth", "--compare", unwritable / "views")  # fmt: skip
    assert_one_line_error(scored, 2, f"cannot create folders in {unwritable}", "choose another --compare")


def test_an_export_into_an_unwritable_folder_is_refused_before_any_download_or_load(unwritable: Path, tmp_path: Path, hf_home: Path) -> None:
    bogus = tmp_path / "bogus.pth"
    bogus.write_bytes(BOGUS)  # were it loaded, the error would be about the checkpoint (exit 1)
    target = unwritable / "m.onnx"
    from_weights = _invoke("export", "--weights", bogus, "-o", target)
    assert_one_line_error(from_weights, 2, f"{target}: cannot write files in {unwritable}", "choose another -o")
    # the cache is empty: were the zoo model resolved first, offline mode would fail it (exit 1)
    from_zoo = _invoke("export", "--model", "deraining", "--offline", "-o", target)
    assert_one_line_error(from_zoo, 2, f"{target}: cannot write files in {unwritable}", "choose another -o")
