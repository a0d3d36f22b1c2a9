"""Photographers' files made in the tests, each with a tool other than restore's own writers:
HEIC with pillow-heif, AVIF with Pillow (8-bit, with metadata and orientation) or imagecodecs
(10/12-bit), JPEG XL with imagecodecs in a container whose metadata boxes are laid out here,
and a DNG (camera RAW) written from a synthetic Bayer mosaic by ``dng`` below."""

from __future__ import annotations

import io
import struct
from pathlib import Path

import imagecodecs
import numpy as np
import pillow_heif
from PIL import Image

DATA = Path(__file__).parent / "data"
LANDSCAPE = DATA / "images" / "Landscape_9.jpg"
"""A Lightroom export: 676 bytes of EXIF, 12 KB of XMP, a 2.4 KB ICC profile."""


def lightroom_blocks() -> tuple[bytes, bytes, bytes]:
    """(EXIF, XMP, ICC) to carry through every format: a camera's EXIF as Pillow writes it (no
    thumbnail, which restore drops as stale), a real photo's XMP and ICC profile."""
    with Image.open(LANDSCAPE) as photo:
        return camera_exif(), photo.info["xmp"], photo.info["icc_profile"]


def camera_exif(orientation: int | None = None) -> bytes:
    """EXIF with Make, Model, date, exposure, ISO, lens and GPS (b"Exif\0\0" first)."""
    tags = Image.Exif()
    tags.update({271: "Canon", 272: "Canon EOS 5D Mark III", 306: "2024:05:06 07:08:09"})
    if orientation is not None:
        tags[0x0112] = orientation
    tags.get_ifd(0x8769).update({0x829A: 0.008, 0x8827: 800, 0xA434: "EF 50mm f/1.4 USM"})
    tags.get_ifd(0x8825).update({1: "N", 2: (48.0, 51.0, 24.0)})
    return tags.tobytes()


def scene(height: int, width: int, top: int = 255, seed: int = 0) -> np.ndarray:
    """Smooth colour ramps plus noise, as integer levels up to `top` (a picture a codec keeps
    well, with detail a restoration changes)."""
    rows, columns = np.mgrid[0:height, 0:width]
    ramps = np.stack([columns / max(width - 1, 1), rows / max(height - 1, 1), 0.5 + 0.3 * np.sin(columns / 5)], axis=2)
    noise = np.random.default_rng(seed).normal(0, 0.04, ramps.shape)
    levels = np.rint(np.clip(0.1 + 0.8 * ramps + noise, 0, 1) * top)
    return levels.astype(np.uint8 if top <= 255 else np.uint16)


def heic(levels: np.ndarray, bits: int = 8, lossless: bool = True, **metadata: bytes) -> bytes:
    """levels HxWx3 (uint8, or uint16 holding `bits`-bit values)."""
    height, width = levels.shape[:2]
    if bits == 8:
        heif = pillow_heif.from_bytes("RGB", (width, height), np.ascontiguousarray(levels).tobytes())
    else:
        heif = pillow_heif.from_bytes("RGB;16", (width, height), (levels.astype(np.uint16) << (16 - bits)).tobytes())
    options: dict[str, object] = {"quality": -1, "chroma": "444", "matrix_coefficients": 0} if lossless else {"quality": 90}
    if bits > 8:
        options["bit_depth"] = bits
    buffer = io.BytesIO()
    heif.save(buffer, **options, **metadata)
    return buffer.getvalue()


def heic_with_orientation(levels: np.ndarray, orientation: int) -> bytes:
    """What a phone writes: the pixels as the sensor saw them, an EXIF orientation, and the
    irot/imir that libheif writes for it (and applies when decoding)."""
    return heic(levels, exif=camera_exif(orientation))


def avif(levels: np.ndarray, bits: int = 8, **metadata: bytes) -> bytes:
    """8-bit: Pillow's AVIF (libavif), which writes EXIF, XMP, ICC, and an EXIF orientation as
    irot/imir; 10/12-bit: imagecodecs, lossless."""
    if bits == 8:
        buffer = io.BytesIO()
        Image.fromarray(levels).save(buffer, "AVIF", quality=100, subsampling="4:4:4", **metadata)
        return buffer.getvalue()
    return bytes(imagecodecs.avif_encode(levels, level=100, bitspersample=bits, speed=8))


def jxl(samples: np.ndarray, exif: bytes | None = None, xmp: bytes | None = None, compress_xmp: bool = False) -> bytes:
    """Lossless JPEG XL (uint8, uint16 or float32 samples), in a container with an Exif box and
    an XMP box (plain, or Brotli-compressed in a brob box) when given."""
    codestream = bytes(imagecodecs.jpegxl_encode(samples, lossless=True))
    if exif is None and xmp is None:
        return codestream
    if codestream.startswith(b"\x00\x00\x00\x0cJXL "):
        codestream = _jxl_codestream(codestream)
    boxes = _box(b"JXL ", b"\r\n\x87\n") + _box(b"ftyp", b"jxl \x00\x00\x00\x00jxl ") + _box(b"jxll", b"\x0a")
    if exif is not None:
        boxes += _box(b"Exif", struct.pack(">I", 6) + exif)  # offset 6: the payload keeps "Exif\0\0"
    if xmp is not None:
        boxes += _box(b"brob", b"xml " + bytes(imagecodecs.brotli_encode(xmp))) if compress_xmp else _box(b"xml ", xmp)
    return boxes + _box(b"jxlp", struct.pack(">I", 0) + codestream[:20]) + _box(b"jxlp", struct.pack(">I", 0x80000001) + codestream[20:])


