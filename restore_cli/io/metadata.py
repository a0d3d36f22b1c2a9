"""Metadata blocks carried from an input file to its restored output, in any format pair.

The rule: every block of the input that is still true of the output is written into the
output, in the place the output format keeps it — EXIF, XMP, IPTC and Photoshop image
resources, ICC profile, resolution. Blocks are copied byte for byte; only what the
restoration made false is changed: the orientation (applied to the pixels, so reset to 1),
the dimensions when that orientation swapped them, and thumbnails (EXIF and Photoshop),
which show the old picture and are dropped. Nothing of restore's own is added.

EXIF travels as one form whatever the container: b"Exif\\0\\0" + a TIFF structure (IFD0 with
its Exif and GPS sub-IFDs). A TIFF input's own tags (Make, Model, Artist, Copyright, DateTime,
Exif and GPS IFDs) are gathered into that form, and a TIFF output spreads it back into its IFD0,
so a JPEG's EXIF becomes TIFF tags and a TIFF's tags become a JPEG's EXIF. Edits are made in
place (no re-serialisation) wherever the bytes stay in one block, so maker notes, whose private
offsets point into the block, stay valid; only a TIFF output has to lay IFDs out anew.

Damaged blocks are passed through as they were; a block that cannot be converted for the target
is left out, as is any block the target format cannot hold (`unsupported` names them).
"""

from __future__ import annotations

import re
import struct
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING

from restore_cli.io import ifd
from restore_cli.io.ifd import EXIF_IFD_TAG, GPS_IFD_TAG, Damaged, Entry, read_ifd, write_ifd

if TYPE_CHECKING:
    from PIL import Image

    from restore_cli.io.image import DecodedImage

EXIF_PREFIX = b"Exif\x00\x00"
ORIENTATION_TAG = 0x0112
PHOTOSHOP_PREFIX = b"Photoshop 3.0\x00"
XMP_TAG, IPTC_TAG, PHOTOSHOP_TAG, ICC_TAG = 700, 33723, 34377, 34675
IPTC_RESOURCE = 1028

# IFD0 tags that describe the photo rather than the pixels' layout, so they hold for any encoding:
# ProcessingSoftware, DocumentName, ImageDescription, Make, Model, PageName, Software, DateTime,
# Artist, HostComputer, Copyright. Layout tags (sizes, strips, compression...) are the encoder's.
_DESCRIPTIVE_TAGS = frozenset({11, 269, 270, 271, 272, 285, 305, 306, 315, 316, 33432})
_UNDEFINED = 7
_THUMBNAIL_RESOURCES = {1033, 1036}  # Photoshop's thumbnail of the (old) picture
_JPEG_SEGMENT = 65533 - len(PHOTOSHOP_PREFIX)
_JPEG_LIMITS = {"EXIF": 65533, "XMP": 65533 - len(b"http://ns.adobe.com/xap/1.0/\x00")}

METADATA_BLOCKS = ("EXIF", "EXIF over 64 KB", "XMP", "XMP over 64 KB", "IPTC/Photoshop", "ICC profile", "resolution")
# What each output format can hold; everything else is named by `unsupported`.
_HOLDS = {
    "JPEG": {"EXIF", "XMP", "IPTC/Photoshop", "ICC profile", "resolution"},
    "TIFF": {"EXIF", "XMP", "IPTC/Photoshop", "ICC profile", "resolution"},
    "PNG": {"EXIF", "XMP", "ICC profile", "resolution"},
    "WEBP": {"EXIF", "XMP", "ICC profile"},
    "BMP": {"resolution"},
    "HEIF": {"EXIF", "XMP", "ICC profile"},
    "AVIF": {"EXIF", "XMP", "ICC profile"},
    "JXL": {"EXIF", "XMP"},  # libjxl as bound by imagecodecs takes no ICC profile
}


# ---------------------------------------------------------------- reading


