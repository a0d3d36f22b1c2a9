"""Metadata from input to output, for every format pair: each block still true of the output is
kept byte for byte; orientation, thumbnails and swapped sizes are what change.

Sources are real files (tests/data) or files that Pillow writes from real blocks; what a file
holds is read back with Pillow and tifffile, never with restore's own reader.
"""

from __future__ import annotations

import io
import re
import struct
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import tifffile
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import ExifTags, Image, PngImagePlugin, TiffImagePlugin
from typer.testing import CliRunner

from restore_cli.cli.app import app
from restore_cli.io import metadata
from restore_cli.io.decode import read_image
from restore_cli.io.encode import write_image
from restore_cli.io.image import DecodedImage, with_pixels

DATA = Path(__file__).parents[1] / "data"
LANDSCAPE = DATA / "images" / "Landscape_9.jpg"  # Lightroom export
PORTRAIT_8 = DATA / "images" / "portrait_8.jpg"
PHOTOSHOP_TIFF = DATA / "metadata" / "photoshop.tif"
XMP_PNG = DATA / "metadata" / "xmp_orientation.png"
IPTC_JPEG = DATA / "metadata" / "iptc.jpg"
PHOTOSHOP_JPEG = DATA / "metadata" / "photoshop-200dpi.jpg"
WEIGHTS = DATA / "golden" / "tiny_rgb_withbias.pth"

TARGETS = ["jpg", "png", "tif", "webp"]
HOLDS_RESOURCES = {"jpg", "tif"}
HOLDS_DPI = {"jpg", "png", "tif"}
THUMBNAIL_RESOURCES = {1033, 1036}
DESCRIPTIVE = {271: "Make", 272: "Model", 305: "Software", 306: "DateTime", 315: "Artist", 33432: "Copyright"}
# What a TIFF needs for its pixels; anything else in a TIFF output must come from the input.
TIFF_LAYOUT = {256, 257, 258, 259, 262, 273, 277, 278, 279, 282, 283, 284, 296, 317, 338}
GPS = {1: "N", 2: (52.0, 31.0, 12.5), 3: "E", 4: (13.0, 24.0, 3.25), 5: b"\x00", 6: 34.5, 29: "2016:07:10"}
OWNER = {315: "Jane Doe", 33432: "(c) 2016 Jane Doe"}


def resource_values(raw: bytes) -> dict[int, bytes]:
    """Photoshop image resources (8BIM blocks) by id: a test-side reader of the format."""
    values: dict[int, bytes] = {}
    stream = io.BytesIO(raw)
    while header := stream.read(7):
        signature, ident, name_length = struct.unpack(">4sHB", header)
        assert signature == b"8BIM"
        stream.read(name_length + (name_length + 1) % 2)
        (size,) = struct.unpack(">I", stream.read(4))
        values[ident] = stream.read(size)
        stream.read(size % 2)
    return values


@dataclass
class Seen:
    """What independent readers find in a file."""

    data: bytes
    size: tuple[int, int]
    exif: Image.Exif
    xmp: bytes | None
    resources: dict[int, bytes]
    iptc: bytes | None
    icc: bytes | None
    dpi: tuple[float, float] | None
    tiff_tags: dict[int, object]
    raw_exif: bytes | None

    @property
    def descriptive(self) -> dict[int, object]:
        return {tag: self.exif[tag] for tag in DESCRIPTIVE if tag in self.exif}

    @property
    def exif_ifd(self) -> dict[int, object]:
        return dict(self.exif.get_ifd(ExifTags.IFD.Exif))

    @property
    def gps(self) -> dict[int, object]:
        return dict(self.exif.get_ifd(ExifTags.IFD.GPSInfo))

    @property
    def thumbnail(self) -> bytes | None:
        """The EXIF thumbnail's JPEG bytes, if there is one."""
        ifd1 = self.exif.get_ifd(ExifTags.IFD.IFD1)
        if 513 not in ifd1 or self.raw_exif is None:
            return None
        tiff = self.raw_exif[6:] if self.raw_exif.startswith(b"Exif") else self.raw_exif
        return tiff[ifd1[513] : ifd1[513] + ifd1[514]]


