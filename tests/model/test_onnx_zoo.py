"""`restore models import FILE.onnx --sha256 HEX`: an offline site's verified ONNX zoo."""

from __future__ import annotations

import hashlib
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from restore_cli.cli.app import app
from restore_cli.io.decode import read_image
from tests.cli.test_onnx import _not_an_image_network
from tests.cli_assertions import assert_one_line_error
from tests.photos import CBSD68_3096

pytest.importorskip("onnxruntime", reason='ONNX Runtime is not installed (pip install -e ".[test]" installs it)')
runner = CliRunner()


def _invoke(*args: str | Path):
    return runner.invoke(app, [str(arg) for arg in args])


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_an_imported_graph_runs_by_name_and_a_changed_file_is_refused(tiny_onnx, hf_home: Path, tmp_path: Path) -> None:
    source = tmp_path / "derain_small.onnx"
    shutil.copy(tiny_onnx.path, source)

    imported = _invoke("models", "import", source, "--sha256", _sha256(source))
    assert imported.exit_code == 0, imported.output
    assert "derain_small.onnx: installed" in imported.stderr and "--sha256" in imported.stderr
    installed = Path(_invoke("models", "path", "derain_small.onnx").stdout.strip())
    assert installed.parent == hf_home / "restore" / "models" and installed.read_bytes() == source.read_bytes()

    photo, by_name, by_file = tmp_path / "photo.png", tmp_path / "by_name.png", tmp_path / "by_file.png"
    Image.open(CBSD68_3096).crop((0, 0, 96, 64)).save(photo)
    for model, out in ((["--model", "derain_small.onnx"], by_name), (["--weights", source], by_file)):
        result = _invoke("derain", photo, *model, "-o", out, "--tile", "0", "--quiet", "--offline")
        assert result.exit_code == 0, result.output
    assert np.array_equal(read_image(by_name).pixels, read_image(by_file).pixels)

    with installed.open("ab") as handle:
        handle.write(b"\0")  # the file changes after it was verified
    result = _invoke("derain", photo, "--model", "derain_small.onnx", "-o", tmp_path / "x.png")
    assert_one_line_error(result, 1, "derain_small.onnx: checksum mismatch", "import it again")
    assert not installed.exists() and not (tmp_path / "x.png").exists()


def test_verify_rehashes_imported_graphs(tiny_onnx, hf_home: Path, tmp_path: Path) -> None:
    assert _invoke("models", "import", tiny_onnx.path, "--name", "mine", "--sha256", _sha256(tiny_onnx.path)).exit_code == 0
    result = _invoke("models", "verify", "mine.onnx")
    assert result.exit_code == 0 and result.stdout.startswith("mine.onnx: unpinned — matches the SHA-256 given to")


@pytest.mark.parametrize("case", ["no sha256", "wrong sha256", "not an image network"])
def test_an_import_that_cannot_be_verified_installs_nothing(tiny_onnx, hf_home: Path, tmp_path: Path, case: str) -> None:
    source = tiny_onnx.path if case != "not an image network" else _not_an_image_network(tmp_path / "classifier.onnx")
    given = {"no sha256": [], "wrong sha256": ["--sha256", "0" * 64], "not an image network": ["--sha256", _sha256(source)]}[case]
    expected = {
        "no sha256": (2, "an ONNX export has no pinned SHA-256; pass --sha256 HEX"),
        "wrong sha256": (1, "expected 0000000000000000…; nothing was installed"),
        "not an image network": (1, "not an image restoration network"),
    }[case]

    result = _invoke("models", "import", source, *given)

    assert_one_line_error(result, *expected)
    models = hf_home / "restore" / "models"
    assert not models.exists() or list(models.iterdir()) == []
