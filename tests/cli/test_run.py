"""`restore run`: one file through a checkpoint, and one clear line for every user mistake."""

from __future__ import annotations

import io
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from typer.testing import CliRunner

from restore_cli.cli.app import app
from restore_cli.engine.restorer import Restorer
from restore_cli.model.zoo import load_model
from tests.cli_assertions import assert_one_line_error
from tests.photos import CBSD68_3096

DATA = Path(__file__).parents[1] / "data"
WEIGHTS = DATA / "golden" / "tiny_rgb_withbias.pth"
runner = CliRunner()


@pytest.fixture
def photo(tmp_path: Path) -> Path:
    """A small real photo (a crop of BSD68 3096) to keep the run fast."""
    path = tmp_path / "photo.png"
    Image.open(CBSD68_3096).crop((120, 80, 280, 200)).save(path)
    return path


def run(*args: str, stdin: bytes | None = None):
    return runner.invoke(app, ["run", *args], input=stdin)


def test_restores_a_file_like_the_library_does(photo, tmp_path):
    output = tmp_path / "out.png"

    result = run(str(photo), "-o", str(output), "--weights", str(WEIGHTS), "--tile", "64", "--overlap", "16")

    assert result.exit_code == 0, result.output
    written = np.asarray(Image.open(output), dtype=np.float32) / 255
    pixels = np.asarray(Image.open(photo), dtype=np.float32) / 255
    expected = Restorer(load_model(WEIGHTS), device="cpu", tile=64, overlap=16).restore(pixels)
    assert written.shape == pixels.shape
    np.testing.assert_allclose(written, expected, atol=0.5 / 255 + 1e-6)
    assert "tiles 9/9" in result.stderr  # 3 x 3 tiles of 64 with >= 16 px overlap over 120 x 160


def test_stdin_to_stdout(photo):
    result = run("-", "-o", "-", "--weights", str(WEIGHTS), "--quiet", stdin=photo.read_bytes())

    assert result.exit_code == 0, result.stderr
    restored = Image.open(io.BytesIO(result.stdout_bytes))
    assert restored.format == "PNG" and restored.size == (160, 120)
    assert result.stderr == ""


def test_missing_input_names_the_file(tmp_path):
    missing = tmp_path / "nope.png"

    result = run(str(missing), "-o", str(tmp_path / "out.png"), "--weights", str(WEIGHTS))

    assert_one_line_error(result, 1, str(missing))
    assert not (tmp_path / "out.png").exists()


def test_unusable_weights_name_the_checkpoint(photo, tmp_path):
    weights = tmp_path / "broken.pth"
    weights.write_bytes(b"not a checkpoint")

    result = run(str(photo), "-o", str(tmp_path / "out.png"), "--weights", str(weights))

    assert_one_line_error(result, 1, "broken.pth")


def test_an_impossible_budget_is_a_usage_error_and_writes_nothing(photo, tmp_path):
    output = tmp_path / "out.png"

    result = run(str(photo), "-o", str(output), "--weights", str(WEIGHTS), "--max-memory", "10MB")

    assert_one_line_error(result, 2, "--max-memory 10MB is less than restore needs before the first pixel")
    assert not output.exists()


def test_model_and_image_channels_must_agree(tmp_path):
    colour = tmp_path / "colour.png"
    shutil.copy(CBSD68_3096, colour)
    gray_weights = DATA / "golden" / "tiny_gray_biasfree.pth"

    result = run(str(colour), "-o", str(tmp_path / "out.png"), "--weights", str(gray_weights))

    assert_one_line_error(result, 1, str(colour))


@pytest.mark.parametrize(
    ("option", "value", "fragment"),
    [("--tile", "big", "--tile"), ("--tile", "4", "--tile"), ("--precision", "fp8", "precision"),
     ("--precision", "fp16", "CUDA"), ("--max-memory", "lots", "2GB"), ("--tlc-window", "4", "--tlc-window"),
     ("--device", "tpu", "--device tpu: use auto, cpu, cuda, cuda:N or mps"),
     ("--overlap", "64", "--overlap 64 must be smaller than --tile 64"),
     ("--overlap", "100", "--overlap 100 must be smaller than --tile 64"),
     pytest.param("--device", "cuda", "CUDA", marks=pytest.mark.skipif(torch.cuda.is_available(), reason="has CUDA"))],
)
def test_bad_options_are_usage_errors(photo, tmp_path, option, value, fragment):
    result = run(str(photo), "-o", str(tmp_path / "out.png"), "--weights", str(WEIGHTS), "--tile", "64", option, value)

    assert_one_line_error(result, 2, fragment)
    assert not (tmp_path / "out.png").exists()


def test_tlc_reaches_the_model(photo, tmp_path):
    """--tlc-window below the image size changes the output exactly as the library does;
    --tlc's default window, wider than this 160 x 120 photo, is global attention."""
    outputs = {name: tmp_path / f"{name}.png" for name in ("plain", "tlc", "window")}
    common = [str(photo), "--weights", str(WEIGHTS), "--tile", "0", "--quiet"]

    for name, extra in (("plain", []), ("tlc", ["--tlc"]), ("window", ["--tlc-window", "32"])):
        result = run(*common, "-o", str(outputs[name]), *extra)
        assert result.exit_code == 0, result.output

    written = {name: np.asarray(Image.open(path), dtype=np.float32) / 255 for name, path in outputs.items()}
    pixels = np.asarray(Image.open(photo), dtype=np.float32) / 255
    expected = Restorer(load_model(WEIGHTS), device="cpu", tile=0, tlc_window=32).restore(pixels)
    np.testing.assert_allclose(written["window"], expected, atol=0.5 / 255 + 1e-6)
    assert np.abs(written["window"] - written["plain"]).max() > 2 / 255
    np.testing.assert_array_equal(written["tlc"], written["plain"])


@pytest.mark.parametrize("command", ["denoise", "derain", "deblur", "defocus", "run"])
def test_every_task_command_takes_tlc(command):
    result = runner.invoke(app, [command, "--help"], env={"COLUMNS": "200"})

    assert "--tlc " in result.stdout and "--tlc-window" in result.stdout