def seen(source: Path | bytes) -> Seen:
    data = source.read_bytes() if isinstance(source, Path) else source
    with Image.open(io.BytesIO(data)) as im:
        exif = im.getexif()
        exif.get_ifd(ExifTags.IFD.IFD1)
        info, size, applist = dict(im.info), im.size, getattr(im, "applist", [])
    tags: dict[int, object] = {}
    resources, iptc = {}, None
    if data[:4] in (b"II*\x00", b"MM\x00*"):
        tags = {tag.code: tag.value for tag in tifffile.TiffFile(io.BytesIO(data)).pages.first.tags.values()}
        resources = resource_values(tags[34377]) if 34377 in tags else {}
        iptc = tags.get(33723)
    else:
        app13 = b"".join(body[14:] for marker, body in applist if marker == "APP13")
        resources = resource_values(app13)
        iptc = resources.get(1028)
    xmp = info.get("xmp")
    return Seen(data, size, exif, xmp, resources, iptc, info.get("icc_profile"), info.get("dpi"), tags, info.get("exif"))


# ---------------------------------------------------------------- sources


def _pillow_tiff(picture: Image.Image, ifd: TiffImagePlugin.ImageFileDirectory_v2, **options: object) -> bytes:
    buffer = io.BytesIO()
    picture.save(buffer, "TIFF", tiffinfo=ifd, compression="raw", **options)
    return buffer.getvalue()


@pytest.fixture(scope="module")
def full_tiff() -> bytes:
    """A Photoshop-style TIFF with every block, written by Pillow from the Lightroom export's
    real XMP, IPTC, resources, ICC and EXIF, plus Artist, Copyright and a GPS position."""
    with Image.open(LANDSCAPE) as lightroom:
        info = TiffImagePlugin.ImageFileDirectory_v2()
        exif = lightroom.getexif()
        for tag in (271, 272, 305, 306):
            info[tag] = exif[tag]
        for tag, value in OWNER.items():
            info[tag] = value
        for tag, value, kind in (
            (700, lightroom.info["xmp"], 1),
            (34377, b"".join(body[14:] for marker, body in lightroom.applist if marker == "APP13"), 1),
            (33723, lightroom.info["photoshop"][1028], 7),
        ):
            info[tag], info.tagtype[tag] = value, kind
        info[34665] = dict(exif.get_ifd(ExifTags.IFD.Exif))
        info[34853] = GPS
        pixels = Image.fromarray(np.random.default_rng(0).integers(0, 256, (24, 32, 3), dtype=np.uint8))
        return _pillow_tiff(pixels, info, icc_profile=lightroom.info["icc_profile"], dpi=(240, 240))


def _png_text(key: str, value: bytes) -> PngImagePlugin.PngInfo:
    info = PngImagePlugin.PngInfo()
    info.add_itxt(key, value.decode())
    return info


def _lightroom_with_gps(fmt: str) -> bytes:
    """The Lightroom export cropped and re-saved by Pillow as `fmt` with its EXIF (plus a GPS
    position, Artist and Copyright), XMP, ICC profile and 240 dpi, each where `fmt` keeps it."""
    with Image.open(LANDSCAPE) as lightroom:
        exif = lightroom.getexif()
        exif.update(OWNER)
        exif[ExifTags.IFD.GPSInfo] = GPS
        options: dict[str, object] = {"exif": exif, "icc_profile": lightroom.info["icc_profile"]}
        if fmt == "PNG":
            options.update(pnginfo=_png_text("XML:com.adobe.xmp", lightroom.info["xmp"]), dpi=(240, 240))
        else:
            options.update(xmp=lightroom.info["xmp"], dpi=(240, 240))
        buffer = io.BytesIO()
        lightroom.crop((0, 0, 64, 48)).save(buffer, fmt, **options)
        return buffer.getvalue()


@pytest.fixture(scope="module")
def gps_jpeg() -> bytes:
    return _lightroom_with_gps("JPEG")


