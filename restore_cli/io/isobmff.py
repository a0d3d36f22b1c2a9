"""ISO base media file boxes: the container of HEIF and AVIF images, and of JPEG XL's metadata.

libavif (through imagecodecs) decodes and encodes AVIF pixels at 8, 10 and 12 bits but neither
reports nor writes the metadata items, so this module does both: ``read_heif`` finds the
primary image's EXIF and XMP items, its ICC profile, its rotation and mirroring, and its bit
depth; ``with_metadata`` adds EXIF, XMP and ICC to an encoder's output, moving every data offset
the larger ``meta`` box shifts. Both follow ISO/IEC 23008-12 (HEIF); any structure they cannot
follow raises ``ValueError``, which the decoder reports as a damaged file.
"""

from __future__ import annotations

import struct
from collections.abc import Iterator
from dataclasses import dataclass, field

from restore_cli.io.metadata import EXIF_PREFIX

HEIF_BRANDS = frozenset({b"heic", b"heix", b"heim", b"heis", b"hevc", b"hevx", b"mif1", b"mif2", b"msf1"})
AVIF_BRANDS = frozenset({b"avif", b"avis"})
IMAGE_BRANDS = HEIF_BRANDS | AVIF_BRANDS
"""ISO media brands of still images, which share MP4's box structure: the one list both
``magic`` (which image decoder) and ``video.names`` (not a video) go by. This module imports
only the standard library, so the video-name check stays free of codecs."""
XMP_MIME = b"application/rdf+xml"
# HEIF rotation (irot: anticlockwise quarter turns) then mirroring (imir axis 0: top and bottom
# exchanged; 1: left and right, per ISO/IEC 23008-12:2022), as the EXIF orientation that displays
# the same: MIAF applies irot before imir.
_ORIENTATIONS = {
    (0, None): 1, (1, None): 8, (2, None): 3, (3, None): 6,
    (0, 1): 2, (1, 1): 7, (2, 1): 4, (3, 1): 5,
    (0, 0): 4, (1, 0): 5, (2, 0): 2, (3, 0): 7,
}  # fmt: skip


@dataclass(frozen=True)
class Box:
    kind: bytes
    start: int
    body: int
    end: int


def boxes(data: bytes, start: int = 0, end: int | None = None) -> Iterator[Box]:
    """The boxes laid end to end in data[start:end]."""
    end = len(data) if end is None else end
    position = start
    while position + 8 <= end:
        size, kind = struct.unpack_from(">I4s", data, position)
        body = position + 8
        if size == 1:
            (size,) = struct.unpack_from(">Q", data, body)
            body += 8
        elif size == 0:
            size = end - position
        if size < body - position or position + size > end:
            raise ValueError(f"its {kind.decode('latin-1').strip()!r} box runs past the end of the data (a truncated file?)")
        yield Box(kind, position, body, position + size)
        position += size


def find(data: bytes, kind: bytes, start: int = 0, end: int | None = None) -> Box | None:
    return next((box for box in boxes(data, start, end) if box.kind == kind), None)


def box(kind: bytes, payload: bytes) -> bytes:
    return struct.pack(">I4s", 8 + len(payload), kind) + payload


# ---------------------------------------------------------------- the items of a `meta` box


@dataclass
class _Location:
    method: int
    reference: int
    base: int
    extents: list[tuple[int, int, int]]
    """(index, offset, length) of each extent; offsets include the base."""


@dataclass
class _Meta:
    """The parts of a HEIF `meta` box that locate items and their properties."""

    box: Box
    primary: int = 0
    types: dict[int, bytes] = field(default_factory=dict)
    mimes: dict[int, bytes] = field(default_factory=dict)
    locations: dict[int, _Location] = field(default_factory=dict)
    references: list[tuple[bytes, int, list[int]]] = field(default_factory=list)
    properties: list[Box] = field(default_factory=list)
    associations: dict[int, list[tuple[bool, int]]] = field(default_factory=dict)
    """Item -> (essential, 1-based property index) of each of its properties, in order."""
    iloc_version: int = 0
    index_size: int = 0

    def item_properties(self, item: int) -> list[Box]:
        return [self.properties[index - 1] for _, index in self.associations.get(item, []) if 0 < index <= len(self.properties)]

    def described_by(self, item: int) -> list[int]:
        """Items that describe `item` (EXIF and XMP point at their image with a 'cdsc' reference)."""
        return [source for kind, source, targets in self.references if kind == b"cdsc" and item in targets]


