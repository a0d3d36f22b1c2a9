"""Photographers' files through `restore run` with a tiny model: HEIC, AVIF, JPEG XL and DNG in
and out, --strength, --depth, --compare, and one clear line for each bad file or request."""

from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np
import pillow_heif
import pytest
import tifffile
from PIL import Image
from typer.testing import CliRunner

from restore_cli.cli.app import app
from restore_cli.engine.restorer import Restorer
from restore_cli.io import plugins
from restore_cli.io.decode import read_image
from restore_cli.model.zoo import load_model
from tests import photo_files
from tests.cli_assertions import assert_one_line_error
from tests.io.test_raw import camera_dng
from tests.photo_files import lightroom_blocks, scene

WEIGHTS = Path(__file__).parents[1] / "data" / "golden" / "tiny_rgb_withbias.pth"
HEIC_10BIT = Path(__file__).parents[1] / "data" / "heic" / "RGB_10__128x128.heif"
EXIF, XMP, ICC = lightroom_blocks()
runner = CliRunner()


def run(*args: str | Path):
    return runner.invoke(app, ["run", "--weights", str(WEIGHTS), "--quiet", *map(str, args)])


def levels(path: Path) -> np.ndarray:
    image = read_image(path)
    return np.rint(image.pixels * (2**image.bit_depth - 1)).astype(np.int64)


def model_output(pixels: np.ndarray) -> np.ndarray:
    return np.clip(Restorer(load_model(WEIGHTS), device="cpu").restore(pixels), 0, 1)


@pytest.fixture(scope="module")
def picture() -> np.ndarray:
    return scene(40, 48, seed=7)


def test_each_format_restores_like_the_png_of_the_same_picture(tmp_path: Path, picture: np.ndarray) -> None:
    folder = tmp_path / "in"
    folder.mkdir()
    Image.fromarray(picture).save(folder / "a.png")
    (folder / "b.heic").write_bytes(photo_files.heic(picture, exif=EXIF, xmp=XMP, icc_profile=ICC))  # all lossless
    (folder / "c.avif").write_bytes(photo_files.avif(np.rint(picture * (1023 / 255)).astype(np.uint16), bits=10))
    (folder / "d.jxl").write_bytes(photo_files.jxl(picture, exif=EXIF, xmp=XMP))

    result = run(folder, "-o", tmp_path / "out", "--quality", "100")  # each output in its input's format, lossless

    assert result.exit_code == 0, result.output
    reference = read_image(tmp_path / "out" / "a.png").pixels
    for name in ("b.heic", "c.avif", "d.jxl"):
        np.testing.assert_allclose(read_image(tmp_path / "out" / name).pixels, reference, atol=1.01 / 255, err_msg=name)
    heic = pillow_heif.open_heif(tmp_path / "out" / "b.heic")
    assert (heic.info["exif"], heic.info["xmp"], heic.info["icc_profile"]) == (EXIF, XMP, ICC)
    assert read_image(tmp_path / "out" / "c.avif").bit_depth == 10
    written_jxl = read_image(tmp_path / "out" / "d.jxl")
    assert written_jxl.source_format == "JXL" and (written_jxl.exif, written_jxl.xmp) == (EXIF, XMP)


def test_a_10_bit_heic_stays_10_bit(tmp_path: Path) -> None:
    result = run(HEIC_10BIT, "-o", tmp_path / "out.heic", "--quality", "100", "--strength", "0")

    assert result.exit_code == 0, result.output
    assert read_image(tmp_path / "out.heic").bit_depth == 10
    assert np.array_equal(levels(tmp_path / "out.heic"), levels(HEIC_10BIT))  # strength 0, lossless: the same levels


def test_a_raw_becomes_a_16_bit_tiff_with_the_cameras_exif(tmp_path: Path) -> None:
    source = tmp_path / "IMG_0001.dng"
    source.write_bytes(camera_dng())

    result = run(source)

    written = tmp_path / "IMG_0001_restored.tif"
    assert result.exit_code == 0, result.output
    image = read_image(written)
    assert image.bit_depth == 16 and image.pixels.shape == (64, 48, 3)
    with Image.open(written) as tiff:
        tags = tiff.getexif()
        assert tags[271] == "Canon" and tags.get_ifd(0x8769)[34855] == 800 and tags.get_ifd(0x8825)[1] == "N"


