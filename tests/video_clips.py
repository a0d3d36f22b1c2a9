"""Tiny video clips made with PyAV for the tests: a few dozen frames at 96x64 of a moving
pattern, with whatever a test needs beside the picture (audio, subtitles, variable frame
rate, 10-bit, rotation, colour tags, metadata, attachments).

Made fresh in each test's folder (a clip takes milliseconds), so the repository holds no
video files. The picture is smooth with a little noise, so encoders behave as on real
footage, and seeded, so every run makes the same clip.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path

import av
import numpy as np

SUBTITLE_CODECS = {"mp4": "mov_text", "mov": "mov_text", "matroska": "subrip", "webm": "webvtt"}
AUDIO_CODECS = {"webm": "libopus"}


@dataclass
class Clip:
    """What to put in a clip."""

    frames: int = 36
    width: int = 96
    height: int = 64
    codec: str = "libx264"
    pix_fmt: str = "yuv420p"
    rate: int = 12
    gop: int = 6
    """A keyframe every this many frames (0.5 s at 12 fps): several segments in 3 s."""
    vfr: bool = False
    audio: bool = False
    subtitles: bool = False
    rotation: int | None = None
    colour: tuple[int, int, int, int] | None = None
    """primaries, transfer, matrix, range (AVColor* numbers)."""
    metadata: dict[str, str] = field(default_factory=dict)
    stream_metadata: dict[str, str] = field(default_factory=dict)
    attachment: bytes | None = None
    data: bool = False
    """A KLV data stream (MPEG-TS), one packet per frame."""
    chapters: tuple[str, ...] = ()
    """Chapter titles, one a second."""
    options: dict[str, str] = field(default_factory=dict)
    seed: int = 0


TIME_BASE = Fraction(1, 1000)


def durations(clip: Clip) -> list[int]:
    """Each frame's display time in milliseconds: steady, or irregular for a VFR clip."""
    steady = 1000 // clip.rate
    pattern = [steady, steady, 2 * steady, steady, 3 * steady] if clip.vfr else [steady]
    return [pattern[index % len(pattern)] for index in range(clip.frames)]


def pictures(clip: Clip, deep: bool = False) -> Iterator[np.ndarray]:
    """The clip's frames as RGB arrays (8-bit, or 16-bit for deep formats), one at a time so
    that long clips (benchmarks) take no memory."""
    rng = np.random.default_rng(clip.seed)
    y, x = np.mgrid[0 : clip.height, 0 : clip.width].astype(np.float32)
    top = 65535 if deep else 255
    for index in range(clip.frames):
        phase = index / 6.0
        red = 0.5 + 0.4 * np.sin(x / 9.0 + phase)
        green = 0.5 + 0.4 * np.cos(y / 7.0 - phase)
        blue = 0.5 + 0.3 * np.sin((x + y) / 13.0 + 2 * phase)
        picture = np.stack([red, green, blue], axis=2) + rng.normal(0, 0.03, (clip.height, clip.width, 3))
        yield np.clip(np.rint(picture * top), 0, top).astype(np.uint16 if deep else np.uint8)


def make_clip(path: Path, clip: Clip | None = None) -> Path:
    """Write ``clip`` to ``path`` (the container follows the extension)."""
    clip = clip or Clip()
    deep = any(component.bits > 8 for component in av.VideoFormat(clip.pix_fmt).components)
    with av.open(str(path), "w") as out:
        video = out.add_stream(clip.codec, rate=clip.rate, options={"g": str(clip.gop), **clip.options})
        video.width, video.height, video.pix_fmt = clip.width, clip.height, clip.pix_fmt
        video.codec_context.time_base = TIME_BASE
        video.time_base = TIME_BASE
        if clip.colour is not None:
            context = video.codec_context
            context.color_primaries, context.color_trc, context.colorspace, context.color_range = clip.colour
        if clip.rotation is not None:
            video.set_display_rotation(clip.rotation)
        video.metadata.update(clip.stream_metadata)
        audio = _audio_stream(out) if clip.audio else None
        subtitles = out.add_mux_stream(SUBTITLE_CODECS[out.format.name.split(",")[0]]) if clip.subtitles else None
        if subtitles is not None:
            subtitles.metadata["language"] = "fra"
        data = out.add_data_stream("klv") if clip.data else None
        if clip.attachment is not None:
            out.add_attachment("font.ttf", "application/x-truetype-font", clip.attachment)
        out.metadata.update(clip.metadata)
        chapters = [{"id": n + 1, "start": n, "end": n + 1, "time_base": Fraction(1), "metadata": {"title": t}} for n, t in enumerate(clip.chapters)]
        out.set_chapters(chapters)
        out.start_encoding()
        _write_video(out, video, clip, deep, data)
        if audio is not None:
            _write_audio(out, audio, sum(durations(clip)))
        if subtitles is not None:
            _write_subtitles(out, subtitles, SUBTITLE_CODECS[out.format.name.split(",")[0]])
    return path


def _audio_stream(out: av.container.OutputContainer) -> av.audio.stream.AudioStream:
    stream = out.add_stream(AUDIO_CODECS.get(out.format.name, "aac"), rate=48000)
    stream.layout = "mono"
    stream.metadata["language"] = "eng"
    return stream


def _write_video(out: av.container.OutputContainer, video: av.video.stream.VideoStream, clip: Clip, deep: bool, data: av.stream.Stream | None) -> None:
    pts = 0
    for index, (picture, duration) in enumerate(zip(pictures(clip, deep), durations(clip))):
        frame = av.VideoFrame.from_ndarray(picture, format="rgb48le" if deep else "rgb24")
        if clip.pix_fmt != frame.format.name:
            frame = frame.reformat(format=clip.pix_fmt)
        frame.pts, frame.time_base, frame.duration = pts, TIME_BASE, duration
        out.mux(video.encode(frame))
        if data is not None:
            packet = av.Packet(b"\x06\x0e\x2b\x34" + index.to_bytes(2, "big"))
            packet.stream, packet.pts, packet.dts, packet.time_base = data, pts, pts, TIME_BASE
            out.mux(packet)
        pts += duration
    out.mux(video.encode(None))


def _write_audio(out: av.container.OutputContainer, audio: av.audio.stream.AudioStream, milliseconds: int) -> None:
    """A tone as long as the picture, in 960-sample frames."""
    samples = 48 * milliseconds
    tone = (0.2 * np.sin(np.arange(samples) * 2 * np.pi * 440 / 48000)).astype(np.float32)
    for start in range(0, samples - 959, 960):
        frame = av.AudioFrame.from_ndarray(tone[None, start : start + 960], format="flt", layout="mono")
        frame.sample_rate, frame.pts = 48000, start
        out.mux(audio.encode(frame))
    out.mux(audio.encode(None))


def _write_subtitles(out: av.container.OutputContainer, stream: av.stream.Stream, codec: str) -> None:
    for index, text in enumerate(["Il pleut.", "Toujours."]):
        payload = text.encode()
        if codec == "mov_text":
            payload = len(payload).to_bytes(2, "big") + payload
        packet = av.Packet(payload)
        packet.stream = stream
        packet.pts = packet.dts = 500 + index * 1000
        packet.duration = 800
        packet.time_base = TIME_BASE
        out.mux(packet)
