"""A video through the model: probe, segments, frames decoded -> restored -> encoded, join.

Every frame goes through the same step as a photo (``Pipeline.restore_images``), so a frame
and a PNG of it are restored to the same pixels, with the same model, tiles and options.
Around it, decoding and encoding run on their own threads (``overlap``) so the model is kept
busy. The video is cut into segments at keyframes; each finished segment is kept in the work
folder beside the output (``video_work``), which is what lets a rerun resume and lets Ray
workers take one segment each (``video_split``); the output is joined from them at the end.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol, Union

from restore_cli.batch.models import EngineSettings, ModelChoice, ModelSpec
from restore_cli.batch.overlap import run_overlapped
from restore_cli.batch.planning import Job
from restore_cli.batch.video_work import WorkFolder, input_identity, open_work_folder
from restore_cli.io.image import DecodedImage
from restore_cli.io.video.encode import EncoderSettings, choose_encoder
from restore_cli.io.video.frames import PixelLayout, from_image, layout_for, to_image
from restore_cli.io.video.join import join_segments
from restore_cli.io.video.probe import VideoInfo, probe
from restore_cli.io.video.reader import read_frames
from restore_cli.io.video.segment_file import count_packets
from restore_cli.io.video.segments import SEGMENT_SECONDS, Segment, SegmentWork, plan_segments
from restore_cli.io.video.writer import SegmentEncoder

FrameProgress = Callable[[str, int, int], None]
"""Called with (video, frames done, frames in all) after each restored frame."""


@dataclass(frozen=True)
class VideoSettings:
    """How a run writes videos, and what its restored frames depend on (for resuming)."""

    codec: str | None = None
    """An FFmpeg encoder name; None: the input's codec (see ``io.video.encode``)."""
    crf: int | None = None
    identity: Mapping[str, Any] = field(default_factory=dict)
    """The model and engine settings: segments kept from a run with others are not reused."""
    segment_seconds: float = SEGMENT_SECONDS


def video_settings(engine: EngineSettings, choice: ModelChoice, codec: str | None = None, crf: int | None = None) -> VideoSettings:
    """The settings of a run, with the identity of its models and engine options."""
    kept = {name: value for name, value in vars(engine).items() if name not in ("offline", "download_progress")}
    models = {"color": _model_identity(choice.color), "gray": _model_identity(choice.gray)}
    return VideoSettings(codec, crf, {"engine": kept, "models": models})


def _model_identity(spec: ModelSpec) -> Union[str, dict[str, Any]]:
    """A zoo name is pinned by its checksum; a checkpoint file is known by its place, size and time."""
    if isinstance(spec, str):
        return spec
    status = spec.stat() if spec.exists() else None
    return {"path": str(spec.resolve()), "size": status and status.st_size, "mtime_ns": status and status.st_mtime_ns}


class FrameRestored(Protocol):
    """What the per-picture step gives back (``pipeline.Restored``)."""

    image: DecodedImage
    model: str
    tiles: int


RestoreFrame = Callable[[DecodedImage], FrameRestored]


@dataclass(frozen=True)
class Done:
    """What restoring a video (or one segment of it) did, for its result line."""

    frames: int
    width: int
    height: int
    model: str | None
    tiles: int | None
    duration: float | None = None


@dataclass(frozen=True)
class PreparedVideo:
    """A video probed and planned, its work folder open: what is left is restoring the
    unfinished segments, then joining."""

    job: Job
    info: VideoInfo
    encoder: EncoderSettings
    layout: PixelLayout
    segments: tuple[Segment, ...]
    folder: WorkFolder

    def unfinished(self) -> list[SegmentWork]:
        return [self.work(segment) for segment in self.segments if not self.folder.is_finished(segment)]

    def work(self, segment: Segment) -> SegmentWork:
        path = str(self.folder.segment_path(segment))
        return SegmentWork(self.info.path, self.info.stream_index, segment, self.layout, self.encoder, path)

    def frames_done(self) -> int:
        return sum(count_packets(self.folder.segment_path(s)) for s in self.segments if self.folder.is_finished(s))

    def finish(self, model: str | None, tiles: int | None) -> Done:
        """Join the segments into the output, then remove the work folder."""
        assert self.job.output is not None
        frames = join_segments(self.info, self.encoder, [self.folder.segment_path(s) for s in self.segments], self.job.output)
        self.folder.remove()
        return Done(frames, self.info.width, self.info.height, model, tiles, self.info.seconds)


