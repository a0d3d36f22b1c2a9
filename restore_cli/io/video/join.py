"""The restored video file: the segments' packets one after another, every other stream of
the input copied packet for packet, and the input's metadata, chapters and rotation.

Nothing but the picture is re-encoded, so audio, subtitles and data cannot drift: their
packets keep their bytes and timestamps, and the restored frames keep theirs. Packets are
interleaved by decode time as they are read, so memory does not grow with the video's
length, and the file appears under its name only once complete (``io.files.AtomicFile``).
"""

from __future__ import annotations

import heapq
import os
from collections.abc import Iterator, Sequence
from fractions import Fraction
from typing import TYPE_CHECKING, Any

from restore_cli.errors import VideoError, one_line
from restore_cli.io.files import AtomicFile
from restore_cli.io.video.encode import EncoderSettings, configure
from restore_cli.io.video.names import muxer_for
from restore_cli.io.video.probe import VideoInfo
from restore_cli.io.video.segment_file import read_extradata, read_packets

if TYPE_CHECKING:
    import av

_GENERATED_TAGS = {"encoder", "major_brand", "minor_version", "compatible_brands", "duration", "_statistics_tags", "number_of_frames", "number_of_bytes", "bps"}
"""Tags the muxer writes itself, or that describe the old encoding (lower case; Matroska's
statistics tags are stored as DURATION, NUMBER_OF_FRAMES-eng, ...)."""
_LEADING_DTS = 32
"""How many of a segment's last timestamps are kept to give the next segment's first packets
decode times after the previous segment's (see `_video_packets`)."""


def join_segments(info: VideoInfo, settings: EncoderSettings, segments: Sequence[str | os.PathLike], output: str | os.PathLike) -> int:
    """Write ``output`` from the restored ``segments`` of ``info``'s picture and the input's
    other streams, and return how many frames it holds; VideoError if the output's container
    cannot hold one of the streams."""
    import av

    with av.open(info.path, metadata_errors="replace") as source, AtomicFile(output) as file:
        with av.open(file, "w", format=muxer_for(output)) as target:
            video = _picture_stream(target, info, settings)
            copies = _copied_streams(source, target, info, output)
            target.metadata.update(_kept(source.metadata))
            target.set_chapters(source.chapters())
            try:
                target.start_encoding()
            except av.error.FFmpegError as error:
                raise VideoError(f"{os.fspath(output)}: cannot be written ({one_line(error)}); try an .mkv output") from error
            if bytes(video.codec_context.extradata or b"") != read_extradata(segments[0]):
                raise VideoError(f"{os.fspath(output)}: the kept segments were encoded differently; remove its work folder and rerun")
            packets = heapq.merge(_video_packets(segments, video, settings.time_base), _other_packets(source, copies), key=_decode_time)
            frames = 0
            for _, packet in packets:
                frames += packet.stream_index == video.index
                target.mux(packet)
    return frames


def _picture_stream(target: Any, info: VideoInfo, settings: EncoderSettings) -> Any:
    stream = target.add_stream(settings.codec)
    configure(stream.codec_context, settings)
    stream.time_base = settings.time_base
    if info.display_matrix is not None:
        if not hasattr(stream, "set_display_matrix"):
            raise VideoError(f"{info.path}: keeping its rotation needs PyAV 18 or later (Python 3.11+); upgrade PyAV")
        stream.set_display_matrix(list(info.display_matrix))
    return stream


def _copied_streams(source: Any, target: Any, info: VideoInfo, output: str | os.PathLike) -> dict[int, Any]:
    """An output stream for each input stream other than the restored picture, with its
    metadata and disposition; attachments (fonts of subtitles) are written whole."""
    import av

    copies = {}
    for stream in source.streams:
        if stream.index == info.stream_index:
            target.streams.video[0].metadata.update(_kept(stream.metadata))
            _set_disposition(target.streams.video[0], stream)
            continue
        try:
            if stream.type == "attachment":
                target.add_attachment(stream.metadata.get("filename", f"attachment{stream.index}"), stream.mimetype or "application/octet-stream", stream.data)
                continue
            copy = target.add_stream_from_template(stream)
        except (ValueError, av.error.FFmpegError) as error:
            codec = getattr(stream.codec_context, "name", None) or stream.type
            raise VideoError(
                f"{os.fspath(output)}: a {muxer_for(output)} file cannot hold stream #{stream.index} ({stream.type}, {codec}): "
                f"{one_line(error)}; write to .mkv instead"
            ) from error
        copy.metadata.update(_kept(stream.metadata))
        _set_disposition(copy, stream)
        copies[stream.index] = copy
    return copies


def _set_disposition(copy: Any, stream: Any) -> None:
    if stream.disposition:
        copy.disposition = stream.disposition


def _kept(tags: dict[str, str]) -> dict[str, str]:
    return {key: value for key, value in tags.items() if key.lower().split("-")[0] not in _GENERATED_TAGS}


def _video_packets(segments: Sequence[str | os.PathLike], stream: Any, time_base: Fraction) -> Iterator[tuple[Fraction, av.Packet]]:
    """The segments' packets in order. An encoder that reorders frames gives a segment's
    first packets decode times before its first frame, which can fall before the previous
    segment's last; those take the timestamps of the previous segment's last frames instead
    (after its last decode time, before their own display times), as one encoder would have."""
    import av

    last_dts: int | None = None
    recent: list[int] = []
    for path in segments:
        spare = iter(sorted(value for value in recent if last_dts is None or value > last_dts))
        recent = []
        for stored in read_packets(path):
            dts = stored.dts
            if dts is not None and last_dts is not None and dts <= last_dts:
                dts = next(spare, last_dts + 1)
            if stored.pts is not None:
                recent = heapq.nlargest(_LEADING_DTS, [*recent, stored.pts])
            last_dts = dts if dts is not None else last_dts
            packet = av.Packet(stored.data)
            packet.pts, packet.dts, packet.duration = stored.pts, dts, stored.duration
            packet.is_keyframe = stored.keyframe
            packet.time_base = time_base
            packet.stream = stream
            yield (_seconds(dts if dts is not None else stored.pts, time_base), packet)


def _other_packets(source: Any, copies: dict[int, Any]) -> Iterator[tuple[Fraction, av.Packet]]:
    if not copies:
        return
    last = Fraction(0)
    for packet in source.demux(*[source.streams[index] for index in copies]):
        if packet.size == 0 and packet.pts is None:
            continue  # the demuxer's end-of-stream marker
        stamp = packet.dts if packet.dts is not None else packet.pts
        last = _seconds(stamp, packet.time_base) if stamp is not None else last
        packet.stream = copies[packet.stream_index]
        yield (last, packet)


def _seconds(stamp: int | None, time_base: Fraction | None) -> Fraction:
    return Fraction(0) if stamp is None or not time_base else stamp * time_base


def _decode_time(item: tuple[Fraction, Any]) -> Fraction:
    return item[0]
