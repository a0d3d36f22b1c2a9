"""Encode images: each output format's own way of holding bit depth, alpha and metadata.

Everything is encoded to memory first and written atomically (``files.atomic_write``), so a
failure never leaves a partial file. The depth is the source's, or the one asked for, as the
format holds it (``image.output_depth``). 16-bit PNG goes through imagecodecs (libpng), every
TIFF through tifffile so that 8, 16-bit and float share one encoder, HEIC, AVIF and JPEG XL
through their own modules; the rest through Pillow.
"""

from __future__ import annotations

import errno
import io
import os
import struct
import zlib
from pathlib import Path
from typing import BinaryIO

import imagecodecs
import numpy as np
import tifffile
from PIL import Image, PngImagePlugin

from restore_cli.errors import ImageError, one_line
from restore_cli.io import avif, heif, jxl, metadata, storage
from restore_cli.io.files import atomic_write
from restore_cli.io.image import FLOAT_DEPTH, DecodedImage, check_depth, describe, output_depth, output_format, to_integer_levels
from restore_cli.io.metadata import EXIF_PREFIX
from restore_cli.io.urls import is_url

_OWN_ENCODERS = {"HEIF": heif.encode, "AVIF": avif.encode, "JXL": jxl.encode}
_ENCODER_CHECKS = {"HEIF": heif.require_encoder, "AVIF": lambda: avif.require("writing"), "JXL": lambda: jxl.require("writing")}
_FULL_DISK = {errno.ENOSPC, errno.EFBIG, errno.EDQUOT}
_NO_ALPHA_FORMATS = {"JPEG", "BMP"}  # Pillow's BMP reader ignores a 32-bit BMP's alpha
_PNG_XMP_KEY = b"XML:com.adobe.xmp\x00\x00\x00\x00\x00"  # keyword, uncompressed, no language, no translation


def write_image(
    image: DecodedImage,
    destination: str | os.PathLike | BinaryIO,
    *,
    format: str | None = None,
    quality: int = 95,
    depth: int | None = None,
) -> None:
    """Encode to memory first, then write atomically (a local file) or in one upload (a URL),
    so a failure never leaves a partial file or object.

    ``depth`` (8, 16 or FLOAT_DEPTH) overrides the source's depth; ImageError if the format
    cannot hold it."""
    name = describe(destination)
    fmt = output_format(destination, format)
    check_depth(fmt, depth, name)
    try:
        data = _encode(image, fmt, quality, output_depth(fmt, image.bit_depth, depth))
    except ImageError:
        raise
    except Exception as exc:
        raise ImageError(f"{name}: cannot encode image as {fmt} ({one_line(exc)}); try another output format") from exc
    if is_url(destination):
        storage.write_bytes(destination, data)  # type: ignore[arg-type]
    elif isinstance(destination, (str, os.PathLike)):
        _write_file(Path(destination), data)
    else:
        _write_stream(destination, data, name)


def check_output(fmt: str, depth: int | None) -> None:
    """Refuse, before any work, an output this installation cannot write: a depth the format
    cannot hold, or an encoder it lacks (the message names the package to install)."""
    check_depth(fmt, depth)
    if fmt in _ENCODER_CHECKS:
        _ENCODER_CHECKS[fmt]()


def _write_file(path: Path, data: bytes) -> None:
    try:
        atomic_write(path, data)
    except OSError as exc:
        full = exc.errno in _FULL_DISK
        hint = "free some disk space (or lift the file size limit)" if full else "check that the folder exists and is writable"
        raise ImageError(f"{path}: cannot write ({one_line(exc)}); {hint}") from exc


def _write_stream(stream: BinaryIO, data: bytes, name: str) -> None:
    try:
        stream.write(data)
        stream.flush()
    except OSError as exc:
        hint = "check that the receiving program is still reading"
        raise ImageError(f"{name}: cannot write ({one_line(exc)}); {hint}") from exc


# ---------------------------------------------------------------- encoding


def _encode(image: DecodedImage, fmt: str, quality: int, bit_depth: int) -> bytes:
    samples = _samples(image, fmt, bit_depth)
    if fmt in _OWN_ENCODERS:
        return _OWN_ENCODERS[fmt](samples, bit_depth, image, quality)
    if fmt == "TIFF":
        return _encode_tiff(samples, image)
    if bit_depth == 16:
        return _encode_png16(samples, image)
    return _encode_pillow(samples, fmt, image, quality)


def _samples(image: DecodedImage, fmt: str, bit_depth: int) -> np.ndarray:
    """HxWxC samples at the output depth (float32 for FLOAT_DEPTH), alpha last; formats
    without alpha get the picture flattened on white."""
    if fmt in _NO_ALPHA_FORMATS and image.alpha is not None:
        return to_integer_levels(_flatten_on_white(image), bit_depth)
    if bit_depth == FLOAT_DEPTH:
        colour = image.pixels.astype(np.float32)
        alpha = None if image.alpha is None else image.alpha.astype(np.float32) / np.iinfo(image.alpha.dtype).max
    else:
        colour, alpha = to_integer_levels(image.pixels, bit_depth), _alpha_for(image.alpha, bit_depth)
    return colour if alpha is None else np.concatenate([colour, alpha[..., None]], axis=2)


