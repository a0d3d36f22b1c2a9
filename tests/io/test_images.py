"""Image decode/encode: every check compares against an independent decoder or known values."""

from __future__ import annotations

import io
import os
from pathlib import Path

import imagecodecs
import numpy as np
import pytest
import tifffile
from PIL import Image, ImageOps

from restore_cli.errors import ImageError
from restore_cli.io import decode, encode
from restore_cli.io.decode import read_image
from restore_cli.io.encode import write_image
from restore_cli.io.image import DecodedImage, to_tensor, with_pixels

DATA = Path(__file__).parents[1] / "data" / "images"
PIXEL2XL_16BIT = DATA / "pixel2xl_16bit_rgb.png"
PORTRAIT_8 = DATA / "portrait_8.jpg"
LANDSCAPE = DATA / "Landscape_9.jpg"
SET12_GRAY = DATA / "set12_01.png"

RNG = np.random.default_rng(1234)


def wide_uint16(*shape: int) -> np.ndarray:
    """Random 16-bit samples that include 0, 65535 and values an 8-bit path would destroy."""
    samples = RNG.integers(0, 65536, shape, dtype=np.uint16)
    samples.flat[:3] = [0, 65535, 257 * 3 + 1]
    return samples


def stored(image: DecodedImage) -> np.ndarray:
    """The integer samples the pixels came from (colour channels, channels last)."""
    return np.rint(image.pixels * (2**image.bit_depth - 1)).astype(np.int64)


def png16_bytes(samples: np.ndarray) -> bytes:
    return imagecodecs.png_encode(samples)


def tiff_bytes(samples: np.ndarray, **options: object) -> bytes:
    buffer = io.BytesIO()
    tifffile.imwrite(buffer, samples, **options)
    return buffer.getvalue()


def pillow_bytes(picture: Image.Image, fmt: str, **options: object) -> bytes:
    buffer = io.BytesIO()
    picture.save(buffer, fmt, **options)
    return buffer.getvalue()


# ---------------------------------------------------------------- 16-bit


def test_real_16bit_png_keeps_full_precision() -> None:
    image = read_image(PIXEL2XL_16BIT)
    eight_bit = np.asarray(Image.open(PIXEL2XL_16BIT).convert("RGB"), dtype=np.int64)

    assert image.bit_depth == 16 and image.pixels.shape == (64, 64, 3)
    assert image.pixels.dtype == np.float32
    assert (stored(image) % 256 != 0).any(), "low bytes must survive, not just Pillow's 8-bit view"
    assert np.array_equal(stored(image) >> 8, eight_bit)
    assert image.icc_profile == Image.open(PIXEL2XL_16BIT).info["icc_profile"]


@pytest.mark.parametrize("shape", [(12, 10), (12, 10, 3)], ids=["gray", "rgb"])
@pytest.mark.parametrize("fmt", ["png", "tif"])
def test_16bit_read_and_write_are_exact(tmp_path: Path, shape: tuple[int, ...], fmt: str) -> None:
    samples = wide_uint16(*shape)
    source = tmp_path / f"in.{fmt}"
    photometric = "rgb" if len(shape) == 3 else "minisblack"
    source.write_bytes(png16_bytes(samples) if fmt == "png" else tiff_bytes(samples, photometric=photometric))

    image = read_image(source)
    assert image.bit_depth == 16
    assert np.array_equal(stored(image), samples.reshape(12, 10, -1))

    target = tmp_path / f"out.{fmt}"
    write_image(image, target)
    written = imagecodecs.png_decode(target.read_bytes()) if fmt == "png" else tifffile.imread(target)
    assert written.dtype == np.uint16
    assert np.array_equal(written, samples)


