"""Camera RAW files through rawpy (LibRaw): developed to 16-bit sRGB, with the camera's EXIF.

The models were trained on sRGB photographs, so a RAW is developed before it is restored:
demosaiced (AHD unless asked otherwise), white-balanced as the camera measured it (or by
LibRaw's grey-world estimate), converted to sRGB with the sRGB tone curve, at the exposure it
was shot at (LibRaw's automatic brightening is off: it clips the brightest 1 % of the picture).
LibRaw turns the picture upright. It hands no EXIF back, so the EXIF is read from the file:
TIFF-based RAWs (DNG, CR2, NEF, ARW, ORF, RW2, PEF...) keep it in IFDs, CR3 in its CMT boxes,
RAF in its embedded JPEG.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from types import ModuleType
from typing import Literal

from restore_cli.io import ifd, isobmff, plugins
from restore_cli.io.metadata import EXIF_PREFIX, Blocks, blocks_from_tiff
from restore_cli.io.stored import StoredImage, check_size

WhiteBalance = Literal["camera", "auto"]
Demosaic = Literal["ahd", "aahd", "dht", "dcb", "linear"]
"""LibRaw's demosaicing algorithms offered: AHD (its default), AAHD and DHT (sharper, fewer
artefacts on fine detail), DCB, and bilinear (fast, soft)."""
_SRGB_CURVE = (2.4, 12.92)
_FLIPS = {0: 1, 3: 3, 5: 8, 6: 6}  # LibRaw's flip -> the EXIF orientation it applied
_RAW_PHOTOMETRIC = {32803, 34892}  # colour filter array, linear raw
_DNG_VERSION, _SUB_IFDS, _PHOTOMETRIC = 50706, 330, 262
_TIFF_LIKE = (b"IIRO", b"IIRS", b"MMOR", b"IIU\x00")  # Olympus ORF, Panasonic RW2
_CR3_CMT = {b"CMT1": None, b"CMT2": ifd.EXIF_IFD_TAG, b"CMT4": ifd.GPS_IFD_TAG}
_CANON_UUID = bytes.fromhex("85c0b687820f11e08111f4ce462b6a48")
_ENDIAN: dict[str, Literal["little", "big"]] = {"<": "little", ">": "big"}


@dataclass(frozen=True)
class RawOptions:
    """How a camera RAW is developed: the white balance and the demosaicing algorithm."""

    white_balance: WhiteBalance = "camera"
    demosaic: Demosaic = "ahd"


def is_camera_raw(data: bytes) -> bool:
    """Recognised by content: RAF and CR3 by signature, TIFF-based RAWs by a DNG version or a
    colour-filter-array image in one of their IFDs (a NEF's first IFD is only its preview)."""
    if data.startswith(b"FUJIFILMCCD-RAW") or data[4:12] == b"ftypcrx " or data[:4] in _TIFF_LIKE:
        return True
    if data[:4] not in (b"II*\x00", b"MM\x00*"):
        return False
    return data[8:10] == b"CR" or _has_raw_ifd(data)


def _has_raw_ifd(data: bytes) -> bool:
    try:
        order = ifd.byte_order(data)
        pending, seen = [ifd.first_ifd(data, order)], set()
        while pending and len(seen) < 16:
            position = pending.pop()
            if position == 0 or position in seen:
                continue
            seen.add(position)
            tags = {entry.tag: entry for entry in ifd.read_ifd(data, position, order)}
            photometric = tags.get(_PHOTOMETRIC)
            if _DNG_VERSION in tags or (photometric and int.from_bytes(photometric.payload[:2], _ENDIAN[order]) in _RAW_PHOTOMETRIC):
                return True
            if _SUB_IFDS in tags:
                payload = tags[_SUB_IFDS].payload
                pending += [int.from_bytes(payload[i : i + 4], _ENDIAN[order]) for i in range(0, len(payload), 4)]
            pending.append(ifd.unpack(order + "I", data, ifd.next_ifd_position(data, position, order))[0])
    except ifd.Damaged:
        return False
    return False


def decode(data: bytes, name: str, max_pixels: int, options: RawOptions) -> StoredImage:
    rawpy = plugins.load("rawpy", "rawpy", "reading camera RAW files", name)
    try:
        return _develop(rawpy, data, name, max_pixels, options)
    except rawpy.LibRawError as error:  # LibRaw's messages arrive as bytes
        reason = error.args[0] if error.args else type(error).__name__
        raise ValueError(reason.decode(errors="replace") if isinstance(reason, bytes) else str(reason)) from error


def _develop(rawpy: ModuleType, data: bytes, name: str, max_pixels: int, options: RawOptions) -> StoredImage:
    with rawpy.imread(io.BytesIO(data)) as raw:
        flip = raw.sizes.flip
        width, height = raw.sizes.width, raw.sizes.height
        check_size((width, height), name, max_pixels)
        rgb = raw.postprocess(
            demosaic_algorithm=getattr(rawpy.DemosaicAlgorithm, options.demosaic.upper()),
            use_camera_wb=options.white_balance == "camera",
            use_auto_wb=options.white_balance == "auto",
            output_color=rawpy.ColorSpace.sRGB,
            output_bps=16,
            gamma=_SRGB_CURVE,
            no_auto_bright=True,
        )
    return StoredImage(rgb, 16, None, raw_blocks(data), applied=_FLIPS.get(flip, 1))


def raw_blocks(data: bytes) -> Blocks:
    """The camera's EXIF (and a DNG's XMP); a RAW's resolution tags describe no print size."""
    if data.startswith(b"FUJIFILMCCD-RAW"):
        return Blocks(exif=_raf_exif(data))
    if data[4:12] == b"ftypcrx ":
        return Blocks(exif=_cr3_exif(data))
    blocks = blocks_from_tiff(data)
    return Blocks(exif=blocks.exif, xmp=blocks.xmp)


def _raf_exif(data: bytes) -> bytes | None:
    """A RAF's EXIF is that of the full-size JPEG it embeds (offset and length at bytes 84..91)."""
    from PIL import Image

    start, length = int.from_bytes(data[84:88], "big"), int.from_bytes(data[88:92], "big")
    try:
        with Image.open(io.BytesIO(data[start : start + length])) as preview:
            exif = preview.info.get("exif")
    except Exception:  # a damaged preview costs the EXIF, not the photo
        return None
    return exif if isinstance(exif, bytes) and exif.startswith(EXIF_PREFIX) else None


def _cr3_exif(data: bytes) -> bytes | None:
    """A CR3 keeps IFD0, the Exif IFD and the GPS IFD as separate TIFF structures (CMT1, CMT2,
    CMT4) in a Canon box inside moov; they are joined into one EXIF block."""
    moov = isobmff.find(data, b"moov")
    canon = next((b for b in isobmff.boxes(data, moov.body, moov.end) if data[b.body : b.body + 16] == _CANON_UUID), None) if moov else None
    if canon is None:
        return None
    entries: list[ifd.Entry] = []
    order = None
    for box in isobmff.boxes(data, canon.body + 16, canon.end):
        if box.kind not in _CR3_CMT:
            continue
        tiff = data[box.body : box.end]
        try:
            own = ifd.byte_order(tiff)
            found = ifd.read_ifd(tiff, ifd.first_ifd(tiff, own), own)
        except ifd.Damaged:
            continue
        if order not in (None, own):
            continue
        order, parent = own, _CR3_CMT[box.kind]
        if parent is None:
            entries += [entry for entry in found if entry.tag not in ifd.SUB_IFDS]
        else:
            entries.append(ifd.Entry(parent, ifd.LONG, 1, b"", found))
    return EXIF_PREFIX + ifd.tiff_block(entries, order) if entries and order else None
