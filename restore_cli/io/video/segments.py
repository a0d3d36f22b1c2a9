"""A video cut into segments at keyframes: each one decodes on its own, so it can be
restored by any worker, kept on disk when a run is interrupted, and joined with the others.

Pure planning, no FFmpeg: a segment is a range of presentation timestamps that starts at a
keyframe. Decoding seeks to its keyframe and keeps the frames whose timestamps fall in the
range, which also gives an open GOP's leading frames (decoded after a keyframe but shown
before it) to the segment they are shown in.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from fractions import Fraction

from restore_cli.io.video.encode import EncoderSettings
from restore_cli.io.video.frames import PixelLayout

SEGMENT_SECONDS = 1.0
"""The shortest segment, where keyframes allow. Short segments lose little to an interrupt
and spread well over workers; each starts with a keyframe, as phone and camera videos
already do about once a second."""
_ROUNDING = 0.99
"""Containers round timestamps (Matroska to the millisecond): a keyframe 0.996 s after the
last start still counts as a second later."""


@dataclass(frozen=True)
class Segment:
    """Frames with ``start <= pts < end``; None: from the file's beginning, or to its end."""

    index: int
    start: int | None
    end: int | None

    def holds(self, pts: int) -> bool:
        return (self.start is None or pts >= self.start) and (self.end is None or pts < self.end)

    def is_past(self, pts: int) -> bool:
        return self.end is not None and pts >= self.end


@dataclass(frozen=True)
class SegmentWork:
    """One segment of one video to restore into ``output``: all a worker needs, decided once
    for the whole video so every segment is made the same way."""

    source: str
    stream_index: int
    segment: Segment
    layout: PixelLayout
    encoder: EncoderSettings
    output: str


def plan_segments(keyframes: Sequence[int], time_base: Fraction, seconds: float = SEGMENT_SECONDS) -> tuple[Segment, ...]:
    """Segments starting at keyframes, each at least ``seconds`` long where keyframes allow."""
    starts: list[int] = []
    for keyframe in keyframes[1:]:
        previous = starts[-1] if starts else keyframes[0]
        if (keyframe - previous) * time_base >= seconds * _ROUNDING:
            starts.append(keyframe)
    bounds = [None, *starts, None]
    return tuple(Segment(index, bounds[index], bounds[index + 1]) for index in range(len(bounds) - 1))