@pytest.fixture(scope="module")
def small_oriented_jpeg() -> bytes:
    """A 48x64 crop of the orientation-8 photo, re-saved by Pillow with its EXIF and ICC (fast through the model)."""
    with Image.open(PORTRAIT_8) as portrait:
        buffer = io.BytesIO()
        portrait.crop((0, 0, 64, 48)).save(buffer, "JPEG", exif=portrait.info["exif"], icc_profile=portrait.info["icc_profile"])
        return buffer.getvalue()


@pytest.fixture
def sources(full_tiff: bytes, gps_jpeg: bytes, small_oriented_jpeg: bytes) -> dict[str, bytes]:
    return {
        "gps.png": _lightroom_with_gps("PNG"),
        "gps.webp": _lightroom_with_gps("WEBP"),
        "small_orientation8.jpg": small_oriented_jpeg,
        "lightroom.jpg": LANDSCAPE.read_bytes(),
        "orientation8.jpg": PORTRAIT_8.read_bytes(),
        "iptc.jpg": IPTC_JPEG.read_bytes(),
        "photoshop.jpg": PHOTOSHOP_JPEG.read_bytes(),
        "photoshop.tif": PHOTOSHOP_TIFF.read_bytes(),
        "full.tif": full_tiff,
        "gps.jpg": gps_jpeg,
        "xmp_orientation.png": XMP_PNG.read_bytes(),
    }


SOURCES = ["gps.png", "gps.webp", "small_orientation8.jpg", "lightroom.jpg", "orientation8.jpg", "iptc.jpg", "photoshop.jpg", "photoshop.tif", "full.tif", "gps.jpg", "xmp_orientation.png"]


# ---------------------------------------------------------------- the rule


def assert_carried_over(source: Seen, output: Seen, target: str) -> None:
    """Every block the target can hold is there, byte for byte, and what must change did."""
    orientation = source.exif.get(274) or _xmp_orientation(source.xmp) or 1
    transposed = orientation in (5, 6, 7, 8)
    assert output.size == (source.size[::-1] if transposed else source.size)

    assert output.icc == source.icc
    assert output.descriptive == source.descriptive, "Make, Model, Artist, Copyright, Software, DateTime"
    assert output.gps == source.gps
    expected_exif_ifd = source.exif_ifd
    if transposed and 0xA002 in expected_exif_ifd:
        expected_exif_ifd[0xA002], expected_exif_ifd[0xA003] = source.exif_ifd[0xA003], source.exif_ifd[0xA002]
    assert output.exif_ifd == expected_exif_ifd

    assert output.exif.get(274, 1) == 1 and output.tiff_tags.get(274, 1) == 1
    assert output.xmp == _upright_xmp(source.xmp, orientation)
    if source.thumbnail:
        assert not output.exif.get_ifd(ExifTags.IFD.IFD1), "the EXIF thumbnail shows the old picture"
        assert source.thumbnail not in output.data

    if target in HOLDS_RESOURCES:
        expected = {ident: value for ident, value in source.resources.items() if ident not in THUMBNAIL_RESOURCES}
        assert output.resources == expected
        assert output.iptc == source.iptc
    for ident in THUMBNAIL_RESOURCES & source.resources.keys():
        assert source.resources[ident] not in output.data, "Photoshop's thumbnail shows the old picture"
    if target in HOLDS_DPI and source.dpi:
        expected_dpi = source.dpi[::-1] if transposed else source.dpi
        assert output.dpi == pytest.approx(expected_dpi, abs=0.01)
    if target == "tif":
        assert_no_tool_tags(source, output)


def assert_no_tool_tags(source: Seen, output: Seen) -> None:
    kept = {271, 272, 305, 306, 315, 33432, 700, 33723, 34377, 34665, 34853, 34675}
    assert set(output.tiff_tags) <= TIFF_LAYOUT | kept
    assert 270 not in output.tiff_tags, "no ImageDescription of our own"
    assert output.tiff_tags.get(305) == source.exif.get(305), "Software only if the input had one"
    if source.dpi:
        assert output.tiff_tags[296] == tifffile.RESUNIT.INCH