@pytest.mark.parametrize("fmt", ["png", "tif"])
def test_16bit_write_accepts_pixels_from_a_tensor(tmp_path: Path, fmt: str) -> None:
    """Restored pixels come back as a permuted (non-contiguous) tensor view."""
    samples = wide_uint16(12, 10, 3)
    source = tmp_path / f"in.{fmt}"
    source.write_bytes(png16_bytes(samples) if fmt == "png" else tiff_bytes(samples, photometric="rgb"))
    image = read_image(source)

    target = tmp_path / f"out.{fmt}"
    write_image(with_pixels(image, to_tensor(image)), target)
    written = imagecodecs.png_decode(target.read_bytes()) if fmt == "png" else tifffile.imread(target)
    assert np.array_equal(written, samples)


@pytest.mark.parametrize("fmt", ["png", "tif"])
def test_16bit_alpha_is_passed_through(tmp_path: Path, fmt: str) -> None:
    samples = wide_uint16(9, 7, 4)
    source = tmp_path / f"in.{fmt}"
    if fmt == "png":
        source.write_bytes(png16_bytes(samples))
    else:
        source.write_bytes(tiff_bytes(samples, photometric="rgb", extrasamples=["unassalpha"]))

    image = read_image(source)
    assert image.alpha is not None and image.alpha.dtype == np.uint16
    assert np.array_equal(image.alpha, samples[..., 3])

    write_image(image, tmp_path / f"out.{fmt}")
    out = tmp_path / f"out.{fmt}"
    written = imagecodecs.png_decode(out.read_bytes()) if fmt == "png" else tifffile.imread(out)
    assert np.array_equal(written, samples)


def test_planar_16bit_tiff_is_read_channels_last(tmp_path: Path) -> None:
    samples = wide_uint16(3, 8, 6)
    source = tmp_path / "planar.tif"
    source.write_bytes(tiff_bytes(samples, photometric="rgb", planarconfig="separate"))

    assert np.array_equal(stored(read_image(source)), np.moveaxis(samples, 0, -1))


def test_16bit_to_8bit_format_rounds_to_nearest(tmp_path: Path) -> None:
    samples = np.array([[0, 128, 129, 65535, 257 * 200 + 128]], dtype=np.uint16)
    source = tmp_path / "in.png"
    source.write_bytes(png16_bytes(samples))

    write_image(read_image(source), tmp_path / "out.bmp")
    assert np.asarray(Image.open(tmp_path / "out.bmp")).tolist() == [[0, 0, 1, 255, 200]]


def test_16bit_png_metadata_is_written_back(tmp_path: Path) -> None:
    lightroom = read_image(LANDSCAPE)
    image = read_image(PIXEL2XL_16BIT)
    image.exif, image.xmp, image.dpi = lightroom.exif, lightroom.xmp, lightroom.dpi

    write_image(image, tmp_path / "out.png")
    reopened = Image.open(tmp_path / "out.png")
    reopened.load()
    assert reopened.info["icc_profile"] == image.icc_profile
    assert reopened.info["exif"] == lightroom.exif
    assert reopened.info["xmp"] == lightroom.xmp
    assert reopened.info["dpi"] == pytest.approx((240, 240), abs=0.01)
    assert read_image(tmp_path / "out.png").exif == lightroom.exif


# ---------------------------------------------------------------- 8-bit, modes


@pytest.mark.parametrize("fmt", ["png", "tif", "bmp"])
def test_8bit_round_trip_is_exact(tmp_path: Path, fmt: str) -> None:
    image = read_image(SET12_GRAY)
    original = np.asarray(Image.open(SET12_GRAY))
    assert image.bit_depth == 8 and image.pixels.shape == (*original.shape, 1)
    assert np.array_equal(stored(image)[..., 0], original)

    write_image(image, tmp_path / f"out.{fmt}")
    reread = read_image(tmp_path / f"out.{fmt}")
    assert reread.bit_depth == 8
    assert np.array_equal(stored(reread)[..., 0], original)


def test_8bit_output_is_rounded_not_truncated(tmp_path: Path) -> None:
    values = np.array([10, 10, 200, 200], dtype=np.float32)
    nudges = np.array([0.45, 0.55, 0.45, 0.55], dtype=np.float32)
    image = DecodedImage(((values + nudges) / 255).reshape(1, 4, 1), None, 8, None, None, "PNG")

    write_image(image, tmp_path / "out.png")
    assert np.asarray(Image.open(tmp_path / "out.png")).tolist() == [[10, 11, 200, 201]]


