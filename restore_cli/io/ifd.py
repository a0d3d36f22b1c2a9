"""TIFF structures: the IFDs of TIFF files, of EXIF blocks and of TIFF-based camera RAWs.

Entries are kept as raw bytes in the structure's byte order, so blocks can be copied and
re-laid-out without decoding (and so without damaging) values this code does not know.
Sub-IFD pointers (Exif, GPS, Interop) are followed, so an entry carries its sub-IFD's entries.
"""

from __future__ import annotations

import struct
from collections.abc import Iterator
from dataclasses import dataclass

EXIF_IFD_TAG, GPS_IFD_TAG, INTEROP_IFD_TAG = 34665, 34853, 40965
SUB_IFDS = {EXIF_IFD_TAG, GPS_IFD_TAG, INTEROP_IFD_TAG}
TYPE_SIZES = {1: 1, 2: 1, 3: 2, 4: 4, 5: 8, 6: 1, 7: 1, 8: 2, 9: 4, 10: 8, 11: 4, 12: 8, 13: 4}
SHORT, LONG = 3, 4
_MAX_DEPTH = 4


class Damaged(Exception):
    """A block whose structure cannot be followed; it is passed through or left out, never fatal."""


@dataclass(frozen=True)
class Entry:
    """One IFD entry with its value as raw bytes in the structure's byte order; sub-IFD
    pointers (Exif, GPS, Interop) carry the sub-IFD's entries instead of an offset."""

    tag: int
    type: int
    count: int
    payload: bytes
    children: tuple[Entry, ...] | None = None


def byte_order(tiff: bytes | bytearray) -> str:
    try:
        return {b"II": "<", b"MM": ">"}[bytes(tiff[:2])]
    except KeyError:
        raise Damaged("no TIFF byte-order mark") from None


def unpack(fmt: str, data: bytes | bytearray, offset: int) -> tuple[int, ...]:
    if offset < 0 or offset + struct.calcsize(fmt) > len(data):
        raise Damaged(f"offset {offset} outside the block")
    return struct.unpack_from(fmt, data, offset)


def first_ifd(tiff: bytes | bytearray, order: str) -> int:
    return unpack(order + "I", tiff, 4)[0]


def slots(tiff: bytes | bytearray, ifd: int, order: str) -> Iterator[tuple[int, int, int, int]]:
    """(position, tag, type, count) of each entry of the IFD at `ifd`."""
    (count,) = unpack(order + "H", tiff, ifd)
    for position in range(ifd + 2, ifd + 2 + 12 * count, 12):
        tag, kind, values = unpack(order + "HHI", tiff, position)
        yield position, tag, kind, values


def next_ifd_position(tiff: bytes | bytearray, ifd: int, order: str) -> int:
    return ifd + 2 + 12 * unpack(order + "H", tiff, ifd)[0]


def value_span(tiff: bytes | bytearray, position: int, kind: int, count: int, order: str) -> tuple[int, int]:
    """Where an entry's value bytes lie: inside the entry when they fit in 4 bytes, else at its offset."""
    size = TYPE_SIZES.get(kind, 0) * count
    start = position + 8 if size <= 4 else unpack(order + "I", tiff, position + 8)[0]
    if start + size > len(tiff):
        raise Damaged(f"value of {size} bytes at {start} outside the block")
    return start, size


def read_ifd(tiff: bytes, ifd: int, order: str, depth: int = 0) -> tuple[Entry, ...]:
    """The entries of one IFD, following Exif/GPS/Interop pointers; entries of unknown types are skipped."""
    if depth > _MAX_DEPTH:
        raise Damaged("IFDs nested too deep (a loop?)")
    entries = []
    for position, tag, kind, count in slots(tiff, ifd, order):
        if kind not in TYPE_SIZES:
            continue
        start, size = value_span(tiff, position, kind, count, order)
        payload = bytes(tiff[start : start + size])
        children = None
        if tag in SUB_IFDS and kind in (LONG, 13) and count == 1:
            children = read_ifd(tiff, unpack(order + "I", payload, 0)[0], order, depth + 1)
        entries.append(Entry(tag, kind, count, payload, children))
    return tuple(entries)


def write_ifd(entries: tuple[Entry, ...] | list[Entry], base: int, order: str) -> bytes:
    """An IFD and everything it points to, laid out to start at offset `base` of the file or block."""
    entries = sorted(entries, key=lambda entry: entry.tag)
    cursor = base + 2 + 12 * len(entries) + 4
    table = [struct.pack(order + "H", len(entries))]
    tail = bytearray()
    for entry in entries:
        if entry.children is not None:
            child = write_ifd(entry.children, cursor + len(tail), order)
            table.append(struct.pack(order + "HHII", entry.tag, LONG, 1, cursor + len(tail)))
            tail += child
        elif len(entry.payload) <= 4:
            table.append(struct.pack(order + "HHI", entry.tag, entry.type, entry.count) + entry.payload.ljust(4, b"\0"))
        else:
            table.append(struct.pack(order + "HHII", entry.tag, entry.type, entry.count, cursor + len(tail)))
            tail += entry.payload
        if len(tail) % 2:
            tail += b"\0"  # values start on word boundaries
    table.append(struct.pack(order + "I", 0))
    return b"".join(table) + bytes(tail)


def tiff_block(entries: tuple[Entry, ...] | list[Entry], order: str) -> bytes:
    header = (b"II*\x00" if order == "<" else b"MM\x00*") + struct.pack(order + "I", 8)
    return header + write_ifd(entries, 8, order)
