"""What a format's decoder hands back: the samples as the file stores them, and the metadata.

Each family of formats (Pillow's, HEIF, AVIF, JPEG XL, camera RAW) has its own decoder; they
all return a ``StoredImage`` so that ``decode`` turns any of them into a ``DecodedImage`` the
same way: orientation applied, alpha split off, samples scaled to [0, 1].
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from restore_cli.errors import ImageError, setting
from restore_cli.io.image import FLOAT_DEPTH, to_integer_levels
from restore_cli.io.metadata import Blocks


@dataclass(frozen=True)
class StoredImage:
    """Samples HxWxC (alpha last, if any), integer or float, and what describes them.

    ``orientation`` (EXIF numbering) is still to be applied to the samples; ``applied`` is the
    one the codec already applied (HEIF, JPEG XL and LibRaw turn their pictures upright
    themselves). The metadata is made true of the upright picture for whichever it is.
    """

    samples: np.ndarray
    bit_depth: int
    icc_profile: bytes | None
    blocks: Blocks
    orientation: int = 1
    applied: int = 1

    def scale(self) -> np.float32:
        """What turns a sample into [0, 1]."""
        return np.float32(1.0) if self.bit_depth == FLOAT_DEPTH else np.float32(1 / (2**self.bit_depth - 1))


def alpha_levels(alpha: np.ndarray, bit_depth: int) -> np.ndarray:
    """Alpha as DecodedImage keeps it: 8 or 16-bit levels at full range (10/12-bit and float
    alpha are rescaled to 16 bits, which holds them exactly)."""
    if bit_depth in (8, 16):
        return alpha
    top = 1.0 if bit_depth == FLOAT_DEPTH else 2**bit_depth - 1
    return to_integer_levels(alpha.astype(np.float64) / top, 16)


def check_size(size: tuple[int, int], name: str, max_pixels: int) -> None:
    """Refuse a picture over `max_pixels` from its header, before its pixels are decoded: a few
    bytes can declare a picture that would take all memory."""
    width, height = size
    if width * height > max_pixels:
        raise ImageError(
            f"{name}: {width}x{height} is {width * height:,} pixels, over the limit of {max_pixels:,}; "
            f"if you trust this file, pass {setting('max_pixels')} {width * height} (or raise restore_cli.io.decode.MAX_PIXELS)"
        )


def not_single(name: str, what: str) -> ImageError:
    """The refusal of an animation, sequence or multi-page file: restoring one frame and writing
    it as the whole file would silently drop the rest."""
    return ImageError(
        f"{name}: {what}; restore works on single images: extract the frame you want (e.g. as PNG) and restore that"
    )
