"""AVIF through imagecodecs (libavif, dav1d and aom): 8, 10 and 12-bit, with EXIF, XMP and ICC.

libavif as imagecodecs binds it decodes and encodes pixels at every depth but leaves the
container's metadata alone, so ``isobmff`` reads and writes it: EXIF and XMP items, the ICC
profile, and the rotation/mirroring (irot/imir), which libavif does not apply and restore does.
Written at 4:4:4 (every AVIF decoder has it), ``--quality`` on libavif's own 0-100 scale, where
100 is lossless.
"""

from __future__ import annotations

import imagecodecs
import numpy as np

from restore_cli.errors import ImageError
from restore_cli.io import isobmff
from restore_cli.io.image import DecodedImage
from restore_cli.io.metadata import Blocks
from restore_cli.io.stored import StoredImage, check_size, not_single

_SPEED = 6
"""libavif's default speed (0 slowest .. 10 fastest): a fraction of the time a restoration takes."""


def decode(data: bytes, name: str, max_pixels: int) -> StoredImage:
    require("reading", name)
    if isobmff.find(data, b"moov") is not None:
        raise not_single(name, "is an animated AVIF")
    info = isobmff.read_heif(data)
    if info.size is not None:
        check_size(info.size, name, max_pixels)
    samples = imagecodecs.avif_decode(data)
    samples = samples[..., None] if samples.ndim == 2 else samples
    return StoredImage(samples, info.bit_depth, info.icc, Blocks(exif=info.exif, xmp=info.xmp), orientation=info.orientation)


def encode(samples: np.ndarray, bit_depth: int, image: DecodedImage, quality: int) -> bytes:
    require("writing")
    planes = samples.squeeze(2) if samples.shape[2] == 1 else samples
    encoded = imagecodecs.avif_encode(
        np.ascontiguousarray(planes),
        level=quality,
        speed=_SPEED,
        bitspersample=bit_depth if bit_depth > 8 else None,
        pixelformat="444" if samples.shape[2] >= 3 else None,
    )
    return isobmff.with_metadata(bytes(encoded), image.exif, image.xmp, image.icc_profile)


def require(action: str, name: str = "") -> None:
    """ImageError, naming the package, where this imagecodecs has no AVIF codec."""
    if not imagecodecs.AVIF.available:
        prefix = f"{name}: " if name else ""
        raise ImageError(f"{prefix}{action} AVIF files needs imagecodecs built with libavif; install the imagecodecs wheel from PyPI")
