"""JPEG XL through imagecodecs (libjxl): 8 and 16-bit and float samples, with EXIF and XMP.

libjxl as imagecodecs binds it turns the picture upright (the codestream's orientation) but
reports neither the file's bit depth nor its metadata boxes, so they are read here: the depth
and orientation from the codestream's first bytes (its SizeHeader and ImageMetadata, read
bit by bit as the JPEG XL specification lays them out), EXIF and XMP from the container's boxes
(Brotli-compressed ``brob`` boxes included). Writing wraps libjxl's codestream in a container
with the EXIF and XMP boxes. The binding takes no ICC profile, so a JPEG XL output is tagged
sRGB (the profile is named among the blocks left out), and a JPEG XL input's own colour
description is not carried.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

import imagecodecs
import numpy as np

from restore_cli.errors import ImageError
from restore_cli.io import isobmff
from restore_cli.io.image import FLOAT_DEPTH, DecodedImage
from restore_cli.io.metadata import EXIF_PREFIX, Blocks
from restore_cli.io.stored import StoredImage, check_size, not_single

SIGNATURE = b"\x00\x00\x00\x0cJXL \r\n\x87\n"
CODESTREAM = b"\xff\x0a"
_FTYP = isobmff.box(b"ftyp", b"jxl \x00\x00\x00\x00jxl ")


@dataclass(frozen=True)
class Header:
    """What the codestream's first fields say."""

    size: tuple[int, int]
    orientation: int
    animated: bool
    bit_depth: int


def decode(data: bytes, name: str, max_pixels: int) -> StoredImage:
    require("reading", name)
    boxes = _boxes(data) if data.startswith(SIGNATURE) else {}
    header = read_header(_codestream(data, boxes))
    if header.animated:
        raise not_single(name, "is an animated JPEG XL")
    check_size(header.size, name, max_pixels)
    samples = imagecodecs.jpegxl_decode(data, keeporientation=False)
    samples = samples[..., None] if samples.ndim == 2 else samples
    if header.bit_depth == FLOAT_DEPTH:
        samples = samples.astype(np.float32)
    exif = _exif(boxes.get(b"Exif"))
    return StoredImage(samples, header.bit_depth, None, Blocks(exif=exif, xmp=boxes.get(b"xml ") or None), applied=header.orientation)


def encode(samples: np.ndarray, bit_depth: int, image: DecodedImage, quality: int) -> bytes:
    """100 is lossless; below, libjxl's own mapping of a JPEG-like quality to its distance.
    libjxl may already answer with a container (a level box for 16 bits)."""
    require("writing")
    planes = np.ascontiguousarray(samples.squeeze(2) if samples.shape[2] == 1 else samples)
    if quality == 100:
        codestream = imagecodecs.jpegxl_encode(planes, lossless=True)
    else:
        codestream = imagecodecs.jpegxl_encode(planes, level=quality)
    metadata = b""
    if image.exif:
        metadata += isobmff.box(b"Exif", struct.pack(">I", 0) + image.exif[len(EXIF_PREFIX) :])
    if image.xmp:
        metadata += isobmff.box(b"xml ", image.xmp)
    encoded = bytes(codestream)
    if not metadata:
        return encoded
    if not encoded.startswith(SIGNATURE):  # a bare codestream: put it in a container
        encoded = SIGNATURE + _FTYP + isobmff.box(b"jxlc", encoded)
    leading = [box for box in isobmff.boxes(encoded) if box.kind in (b"JXL ", b"ftyp", b"jxll")]
    split = leading[-1].end  # the metadata boxes go after the signature, type and level boxes
    return encoded[:split] + metadata + encoded[split:]


def require(action: str, name: str = "") -> None:
    """ImageError, naming the package, where this imagecodecs has no JPEG XL codec."""
    if not imagecodecs.JPEGXL.available:
        prefix = f"{name}: " if name else ""
        raise ImageError(f"{prefix}{action} JPEG XL files needs imagecodecs built with libjxl; install the imagecodecs wheel from PyPI")


