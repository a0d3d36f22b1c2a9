"""Camera RAW in: a DNG made here from a synthetic Bayer mosaic, developed through rawpy with
the documented settings, upright, 16-bit, with the camera's EXIF; CR3 and RAF EXIF from
containers built here."""

from __future__ import annotations

import io
import struct

import numpy as np
import pytest
import rawpy
from PIL import Image

from restore_cli.errors import ImageError
from restore_cli.io import raw
from restore_cli.io.decode import read_image
from restore_cli.io.metadata import EXIF_PREFIX
from restore_cli.io.raw import RawOptions
from tests.photo_files import bayer, camera_exif, dng

WHITE = 4095
EXIF_IFD = {33434: ("R", [[1, 125]]), 34855: ("H", [800]), 36867: ("A", "2024:05:06 07:08:09"), 42036: ("A", "EF 50mm f/1.4 USM")}
GPS_IFD = {1: ("A", "N"), 2: ("R", [[48, 1], [51, 1], [24, 1]])}


def camera_dng(orientation: int = 6, **ifd0: tuple) -> bytes:
    tags = {271: ("A", "Canon"), 272: ("A", "Canon EOS R5"), 274: ("H", [orientation]), 50728: ("R", [[1, 2], [1, 1], [2, 3]])}
    return dng(bayer(48, 64, WHITE), WHITE, {**tags, **ifd0}, EXIF_IFD, GPS_IFD)


def developed(data: bytes, **settings: object) -> np.ndarray:
    """LibRaw's development with the settings docs/files.md documents."""
    with rawpy.imread(io.BytesIO(data)) as photo:
        return photo.postprocess(output_bps=16, output_color=rawpy.ColorSpace.sRGB, gamma=(2.4, 12.92), no_auto_bright=True, **settings)


def exif_tags(exif: bytes | None) -> tuple[dict, dict, dict]:
    tags = Image.Exif()
    tags.load(exif[len(EXIF_PREFIX) :] if exif else b"")
    return dict(tags), dict(tags.get_ifd(0x8769)), dict(tags.get_ifd(0x8825))


def test_a_dng_is_developed_upright_at_16_bits_with_the_cameras_exif() -> None:
    data = camera_dng()

    image = read_image(io.BytesIO(data))

    expected = developed(data, use_camera_wb=True)
    assert image.source_format == "RAW" and image.bit_depth == 16
    assert image.pixels.shape == (64, 48, 3)  # the 48 x 64 mosaic, turned by its orientation 6
    assert np.array_equal(np.rint(image.pixels * 65535).astype(np.uint16), expected)
    assert len(np.unique(expected)) > 256 and (expected % 257 != 0).any()  # more than 8 bits of levels
    ifd0, exif_ifd, gps = exif_tags(image.exif)
    assert ifd0[271] == "Canon" and ifd0[272] == "Canon EOS R5" and ifd0.get(0x0112, 1) == 1
    assert exif_ifd[34855] == 800 and exif_ifd[33434] == 1 / 125 and exif_ifd[42036] == "EF 50mm f/1.4 USM"
    assert exif_ifd[36867] == "2024:05:06 07:08:09" and gps[1] == "N" and gps[2] == (48.0, 51.0, 24.0)


def test_white_balance_and_demosaicing_can_be_chosen() -> None:
    data = camera_dng(orientation=1)

    auto = read_image(io.BytesIO(data), raw=RawOptions(white_balance="auto", demosaic="linear"))

    expected = developed(data, use_auto_wb=True, demosaic_algorithm=rawpy.DemosaicAlgorithm.LINEAR)
    assert np.array_equal(np.rint(auto.pixels * 65535).astype(np.uint16), expected)
    assert not np.array_equal(expected, developed(data, use_camera_wb=True))


def test_raws_are_recognised_by_content(tmp_path) -> None:
    renamed = tmp_path / "scan.tif"
    renamed.write_bytes(camera_dng())
    plain = tmp_path / "plain.tif"
    Image.new("RGB", (4, 4)).save(plain)

    assert read_image(renamed).source_format == "RAW"
    assert not raw.is_camera_raw(plain.read_bytes())


def test_a_damaged_raw_is_a_one_line_error(tmp_path) -> None:
    damaged = tmp_path / "photo.dng"
    damaged.write_bytes(camera_dng()[:2000])

    with pytest.raises(ImageError) as error:
        read_image(damaged)
    assert str(error.value).startswith(f"{damaged}: cannot decode image") and "\n" not in str(error.value)


def _box(kind: bytes, payload: bytes) -> bytes:
    return struct.pack(">I4s", 8 + len(payload), kind) + payload


def test_cr3_exif_is_joined_from_its_cmt_boxes() -> None:
    full = camera_exif()[len(EXIF_PREFIX) :]  # big-endian, as Pillow writes
    tags = Image.Exif()
    tags.load(full)
    ifd0 = Image.Exif()
    ifd0.update({271: "Canon", 272: "Canon EOS R6"})
    exif_only, gps_only = Image.Exif(), Image.Exif()
    exif_only.update(tags.get_ifd(0x8769))
    gps_only.update({1: "N", 2: (48.0, 51.0, 24.0)})
    canon = bytes.fromhex("85c0b687820f11e08111f4ce462b6a48")
    cmt = b"".join(_box(kind, block.tobytes()[len(EXIF_PREFIX) :]) for kind, block in ((b"CMT1", ifd0), (b"CMT2", exif_only), (b"CMT4", gps_only)))
    cr3 = _box(b"ftyp", b"crx \x00\x00\x00\x01crx isom") + _box(b"moov", _box(b"uuid", canon + cmt))

    blocks = raw.raw_blocks(cr3)

    assert raw.is_camera_raw(cr3)
    first, exif_ifd, gps = exif_tags(blocks.exif)
    assert first[271] == "Canon" and first[272] == "Canon EOS R6" and exif_ifd[0x8827] == 800 and gps[2] == (48.0, 51.0, 24.0)


def test_raf_exif_is_its_embedded_jpegs() -> None:
    jpeg = io.BytesIO()
    Image.new("RGB", (8, 8)).save(jpeg, "JPEG", exif=camera_exif())
    header = b"FUJIFILMCCD-RAW 0201FF383501".ljust(84, b"\0")
    raf = header + struct.pack(">II", 100, len(jpeg.getvalue())) + bytes(8) + jpeg.getvalue()

    assert raw.is_camera_raw(raf) and raw.raw_blocks(raf).exif == camera_exif()