@pytest.mark.parametrize("fmt", ["png", "tif", "webp"])
def test_8bit_alpha_is_passed_through(tmp_path: Path, fmt: str) -> None:
    samples = RNG.integers(0, 256, (10, 12, 4), dtype=np.uint8)
    source = tmp_path / "in.png"
    Image.fromarray(samples).save(source)

    image = read_image(source)
    assert image.alpha is not None and image.alpha.dtype == np.uint8
    assert np.array_equal(image.alpha, samples[..., 3])

    write_image(image, tmp_path / f"out.{fmt}")
    assert np.array_equal(read_image(tmp_path / f"out.{fmt}").alpha, samples[..., 3])


def test_la_image_keeps_gray_and_alpha(tmp_path: Path) -> None:
    samples = RNG.integers(0, 256, (6, 5, 2), dtype=np.uint8)
    source = tmp_path / "la.png"
    Image.fromarray(samples, "LA").save(source)

    image = read_image(source)
    assert image.pixels.shape == (6, 5, 1)
    assert np.array_equal(stored(image)[..., 0], samples[..., 0])
    assert np.array_equal(image.alpha, samples[..., 1])


def test_palette_with_transparency_becomes_rgba(tmp_path: Path) -> None:
    palette = [255, 0, 0, 0, 255, 0, 0, 0, 255]
    indices = np.array([[0, 1, 2], [2, 1, 0]], dtype=np.uint8)
    picture = Image.fromarray(indices, "P")
    picture.putpalette(palette)
    source = tmp_path / "palette.png"
    picture.save(source, transparency=1)

    image = read_image(source)
    colours = np.array(palette).reshape(3, 3)[indices]
    assert np.array_equal(stored(image), colours)
    assert image.alpha.tolist() == [[255, 0, 255], [255, 0, 255]]


def test_cmyk_jpeg_is_converted_to_rgb(tmp_path: Path) -> None:
    source = tmp_path / "cmyk.jpg"
    Image.fromarray(RNG.integers(0, 256, (8, 8, 3), dtype=np.uint8)).convert("CMYK").save(source)

    image = read_image(source)
    assert image.pixels.shape == (8, 8, 3) and image.icc_profile is None
    assert np.array_equal(stored(image), np.asarray(Image.open(source).convert("RGB")))


def test_unsupported_mode_is_a_clear_error(tmp_path: Path) -> None:
    source = tmp_path / "signed.tif"
    source.write_bytes(tiff_bytes(np.zeros((4, 4), dtype=np.int32)))

    with pytest.raises(ImageError, match="signed.tif: 32-bit signed"):
        read_image(source)


# ---------------------------------------------------------------- metadata and orientation


@pytest.mark.parametrize("fmt", ["png", "jpg", "webp"])
def test_icc_and_exif_bytes_survive(tmp_path: Path, fmt: str) -> None:
    original = Image.open(LANDSCAPE)
    image = read_image(LANDSCAPE)
    assert image.icc_profile == original.info["icc_profile"]
    assert image.exif is not None and len(image.exif) < len(original.info["exif"]), "the thumbnail is dropped"

    write_image(image, tmp_path / f"out.{fmt}")
    reread = read_image(tmp_path / f"out.{fmt}")
    assert reread.icc_profile == original.info["icc_profile"]
    assert reread.exif == image.exif


def test_icc_profile_survives_tiff(tmp_path: Path) -> None:
    image = read_image(LANDSCAPE)
    write_image(image, tmp_path / "out.tif")
    assert read_image(tmp_path / "out.tif").icc_profile == image.icc_profile


