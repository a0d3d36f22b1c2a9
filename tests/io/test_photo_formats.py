"""HEIC, AVIF and JPEG XL in and out: pixels, bit depth, metadata and orientation, each checked
against an independent codec (pillow-heif, Pillow's AVIF, imagecodecs) or known values."""

from __future__ import annotations

import importlib
import io
from dataclasses import replace
from pathlib import Path

import imagecodecs
import numpy as np
import pillow_heif
import pytest
from PIL import Image, ImageOps

from restore_cli.errors import ImageError
from restore_cli.io import plugins
from restore_cli.io.decode import read_image
from restore_cli.io.encode import write_image
from restore_cli.io.image import DecodedImage
from restore_cli.io.metadata import EXIF_PREFIX, ORIENTATION_TAG
from tests import photo_files
from tests.photo_files import DATA, lightroom_blocks, scene

EXIF, XMP, ICC = lightroom_blocks()
HEIC_10BIT = DATA / "heic" / "RGB_10__128x128.heif"
CAMERA_HEIC = DATA / "heic" / "L_exif_xmp_iptc.heic"


def levels(image: DecodedImage) -> np.ndarray:
    return np.rint(image.pixels * (2**image.bit_depth - 1)).astype(np.int64)


def orientation_of(exif: bytes | None) -> int | None:
    tags = Image.Exif()
    tags.load(exif[len(EXIF_PREFIX) :] if exif else b"")
    return tags.get(ORIENTATION_TAG)


# ---------------------------------------------------------------- reading


@pytest.mark.parametrize("bits", [8, 10, 12])
def test_heic_keeps_its_levels_depth_and_metadata(bits: int) -> None:
    picture = scene(12, 16, top=2**bits - 1)

    image = read_image(io.BytesIO(photo_files.heic(picture, bits, exif=EXIF, xmp=XMP, icc_profile=ICC)))

    assert image.source_format == "HEIF" and image.bit_depth == bits
    assert np.array_equal(levels(image), picture)
    assert (image.exif, image.xmp, image.icc_profile) == (EXIF, XMP, ICC)


def test_real_heic_files_decode_like_pillow_heif() -> None:
    ten_bit = read_image(HEIC_10BIT)
    reference = np.asarray(pillow_heif.open_heif(HEIC_10BIT, convert_hdr_to_8bit=False)) >> 6
    assert ten_bit.bit_depth == 10 and np.array_equal(levels(ten_bit), reference)

    camera = read_image(CAMERA_HEIC)
    heif = pillow_heif.open_heif(CAMERA_HEIC)
    assert camera.channels == 1 and np.array_equal(levels(camera)[..., 0], np.asarray(heif))
    assert camera.exif == heif.info["exif"] and b"SONY" in camera.exif and camera.xmp == heif.info["xmp"]


@pytest.mark.parametrize("orientation", [3, 6, 8])
def test_a_phones_heic_is_upright_with_its_orientation_reset(orientation: int) -> None:
    picture = scene(12, 20)  # as the sensor saw it
    data = photo_files.heic_with_orientation(picture, orientation)
    shown = Image.fromarray(picture)
    shown.info["exif"] = photo_files.camera_exif(orientation)

    image = read_image(io.BytesIO(data))

    assert np.array_equal(levels(image), np.asarray(ImageOps.exif_transpose(shown)))  # as a viewer shows it
    assert np.array_equal(levels(image), np.asarray(pillow_heif.open_heif(io.BytesIO(data))))  # as libheif does
    assert orientation_of(image.exif) == 1


@pytest.mark.parametrize("orientation", range(1, 9))
def test_avif_rotation_and_mirroring_are_applied(orientation: int) -> None:
    data = photo_files.avif(scene(10, 14), exif=photo_files.camera_exif(orientation), xmp=XMP, icc_profile=ICC)  # Pillow: irot/imir
    shown = Image.fromarray(imagecodecs.avif_decode(data))  # the samples as stored
    shown.info["exif"] = photo_files.camera_exif(orientation)

    image = read_image(io.BytesIO(data))

    assert np.array_equal(levels(image), np.asarray(ImageOps.exif_transpose(shown)))
    assert orientation_of(image.exif) in (None, 1) and image.icc_profile == ICC and image.xmp == XMP


@pytest.mark.parametrize("bits", [10, 12])
def test_deep_avif_keeps_its_levels(bits: int) -> None:
    picture = scene(9, 13, top=2**bits - 1)

    image = read_image(io.BytesIO(photo_files.avif(picture, bits)))

    assert image.bit_depth == bits and np.array_equal(levels(image), picture)


@pytest.mark.parametrize("compress_xmp", [False, True], ids=["xml", "brob"])
@pytest.mark.parametrize("dtype", [np.uint8, np.uint16, np.float32])
def test_jxl_keeps_its_samples_and_metadata(dtype: type, compress_xmp: bool) -> None:
    top = {np.uint8: 255, np.uint16: 65535, np.float32: 65535}[dtype]
    picture = scene(10, 12, top=top)
    samples = (picture / 65535).astype(np.float32) if dtype is np.float32 else picture

    image = read_image(io.BytesIO(photo_files.jxl(samples, exif=EXIF, xmp=XMP, compress_xmp=compress_xmp)))

    assert image.source_format == "JXL" and image.bit_depth == {np.uint8: 8, np.uint16: 16, np.float32: 32}[dtype]
    if dtype is np.float32:
        assert np.array_equal(image.pixels, samples)
    else:
        assert np.array_equal(levels(image), picture)
    assert (image.exif, image.xmp) == (EXIF, XMP)


