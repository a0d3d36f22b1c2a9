"""What a video holds, read before any frame is restored: its main picture stream, where its
keyframes are, and whether the whole file can be read.

Probing demuxes every packet of the picture stream (cheap: nothing is decoded but the first
frame), so that a damaged or truncated file, a file with no video or an unsupported codec is
refused in one line before hours of work, and so that the video can be cut into segments at
keyframes (``segments``) that each decode on their own.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from fractions import Fraction
from typing import TYPE_CHECKING, Any

from restore_cli.errors import VideoError, one_line, setting
from restore_cli.io.video.timecode import timecode

if TYPE_CHECKING:
    import av.container
    import av.video.stream

DECLARED_SLACK_SECONDS = 1.0
"""How much shorter than its header says a file may end before it counts as truncated
(containers round their declared duration, and audio often outlasts the picture)."""


@dataclass(frozen=True)
class Colour:
    """How the picture's numbers map to colours, as FFmpeg numbers them (AVColor*)."""

    primaries: int
    transfer: int
    matrix: int
    range: int


@dataclass(frozen=True)
class VideoInfo:
    """The main picture stream of a video file, as restoring and writing it back need it."""

    path: str
    stream_index: int
    codec: str
    """The decoder's name (h264, hevc, vp9, ...)."""
    width: int
    height: int
    pix_fmt: str
    time_base: Fraction
    frame_rate: Fraction | None
    """The average rate (None when the container gives none); timestamps stay the truth."""
    frames: int
    """Packets of the picture stream: the frame count for progress."""
    seconds: float
    keyframes: tuple[int, ...]
    """Presentation timestamps of the keyframes, ascending: where segments may start."""
    colour: Colour
    display_matrix: tuple[int, ...] | None
    """The rotation/flip a player applies (nine 16.16 and 2.30 fixed-point numbers), kept as is."""
    sample_aspect_ratio: Fraction | None
    container: str
    """The demuxer's name, for messages."""

    @property
    def pixels(self) -> int:
        return self.width * self.height


def probe(path: str | os.PathLike, *, max_pixels: int | None = None) -> VideoInfo:
    """Read a video's layout and check that all of it can be demuxed; VideoError if not."""
    import av

    name = os.fspath(path)
    try:
        container = av.open(name, metadata_errors="replace")
    except av.error.FFmpegError as error:
        raise VideoError(f"{name}: cannot open as a video ({_reason(error)}); check that the file is complete and undamaged") from error
    with container:
        stream = _picture_stream(container, name)
        _check_decoder(stream, name)
        _check_size(stream, name, max_pixels)
        frames, keyframes, end = _scan_packets(container, stream, name)
        if frames == 0:
            raise VideoError(f"{name}: the video stream holds no frames; check that the file is complete")
        _check_complete(container, stream, end, name)
        first = _first_frame(container, stream, name)
        context = stream.codec_context
        return VideoInfo(
            path=name,
            stream_index=stream.index,
            codec=context.name,
            width=context.width,
            height=context.height,
            pix_fmt=first.format.name,
            time_base=stream.time_base or Fraction(1, 90000),
            frame_rate=stream.average_rate or stream.guessed_rate,
            frames=frames,
            seconds=float((end - (keyframes[0] if keyframes else 0)) * stream.time_base) if stream.time_base else 0.0,
            keyframes=keyframes,
            colour=Colour(first.color_primaries, first.color_trc, first.colorspace, first.color_range),
            display_matrix=_display_matrix(first),
            sample_aspect_ratio=context.sample_aspect_ratio,
            container=container.format.name,
        )


def _reason(error: Exception) -> str:
    return getattr(error, "strerror", None) or one_line(error)


def _picture_stream(container: av.container.InputContainer, name: str) -> av.video.stream.VideoStream:
    """The stream a viewer would show: the first video stream that is not a cover picture."""
    from av.stream import Disposition

    moving = [s for s in container.streams.video if not s.disposition & Disposition.attached_pic]
    if not moving:
        kinds = sorted({s.type for s in container.streams}) or ["nothing"]
        raise VideoError(f"{name}: has no video stream (it holds {', '.join(kinds)}); restore takes photos and videos")
    return moving[0]