@dataclass(frozen=True)
class Blocks:
    """The metadata blocks of one file besides its ICC profile (which the decoder owns, as
    converting CMYK changes it); see DecodedImage for their forms."""

    exif: bytes | None = None
    xmp: bytes | None = None
    photoshop: bytes | None = None
    dpi: tuple[float, float] | None = None

    def for_upright_pixels(self, orientation: int) -> Blocks:
        """The blocks once the pixels are upright, `orientation` having been applied to them:
        every orientation tag 1 (one that disagreed with the one applied is false too), sizes
        and resolution swapped with the axes, no thumbnail of the old picture."""
        transposed = orientation in (5, 6, 7, 8)
        return Blocks(
            exif=without_thumbnail(upright_exif(self.exif, transposed)),
            xmp=upright_xmp(self.xmp, transposed),
            photoshop=without_photoshop_thumbnails(self.photoshop),
            dpi=(self.dpi[1], self.dpi[0]) if transposed and self.dpi else self.dpi,
        )


def read_blocks(im: Image.Image, fmt: str, data: bytes) -> Blocks:
    """The blocks as the file stores them, in the forms DecodedImage uses whatever the container."""
    xmp = im.info.get("xmp")
    xmp = xmp if isinstance(xmp, bytes) and xmp else None
    if fmt == "TIFF":
        return Blocks(exif_from_tiff(data), xmp, tiff_photoshop(data), dpi_of(im))
    exif = im.info.get("exif") or None
    if exif is not None and not exif.startswith(EXIF_PREFIX):
        exif = EXIF_PREFIX + exif  # PNG eXIf and WebP EXIF chunks store the TIFF structure alone
    return Blocks(exif, xmp, jpeg_photoshop(im) if fmt == "JPEG" else None, dpi_of(im))


def exif_from_tiff(data: bytes) -> bytes | None:
    """A TIFF file's descriptive IFD0 tags and Exif/GPS IFDs, as an EXIF block; None if it has none."""
    try:
        order = ifd.byte_order(data)
        entries = [
            entry
            for entry in read_ifd(data, ifd.first_ifd(data, order), order)
            if entry.tag in _DESCRIPTIVE_TAGS or (entry.tag in (EXIF_IFD_TAG, GPS_IFD_TAG) and entry.children is not None)
        ]
    except Damaged:
        return None
    return EXIF_PREFIX + ifd.tiff_block(entries, order) if entries else None


def blocks_from_tiff(data: bytes) -> Blocks:
    """The blocks of a TIFF-structured file read without Pillow (float TIFFs, DNG and the other
    TIFF-based camera RAWs): EXIF, XMP (tag 700), Photoshop resources and the resolution."""
    try:
        order = ifd.byte_order(data)
        tags = {entry.tag: entry for entry in read_ifd(data, ifd.first_ifd(data, order), order)}
    except Damaged:
        return Blocks()
    xmp = tags[XMP_TAG].payload if XMP_TAG in tags else None
    return Blocks(exif_from_tiff(data), xmp or None, tiff_photoshop(data), _tiff_dpi(tags, order))


def _tiff_dpi(tags: dict[int, Entry], order: str) -> tuple[float, float] | None:
    per_unit = {2: 1.0, 3: 2.54}.get(struct.unpack(order + "H", tags[296].payload[:2])[0] if 296 in tags else 2)
    try:
        x, y = (_rational(tags[tag], order) * per_unit for tag in (282, 283))  # type: ignore[operator]
    except (KeyError, TypeError, ZeroDivisionError, struct.error):
        return None
    return (x, y) if x > 0 and y > 0 else None


def _rational(entry: Entry, order: str) -> float:
    numerator, denominator = struct.unpack(order + "II", entry.payload[:8])
    return numerator / denominator


def tiff_photoshop(data: bytes) -> bytes | None:
    """A TIFF file's Photoshop resources (tag 34377), with its IPTC (tag 33723) as resource 1028 if
    only the tag has it, so IPTC has one home whatever the source."""
    try:
        order = ifd.byte_order(data)
        tags = {entry.tag: entry.payload for entry in read_ifd(data, ifd.first_ifd(data, order), order)}
    except Damaged:
        return None
    resources, iptc = tags.get(PHOTOSHOP_TAG), tags.get(IPTC_TAG)
    if iptc and (resources is None or photoshop_resource(resources, IPTC_RESOURCE) is None):
        resources = (resources or b"") + _resource_block(IPTC_RESOURCE, iptc)
    return resources or None


