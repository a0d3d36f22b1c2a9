"""Which files are videos, from their names and their first bytes, without loading FFmpeg.

Planning decides what each input is before anything is decoded, so this module reads at
most a few bytes and imports nothing heavy. A file named on the command line is a video if
its content says so, whatever its extension (a dashcam's `.dat`, a renamed clip); folder
scans pick up the extensions below, then look at the content the same way.
"""

from __future__ import annotations

import os
from pathlib import Path

from restore_cli.io.isobmff import IMAGE_BRANDS

MUXERS = {
    ".mp4": "mp4",
    ".m4v": "mp4",
    ".mov": "mov",
    ".qt": "mov",
    ".mkv": "matroska",
    ".webm": "webm",
    ".avi": "avi",
    ".ts": "mpegts",
    ".mts": "mpegts",
    ".m2ts": "mpegts",
    ".mpg": "mpeg",
    ".mpeg": "mpeg",
    ".wmv": "asf",
    ".asf": "asf",
    ".flv": "flv",
    ".3gp": "3gp",
    ".ogv": "ogg",
    ".mxf": "mxf",
    ".nut": "nut",
}
"""Video extensions and the FFmpeg muxer that writes each: what folder scans pick up, and
which container an output name asks for."""
FALLBACK_EXTENSION = ".mkv"
"""The output extension of a video whose own extension names no container (Matroska holds
every codec and stream kind)."""

_QUICKTIME_ATOMS = (b"moov", b"mdat", b"wide", b"free", b"skip", b"pnot")


def is_video_name(path: str | os.PathLike) -> bool:
    """Whether the extension is a video container's, for folder scans and output names."""
    return Path(path).suffix.lower() in MUXERS


def muxer_for(path: str | os.PathLike) -> str:
    """The FFmpeg muxer an output name asks for (Matroska for a name that names none)."""
    return MUXERS.get(Path(path).suffix.lower(), MUXERS[FALLBACK_EXTENSION])


def looks_like_video(path: str | os.PathLike) -> bool | None:
    """Whether the file's first bytes are a video container's; None when it cannot be read
    (missing, a folder, no permission), which leaves the decision to the extension."""
    try:
        with open(path, "rb") as file:
            head = file.read(200)
    except OSError:
        return None
    return _is_video_header(head)


def _is_video_header(head: bytes) -> bool:
    if head[4:8] == b"ftyp":
        return head[8:12] not in IMAGE_BRANDS
    if head[4:8] in _QUICKTIME_ATOMS:
        return True
    if head.startswith(b"RIFF"):
        return head[8:12] == b"AVI "
    if len(head) > 188 and head[0] == 0x47 and head[188] == 0x47:
        return True  # MPEG transport stream: a sync byte every 188 bytes
    return head.startswith(
        (
            b"\x1a\x45\xdf\xa3",  # Matroska, WebM
            b"\x00\x00\x01\xba",  # MPEG program stream
            b"\x00\x00\x01\xb3",  # MPEG elementary video
            b"FLV\x01",
            b"OggS",
            b"\x30\x26\xb2\x75\x8e\x66\xcf\x11",  # ASF (WMV)
            b"\x06\x0e\x2b\x34\x02\x05\x01\x01",  # MXF
            b"nut/multimedia container",
        )
    )
