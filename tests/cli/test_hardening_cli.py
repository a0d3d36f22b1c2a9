"""Hostile inputs, weights and paths through the whole command: one line per problem, nothing
lost, nothing half-written, inputs untouched, the good files in the batch still restored.

Models are the tiny golden checkpoints given with --weights; every file is generated.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch
from PIL import Image
from safetensors.torch import save_file

from restore_cli.io.decode import read_image
from restore_cli.model.checkpoints import read_state_dict
from tests.cli.test_tasks import RGB_WITHBIAS, _invoke, _json_lines, one_thread  # noqa: F401
from tests.cli_assertions import assert_one_line_error
from tests.io.test_hardening_images import CORPUS, DECODED, REFUSED, _frames, _noise
from tests.model.test_checkpoints import _RunsCodeWhenUnpickled

EXTENSION_OF_FORMAT = {"PNG": ".png", "JPEG": ".jpg", "TIFF": ".tif"}


def _digests(paths: list[Path]) -> dict[Path, str]:
    return {path: hashlib.sha256(path.read_bytes()).hexdigest() for path in paths}


def _files_below(folder: Path) -> list[str]:
    return sorted(str(path.relative_to(folder)) for path in folder.rglob("*") if path.is_file())


def _photo(path: Path, height: int = 24, width: int = 32, seed: int = 0) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(_noise(height, width, seed=seed)).save(path)
    return path


def _restore(*args: str | Path):
    return _invoke("run", "--weights", RGB_WITHBIAS, *args)


# ---------------------------------------------------------------- image files


def test_a_batch_of_hostile_files_fails_each_bad_one_in_one_line_and_restores_the_rest(tmp_path: Path) -> None:
    folder = tmp_path / "in"
    folder.mkdir()
    for case in CORPUS:
        (folder / case.name).write_bytes(case.data)
    gif = folder / "spinner.gif"  # not an image extension restore scans for: named explicitly
    inputs = [path for path in folder.iterdir() if path != gif]
    before = _digests([*inputs, gif])
    out = tmp_path / "out"

    result = _restore(folder, gif, "/dev/zero", "-o", out, "--json")

    assert result.exit_code == 1
    errors = [line for line in result.stderr.splitlines() if line.startswith("error: ")]
    assert len(errors) == len(REFUSED) + 1 and "Traceback" not in result.stderr
    for case in REFUSED:
        path = folder / case.name
        assert sum(line.startswith(f"error: {path}: ") and case.refusal in line for line in errors) == 1, case.name
    assert sum(line.startswith("error: /dev/zero: is a device, not an image file") for line in errors) == 1
    lines = _json_lines(result.stdout)
    assert lines[-1] == {**lines[-1], "type": "summary", "ok": len(DECODED), "failed": len(REFUSED) + 1}
    assert _files_below(out) == sorted(case.name for case in DECODED)
    for case in DECODED:
        source, written = read_image(folder / case.name), read_image(out / case.name)
        assert (written.height, written.width, written.channels) == (source.height, source.width, source.channels)
        assert (written.alpha is None) == (source.alpha is None)
    assert _digests([*inputs, gif]) == before


def test_max_pixels_refuses_big_images_and_raises_the_limit_when_asked(tmp_path: Path) -> None:
    photo = _photo(tmp_path / "p.png", 30, 40)
    out = tmp_path / "o.png"
    refused = _restore(photo, "-o", out, "--max-pixels", "1199")
    assert_one_line_error(refused, 1, str(photo), "--max-pixels 1200")
    assert not out.exists()
    assert _restore(photo, "-o", out, "--max-pixels", "1200").exit_code == 0
    assert read_image(out).pixels.shape == (30, 40, 3)
    assert _restore(photo, "-o", out, "--max-pixels", "0").exit_code == 2


def test_a_debug_run_still_reports_a_bad_file_in_one_line(tmp_path: Path) -> None:
    broken = tmp_path / "broken.png"
    broken.write_bytes(_frames("PNG")[:50])
    result = _restore(broken, "-o", tmp_path / "o.png", "--debug")
    assert_one_line_error(result, 1, str(broken))


def test_debug_shows_no_library_chatter_and_no_traceback_for_an_expected_error(tmp_path: Path) -> None:
    photo = _photo(tmp_path / "p.png")
    result = _restore(photo, "-o", tmp_path / "o.png", "--debug")
    assert result.exit_code == 0, result.output
    assert "STREAM" not in result.stderr and "PIL" not in result.stderr  # Pillow logs every PNG chunk at debug level
    bad_weights = tmp_path / "notes.pth"
    bad_weights.write_text("not weights\n")
    refused = _invoke("run", "--weights", bad_weights, photo, "-o", tmp_path / "o2.png", "--debug")
    assert_one_line_error(refused, 1, "is not a PyTorch checkpoint (it is a text file)")


# ---------------------------------------------------------------- weights


def _evil_pickle(path: Path, marker: Path) -> None:
    torch.save({"params": {"patch_embed.proj.weight": _RunsCodeWhenUnpickled(marker)}}, path)


def _truncated(path: Path, marker: Path) -> None:
    data = RGB_WITHBIAS.read_bytes()
    path.write_bytes(data[: len(data) // 2])


def _png_renamed(path: Path, marker: Path) -> None:
    Image.fromarray(_noise(24, 32, seed=0)).save(path, format="PNG")


def _text(path: Path, marker: Path) -> None:
    path.write_text("download the weights from the shared drive\n")


def _other_architecture(path: Path, marker: Path) -> None:
    torch.save({"params": torch.nn.Conv2d(3, 3, 3).state_dict()}, path)


def _one_wrong_shape(path: Path, marker: Path) -> None:
    state = read_state_dict(RGB_WITHBIAS)
    state["output.weight"] = torch.zeros(3, 7, 3, 3)
    torch.save({"params": state}, path)


@pytest.mark.parametrize(
    ("write", "message"),
    [
        (_evil_pickle, "would run code when unpickled"),
        (_truncated, "truncated or not a PyTorch checkpoint"),
        (_png_renamed, "is not a PyTorch checkpoint (it is a PNG image)"),
        (_text, "is not a PyTorch checkpoint (it is a text file)"),
        (_other_architecture, "not a Restormer checkpoint"),
        (_one_wrong_shape, "'output.weight' has shape [3, 7, 3, 3]"),
    ],
    ids=["code-executing-pickle", "truncated", "png-renamed", "text", "other-architecture", "wrong-shape"],
)
def test_unusable_weights_fail_once_before_any_image_is_touched(tmp_path: Path, write, message: str) -> None:
    weights, marker = tmp_path / "weights.pth", tmp_path / "code-ran"
    write(weights, marker)
    photos = [_photo(tmp_path / "in" / f"{index}.png", seed=index) for index in range(3)]
    before = _digests(photos)
    result = _invoke("derain", tmp_path / "in", "-o", tmp_path / "out", "--weights", weights)
    assert_one_line_error(result, 1, str(weights), message)
    assert not marker.exists() and not (tmp_path / "out").exists()
    assert _digests(photos) == before
    if write is not _evil_pickle:
        assert "run code" not in result.stderr


def test_a_safetensors_file_named_pth_restores_like_the_checkpoint_it_holds(tmp_path: Path) -> None:
    renamed = tmp_path / "converted.pth"
    save_file(read_state_dict(RGB_WITHBIAS), renamed)
    photo = _photo(tmp_path / "p.png")
    expected = _restore(photo, "-o", tmp_path / "expected.png")
    result = _invoke("run", "--weights", renamed, photo, "-o", tmp_path / "from_safetensors.png")
    assert expected.exit_code == 0 and result.exit_code == 0, result.output
    assert (tmp_path / "from_safetensors.png").read_bytes() == (tmp_path / "expected.png").read_bytes()


# ---------------------------------------------------------------- paths


@pytest.mark.parametrize(
    ("output", "message"),
    [("blocker/out/", "blocker is a file"), ("blocker/out.png", "blocker is a file"), ("in/p.png", "is an input")],
)
def test_impossible_outputs_are_usage_errors_before_any_work(tmp_path: Path, output: str, message: str) -> None:
    photo = _photo(tmp_path / "in" / "p.png")
    (tmp_path / "blocker").write_text("a file where a folder is expected")
    before = _digests([photo])
    result = _restore(photo, "-o", f"{tmp_path}/{output}")  # a Path would drop the trailing /
    assert_one_line_error(result, 2, message)
    assert _files_below(tmp_path) == ["blocker", "in/p.png"] and _digests([photo]) == before


def test_two_inputs_are_never_written_to_one_output(tmp_path: Path) -> None:
    png, jpeg = _photo(tmp_path / "a.png", seed=1), _photo(tmp_path / "a.jpg", seed=2)
    collision = _restore(png, jpeg, "-o", tmp_path / "out", "--format", "png")
    assert_one_line_error(collision, 2, "would both be written to")
    assert not (tmp_path / "out").exists()
    assert _restore(png, jpeg, "-o", tmp_path / "out").exit_code == 0
    assert _files_below(tmp_path / "out") == ["a.jpg", "a.png"]


def test_names_with_spaces_non_ascii_and_undecodable_bytes(tmp_path: Path) -> None:
    names = ["my holiday photo.png", "été 写真.png", os.fsdecode(b"caf\xe9.png")]
    for index, name in enumerate(names):
        _photo(tmp_path / "in" / name, seed=index)
    broken = tmp_path / "in" / os.fsdecode(b"bro\xefken \xc3\xa9.png")
    broken.write_bytes(b"\x89PNG damaged")
    result = _restore(tmp_path / "in", "-o", tmp_path / "out", "--json", "--quiet")
    assert result.exit_code == 1
    assert result.stderr.count("\n") == 1 and "bro" in result.stderr and "not a readable image" in result.stderr
    assert sorted(os.listdir(tmp_path / "out")) == sorted(names)
    assert [line.get("status") for line in _json_lines(result.stdout)[:-1]].count("ok") == 3


@contextlib.contextmanager
def _unprivileged() -> Iterator[None]:
    """Tests often run as root, whom file modes do not stop: act as nobody meanwhile.
    Python's seteuid changes every thread, the batch's writer threads included."""
    if os.geteuid() != 0:
        yield
        return
    os.seteuid(65534)
    try:
        yield
    finally:
        os.seteuid(0)


@pytest.fixture
def shared_folder() -> Iterator[Path]:
    """A folder that the unprivileged user can reach (pytest's tmp_path is root-only)."""
    folder = Path(tempfile.mkdtemp(prefix="restore-hardening-"))
    folder.chmod(0o755)
    yield folder
    for path in [folder, *folder.rglob("*")]:
        path.chmod(0o755)
    shutil.rmtree(folder)


@pytest.mark.parametrize("below", ["", "new/"], ids=["write-denied", "folder-cannot-be-created"])
def test_a_read_only_output_folder_is_refused_before_any_work(shared_folder: Path, below: str) -> None:
    photos = [_photo(shared_folder / "in" / f"{index}.png", seed=index) for index in range(2)]
    # The unprivileged user must read the weights: the checkout may sit in a root-only folder.
    weights = Path(shutil.copy(RGB_WITHBIAS, shared_folder / RGB_WITHBIAS.name))
    for path in [shared_folder / "in", *photos, weights]:
        path.chmod(0o755)
    locked = shared_folder / "locked"
    locked.mkdir(mode=0o555)
    with _unprivileged():
        result = _invoke("run", "--weights", weights, shared_folder / "in", "-o", locked / below, "--quiet")
    what = "create folders" if below else "write files"
    assert_one_line_error(result, 2, f"{locked / below / '0.png'}: cannot {what} in {locked}", "Permission denied", "choose another -o")
    assert os.listdir(locked) == []