def _xmp_orientation(xmp: bytes | None) -> int | None:
    found = re.search(rb'tiff:Orientation="(\d)"', xmp or b"")
    return int(found[1]) if found else None


def _upright_xmp(xmp: bytes | None, orientation: int) -> bytes | None:
    if xmp is None or orientation == 1:
        return xmp
    return xmp.replace(f'tiff:Orientation="{orientation}"'.encode(), b'tiff:Orientation="1"')


# ---------------------------------------------------------------- through the library


@pytest.mark.parametrize("target", TARGETS)
@pytest.mark.parametrize("name", SOURCES)
def test_every_block_is_carried_into_every_format(sources: dict[str, bytes], tmp_path: Path, name: str, target: str) -> None:
    image = read_image(io.BytesIO(sources[name]))
    out = tmp_path / f"out.{target}"
    write_image(with_pixels(image, 1 - image.pixels), out)  # restored pixels: the thumbnails are now stale
    assert_carried_over(seen(sources[name]), seen(out), target)


def test_the_sources_hold_what_the_matrix_claims_to_test(sources: dict[str, bytes]) -> None:
    """Guards the matrix: each kind of block appears in some source, so no check passes on None."""
    found = {name: seen(data) for name, data in sources.items()}
    assert found["full.tif"].gps == found["gps.jpg"].gps == found["gps.png"].gps == found["gps.webp"].gps == GPS
    assert found["gps.png"].xmp == found["gps.webp"].xmp == found["lightroom.jpg"].xmp
    assert {found["full.tif"].exif[tag] for tag in OWNER} == set(OWNER.values())
    assert found["full.tif"].iptc and found["iptc.jpg"].iptc and found["lightroom.jpg"].iptc
    assert 1036 in found["lightroom.jpg"].resources and 1036 in found["photoshop.tif"].resources
    assert found["lightroom.jpg"].thumbnail and found["photoshop.jpg"].thumbnail
    assert found["orientation8.jpg"].exif[274] == 8 and 0xA002 in found["orientation8.jpg"].exif_ifd
    assert _xmp_orientation(found["xmp_orientation.png"].xmp) == 3 and found["xmp_orientation.png"].raw_exif is None
    assert all(found[name].xmp for name in ("lightroom.jpg", "photoshop.jpg", "photoshop.tif", "full.tif"))


def test_a_thumbnail_is_dropped_in_place_leaving_every_other_exif_byte() -> None:
    """Maker notes point into the EXIF block by offset: removing the thumbnail must not move anything."""
    with Image.open(LANDSCAPE) as original:
        before = original.info["exif"]
    after = read_image(LANDSCAPE).exif
    assert after is not None and len(after) < len(before)
    changed = [i for i, (a, b) in enumerate(zip(after, before)) if a != b]
    assert len(changed) <= 4 and changed[-1] - changed[0] < 4, "only the link to the thumbnail's IFD"
    assert all(after[i] == 0 for i in changed)


def test_sixteen_bit_png_and_tiff_keep_the_blocks(tmp_path: Path) -> None:
    image = read_image(DATA / "images" / "pixel2xl_16bit_rgb.png")
    lightroom = read_image(LANDSCAPE)
    image.exif, image.xmp, image.photoshop, image.dpi = lightroom.exif, lightroom.xmp, lightroom.photoshop, lightroom.dpi
    for target in ("png", "tif"):
        write_image(image, tmp_path / f"out.{target}")
        out = seen(tmp_path / f"out.{target}")
        assert read_image(tmp_path / f"out.{target}").bit_depth == 16
        assert out.xmp == lightroom.xmp and out.icc == image.icc_profile
        assert out.descriptive == seen(LANDSCAPE).descriptive and out.dpi == pytest.approx((240, 240), abs=0.01)


# ---------------------------------------------------------------- through the CLI


runner = CliRunner()