def test_strength_blends_input_and_output(tmp_path: Path, picture: np.ndarray) -> None:
    source = tmp_path / "photo.png"
    Image.fromarray(picture).save(source)
    deep = tmp_path / "deep.png"
    Image.fromarray(picture[..., 0].astype(np.uint16) * 256 + 3).save(deep)  # 16-bit gray

    for strength in ("0", "0.5", "1"):
        result = run(source, deep, "-o", tmp_path / strength, "--strength", strength)
        assert result.exit_code == 0, result.output

    assert np.array_equal(levels(tmp_path / "0" / "photo.png"), picture)
    assert np.array_equal(levels(tmp_path / "0" / "deep.png")[..., 0], picture[..., 0].astype(np.int64) * 256 + 3)
    full = levels(tmp_path / "1" / "photo.png")
    half = levels(tmp_path / "0.5" / "photo.png")
    assert np.abs(half - (picture + full) / 2).max() <= 1
    assert np.abs(full - picture).max() > 20  # the model does change the picture


def test_depth_32_writes_the_models_output_unquantised(tmp_path: Path, picture: np.ndarray) -> None:
    source = tmp_path / "photo.png"
    Image.fromarray(picture).save(source)

    result = run(source, "-o", tmp_path / "out.tif", "--depth", "32")

    assert result.exit_code == 0, result.output
    written = tifffile.imread(tmp_path / "out.tif")
    assert written.dtype == np.float32
    np.testing.assert_allclose(written, model_output(picture.astype(np.float32) / 255), atol=1e-6)
    assert (np.abs(written * 255 - np.rint(written * 255)) > 0.01).any()  # not 8-bit levels
    again = run(tmp_path / "out.tif", "-o", tmp_path / "same.tif", "--strength", "0")  # float in, float out
    assert again.exit_code == 0 and np.array_equal(tifffile.imread(tmp_path / "same.tif"), written)


@pytest.mark.parametrize(
    ("output", "depth", "fragment"),
    [("out.png", "32", "PNG files cannot hold float samples (--depth 32); write a format that can (--format tif)"),
     ("out.jpg", "16", "JPEG files cannot hold 16-bit samples (--depth 16)"), ("out.tif", "12", "--depth 12: choose 8, 16 or 32")],
)  # fmt: skip
def test_a_depth_the_format_cannot_hold_is_refused_before_any_work(tmp_path: Path, picture: np.ndarray, output: str, depth: str, fragment: str) -> None:
    source = tmp_path / "photo.png"
    Image.fromarray(picture).save(source)

    result = run(source, "-o", tmp_path / output, "--depth", depth)

    assert_one_line_error(result, 2, fragment)
    assert not (tmp_path / output).exists()


def test_a_missing_encoder_names_its_package(tmp_path: Path, picture: np.ndarray, monkeypatch: pytest.MonkeyPatch) -> None:
    source = tmp_path / "photo.png"
    Image.fromarray(picture).save(source)
    real = plugins.importlib.import_module
    monkeypatch.setattr(plugins.importlib, "import_module", lambda name: _refuse(name) if name == "pillow_heif" else real(name))

    result = run(source, "--format", "heic")

    assert_one_line_error(result, 2, "writing HEIC files needs the pillow-heif package", 'pip install "restore-cli[formats]"')
    assert list(tmp_path.iterdir()) == [source]


def _refuse(name: str) -> None:
    raise ImportError(name)


def test_compare_shows_input_and_output_side_by_side(tmp_path: Path, picture: np.ndarray) -> None:
    source = tmp_path / "photo.png"
    Image.fromarray(picture).save(source)

    result = run(source, "-o", tmp_path / "out.png", "--compare", tmp_path / "view.png")

    assert result.exit_code == 0, result.output
    view = np.asarray(Image.open(tmp_path / "view.png"), dtype=np.int64)
    height, width = picture.shape[:2]
    assert view.shape == (height, 2 * width + 8, 3)  # shown whole at 100 %: no crop beneath
    below_labels = slice(24, None)
    assert np.array_equal(view[below_labels, :width], picture[below_labels])
    assert np.array_equal(view[below_labels, width + 8 :], levels(tmp_path / "out.png")[below_labels])


