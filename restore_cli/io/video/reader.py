"""Decode one segment of a video: seek to its keyframe, keep the frames shown inside it.

Each call opens the file itself, so any worker that sees the path can decode any segment.
A read or decode error becomes one line saying at what time of the video it happened.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from dataclasses import dataclass
from fractions import Fraction
from typing import TYPE_CHECKING, Any

from restore_cli.errors import VideoError, one_line
from restore_cli.io.video.segments import SegmentWork
from restore_cli.io.video.timecode import timecode

if TYPE_CHECKING:
    import av


@dataclass(frozen=True)
class Timed:
    """A decoded frame and the timing it must keep: its timestamp and how long it is shown."""

    frame: av.VideoFrame
    pts: int
    duration: int


def read_frames(work: SegmentWork) -> Iterator[Timed]:
    """The segment's frames in presentation order; VideoError, naming the time, if the file
    cannot be read or decoded there.

    Seeking is exact in indexed containers (MP4, Matroska) but only approximate in others
    (MPEG-TS finds its place by bytes and timestamps): when the first frame decoded inside the
    segment is not the keyframe it starts with, the seek overshot and frames would be lost, so
    decoding starts again from further back, in the end from the file's beginning."""
    import av

    segment = work.segment
    reached: int | None = segment.start
    try:
        for margin in _SEEK_MARGINS:
            with av.open(work.source, metadata_errors="replace") as container:
                stream = container.streams[work.stream_index]
                stream.thread_type = "AUTO"
                if segment.start is not None and margin is not None:
                    container.seek(segment.start - int(margin / work.encoder.time_base), stream=stream, backward=True)
                frames = _inside(container, stream, work)
                first = next(frames, None)
                if first is None or segment.start is None or first.pts == segment.start:
                    for timed in itertools.chain([first] if first else [], frames):
                        reached = timed.pts
                        yield timed
                    return
        raise VideoError(f"{work.source}: the keyframe at {_at(segment.start, work.encoder.time_base)} cannot be found again; remux the file first")
    except av.error.FFmpegError as error:
        reason = getattr(error, "strerror", None) or one_line(error)
        raise VideoError(f"{work.source}: decoding failed at {_at(reached, work.encoder.time_base)} ({reason}); the file is damaged there") from error


_SEEK_MARGINS = (0, 2, 20, None)
"""Seconds before a segment's keyframe to seek to, tried in turn; None: no seek at all."""


def _inside(container: Any, stream: Any, work: SegmentWork) -> Iterator[Timed]:
    """The decoded frames whose timestamps fall in the segment, from wherever the container is."""
    segment = work.segment
    for packet in container.demux(stream):
        for frame in packet.decode():
            pts = frame.pts if frame.pts is not None else frame.dts
            if pts is None:
                raise VideoError(f"{work.source}: a frame has no timestamp; remux the file first")
            if segment.is_past(pts):
                return
            if segment.holds(pts):
                yield Timed(frame, pts, frame.duration or 0)


def _at(pts: int | None, time_base: Fraction) -> str:
    return "the start" if pts is None else timecode(float(pts * time_base))
