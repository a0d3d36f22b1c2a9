"""Decode one segment of a video: seek to its keyframe, keep the frames shown inside it.

Each call opens the file itself, so any worker that sees the path can decode any segment.
A read or decode error becomes one line saying at what time of the video it happened.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from fractions import Fraction
from typing import TYPE_CHECKING

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
    cannot be read or decoded there."""
    import av

    segment = work.segment
    time_base = work.encoder.time_base
    reached: int | None = segment.start
    try:
        with av.open(work.source, metadata_errors="replace") as container:
            stream = container.streams[work.stream_index]
            stream.thread_type = "AUTO"
            if segment.start is not None:
                container.seek(segment.start, stream=stream, backward=True)
            for packet in container.demux(stream):
                for frame in packet.decode():
                    pts = frame.pts if frame.pts is not None else frame.dts
                    if pts is None:
                        raise VideoError(f"{work.source}: a frame after {_at(reached, time_base)} has no timestamp; remux the file first")
                    if segment.is_past(pts):
                        return
                    if segment.holds(pts):
                        reached = pts
                        yield Timed(frame, pts, frame.duration or 0)
    except av.error.FFmpegError as error:
        reason = getattr(error, "strerror", None) or one_line(error)
        raise VideoError(f"{work.source}: decoding failed at {_at(reached, time_base)} ({reason}); the file is damaged there") from error


def _at(pts: int | None, time_base: Fraction) -> str:
    return "the start" if pts is None else timecode(float(pts * time_base))