def _check_decoder(stream: av.video.stream.VideoStream, name: str) -> None:
    import av

    context = stream.codec_context
    codec = context.name if context is not None and context.name else None
    try:
        if codec is None:
            raise ValueError("no decoder")
        av.codec.Codec(codec, "r")
    except (ValueError, av.error.FFmpegError, av.codec.codec.UnknownCodecError):
        which = f"video codec {codec}" if codec else "video codec"
        raise VideoError(
            f"{name}: its {which} is not one FFmpeg's libraries can decode; convert the file to a common codec first "
            "(H.264, HEVC, VP9, AV1, ProRes, FFV1)"
        ) from None


def _check_size(stream: av.video.stream.VideoStream, name: str, max_pixels: int | None) -> None:
    from restore_cli.io.decode import MAX_PIXELS

    limit = MAX_PIXELS if max_pixels is None else max_pixels
    width, height = stream.codec_context.width, stream.codec_context.height
    if width * height > limit:
        raise VideoError(
            f"{name}: frames of {width}x{height} = {width * height:,} pixels exceed the limit of {limit:,}; "
            f"pass {setting('max_pixels')} {width * height} if you trust this file"
        )


def _scan_packets(container: av.container.InputContainer, stream: av.video.stream.VideoStream, name: str) -> tuple[int, tuple[int, ...], int]:
    """Count the picture's packets, note its keyframes and its last timestamp; a read error is
    reported with the time where the file stops being readable."""
    import av

    frames, keyframes, end = 0, [], 0
    try:
        for packet in container.demux(stream):
            if packet.size == 0 or packet.pts is None and packet.dts is None:
                continue
            frames += 1
            stamp = packet.pts if packet.pts is not None else packet.dts
            if packet.is_keyframe and packet.pts is not None:
                keyframes.append(packet.pts)
            end = max(end, stamp + (packet.duration or 0))
    except av.error.FFmpegError as error:
        at = timecode(float(end * stream.time_base)) if stream.time_base else "the start"
        raise VideoError(f"{name}: damaged at {at} ({_reason(error)}); the file cannot be read past that point") from error
    return frames, tuple(sorted(set(keyframes))), end


def _check_complete(container: av.container.InputContainer, stream: av.video.stream.VideoStream, end: int, name: str) -> None:
    """A file that stops well before its header's duration was cut short (a copy or a
    recording that did not finish): restoring it would silently lose the rest."""
    if not stream.time_base:
        return
    declared = _declared_seconds(container, stream)
    start = (stream.start_time or 0) * stream.time_base
    reached = float(end * stream.time_base - start)
    if declared is not None and reached + DECLARED_SLACK_SECONDS < declared * 0.98:
        raise VideoError(
            f"{name}: truncated: the picture stops at {timecode(reached)} of the {timecode(declared)} its header declares; "
            "use a complete copy of the file"
        )


def _declared_seconds(container: av.container.InputContainer, stream: av.video.stream.VideoStream) -> float | None:
    if stream.duration and stream.time_base:
        return float(stream.duration * stream.time_base)
    return container.duration / 1_000_000 if container.duration else None


def _first_frame(container: av.container.InputContainer, stream: av.video.stream.VideoStream, name: str) -> Any:
    import av

    try:
        container.seek(0, stream=stream, backward=True)
        for frame in container.decode(stream):
            return frame
    except av.error.FFmpegError as error:
        raise VideoError(f"{name}: damaged at the start ({_reason(error)}); no frame can be decoded") from error
    raise VideoError(f"{name}: no frame of the video stream can be decoded; check that the file is complete and undamaged")


def _display_matrix(frame: Any) -> tuple[int, ...] | None:
    import struct

    from av.sidedata.sidedata import Type

    data = frame.side_data.get(Type.DISPLAYMATRIX)
    return None if data is None else struct.unpack("<9i", bytes(data))