def jpeg_photoshop(im: Image.Image) -> bytes | None:
    """The Photoshop resources of a JPEG: its APP13 segments joined (big blocks span several)."""
    segments = [body for marker, body in getattr(im, "applist", []) if marker == "APP13" and body.startswith(PHOTOSHOP_PREFIX)]
    return b"".join(body[len(PHOTOSHOP_PREFIX) :] for body in segments) or None


def dpi_of(im: Image.Image) -> tuple[float, float] | None:
    dpi = im.info.get("dpi")
    try:
        x, y = (float(value) for value in dpi)  # type: ignore[union-attr]
    except (TypeError, ValueError):
        return None
    return (x, y) if x > 0 and y > 0 else None


# ---------------------------------------------------------------- making the blocks true of the output


def exif_orientation(exif: bytes | None) -> int:
    """The orientation (1..8) an EXIF block states; 1 when it states none or cannot be read."""
    try:
        tiff = exif[len(EXIF_PREFIX) :] if exif else b""
        order = ifd.byte_order(tiff)
        for position, tag, kind, _ in ifd.slots(tiff, ifd.first_ifd(tiff, order), order):
            if tag == ORIENTATION_TAG and kind == ifd.SHORT:
                value = ifd.unpack(order + "H", tiff, position + 8)[0]
                return value if value in range(1, 9) else 1
    except Damaged:
        pass
    return 1


def upright_exif(exif: bytes | None, transposed: bool) -> bytes | None:
    """Orientation set to 1 in place (its pixels were turned upright) and, when that swapped the
    axes, X/Y resolution and PixelX/YDimension swapped; every other byte as it was."""
    if exif is None:
        return None
    tiff = bytearray(exif[len(EXIF_PREFIX) :])
    try:
        order = ifd.byte_order(tiff)
        ifd0 = ifd.first_ifd(tiff, order)
        slots = {tag: (position, kind) for position, tag, kind, _ in ifd.slots(tiff, ifd0, order)}
        if ORIENTATION_TAG in slots and slots[ORIENTATION_TAG][1] == ifd.SHORT:
            struct.pack_into(order + "H", tiff, slots[ORIENTATION_TAG][0] + 8, 1)
        if transposed:
            _swap_values(tiff, slots, 282, 283)
            if EXIF_IFD_TAG in slots:
                (exif_ifd,) = ifd.unpack(order + "I", tiff, slots[EXIF_IFD_TAG][0] + 8)
                _swap_values(tiff, {tag: (position, kind) for position, tag, kind, _ in ifd.slots(tiff, exif_ifd, order)}, 0xA002, 0xA003)
    except Damaged:
        return exif
    return EXIF_PREFIX + bytes(tiff)


def _swap_values(tiff: bytearray, slots: dict[int, tuple[int, int]], first: int, second: int) -> None:
    """Swap two entries' type, count and value (tags stay, so the IFD stays sorted)."""
    if first in slots and second in slots:
        a, b = slots[first][0], slots[second][0]
        tiff[a + 2 : a + 12], tiff[b + 2 : b + 12] = tiff[b + 2 : b + 12], tiff[a + 2 : a + 12]


def without_thumbnail(exif: bytes | None) -> bytes | None:
    """Drop IFD1, the thumbnail of the old picture: unlinked, its bytes zeroed and cut off the end
    of the block when they end it. Done in place so the offsets of everything else stay valid."""
    if exif is None:
        return None
    tiff = bytearray(exif[len(EXIF_PREFIX) :])
    try:
        order = ifd.byte_order(tiff)
        link = ifd.next_ifd_position(tiff, ifd.first_ifd(tiff, order), order)
        (ifd1,) = ifd.unpack(order + "I", tiff, link)
        if ifd1 == 0:
            return exif
        spans = _thumbnail_spans(tiff, ifd1, order)
    except Damaged:
        return exif
    struct.pack_into(order + "I", tiff, link, 0)
    for start, size in spans:
        tiff[start : start + size] = bytes(size)
    end = len(tiff)
    for start, size in sorted(spans, key=lambda span: -(span[0] + span[1])):
        if start < end <= start + size:
            end = start
    return EXIF_PREFIX + bytes(tiff[: max(end, 8)])