def test_an_animated_avif_is_refused() -> None:
    frames = [Image.fromarray(scene(8, 8, seed=seed)) for seed in (1, 2)]
    buffer = io.BytesIO()
    frames[0].save(buffer, "AVIF", save_all=True, append_images=frames[1:], duration=100)

    with pytest.raises(ImageError, match="<stream>: is an animated AVIF; restore works on single images"):
        read_image(io.BytesIO(buffer.getvalue()))


def test_files_are_recognised_by_content_not_name(tmp_path: Path) -> None:
    disguised = tmp_path / "photo.jpg"
    disguised.write_bytes(photo_files.heic(scene(8, 8)))
    also = tmp_path / "photo.png"
    also.write_bytes(photo_files.jxl(scene(8, 8)))

    assert read_image(disguised).source_format == "HEIF" and read_image(also).source_format == "JXL"


@pytest.mark.parametrize("kind", ["heic", "avif", "jxl"])
def test_damaged_files_are_one_line_errors(kind: str) -> None:
    whole = {"heic": photo_files.heic, "avif": photo_files.avif, "jxl": photo_files.jxl}[kind](scene(32, 32, seed=3))

    for damaged in (whole[: len(whole) // 2], whole[:40] + bytes(200) + whole[240:]):
        with pytest.raises(ImageError) as error:
            read_image(io.BytesIO(damaged))
        assert "\n" not in str(error.value) and "<stream>" in str(error.value)


def test_a_missing_plugin_names_its_package(monkeypatch: pytest.MonkeyPatch) -> None:
    heic, deep = photo_files.heic(scene(8, 8)), read_image(HEIC_10BIT)
    real = importlib.import_module

    def without_pillow_heif(name: str) -> object:
        if name == "pillow_heif":
            raise ImportError(name)
        return real(name)

    monkeypatch.setattr(plugins.importlib, "import_module", without_pillow_heif)
    named = io.BytesIO(heic)
    named.name = "photo.heic"

    with pytest.raises(ImageError, match=r"^photo\.heic: reading HEIC files needs the pillow-heif package; install it \(pip install pillow-heif"):
        read_image(named)
    with pytest.raises(ImageError, match="writing HEIC files needs the pillow-heif package"):
        write_image(deep, io.BytesIO(), format="heic")


# ---------------------------------------------------------------- writing


@pytest.mark.parametrize(("fmt", "depth", "bits"), [("heic", None, 10), ("heic", 16, 12), ("avif", None, 10), ("avif", 16, 12), ("jxl", None, 16)])
def test_deep_outputs_keep_their_precision(fmt: str, depth: int | None, bits: int) -> None:
    source = read_image(HEIC_10BIT)  # 10-bit
    sink = io.BytesIO()

    write_image(source, sink, format=fmt, quality=100, depth=depth)

    written = read_image(io.BytesIO(sink.getvalue()))
    assert written.bit_depth == bits
    np.testing.assert_allclose(written.pixels, source.pixels, atol=0.51 / 1023)  # lossless: each 10-bit level back


def test_avif_written_at_12_bits_is_read_back_by_libavif() -> None:
    source = read_image(io.BytesIO(photo_files.avif(scene(9, 13, top=4095), 12)))
    sink = io.BytesIO()

    write_image(replace(source, exif=EXIF, xmp=XMP, icc_profile=ICC), sink, format="avif", quality=100)

    assert np.array_equal(imagecodecs.avif_decode(sink.getvalue()), scene(9, 13, top=4095))
    with Image.open(io.BytesIO(sink.getvalue())) as libavif:  # Pillow's own AVIF reader
        assert (b"Exif\x00\x00" + libavif.info["exif"], libavif.info["xmp"], libavif.info["icc_profile"]) == (EXIF, XMP, ICC)


@pytest.mark.parametrize("fmt", ["heic", "avif", "jxl"])
def test_metadata_is_carried_into_each_format(fmt: str) -> None:
    source = read_image(photo_files.LANDSCAPE)
    small = replace(source, pixels=source.pixels[:24, :32].copy())
    sink = io.BytesIO()

    write_image(small, sink, format=fmt)

    data = sink.getvalue()
    if fmt == "heic":
        heif = pillow_heif.open_heif(io.BytesIO(data))
        found = (heif.info["exif"], heif.info["xmp"], heif.info["icc_profile"])
    elif fmt == "avif":
        with Image.open(io.BytesIO(data)) as libavif:
            found = (b"Exif\x00\x00" + libavif.info["exif"], libavif.info["xmp"], libavif.info["icc_profile"])
    else:
        boxes = photo_files.jxl_boxes(data)
        found = (b"Exif\x00\x00" + boxes[b"Exif"][4:], boxes[b"xml "], ICC)  # JPEG XL outputs cannot take the profile
        assert imagecodecs.jpegxl_decode(data).shape == (24, 32, 3)
    assert found == (small.exif, small.xmp, small.icc_profile)


def test_quality_trades_size_for_fidelity() -> None:
    source = read_image(io.BytesIO(photo_files.heic(scene(48, 64, seed=5))))
    for fmt in ("heic", "avif", "jxl"):
        sizes, errors = [], []
        for quality in (40, 95):
            sink = io.BytesIO()
            write_image(source, sink, format=fmt, quality=quality)
            sizes.append(len(sink.getvalue()))
            errors.append(np.abs(read_image(io.BytesIO(sink.getvalue())).pixels - source.pixels).mean())
        assert sizes[0] < sizes[1] and errors[0] > errors[1], fmt