def test_orientation_8_jpeg_is_made_upright() -> None:
    raw = Image.open(PORTRAIT_8)
    assert raw.getexif()[0x0112] == 8
    image = read_image(PORTRAIT_8)

    expected = np.rot90(np.asarray(raw), k=1)  # orientation 8: rotate 90 degrees counter-clockwise
    assert np.array_equal(stored(image), expected)
    assert image.pixels.shape == (600, 450, 3)

    exif = Image.Exif()
    exif.load(image.exif)
    assert exif[0x0112] == 1
    assert exif.get_ifd(0x8769) == {0xA002: 450, 0xA003: 600}, "the stored 600x450 is now 450x600"
    assert len(image.exif) == len(raw.info["exif"]), "edited in place: nothing moved"


@pytest.mark.parametrize("orientation", range(1, 9))
def test_every_orientation_matches_pillows_transpose(tmp_path: Path, orientation: int) -> None:
    picture = Image.fromarray(RNG.integers(0, 256, (5, 7, 3), dtype=np.uint8))
    exif = Image.Exif()
    exif[0x0112] = orientation
    source = tmp_path / "oriented.png"
    picture.save(source, exif=exif)

    expected = np.asarray(ImageOps.exif_transpose(Image.open(source)))
    assert np.array_equal(stored(read_image(source)), expected)


def test_upright_output_displays_like_input(tmp_path: Path) -> None:
    write_image(read_image(PORTRAIT_8), tmp_path / "out.jpg")
    as_displayed = ImageOps.exif_transpose(Image.open(tmp_path / "out.jpg"))
    assert as_displayed.size == ImageOps.exif_transpose(Image.open(PORTRAIT_8)).size == (450, 600)


# ---------------------------------------------------------------- formats, quality, streams


def test_format_comes_from_extension_or_argument(tmp_path: Path) -> None:
    image = read_image(SET12_GRAY)
    write_image(image, tmp_path / "a.JPEG")
    write_image(image, tmp_path / "b.png", format="tiff")

    assert Image.open(tmp_path / "a.JPEG").format == "JPEG"
    assert Image.open(tmp_path / "b.png").format == "TIFF"


def test_jpeg_quality_defaults_to_95(tmp_path: Path) -> None:
    image = read_image(LANDSCAPE)
    for name, quality in (("default.jpg", None), ("q95.jpg", 95), ("q50.jpg", 50)):
        options = {} if quality is None else {"quality": quality}
        write_image(image, tmp_path / name, **options)

    assert (tmp_path / "default.jpg").read_bytes() == (tmp_path / "q95.jpg").read_bytes()
    assert (tmp_path / "default.jpg").read_bytes() != (tmp_path / "q50.jpg").read_bytes()


def test_stream_read_and_write() -> None:
    source = io.BytesIO(PIXEL2XL_16BIT.read_bytes())
    image = read_image(source)

    sink = io.BytesIO()
    write_image(image, sink)
    assert sink.getvalue().startswith(b"\x89PNG")
    assert np.array_equal(stored(read_image(io.BytesIO(sink.getvalue()))), stored(image))

    jpeg = io.BytesIO()
    write_image(image, jpeg, format="jpg")
    assert Image.open(jpeg).format == "JPEG"


def test_closed_stream_is_a_clear_error() -> None:
    class ClosedPipe(io.RawIOBase):
        name = "<stdout>"

        def write(self, data: bytes) -> int:
            raise BrokenPipeError(32, "Broken pipe")

    with pytest.raises(ImageError, match="still reading") as error:
        write_image(read_image(SET12_GRAY), ClosedPipe())
    assert_one_line_naming(error, "<stdout>")


def test_tensor_helpers_keep_gray_images_gray() -> None:
    image = read_image(SET12_GRAY)
    tensor = to_tensor(image, channels=3)
    assert tuple(tensor.shape) == (1, 3, 256, 256) and str(tensor.dtype) == "torch.float32"

    restored = with_pixels(image, tensor * 2)
    assert restored.pixels.shape == (256, 256, 1)
    assert restored.pixels.max() == 1.0, "values are clipped to [0, 1]"
    assert np.allclose(with_pixels(image, tensor).pixels, image.pixels, atol=1e-6)


# ---------------------------------------------------------------- atomic writes