def _thumbnail_spans(tiff: bytearray, ifd1: int, order: str) -> list[tuple[int, int]]:
    """IFD1's table, its out-of-line values, and the thumbnail image they point to."""
    spans = [(ifd1, 2 + 12 * ifd.unpack(order + "H", tiff, ifd1)[0] + 4)]
    values: dict[int, tuple[int, ...]] = {}
    for position, tag, kind, count in ifd.slots(tiff, ifd1, order):
        start, size = ifd.value_span(tiff, position, kind, count, order)
        if size > 4:
            spans.append((start, size))
        if kind in (ifd.SHORT, ifd.LONG):
            values[tag] = struct.unpack_from(f"{order}{count}{'H' if kind == ifd.SHORT else 'I'}", tiff, start)
    for offsets_tag, sizes_tag in ((0x0201, 0x0202), (0x0111, 0x0117)):  # JPEG thumbnail, or strips
        for start, size in zip(values.get(offsets_tag, ()), values.get(sizes_tag, ())):
            if start + size > len(tiff):
                raise Damaged("thumbnail outside the block")
            spans.append((start, size))
    return spans


_XMP_ORIENTATION = re.compile(rb"(tiff:Orientation(?:=[\"']|>))[1-8]")
_XMP_SIZES = (
    (re.compile(rb"(exif:PixelXDimension(?:=[\"']|>))(\d+)"), re.compile(rb"(exif:PixelYDimension(?:=[\"']|>))(\d+)")),
    (re.compile(rb"(tiff:ImageWidth(?:=[\"']|>))(\d+)"), re.compile(rb"(tiff:ImageLength(?:=[\"']|>))(\d+)")),
)


def upright_xmp(xmp: bytes | None, transposed: bool) -> bytes | None:
    """The XMP packet with tiff:Orientation set to 1 and, when the axes swapped, the sizes swapped."""
    if xmp is None:
        return None
    xmp = _XMP_ORIENTATION.sub(rb"\g<1>1", xmp)
    if transposed:
        for width, height in _XMP_SIZES:
            found_width, found_height = width.search(xmp), height.search(xmp)
            if found_width and found_height:
                xmp = width.sub(rb"\g<1>" + found_height[2], xmp, count=1)
                xmp = height.sub(rb"\g<1>" + found_width[2], xmp, count=1)
    return xmp


# ---------------------------------------------------------------- Photoshop image resources


def _resources(data: bytes) -> Iterator[tuple[int, bytes, bytes]]:
    """(id, whole block, value) for each 8BIM resource block."""
    position = 0
    while position < len(data):
        if data[position : position + 4] != b"8BIM":
            raise Damaged("not an 8BIM resource")
        (resource,) = ifd.unpack(">H", data, position + 4)
        name_length = ifd.unpack("B", data, position + 6)[0]
        size_at = position + 6 + name_length + 1 + ((name_length + 1) % 2)
        (size,) = ifd.unpack(">I", data, size_at)
        end = size_at + 4 + size + size % 2
        if size_at + 4 + size > len(data):
            raise Damaged("resource longer than the block")
        yield resource, data[position:end], data[size_at + 4 : size_at + 4 + size]
        position = end


def without_photoshop_thumbnails(data: bytes | None) -> bytes | None:
    """The resources less Photoshop's thumbnails of the old picture, each other block byte for
    byte. A damaged block ends the resources: it and what follows are left out, since readers
    (Pillow among them) refuse a whole JPEG whose Photoshop segment runs past its end."""
    if data is None:
        return None
    blocks = []
    try:
        for resource, block, _ in _resources(data):
            if resource not in _THUMBNAIL_RESOURCES:
                blocks.append(block)
    except Damaged:
        pass
    return b"".join(blocks) or None


def photoshop_resource(data: bytes, wanted: int) -> bytes | None:
    try:
        return next((value for resource, _, value in _resources(data) if resource == wanted), None)
    except Damaged:
        return None