def _boxes(data: bytes) -> dict[bytes, bytes]:
    """The container's boxes by type (the first of each), Brotli-compressed ones unpacked; the
    partial codestream boxes (jxlp) joined, without their index, under b'jxlc'."""
    found: dict[bytes, bytes] = {}
    parts = []
    for box in isobmff.boxes(data):
        body = data[box.body : box.end]
        if box.kind == b"jxlp":
            parts.append(body[4:])
        elif box.kind == b"brob" and len(body) > 4:
            found.setdefault(body[:4], bytes(imagecodecs.brotli_decode(body[4:])))
        else:
            found.setdefault(box.kind, body)
    if parts and b"jxlc" not in found:
        found[b"jxlc"] = b"".join(parts)
    return found


def _codestream(data: bytes, boxes: dict[bytes, bytes]) -> bytes:
    stream = boxes.get(b"jxlc", b"") if boxes else data
    if not stream.startswith(CODESTREAM):
        raise ValueError("no JPEG XL codestream")
    return stream


def _exif(payload: bytes | None) -> bytes | None:
    """An Exif box: a 4-byte offset to the TIFF header, then the block."""
    if not payload or len(payload) < 12:
        return None
    tiff = payload[4 + struct.unpack_from(">I", payload)[0] :]
    return EXIF_PREFIX + tiff if tiff[:4] in (b"II*\x00", b"MM\x00*") else None


# ---------------------------------------------------------------- the codestream's header


class _Bits:
    """Reads the codestream's fields: bits least significant first, byte after byte."""

    def __init__(self, data: bytes) -> None:
        self.data, self.position = data, 0

    def bits(self, count: int) -> int:
        value = 0
        for shift in range(count):
            byte = self.position >> 3
            if byte >= len(self.data):
                raise ValueError("codestream header cut short")
            value |= ((self.data[byte] >> (self.position & 7)) & 1) << shift
            self.position += 1
        return value

    def flag(self) -> bool:
        return bool(self.bits(1))

    def u32(self, *choices: tuple[int, int]) -> int:
        """A U32 field: a 2-bit selector, then that choice's (bits, offset)."""
        count, offset = choices[self.bits(2)]
        return self.bits(count) + offset


_SIZE = ((9, 1), (13, 1), (18, 1), (30, 1))
_PREVIEW_DIV8 = ((0, 16), (0, 32), (5, 1), (9, 33))
_PREVIEW = ((6, 1), (8, 65), (10, 321), (12, 1345))
_RATIOS = {1: (1, 1), 2: (12, 10), 3: (4, 3), 4: (3, 2), 5: (16, 9), 6: (5, 4), 7: (2, 1)}


def read_header(codestream: bytes) -> Header:
    reader = _Bits(codestream[2:])
    size = _size(reader, small=reader.flag(), distribution=_SIZE, small_unit=8)
    if reader.flag():  # all_default: 8-bit, upright, still
        return Header(size, 1, False, 8)
    orientation, animated = 1, False
    if reader.flag():  # extra_fields
        orientation = reader.bits(3) + 1
        if reader.flag():  # intrinsic size
            _size(reader, small=reader.flag(), distribution=_SIZE, small_unit=8)
        if reader.flag():  # preview
            div8 = reader.flag()
            _size(reader, small=False, distribution=_PREVIEW_DIV8 if div8 else _PREVIEW, small_unit=8)
        animated = reader.flag()
    if animated:
        return Header(size, orientation, True, 8)
    if reader.flag():  # float samples
        reader.u32((0, 32), (0, 16), (0, 24), (6, 1))
        return Header(size, orientation, False, FLOAT_DEPTH)
    return Header(size, orientation, False, reader.u32((0, 8), (0, 10), (0, 12), (6, 1)))


def _size(reader: _Bits, small: bool, distribution: tuple[tuple[int, int], ...], small_unit: int) -> tuple[int, int]:
    """A SizeHeader (or PreviewHeader): the height, then the width as a ratio of it or in full."""
    height = (reader.bits(5) + 1) * small_unit if small else reader.u32(*distribution)
    ratio = reader.bits(3)
    if ratio:
        numerator, denominator = _RATIOS[ratio]
        return height * numerator // denominator, height
    width = (reader.bits(5) + 1) * small_unit if small else reader.u32(*distribution)
    return width, height
