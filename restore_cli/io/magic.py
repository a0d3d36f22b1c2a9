"""What a file is, from its first bytes: the formats that Pillow does not decode itself.

Files are recognised by content, not by name, so a HEIC saved as photo.jpg, or a DNG as .tif,
is still read as what it is. Everything not recognised here is left to Pillow, which sniffs
PNG, JPEG, TIFF, WebP and BMP (and names what it cannot read).
"""

from __future__ import annotations

from pathlib import Path

from restore_cli.io import jxl, raw
from restore_cli.io.image import RAW_EXTENSIONS
from restore_cli.io.isobmff import AVIF_BRANDS, HEIF_BRANDS


def family(data: bytes, name: str = "") -> str | None:
    """'HEIF', 'AVIF', 'JXL' or 'RAW' (a camera RAW of any make), or None for Pillow's formats.
    A TIFF-structured file named as a RAW is one even if its IFDs are damaged, so the error
    comes from LibRaw rather than from a TIFF reader."""
    if data.startswith((jxl.SIGNATURE, jxl.CODESTREAM)):
        return "JXL"
    if raw.is_camera_raw(data) or (Path(name).suffix.lower() in RAW_EXTENSIONS and data[:2] in (b"II", b"MM")):
        return "RAW"
    brands = _brands(data)
    if brands & AVIF_BRANDS:
        return "AVIF"
    if brands & HEIF_BRANDS:
        return "HEIF"
    return None


def _brands(data: bytes) -> set[bytes]:
    """The major and compatible brands of an ISO base media file's leading ftyp box."""
    if data[4:8] != b"ftyp" or len(data) < 16:
        return set()
    size = min(int.from_bytes(data[:4], "big"), len(data))
    return {data[8:12]} | {data[position : position + 4] for position in range(16, size - 3, 4)}
