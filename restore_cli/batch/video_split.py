"""A batch's videos spread over many workers, segment by segment: the driver's side.

An executor that runs jobs on workers (``ray_executor``) hands its jobs to `SplitVideos`
first: each video is probed and planned here, its work folder opened (so a rerun resumes
here too), and replaced by one job per unfinished segment, which any worker runs through
the ordinary `Pipeline.process_one`. Results come back through `report`: a segment's is
counted toward its video, and when a video's last segment is in, the video is joined here
and its one result reported. A failed segment fails its video (once); the finished segments
stay in the work folder for a rerun.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace

from restore_cli.batch.pipeline import Result, describe_failure, video_result
from restore_cli.batch.planning import Job
from restore_cli.batch.video import FrameProgress, PreparedVideo, VideoSettings, prepare


@dataclass
class _Progress:
    """A video whose segments are out on workers."""

    video: PreparedVideo
    pending: set[str]
    frames: int
    started: float = field(default_factory=time.perf_counter)
    model: str | None = None
    tiles: int | None = None
    failed: bool = False


@dataclass
class SplitVideos:
    """Turns video jobs into segment jobs, and segment results back into video results."""

    settings: VideoSettings
    max_pixels: int | None
    forward: Callable[[Result], None]
    """Where every result that is not a segment's goes, and each video's own."""
    notice: Callable[[str], None]
    progress: FrameProgress | None = None
    _by_segment: dict[str, _Progress] = field(default_factory=dict)

    def expand(self, jobs: Sequence[Job]) -> list[Job]:
        """The jobs to hand to workers: images as they are, videos as their unfinished segments.
        A video that cannot be done (damaged, no video stream) is reported failed here."""
        expanded = []
        for job in jobs:
            if not job.video:
                expanded.append(job)
                continue
            started = time.perf_counter()
            try:
                video = prepare(job, self.settings, self.max_pixels, self.notice)
                works = video.unfinished()
                state = _Progress(video, {work.output for work in works}, video.frames_done(), started)
            except Exception as error:
                self.forward(_failed(job, error, started))
                continue
            if not works:
                self._join(state)
            for work in works:
                self._by_segment[work.output] = state
                expanded.append(replace(job, output=work.output, video=False, segment=work))
        return expanded

    def report(self, result: Result) -> None:
        """A result from a worker: a segment's counts toward its video; any other goes on."""
        state = self._by_segment.pop(result.output, None) if result.output is not None else None
        if state is None:
            self.forward(result)
            return
        if state.failed:
            return
        job = state.video.job
        if result.status != "ok":
            state.failed = True
            self.forward(replace(result, output=job.output, seconds=time.perf_counter() - state.started, kind="video"))
            return
        state.pending.discard(result.output or "")
        state.frames += result.frames or 0
        state.model, state.tiles = result.model, result.tiles
        if self.progress is not None:
            self.progress(job.name, state.frames, state.video.info.frames)
        if not state.pending:
            self._join(state)

    def _join(self, state: _Progress) -> None:
        job = state.video.job
        try:
            done = state.video.finish(state.model, state.tiles)
        except Exception as error:
            self.forward(_failed(job, error, state.started))
            return
        self.forward(replace(video_result(job, done), seconds=time.perf_counter() - state.started))


def _failed(job: Job, error: Exception, started: float) -> Result:
    return Result(job.name, job.output, "failed", seconds=time.perf_counter() - started, error=describe_failure(job, error), kind="video")