def test_failed_encode_leaves_nothing_behind(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    target = tmp_path / "out.png"
    target.write_bytes(b"previous output")

    def broken_encoder(*args: object) -> bytes:
        raise RuntimeError("encoder exploded")

    monkeypatch.setattr(encode, "_encode", broken_encoder)
    with pytest.raises(ImageError, match="out.png"):
        write_image(read_image(SET12_GRAY), target)

    assert os.listdir(tmp_path) == ["out.png"]
    assert target.read_bytes() == b"previous output"


@pytest.mark.parametrize("failure", [OSError(28, "No space left on device"), KeyboardInterrupt()])
def test_interrupted_write_leaves_no_temp_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, failure: BaseException
) -> None:
    target = tmp_path / "out.png"

    def broken_fsync(fd: int) -> None:
        raise failure

    monkeypatch.setattr(os, "fsync", broken_fsync)
    with pytest.raises(ImageError if isinstance(failure, OSError) else KeyboardInterrupt):
        write_image(read_image(SET12_GRAY), target)

    assert os.listdir(tmp_path) == []


def test_written_file_has_ordinary_permissions(tmp_path: Path) -> None:
    write_image(read_image(SET12_GRAY), tmp_path / "out.png")
    umask = os.umask(0)
    os.umask(umask)
    assert (tmp_path / "out.png").stat().st_mode & 0o777 == 0o666 & ~umask


# ---------------------------------------------------------------- user errors


def assert_one_line_naming(error: pytest.ExceptionInfo[ImageError], name: str) -> None:
    message = str(error.value)
    assert name in message and "\n" not in message


@pytest.mark.parametrize(
    ("name", "content", "hint"),
    [
        ("empty.png", b"", "empty"),
        ("truncated.png", SET12_GRAY.read_bytes()[:2000], "cannot decode"),
        ("notes.jpg", b"this is a text file, not a photo\n" * 10, "not a readable image"),
        ("anim.gif", pillow_bytes(Image.new("L", (4, 4)), "GIF"), "not supported"),
    ],
)
def test_bad_inputs_raise_one_line_naming_the_file(tmp_path: Path, name: str, content: bytes, hint: str) -> None:
    path = tmp_path / name
    path.write_bytes(content)
    with pytest.raises(ImageError, match=hint) as error:
        read_image(path)
    assert_one_line_naming(error, str(path))


def test_missing_file_and_folder_are_clear(tmp_path: Path) -> None:
    with pytest.raises(ImageError, match="no such file") as error:
        read_image(tmp_path / "missing.png")
    assert_one_line_naming(error, "missing.png")
    with pytest.raises(ImageError, match="folder"):
        read_image(tmp_path)


def test_unknown_output_extension_or_format(tmp_path: Path) -> None:
    image = read_image(SET12_GRAY)
    with pytest.raises(ImageError, match="extension") as error:
        write_image(image, tmp_path / "out.xyz")
    assert_one_line_naming(error, "out.xyz")
    with pytest.raises(ImageError, match="unknown format"):
        write_image(image, tmp_path / "out.png", format="gif")
    assert os.listdir(tmp_path) == []


def test_missing_output_folder_is_clear(tmp_path: Path) -> None:
    with pytest.raises(ImageError, match="writable") as error:
        write_image(read_image(SET12_GRAY), tmp_path / "nowhere" / "out.png")
    assert_one_line_naming(error, "out.png")


def test_pixel_limit_refuses_large_images_and_can_be_raised(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    source = tmp_path / "big.png"
    Image.new("RGB", (40, 30)).save(source)

    monkeypatch.setattr(decode, "MAX_PIXELS", 1000)
    with pytest.raises(ImageError, match="MAX_PIXELS") as error:
        read_image(source)
    assert_one_line_naming(error, "big.png")

    monkeypatch.setattr(decode, "MAX_PIXELS", 1200)
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 100)  # far below: Pillow alone would refuse
    assert read_image(source).pixels.shape == (30, 40, 3)
    assert Image.MAX_IMAGE_PIXELS == 100, "Pillow's own setting is left as it was"