def _full_box(data: bytes, box: Box) -> tuple[int, int]:
    version_flags = struct.unpack_from(">I", data, box.body)[0]
    return version_flags >> 24, version_flags & 0xFFFFFF


def _read_meta(data: bytes) -> _Meta:
    found = find(data, b"meta")
    if found is None:
        raise ValueError("no meta box")
    meta = _Meta(found)
    for child in boxes(data, found.body + 4, found.end):
        reader = _READERS.get(child.kind)
        if reader is not None:
            reader(data, child, meta)
    return meta


def _read_pitm(data: bytes, box: Box, meta: _Meta) -> None:
    version, _ = _full_box(data, box)
    meta.primary = struct.unpack_from(">H" if version == 0 else ">I", data, box.body + 4)[0]


def _read_iinf(data: bytes, box: Box, meta: _Meta) -> None:
    version, _ = _full_box(data, box)
    for entry in boxes(data, box.body + (6 if version == 0 else 8), box.end):
        entry_version, _ = _full_box(data, entry)
        if entry.kind != b"infe" or entry_version < 2:
            continue
        id_size = 2 if entry_version == 2 else 4
        item = int.from_bytes(data[entry.body + 4 : entry.body + 4 + id_size], "big")
        kind_at = entry.body + 4 + id_size + 2
        meta.types[item] = data[kind_at : kind_at + 4]
        strings = data[kind_at + 4 : entry.end].split(b"\0")
        if meta.types[item] == b"mime" and len(strings) > 1:
            meta.mimes[item] = strings[1]


def _read_iloc(data: bytes, box: Box, meta: _Meta) -> None:
    version, _ = _full_box(data, box)
    sizes = data[box.body + 4 : box.body + 6]
    offset_size, length_size, base_size = sizes[0] >> 4, sizes[0] & 15, sizes[1] >> 4
    meta.iloc_version, meta.index_size = version, (sizes[1] & 15) if version in (1, 2) else 0
    reader = _Reader(data, box.body + 6)
    for _ in range(reader.uint(2 if version < 2 else 4)):
        item = reader.uint(2 if version < 2 else 4)
        method = reader.uint(2) & 15 if version in (1, 2) else 0
        reference, base = reader.uint(2), reader.uint(base_size)
        extents = [
            (reader.uint(meta.index_size), base + reader.uint(offset_size), reader.uint(length_size)) for _ in range(reader.uint(2))
        ]
        meta.locations[item] = _Location(method, reference, base, extents)


def _read_iref(data: bytes, box: Box, meta: _Meta) -> None:
    version, _ = _full_box(data, box)
    size = 2 if version == 0 else 4
    for reference in boxes(data, box.body + 4, box.end):
        reader = _Reader(data, reference.body)
        source, count = reader.uint(size), reader.uint(2)
        meta.references.append((reference.kind, source, [reader.uint(size) for _ in range(count)]))