def _jxl_codestream(container: bytes) -> bytes:
    position = 0
    while position < len(container):
        size, kind = struct.unpack_from(">I4s", container, position)
        if kind == b"jxlc":
            return container[position + 8 : position + size]
        position += size
    raise ValueError("no codestream")


def _box(kind: bytes, payload: bytes) -> bytes:
    return struct.pack(">I4s", 8 + len(payload), kind) + payload


def jxl_boxes(data: bytes) -> dict[bytes, bytes]:
    """A JPEG XL container's top-level boxes by type, to check what restore wrote."""
    found, position = {}, 0
    while position + 8 <= len(data):
        size, kind = struct.unpack_from(">I4s", data, position)
        found.setdefault(kind, data[position + 8 : position + size])
        position += size
    return found


# ---------------------------------------------------------------- DNG

_TYPES = {"B": 1, "A": 2, "H": 3, "I": 4, "R": 5, "SR": 10}


def dng(mosaic: np.ndarray, white: int, ifd0: dict, exif: dict, gps: dict) -> bytes:
    """An uncompressed little-endian DNG 1.4 of an RGGB mosaic (uint16), identity colour
    matrix, with the given IFD0 tags, Exif IFD and GPS IFD; tags as {tag: (kind, values)}."""
    height, width = mosaic.shape
    pixels = mosaic.astype("<u2").tobytes()
    tags = {
        254: ("I", [0]), 256: ("I", [width]), 257: ("I", [height]), 258: ("H", [16]), 259: ("H", [1]),
        262: ("H", [32803]), 273: ("I", [8]), 277: ("H", [1]), 278: ("I", [height]), 279: ("I", [len(pixels)]),
        284: ("H", [1]), 33421: ("H", [2, 2]), 33422: ("B", [0, 1, 1, 2]), 50706: ("B", [1, 4, 0, 0]),
        50707: ("B", [1, 2, 0, 0]), 50714: ("H", [0]), 50717: ("H", [white]), 50778: ("H", [21]),
        50721: ("SR", [[1, 1], [0, 1], [0, 1], [0, 1], [1, 1], [0, 1], [0, 1], [0, 1], [1, 1]]),
    }  # fmt: skip
    tags.update(ifd0)
    return b"II*\x00" + struct.pack("<I", 8 + len(pixels)) + pixels + _ifd(tags, 8 + len(pixels), {34665: exif, 34853: gps})


def _value(kind: str, values) -> tuple[int, int, bytes]:
    if kind == "A":
        raw = values.encode() + b"\0"
        return 2, len(raw), raw
    if kind in ("R", "SR"):
        flat = [number for pair in values for number in pair]
        return _TYPES[kind], len(values), struct.pack("<" + ("I" if kind == "R" else "i") * len(flat), *flat)
    return _TYPES[kind], len(values), struct.pack("<" + kind * len(values), *values)


def _ifd(tags: dict, base: int, children: dict) -> bytes:
    entries = sorted([(tag, spec) for tag, spec in tags.items()] + [(tag, None) for tag, child in children.items() if child])
    cursor = base + 2 + 12 * len(entries) + 4
    table, tail = [struct.pack("<H", len(entries))], bytearray()
    for tag, spec in entries:
        if spec is None:
            table.append(struct.pack("<HHII", tag, 4, 1, cursor + len(tail)))
            tail += _ifd(children[tag], cursor + len(tail), {})
            continue
        kind, count, raw = _value(*spec)
        if len(raw) <= 4:
            table.append(struct.pack("<HHI", tag, kind, count) + raw.ljust(4, b"\0"))
        else:
            table.append(struct.pack("<HHII", tag, kind, count, cursor + len(tail)))
            tail += raw + b"\0" * (len(raw) % 2)
    table.append(struct.pack("<I", 0))
    return b"".join(table) + bytes(tail)


def bayer(height: int, width: int, white: int) -> np.ndarray:
    """An RGGB mosaic of a smooth scene (red rising left to right, green top to bottom)."""
    rows, columns = np.mgrid[0:height, 0:width]
    red, green, blue = 0.15 + 0.5 * columns / width, 0.2 + 0.4 * rows / height, np.full((height, width), 0.3)
    mosaic = np.where(rows % 2 == 0, np.where(columns % 2 == 0, red, green), np.where(columns % 2 == 0, green, blue))
    return np.rint(mosaic * white).astype(np.uint16)