def _resource_block(resource: int, value: bytes) -> bytes:
    return b"8BIM" + struct.pack(">HHI", resource, 0, len(value)) + value + b"\0" * (len(value) % 2)


# ---------------------------------------------------------------- writing


def unsupported(image: DecodedImage, fmt: str) -> list[str]:
    """The blocks of `image` that a file of format `fmt` has no place for (in METADATA_BLOCKS order)."""
    present = {
        "EXIF": image.exif,
        "XMP": image.xmp,
        "IPTC/Photoshop": image.photoshop,
        "ICC profile": image.icc_profile,
        # these keep a resolution only inside EXIF
        "resolution": image.dpi if not (fmt in ("WEBP", "HEIF", "AVIF", "JXL") and image.exif) else None,
    }
    left_out = []
    for name, block in present.items():
        if block and name not in _HOLDS[fmt]:
            left_out.append(name)
        elif isinstance(block, bytes) and fmt == "JPEG" and not jpeg_holds(name, block):
            left_out.append(f"{name} over 64 KB")
    return left_out


def jpeg_holds(name: str, block: bytes | None) -> bool:
    """EXIF and XMP each live in one JPEG segment, at most 64 KB (ICC and Photoshop blocks span several)."""
    return block is None or len(block) <= _JPEG_LIMITS.get(name, len(block))


def jpeg_app13(resources: bytes | None) -> bytes:
    """APP13 segments holding the Photoshop resources (split over several when they are big)."""
    if not resources:
        return b""
    segments = [resources[start : start + _JPEG_SEGMENT] for start in range(0, len(resources), _JPEG_SEGMENT)]
    return b"".join(
        b"\xff\xed" + struct.pack(">H", 2 + len(PHOTOSHOP_PREFIX) + len(segment)) + PHOTOSHOP_PREFIX + segment
        for segment in segments
    )


def exif_byte_order(exif: bytes | None) -> str:
    """The byte order a TIFF output takes, so EXIF values are copied without conversion."""
    try:
        return ifd.byte_order(exif[len(EXIF_PREFIX) :]) if exif else "<"
    except Damaged:
        return "<"


def tiff_entries(image: DecodedImage, order: str) -> list[Entry]:
    """The IFD0 entries a TIFF output gets: EXIF's descriptive tags and Exif/GPS IFDs, XMP, IPTC,
    Photoshop resources and ICC. Values are raw bytes in `order` (the EXIF's own order)."""
    entries: list[Entry] = []
    if image.exif:
        tiff = image.exif[len(EXIF_PREFIX) :]
        try:
            if ifd.byte_order(tiff) == order:
                found = read_ifd(tiff, ifd.first_ifd(tiff, order), order)
                entries += [e for e in found if e.tag in _DESCRIPTIVE_TAGS or (e.tag in (EXIF_IFD_TAG, GPS_IFD_TAG) and e.children)]
        except Damaged:
            pass  # a damaged EXIF block cannot be spread into TIFF tags; the rest is still written
    for tag, block in ((XMP_TAG, image.xmp), (PHOTOSHOP_TAG, image.photoshop), (ICC_TAG, image.icc_profile)):
        if block:
            entries.append(Entry(tag, 1 if tag != ICC_TAG else _UNDEFINED, len(block), block))
    iptc = photoshop_resource(image.photoshop, IPTC_RESOURCE) if image.photoshop else None
    if iptc:
        entries.append(Entry(IPTC_TAG, _UNDEFINED, len(iptc), iptc))
    return entries


def tiff_with_entries(tiff: bytes, entries: list[Entry]) -> bytes:
    """The TIFF file with `entries` added to its first IFD: the merged IFD is appended and the
    header pointed at it; the encoder's own IFD stays behind, unreferenced."""
    if not entries:
        return tiff
    order = ifd.byte_order(tiff)
    own = read_ifd(tiff, ifd.first_ifd(tiff, order), order)
    added = {entry.tag for entry in entries}
    merged = [entry for entry in own if entry.tag not in added] + entries
    base = len(tiff) + len(tiff) % 2
    table = write_ifd(merged, base, order)
    header = tiff[:4] + struct.pack(order + "I", base)
    return header + tiff[8:] + b"\0" * (base - len(tiff)) + table