def _read_iprp(data: bytes, box: Box, meta: _Meta) -> None:
    for child in boxes(data, box.body, box.end):
        if child.kind == b"ipco":
            meta.properties = list(boxes(data, child.body, child.end))
        elif child.kind == b"ipma":
            version, flags = _full_box(data, child)
            reader = _Reader(data, child.body + 4)
            top_bit = 15 if flags & 1 else 7
            for _ in range(reader.uint(4)):
                item = reader.uint(2 if version < 1 else 4)
                values = [reader.uint((top_bit + 1) // 8) for _ in range(reader.uint(1))]
                meta.associations.setdefault(item, []).extend((bool(value >> top_bit), value & ((1 << top_bit) - 1)) for value in values)


_READERS = {b"pitm": _read_pitm, b"iinf": _read_iinf, b"iloc": _read_iloc, b"iref": _read_iref, b"iprp": _read_iprp}


@dataclass
class _Reader:
    data: bytes
    position: int

    def uint(self, size: int) -> int:
        if size == 0:
            return 0
        if self.position + size > len(self.data):
            raise ValueError("structure runs past the end of the file")
        value = int.from_bytes(self.data[self.position : self.position + size], "big")
        self.position += size
        return value


def _item_data(data: bytes, meta: _Meta, item: int) -> bytes:
    location = meta.locations.get(item)
    if location is None or location.reference != 0 or location.method not in (0, 1):
        raise ValueError(f"item {item} has no data this reader can locate")
    if location.method == 1:
        idat = find(data, b"idat", meta.box.body + 4, meta.box.end)
        if idat is None:
            raise ValueError("item data in a missing idat box")
        start = idat.body
    else:
        start = 0
    return b"".join(data[start + offset : (start + offset + length) if length else None] for _, offset, length in location.extents)


# ---------------------------------------------------------------- reading


@dataclass(frozen=True)
class HeifInfo:
    """What restore needs from a HEIF/AVIF file besides the pixels."""

    exif: bytes | None
    xmp: bytes | None
    icc: bytes | None
    orientation: int
    bit_depth: int
    size: tuple[int, int] | None
    """Width and height as stored (before irot), from the ispe property."""


def read_heif(data: bytes) -> HeifInfo:
    meta = _read_meta(data)
    properties = meta.item_properties(meta.primary)
    exif = xmp = None
    for item in meta.described_by(meta.primary):
        if meta.types.get(item) == b"Exif" and exif is None:
            exif = _exif_payload(_item_data(data, meta, item))
        elif meta.mimes.get(item) == XMP_MIME and xmp is None:
            xmp = _item_data(data, meta, item) or None
    spatial = next((prop for prop in properties if prop.kind == b"ispe"), None)
    size = struct.unpack_from(">II", data, spatial.body + 4) if spatial is not None else None
    return HeifInfo(
        exif,
        xmp,
        _icc(data, properties),
        _orientation(data, properties),
        _depth(data, meta, properties),
        size=size,
    )


def _exif_payload(payload: bytes) -> bytes | None:
    """An Exif item: a 4-byte offset to the TIFF header, then the block (often 'Exif\\0\\0' first)."""
    if len(payload) < 12:
        return None
    (skip,) = struct.unpack_from(">I", payload)
    tiff = payload[4 + skip :]
    return EXIF_PREFIX + tiff if tiff[:4] in (b"II*\x00", b"MM\x00*") else None


def _icc(data: bytes, properties: list[Box]) -> bytes | None:
    for prop in properties:
        if prop.kind == b"colr" and data[prop.body : prop.body + 4] in (b"prof", b"rICC"):
            return data[prop.body + 4 : prop.end] or None
    return None


def _orientation(data: bytes, properties: list[Box]) -> int:
    angle, axis = 0, None
    for prop in properties:
        if prop.kind == b"irot":
            angle = data[prop.body] & 3
        elif prop.kind == b"imir":
            axis = data[prop.body] & 1
    return _ORIENTATIONS[(angle, axis)]


def _depth(data: bytes, meta: _Meta, properties: list[Box]) -> int:
    """From the pixi property, else the AV1 configuration (a grid's from its first tile)."""
    for prop in properties:
        if prop.kind == b"pixi" and data[prop.body + 4] > 0:
            return data[prop.body + 5]
    tiles = [target for kind, source, targets in meta.references if kind == b"dimg" and source == meta.primary for target in targets]
    for prop in properties + (meta.item_properties(tiles[0]) if tiles else []):
        if prop.kind == b"av1C":
            flags = data[prop.body + 2]
            return 12 if flags & 0x20 else 10 if flags & 0x40 else 8
    return 8


# ---------------------------------------------------------------- writing


def with_metadata(data: bytes, exif: bytes | None, xmp: bytes | None, icc: bytes | None) -> bytes:
    """The file with EXIF and XMP items describing its primary image and an ICC colour
    property on it. The items' data goes in a new mdat box at the end; the meta box is rebuilt
    and every file offset that points past it moves by how much it grew."""
    meta = _read_meta(data)
    if icc and _icc(data, meta.item_properties(meta.primary)) is None:
        meta.properties.append(Box(b"colr", -1, -1, -1))
        meta.associations.setdefault(meta.primary, []).insert(0, (False, len(meta.properties)))
    else:
        icc = None
    payloads = ([(b"Exif", struct.pack(">I", 0) + exif[len(EXIF_PREFIX) :])] if exif else []) + ([(b"mime", xmp)] if xmp else [])
    if not (payloads or icc):
        return data
    first = max([meta.primary, *meta.types, *meta.locations]) + 1
    writer = _MetaWriter(data, meta, [(first + index, kind, payload) for index, (kind, payload) in enumerate(payloads)], icc or b"")
    for item, _, _ in writer.new_items:
        meta.references.append((b"cdsc", item, [meta.primary]))
    grown = len(writer.build(0, 0)) - (meta.box.end - meta.box.start)
    rebuilt = writer.build(grown, len(data) + grown + 8)
    return data[: meta.box.start] + rebuilt + data[meta.box.end :] + box(b"mdat", b"".join(p for _, _, p in writer.new_items))


@dataclass
class _MetaWriter:
    """Lays out the meta box again with the new items, references and property."""

    data: bytes
    meta: _Meta
    new_items: list[tuple[int, bytes, bytes]]
    icc: bytes

    def build(self, shift: int, tail_start: int) -> bytes:
        """The meta box, with file offsets past the old one moved by `shift` and the new items'
        data at `tail_start`. Its size does not depend on either (every offset takes 4 bytes)."""
        data, meta = self.data, self.meta
        rebuild = {b"iinf": self._iinf, b"iref": lambda _: self._iref(), b"iprp": lambda _: self._iprp()}
        children = []
        for child in boxes(data, meta.box.body + 4, meta.box.end):
            if child.kind == b"iloc":
                children.append(self._iloc(shift, tail_start))
            else:
                children.append(rebuild[child.kind](child) if child.kind in rebuild else data[child.start : child.end])
        if find(data, b"iref", meta.box.body + 4, meta.box.end) is None:
            children.append(self._iref())
        return box(b"meta", data[meta.box.body : meta.box.body + 4] + b"".join(children))

    def _iinf(self, old: Box) -> bytes:
        version, _ = _full_box(self.data, old)
        count_size = 2 if version == 0 else 4
        entries = [self.data[entry.start : entry.end] for entry in boxes(self.data, old.body + 4 + count_size, old.end)]
        for item, kind, _ in self.new_items:
            names = b"\0" + (XMP_MIME + b"\0" if kind == b"mime" else b"")
            entries.append(box(b"infe", struct.pack(">BBBBHH4s", 2, 0, 0, 0, item, 0, kind) + names))
        return box(b"iinf", self.data[old.body : old.body + 4] + len(entries).to_bytes(count_size, "big") + b"".join(entries))

    def _iloc(self, shift: int, tail_start: int) -> bytes:
        """Rewritten with 4-byte offsets and lengths, the bases folded into the offsets."""
        meta = self.meta
        id_size = 4 if meta.iloc_version == 2 else 2
        moved = {item: _moved(location, meta.box.end, shift) for item, location in meta.locations.items()}
        position = tail_start
        for item, _, payload in self.new_items:
            moved[item] = _Location(0, 0, 0, [(0, position, len(payload))])
            position += len(payload)
        body = struct.pack(">I", meta.iloc_version << 24) + bytes([0x44, meta.index_size]) + len(moved).to_bytes(id_size, "big")
        for item, location in moved.items():
            body += item.to_bytes(id_size, "big") + (struct.pack(">H", location.method) if meta.iloc_version in (1, 2) else b"")
            body += struct.pack(">HH", location.reference, len(location.extents))
            body += b"".join(index.to_bytes(meta.index_size, "big") + struct.pack(">II", offset, length) for index, offset, length in location.extents)
        return box(b"iloc", body)

    def _iref(self) -> bytes:
        wide = any(max([source, *targets]) > 0xFFFF for _, source, targets in self.meta.references)
        size = 4 if wide else 2
        references = b"".join(
            box(kind, source.to_bytes(size, "big") + struct.pack(">H", len(targets)) + b"".join(t.to_bytes(size, "big") for t in targets))
            for kind, source, targets in self.meta.references
        )
        return box(b"iref", bytes([int(wide), 0, 0, 0]) + references)

    def _iprp(self) -> bytes:
        properties = b"".join(
            box(b"colr", b"prof" + self.icc) if prop.start < 0 else self.data[prop.start : prop.end] for prop in self.meta.properties
        )
        wide_index = len(self.meta.properties) > 0x7F
        wide_items = any(item > 0xFFFF for item in self.meta.associations)
        entries = b""
        for item, associated in self.meta.associations.items():
            entries += item.to_bytes(4 if wide_items else 2, "big") + bytes([len(associated)])
            for essential, index in associated:
                entries += ((essential << 15) | index).to_bytes(2, "big") if wide_index else bytes([(essential << 7) | index])
        header = bytes([int(wide_items), 0, 0, int(wide_index)]) + struct.pack(">I", len(self.meta.associations))
        return box(b"iprp", box(b"ipco", properties) + box(b"ipma", header + entries))


def _moved(location: _Location, meta_end: int, shift: int) -> _Location:
    """A location whose file offsets (construction method 0, this file) past the meta box move with it."""
    if location.method != 0 or location.reference != 0:
        return location
    extents = [(index, offset + shift if offset >= meta_end else offset, length) for index, offset, length in location.extents]
    return _Location(location.method, location.reference, location.base, extents)