def _alpha_for(alpha: np.ndarray | None, bit_depth: int) -> np.ndarray | None:
    """The alpha as stored when the output depth allows it, else rescaled to the output depth."""
    if alpha is None:
        return None
    if alpha.dtype.itemsize * 8 == bit_depth:
        return alpha
    source_top = np.iinfo(alpha.dtype).max
    return to_integer_levels(alpha.astype(np.float64) / source_top, bit_depth)


def _flatten_on_white(image: DecodedImage) -> np.ndarray:
    """Without alpha, composite as viewers show it, rather than exposing colours hidden under transparency."""
    assert image.alpha is not None
    opacity = (image.alpha.astype(np.float32) / np.iinfo(image.alpha.dtype).max)[..., None]
    return image.pixels * opacity + (1.0 - opacity)


def _encode_pillow(samples: np.ndarray, fmt: str, image: DecodedImage, quality: int) -> bytes:
    picture = Image.fromarray(samples.squeeze(2) if samples.shape[2] == 1 else samples)
    options: dict[str, object] = {}
    if fmt in ("JPEG", "WEBP"):
        options["quality"] = quality
    if fmt == "JPEG":
        options["subsampling"] = 0  # 4:4:4: chroma subsampling would blur the detail just restored
    dpi = image.dpi or ((0, 0) if fmt == "BMP" else None)  # a BMP header always has one: 0 = unknown, not Pillow's 96
    blocks = {
        "icc_profile": image.icc_profile if fmt != "BMP" else None,
        "exif": image.exif if fmt in ("PNG", "WEBP") or (fmt == "JPEG" and metadata.jpeg_holds("EXIF", image.exif)) else None,
        "xmp": image.xmp if fmt == "WEBP" or (fmt == "JPEG" and metadata.jpeg_holds("XMP", image.xmp)) else None,
        "pnginfo": _png_xmp(image.xmp) if fmt == "PNG" and image.xmp else None,
        "extra": metadata.jpeg_app13(image.photoshop) if fmt == "JPEG" else None,
        "dpi": dpi if fmt != "WEBP" else None,
    }
    options.update({key: value for key, value in blocks.items() if value})
    buffer = io.BytesIO()
    picture.save(buffer, fmt, **options)
    return buffer.getvalue()


def _png_xmp(xmp: bytes) -> PngImagePlugin.PngInfo:
    """XMP in PNG: an uncompressed iTXt chunk with the keyword Adobe defines."""
    info = PngImagePlugin.PngInfo()
    info.add(b"iTXt", _PNG_XMP_KEY + xmp)
    return info


def _encode_png16(samples: np.ndarray, image: DecodedImage) -> bytes:
    """libpng via imagecodecs writes no metadata, so the metadata chunks are added after IHDR."""
    # libpng needs C-ordered rows; restored pixels often arrive as a permuted tensor view.
    png = imagecodecs.png_encode(np.ascontiguousarray(samples.squeeze(2) if samples.shape[2] == 1 else samples))
    chunks = b""
    if image.icc_profile:
        chunks += _png_chunk(b"iCCP", b"ICC Profile\x00\x00" + zlib.compress(image.icc_profile))
    if image.dpi:
        per_metre = (round(value / 0.0254) for value in image.dpi)
        chunks += _png_chunk(b"pHYs", struct.pack(">IIB", *per_metre, 1))
    if image.exif:
        chunks += _png_chunk(b"eXIf", image.exif[len(EXIF_PREFIX) :])
    if image.xmp:
        chunks += _png_chunk(b"iTXt", _PNG_XMP_KEY + image.xmp)
    header_end = 8 + 25
    return png[:header_end] + chunks + png[header_end:]


def _png_chunk(kind: bytes, payload: bytes) -> bytes:
    crc = zlib.crc32(kind + payload)
    return struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", crc)


def _encode_tiff(samples: np.ndarray, image: DecodedImage) -> bytes:
    """tifffile lays out the pixels (with no description or software tag of its own); the
    metadata is then merged into the first IFD, in the EXIF block's byte order so its values
    are copied as they are."""
    colour_channels = 1 if samples.shape[2] in (1, 2) else 3
    order = metadata.exif_byte_order(image.exif)
    buffer = io.BytesIO()
    tifffile.imwrite(
        buffer,
        samples.squeeze(2) if samples.shape[2] == 1 else samples,
        byteorder=order,
        photometric="minisblack" if colour_channels == 1 else "rgb",
        extrasamples=("unassalpha",) if samples.shape[2] in (2, 4) else None,
        planarconfig="contig",
        compression="zlib",
        resolution=image.dpi,
        resolutionunit="INCH" if image.dpi else None,
        metadata=None,
        software=False,
    )
    return metadata.tiff_with_entries(buffer.getvalue(), metadata.tiff_entries(image, order))