@pytest.mark.parametrize(
    ("name", "target"),
    [
        ("full.tif", "jpg"),
        ("photoshop.jpg", "tif"),
        ("small_orientation8.jpg", "png"),
        ("xmp_orientation.png", "webp"),
    ],
)
def test_restore_run_carries_the_blocks(sources: dict[str, bytes], tmp_path: Path, name: str, target: str) -> None:
    source = tmp_path / name
    source.write_bytes(sources[name])
    out = tmp_path / f"restored.{target}"
    result = runner.invoke(app, ["run", "--weights", str(WEIGHTS), str(source), "-o", str(out), "--quiet"])
    assert result.exit_code == 0, result.output
    assert result.stderr == "", "nothing to warn about: the target holds every block"
    assert_carried_over(seen(source), seen(out), target)


def test_a_format_that_cannot_hold_a_block_is_named_once_a_run(sources: dict[str, bytes], tmp_path: Path) -> None:
    """gps.jpg (restored first) has no IPTC/Photoshop block, photoshop.jpg has: the one line names
    everything left out over the run."""
    (tmp_path / "in").mkdir()
    for name in ("gps.jpg", "photoshop.jpg"):
        (tmp_path / "in" / name).write_bytes(sources[name])
    args = ["run", "--weights", str(WEIGHTS), str(tmp_path / "in"), "-o", str(tmp_path / "out"), "--format", "bmp", "--quiet"]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    assert result.stderr == (
        "warning: BMP files cannot hold EXIF, XMP, IPTC/Photoshop and ICC profile: left out of the BMP outputs "
        "(JPEG and TIFF keep every metadata block)\n"
    )
    assert len(list((tmp_path / "out").iterdir())) == 2
    assert seen(tmp_path / "out" / "photoshop.bmp").dpi == pytest.approx((200, 200), abs=0.01), "BMP keeps the resolution"


def test_png_names_the_photoshop_resources_it_cannot_hold(sources: dict[str, bytes], tmp_path: Path) -> None:
    source = tmp_path / "photoshop.jpg"
    source.write_bytes(sources["photoshop.jpg"])
    result = runner.invoke(app, ["run", "--weights", str(WEIGHTS), str(source), "-o", str(tmp_path / "out.png"), "--quiet"])
    assert result.exit_code == 0, result.output
    assert result.stderr.count("\n") == 1 and result.stderr.startswith("warning: PNG files cannot hold IPTC/Photoshop:")


def test_a_turned_picture_gets_its_sizes_and_resolutions_swapped(tmp_path: Path) -> None:
    """Orientation 6 stores the picture on its side: once upright, width and height (and the
    horizontal and vertical resolutions) trade places in EXIF, XMP and the JFIF header."""
    exif = Image.Exif()
    exif.update({274: 6, 282: 300.0, 283: 150.0, 296: 2})
    exif[ExifTags.IFD.Exif] = {0xA002: 40, 0xA003: 30}
    xmp = b'<x:xmpmeta><rdf:Description tiff:Orientation="6" exif:PixelXDimension="40" exif:PixelYDimension="30"/></x:xmpmeta>'
    source = tmp_path / "turned.jpg"
    Image.new("RGB", (40, 30), "white").save(source, exif=exif, xmp=xmp, dpi=(300, 150))

    write_image(read_image(source), tmp_path / "out.jpg")
    out = seen(tmp_path / "out.jpg")
    assert out.size == (30, 40) and out.dpi == (150, 300)
    assert (out.exif[274], out.exif[282], out.exif[283]) == (1, 150.0, 300.0)
    assert (out.exif_ifd[0xA002], out.exif_ifd[0xA003]) == (30, 40)
    assert out.xmp == b'<x:xmpmeta><rdf:Description tiff:Orientation="1" exif:PixelXDimension="30" exif:PixelYDimension="40"/></x:xmpmeta>'


