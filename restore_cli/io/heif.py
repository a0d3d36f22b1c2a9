"""HEIC/HEIF through pillow-heif (libheif): phones' photos, 8, 10 and 12-bit, with EXIF, XMP and ICC.

libheif turns the picture upright itself (the file's irot/imir), so the EXIF orientation is only
reset. pillow-heif hands 10 and 12-bit samples scaled up to 16 bits (shifted left); they are
shifted back so a 10-bit file's levels stay exactly its own. Writing uses x265 at 4:2:0, the
chroma layout every phone and operating system decodes (HEVC Main and Main 10); ``--quality 100``
is lossless (4:4:4, RGB coded as RGB).
"""

from __future__ import annotations

import io

import numpy as np

from restore_cli.errors import ImageError
from restore_cli.io import isobmff, plugins
from restore_cli.io.image import DecodedImage
from restore_cli.io.metadata import EXIF_PREFIX, Blocks, exif_orientation
from restore_cli.io.stored import StoredImage, check_size, not_single

_PACKAGE = ("pillow_heif", "pillow-heif")
_MODES = {1: "L", 2: "LA", 3: "RGB", 4: "RGBA"}
_DEEP_MODES = {1: "I;16", 2: "LA;16", 3: "RGB;16", 4: "RGBA;16"}


def decode(data: bytes, name: str, max_pixels: int) -> StoredImage:
    pillow_heif = plugins.load(*_PACKAGE, "reading HEIC files", name)
    if isobmff.find(data, b"moov") is not None:
        raise not_single(name, "is an image sequence (an animation or burst)")
    heif = pillow_heif.open_heif(io.BytesIO(data), convert_hdr_to_8bit=False)
    check_size(heif.size, name, max_pixels)
    bit_depth = int(heif.info.get("bit_depth", 8))
    samples = np.asarray(heif)
    if bit_depth > 8:
        samples = samples >> (16 - bit_depth)
    samples = samples[..., None] if samples.ndim == 2 else samples
    exif = _exif(heif.info.get("exif"))
    xmp = heif.info.get("xmp") or None
    blocks = Blocks(exif=exif, xmp=xmp)
    # libheif applied the file's irot/imir, which a conforming file keeps in step with its EXIF
    # orientation: the metadata is made upright for that.
    return StoredImage(samples, bit_depth, heif.info.get("icc_profile") or None, blocks, applied=exif_orientation(exif))


def require_encoder() -> None:
    """ImageError, naming the package, where HEIC cannot be written (no pillow-heif, or a
    libheif built without an HEVC encoder)."""
    pillow_heif = plugins.load(*_PACKAGE, "writing HEIC files")
    if not pillow_heif.libheif_info().get("HEIF"):
        raise ImageError("writing HEIC files needs libheif with an HEVC encoder (x265); install the pillow-heif wheel from PyPI")


def encode(samples: np.ndarray, bit_depth: int, image: DecodedImage, quality: int) -> bytes:
    require_encoder()
    pillow_heif = plugins.load(*_PACKAGE, "writing HEIC files")
    channels = samples.shape[2]
    if bit_depth > 8:
        samples = samples.astype(np.uint16) << (16 - bit_depth)
    mode = (_DEEP_MODES if bit_depth > 8 else _MODES)[channels]
    heif = pillow_heif.from_bytes(mode, (samples.shape[1], samples.shape[0]), np.ascontiguousarray(samples).tobytes())
    lossless = {"quality": -1, "chroma": "444", "matrix_coefficients": 0}  # RGB kept as RGB: no YCbCr rounding
    options: dict[str, object] = lossless if quality == 100 else {"quality": quality, "chroma": "420"}
    if bit_depth > 8:
        options["bit_depth"] = bit_depth
    blocks = {"exif": image.exif, "xmp": image.xmp, "icc_profile": image.icc_profile}
    buffer = io.BytesIO()
    heif.save(buffer, format="HEIF", **options, **{key: value for key, value in blocks.items() if value})
    return buffer.getvalue()


def _exif(exif: bytes | None) -> bytes | None:
    if not exif:
        return None
    return exif if exif.startswith(EXIF_PREFIX) else EXIF_PREFIX + exif