def test_compare_crops_the_most_changed_region_of_a_big_photo(tmp_path: Path) -> None:
    picture = scene(800, 40, seed=2)  # too tall for the screen: scaled down, with a 100 % crop beneath
    source = tmp_path / "tall.png"
    Image.fromarray(picture).save(source)

    result = run(source, "-o", tmp_path / "out.png", "--compare", tmp_path / "view.png")

    assert result.exit_code == 0, result.output
    view = np.asarray(Image.open(tmp_path / "view.png"), dtype=np.int64)
    assert view.shape[1] <= 1920 and view.shape[0] <= 1080
    crop = view[-352:, :40]  # beneath: the input's 40 x 352 region the model changed most, at 100 %
    change = np.abs(levels(tmp_path / "out.png") - picture).sum(axis=(1, 2))
    top = int(np.argmax(np.convolve(change, np.ones(352), mode="valid")))
    assert any(np.array_equal(crop[30:], picture[start + 30 : start + 352]) for start in range(max(0, top - 8), top + 9))


def test_compare_in_a_batch_writes_a_view_per_input_and_never_over_another_file(tmp_path: Path, picture: np.ndarray) -> None:
    folder = tmp_path / "shoot"
    folder.mkdir()
    for name in ("a.png", "b.png"):
        Image.fromarray(picture).save(folder / name)

    result = run(folder, "-o", tmp_path / "out", "--compare", tmp_path / "views")
    over_input = run(folder / "a.png", "-o", tmp_path / "x.png", "--compare", folder / "a.png")
    over_a_file = run(folder / "a.png", "-o", tmp_path / "x.png", "--compare", folder / "b.png")

    assert result.exit_code == 0, result.output
    assert sorted(path.name for path in (tmp_path / "views").iterdir()) == ["a_compare.jpg", "b_compare.jpg"]
    assert_one_line_error(over_input, 2, "would replace an input")
    assert_one_line_error(over_a_file, 2, f"{folder / 'b.png'} already exists; pass --overwrite")
    assert not (tmp_path / "x.png").exists()


def test_damaged_files_fail_alone(tmp_path: Path, picture: np.ndarray) -> None:
    folder = tmp_path / "in"
    folder.mkdir()
    Image.fromarray(picture).save(folder / "good.png")
    for name, data in (
        ("bad.heic", photo_files.heic(picture)),
        ("bad.avif", photo_files.avif(picture)),
        ("bad.jxl", photo_files.jxl(picture)),
        ("bad.dng", camera_dng()),
    ):
        (folder / name).write_bytes(data[: len(data) // 3])

    result = runner.invoke(app, ["run", "--weights", str(WEIGHTS), str(folder), "-o", str(tmp_path / "out")])

    assert result.exit_code == 1
    errors = [line for line in result.stderr.splitlines() if line.startswith("error: ")]
    assert len(errors) == 4 and all("cannot decode image" in line or "not a readable image" in line for line in errors)
    assert sorted(path.name for path in (tmp_path / "out").iterdir()) == ["good.png"]  # nothing half-written
    assert "Traceback" not in result.output


def test_heic_read_as_a_stream_and_written_to_stdout(picture: np.ndarray) -> None:
    result = runner.invoke(
        app, ["run", "--weights", str(WEIGHTS), "-", "-o", "-", "--format", "avif", "--quiet"], input=photo_files.heic(picture)
    )

    assert result.exit_code == 0, result.stderr
    assert read_image(io.BytesIO(result.stdout_bytes)).source_format == "AVIF"


def test_eval_shows_the_worst_and_best_images(tmp_path: Path) -> None:
    (tmp_path / "input").mkdir()
    (tmp_path / "target").mkdir()
    for name, seed in (("1", 1), ("2", 2)):
        clean = scene(32, 32, seed=seed)
        Image.fromarray(clean).save(tmp_path / "target" / f"{name}.png")
        Image.fromarray(np.clip(clean.astype(int) + 10 * seed, 0, 255).astype(np.uint8)).save(tmp_path / "input" / f"{name}.png")
    task = ["eval", "--task", "derain", "--input", str(tmp_path / "input"), "--target", str(tmp_path / "target"), "--weights", str(WEIGHTS), "--json"]

    result = runner.invoke(app, [*task, "--compare", str(tmp_path / "views")])
    refused = runner.invoke(app, ["eval", str(tmp_path / "input"), str(tmp_path / "target"), "--compare", str(tmp_path / "views")])

    assert result.exit_code == 0, result.output
    rows = {row["input"]: row["psnr"] for row in map(json.loads, result.stdout.splitlines()) if row["type"] == "image"}
    worst, best = sorted(rows, key=rows.get)  # type: ignore[arg-type]
    assert sorted(path.name for path in (tmp_path / "views").iterdir()) == [f"best_{best}.jpg", f"worst_{worst}.jpg"]
    assert_one_line_error(refused, 2, "--compare cannot be used when scoring PRED against GT")