def prepare(job: Job, settings: VideoSettings, max_pixels: int | None, notice: Callable[[str], None]) -> PreparedVideo:
    """Probe the input, decide the encoder and the segments, and open the work folder;
    VideoError (before any frame is restored) for a video that cannot be done."""
    assert job.output is not None
    source = job.sources[0]
    info = probe(source, max_pixels=max_pixels)
    encoder = choose_encoder(info, job.output, settings.codec, settings.crf)
    segments = plan_segments(info.keyframes, info.time_base, settings.segment_seconds)
    Path(job.output).parent.mkdir(parents=True, exist_ok=True)
    record = {"input": input_identity(source), "run": settings.identity, "encoder": encoder, "segments": segments}
    folder = open_work_folder(job.output, record, segments, notice)
    return PreparedVideo(job, info, encoder, layout_for(info, encoder.pix_fmt), segments, folder)


def restore_video(job: Job, settings: VideoSettings, max_pixels: int | None, restore: RestoreFrame, progress: FrameProgress | None, notice: Callable[[str], None]) -> Done:
    """A whole video in this process: the unfinished segments one after another through one
    overlapped pipeline (no pause between segments), then the join."""
    video = prepare(job, settings, max_pixels, notice)
    counter = _Counter(job.name, video.frames_done(), video.info.frames, progress)
    last = run_segments(video.unfinished(), _counting(restore, counter))
    return video.finish(last.model if last else None, last.tiles if last else None)


def restore_segment(work: SegmentWork, restore: RestoreFrame) -> Done:
    """One segment (a Ray worker's unit of work) into its file in the work folder."""
    frames = _Counter(work.source, 0, 0, None)
    last = run_segments([work], _counting(restore, frames))
    return Done(frames.done, work.encoder.width, work.encoder.height, last.model if last else None, last.tiles if last else None)


def run_segments(works: list[SegmentWork], restore: RestoreFrame) -> FrameRestored | None:
    """Decode, restore and encode ``works`` in order, each into its own segment file; return
    the last frame's restoration (for the model's name and tile count)."""
    last: list[FrameRestored] = []

    def model_step(item: _Frame | _End) -> _Frame | _End:
        if isinstance(item, _End):
            return item
        restored = restore(item.image)
        last[:1] = [restored]
        return _Frame(item.work, item.pts, item.duration, restored.image)

    run_overlapped(_decoded(works), model_step, _SegmentSink())
    return last[0] if last else None


@dataclass(frozen=True)
class _Frame:
    work: SegmentWork
    pts: int
    duration: int
    image: DecodedImage


@dataclass(frozen=True)
class _End:
    """All of ``work``'s frames were sent: its file can be finished."""

    work: SegmentWork


def _decoded(works: list[SegmentWork]) -> Iterator[_Frame | _End]:
    for work in works:
        for timed in read_frames(work):
            yield _Frame(work, timed.pts, timed.duration, to_image(timed.frame, work.layout))
        yield _End(work)


class _SegmentSink:
    """The encoding stage: a segment file per segment, finished at its end marker."""

    def __init__(self) -> None:
        self._encoder: SegmentEncoder | None = None

    def put(self, item: _Frame | _End) -> None:
        if self._encoder is None:
            self._encoder = SegmentEncoder(item.work.output, item.work.encoder)
        if isinstance(item, _End):
            self._encoder.finish()
            self._encoder = None
        else:
            self._encoder.add(from_image(item.image, item.work.layout), item.pts, item.duration)

    def close(self) -> None:
        """Every segment ended with its marker, so nothing is open."""

    def abort(self) -> None:
        if self._encoder is not None:
            self._encoder.discard()
            self._encoder = None


@dataclass
class _Counter:
    name: str
    done: int
    total: int
    progress: FrameProgress | None

    def tick(self) -> None:
        self.done += 1
        if self.progress is not None:
            self.progress(self.name, self.done, self.total)


def _counting(restore: RestoreFrame, counter: _Counter) -> RestoreFrame:
    def counted(image: DecodedImage) -> FrameRestored:
        restored = restore(image)
        counter.tick()
        return restored

    return counted
