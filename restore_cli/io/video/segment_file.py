"""A restored segment on disk: the encoder's packets, exactly as it made them.

Segments are stored as plain records rather than in a container, so nothing about them is
rounded or rewritten (containers change time bases and shift timestamps) before the join
puts them in the output's container. Files are written under a temp name and renamed when
complete (``io.files.AtomicFile``): a segment file that exists is a finished segment.
"""

from __future__ import annotations

import os
import struct
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from restore_cli.io.files import AtomicFile

_MAGIC = b"RSTSEG1\n"
_RECORD = struct.Struct("<qqq?I")
_NONE = -(2**63)


@dataclass(frozen=True)
class StoredPacket:
    pts: int | None
    dts: int | None
    duration: int
    keyframe: bool
    data: bytes


class SegmentFileWriter:
    """Packets in, one finished file out (`commit`), or nothing at all (`discard`)."""

    def __init__(self, path: str | os.PathLike, extradata: bytes) -> None:
        self._file = AtomicFile(path)
        self._file.file.write(_MAGIC + struct.pack("<I", len(extradata)) + extradata)

    def add(self, packet: StoredPacket) -> None:
        pts, dts = (_NONE if value is None else value for value in (packet.pts, packet.dts))
        self._file.file.write(_RECORD.pack(pts, dts, packet.duration, packet.keyframe, len(packet.data)) + packet.data)

    def commit(self) -> None:
        self._file.commit()

    def discard(self) -> None:
        self._file.discard()


def read_extradata(path: str | os.PathLike) -> bytes:
    with open(path, "rb") as file:
        return _header(file.read(len(_MAGIC) + 4), file, path)


def read_packets(path: str | os.PathLike) -> Iterator[StoredPacket]:
    with open(path, "rb") as file:
        _header(file.read(len(_MAGIC) + 4), file, path)
        while head := file.read(_RECORD.size):
            pts, dts, duration, keyframe, size = _RECORD.unpack(head)
            yield StoredPacket(None if pts == _NONE else pts, None if dts == _NONE else dts, duration, keyframe, file.read(size))


def count_packets(path: str | os.PathLike) -> int:
    """How many packets (frames) a finished segment holds, reading only the record headers."""
    count = 0
    with open(path, "rb") as file:
        _header(file.read(len(_MAGIC) + 4), file, path)
        while head := file.read(_RECORD.size):
            file.seek(_RECORD.unpack(head)[-1], os.SEEK_CUR)
            count += 1
    return count


def _header(head: bytes, file: object, path: str | os.PathLike) -> bytes:
    if not head.startswith(_MAGIC):
        raise ValueError(f"{Path(path)} is not a restored segment")
    (length,) = struct.unpack("<I", head[len(_MAGIC) :])
    return file.read(length)  # type: ignore[attr-defined]
