"""Encode one segment's restored frames into its segment file, keeping every frame's timing.

The encoder is opened from the video's `EncoderSettings`, fed the frames with their own
timestamps (variable frame rate stays variable), and its packets are stored as they come
(``segment_file``). A packet takes back the display duration of the frame it encodes, which
encoders do not carry through their reordering.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

from restore_cli.io.video.encode import EncoderSettings, open_encoder
from restore_cli.io.video.segment_file import SegmentFileWriter, StoredPacket

if TYPE_CHECKING:
    import av


class SegmentEncoder:
    """Frames in (`add`), a finished segment file out (`finish`), or nothing (`discard`)."""

    def __init__(self, path: str | os.PathLike, settings: EncoderSettings) -> None:
        self._settings = settings
        self._context = open_encoder(settings)
        self._file = SegmentFileWriter(path, bytes(self._context.extradata or b""))
        self._durations: dict[int, int] = {}
        self.frames = 0

    def add(self, frame: av.VideoFrame, pts: int, duration: int) -> None:
        frame.pts, frame.time_base = pts, self._settings.time_base
        self._durations[pts] = duration
        self.frames += 1
        self._store(self._context.encode(frame))

    def finish(self) -> int:
        """Drain the encoder and make the file; returns the number of frames it holds."""
        self._store(self._context.encode(None))
        self._file.commit()
        return self.frames

    def discard(self) -> None:
        self._file.discard()

    def _store(self, packets: list[av.Packet]) -> None:
        for packet in packets:
            duration = self._durations.pop(packet.pts, 0) if packet.pts is not None else 0
            self._file.add(StoredPacket(packet.pts, packet.dts, duration, packet.is_keyframe, bytes(packet)))
