"""The README's Python example runs as written, with a tiny checkpoint in place of the zoo
model and a test photo in place of the user's."""

from __future__ import annotations

import re
import runpy
from pathlib import Path

import numpy as np

from restore_cli import Restorer, load_model, read_image, with_pixels, write_image
from tests.photos import CBSD68_3096

README = Path(__file__).parents[1] / "README.md"
WEIGHTS = Path(__file__).parent / "data" / "golden" / "tiny_rgb_withbias.pth"


def test_the_python_example_restores_a_photo(tmp_path: Path, monkeypatch) -> None:
    (example,) = re.findall(r"```python\n(.*?)```", README.read_text(encoding="utf-8"), flags=re.S)
    assert '"real_denoising"' in example and '"photo.jpg"' in example
    script = tmp_path / "example.py"
    script.write_text(example.replace('"real_denoising"', repr(str(WEIGHTS))))
    (tmp_path / "photo.jpg").write_bytes(_as_jpeg(CBSD68_3096))
    monkeypatch.chdir(tmp_path)
    runpy.run_path(str(script))

    original = read_image(tmp_path / "photo.jpg")
    restored = Restorer(load_model(WEIGHTS), tile="auto").restore(original.pixels)
    write_image(with_pixels(original, restored), tmp_path / "expected.jpg")
    written, expected = read_image(tmp_path / "photo_denoise.jpg"), read_image(tmp_path / "expected.jpg")
    np.testing.assert_array_equal(written.pixels, expected.pixels)
    assert np.abs(written.pixels - original.pixels).mean() > 1 / 255  # the restoration, not the input


def _as_jpeg(png: Path) -> bytes:
    import io

    from PIL import Image

    buffer = io.BytesIO()
    Image.open(png).convert("RGB").save(buffer, "JPEG", quality=95)
    return buffer.getvalue()