def test_xmp_too_big_for_a_jpeg_segment_is_left_out_and_named(tmp_path: Path) -> None:
    """A TIFF or PNG can hold an XMP packet of any size; a JPEG segment only 64 KB."""
    big_xmp = b'<x:xmpmeta><rdf:Description dc:description="' + b"x" * 70_000 + b'"/></x:xmpmeta>'
    source = tmp_path / "big_xmp.png"
    Image.new("RGB", (16, 8)).save(source, pnginfo=_png_text("XML:com.adobe.xmp", big_xmp))
    (tmp_path / "out").mkdir()
    result = runner.invoke(app, ["run", "--weights", str(WEIGHTS), str(source), "-o", str(tmp_path / "out" / "big.jpg"), "--quiet"])
    assert result.exit_code == 0, result.output
    assert result.stderr.startswith("warning: JPEG files cannot hold XMP over 64 KB:")
    assert seen(tmp_path / "out" / "big.jpg").xmp is None
    write_image(read_image(source), tmp_path / "out" / "big.tif")
    assert seen(tmp_path / "out" / "big.tif").xmp == big_xmp


def test_a_bmp_gets_no_resolution_the_input_did_not_have(tmp_path: Path) -> None:
    write_image(read_image(XMP_PNG), tmp_path / "out.bmp")
    assert seen(XMP_PNG).dpi is None
    with Image.open(tmp_path / "out.bmp") as written:
        assert written.info.get("dpi", (0, 0)) == (0, 0), "not Pillow's default 96 dpi"


# ---------------------------------------------------------------- damaged blocks


def _real_blocks() -> list[tuple[str, bytes]]:
    lightroom, photoshop = read_image(LANDSCAPE), read_image(PHOTOSHOP_JPEG)
    with Image.open(LANDSCAPE) as original:
        with_thumbnail = original.info["exif"]
    return [
        ("exif", with_thumbnail),
        ("exif", read_image(PORTRAIT_8).exif),
        ("exif", read_image(PHOTOSHOP_TIFF).exif),
        ("photoshop", photoshop.photoshop),
        ("xmp", lightroom.xmp),
    ]


REAL_BLOCKS = _real_blocks()


@st.composite
def damaged_block(draw: st.DrawFn) -> tuple[str, bytes]:
    """A real block with bytes overwritten and maybe cut short, as a disk or a bad tool leaves it."""
    kind, block = draw(st.sampled_from(REAL_BLOCKS))
    data = bytearray(block)
    for _ in range(draw(st.integers(1, 6))):
        data[draw(st.integers(6 if kind == "exif" else 0, len(data) - 1))] = draw(st.integers(0, 255))
    return kind, bytes(data[: draw(st.integers(7, len(data)))])


@settings(max_examples=150, deadline=None)
@given(damaged_block(), st.integers(1, 8))
def test_damaged_blocks_are_written_or_left_out_never_fatal(damaged: tuple[str, bytes], orientation: int) -> None:
    """Metadata is never a reason to lose a photo: whatever the damage, every format is written."""
    kind, block = damaged
    blocks = metadata.Blocks(**{kind: block}).for_upright_pixels(orientation)
    image = DecodedImage(np.full((6, 4, 3), 0.5, np.float32), None, 8, None, blocks.exif, "JPEG", blocks.xmp, blocks.photoshop)
    for fmt in ("jpg", "tif", "png", "webp"):
        sink = io.BytesIO()
        write_image(image, sink, format=fmt)
        assert read_image(io.BytesIO(sink.getvalue())).pixels.shape == (6, 4, 3)


def test_a_photoshop_block_cut_short_keeps_its_whole_resources_and_the_jpeg_stays_readable() -> None:
    """Cut inside a resource's header, the block used to be written as it was, and Pillow then
    refused the whole JPEG (its Photoshop parser reads past the segment's end)."""
    whole = read_image(PHOTOSHOP_JPEG).photoshop
    assert whole is not None
    second = whole.index(b"8BIM", 4)
    cut = whole[: second + 6]  # the second resource's id, and nothing after it
    kept = metadata.Blocks(photoshop=cut).for_upright_pixels(1).photoshop
    assert kept == whole[:second]

    sink = io.BytesIO()
    write_image(DecodedImage(np.full((6, 4, 3), 0.5, np.float32), None, 8, None, None, "JPEG", None, kept), sink, format="jpg")
    with Image.open(io.BytesIO(sink.getvalue())) as written:
        assert written.size == (4, 6)
