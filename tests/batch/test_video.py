"""Videos through the batch pipeline: what comes out, what is kept, and resuming.

The model here inverts the picture (1 - x): cheap, and visible in every frame, so these
tests are about the video machinery (timestamps, streams, metadata, segments, resume) rather
than the network, whose use on frames `tests/cli/test_video_cli.py` checks with a real one.
Outputs are read back with PyAV directly, never with the code under test.
"""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest

from restore_cli.batch.models import Model, ModelChoice, Models
from restore_cli.batch.pipeline import Pipeline, Result
from restore_cli.batch.planning import Naming, plan_jobs
from restore_cli.batch.video import VideoSettings
from restore_cli.batch.video_work import open_work_folder, work_folder_for
from restore_cli.io.video.segments import Segment
from tests.video_clips import Clip, make_clip

FULL = Clip(
    audio=True,
    subtitles=True,
    vfr=True,
    rotation=90,
    colour=(1, 1, 1, 1),
    metadata={"title": "Rue mouillée", "creation_time": "2024-05-06T07:08:09.000000Z", "location": "+48.8577+002.2950/"},
)


class Inverting:
    """The model: 1 - x, counting the frames it sees; it can stop the run at a given frame."""

    def __init__(self, interrupt_at: int | None = None) -> None:
        self.calls = 0
        self.interrupt_at = interrupt_at

    def __call__(self, tensor, progress):
        self.calls += 1
        if self.calls == self.interrupt_at:
            raise KeyboardInterrupt
        return 1 - tensor


def _pipeline(model: Inverting, notices: list[str] | None = None, identity: dict | None = None) -> Pipeline:
    models = Models(ModelChoice.single("invert"), lambda spec: Model("invert", 3, model))
    sink = notices if notices is not None else []
    return Pipeline(models, video=VideoSettings(identity=identity or {}), on_notice=sink.append)


def _restore(source: Path, output: Path, model: Inverting | None = None, **pipeline) -> Result:
    (job,) = plan_jobs([str(source)], Naming("run", output=str(output), existing="overwrite"))
    assert job.video
    return _pipeline(model or Inverting(), **pipeline).process_one(job)


def _frames(path: Path) -> list[tuple[Fraction, np.ndarray]]:
    with av.open(str(path)) as container:
        return [(frame.pts * frame.time_base, frame.to_ndarray(format="rgb24")) for frame in container.decode(video=0)]


def _packets(path: Path, kind: str) -> list[tuple[Fraction, bytes]]:
    with av.open(str(path)) as container:
        stream = next(s for s in container.streams if s.type == kind)
        return [(p.pts * p.time_base, bytes(p)) for p in container.demux(stream) if p.size]


def _picture(path: Path):
    container = av.open(str(path))
    return container, container.streams.video[0], next(container.decode(video=0))


def test_every_frame_keeps_its_timestamp_and_the_other_streams_and_metadata_are_copied(tmp_path: Path) -> None:
    source = make_clip(tmp_path / "rain.mp4", FULL)
    output = tmp_path / "dry.mp4"

    result = _restore(source, output)

    assert result.status == "ok" and result.kind == "video" and result.frames == FULL.frames
    before, after = _frames(source), _frames(output)
    assert [stamp for stamp, _ in after] == [stamp for stamp, _ in before]  # VFR: irregular steps, all kept
    assert len({b - a for (a, _), (b, _) in zip(before, before[1:])}) > 1
    for (_, original), (_, restored) in zip(before, after):  # the model ran on every frame
        assert np.abs(restored.astype(int) - (255 - original.astype(int))).mean() < 6 < np.abs(restored.astype(int) - original).mean() / 10
    assert _packets(output, "audio") == _packets(source, "audio")
    assert _packets(output, "subtitle") == _packets(source, "subtitle")
    kept, stream, frame = _picture(output)
    with kept:
        context = stream.codec_context
        assert (context.name, context.pix_fmt) == ("h264", "yuv420p")
        assert (frame.color_primaries, frame.color_trc, frame.colorspace, frame.color_range) == FULL.colour
        assert frame.rotation == 90
        assert {key: kept.metadata.get(key) for key in FULL.metadata} == FULL.metadata
        assert [s.metadata.get("language") for s in kept.streams if s.type != "video"] == ["eng", "fra"]
    assert not work_folder_for(output).exists()


def test_ten_bit_stays_ten_bit_and_attachments_and_chapters_are_kept(tmp_path: Path) -> None:
    clip = Clip(pix_fmt="yuv420p10le", subtitles=True, attachment=b"\x00\x01font bytes", chapters=("Début", "Milieu", "Fin"))
    source = make_clip(tmp_path / "deep.mkv", clip)
    output = tmp_path / "out.mkv"

    assert _restore(source, output).status == "ok"

    with av.open(str(output)) as kept:
        assert kept.streams.video[0].codec_context.pix_fmt == "yuv420p10le"
        (attachment,) = [s for s in kept.streams if s.type == "attachment"]
        assert attachment.data == b"\x00\x01font bytes" and attachment.metadata["filename"] == "font.ttf"
        assert [chapter["metadata"]["title"] for chapter in kept.chapters()] == ["Début", "Milieu", "Fin"]
        deep = next(kept.decode(video=0)).to_ndarray(format="rgb48le")
    assert len(np.unique(deep % 64)) > 1  # values between 8-bit steps: not squeezed through 8 bits
    assert _packets(output, "subtitle") == _packets(source, "subtitle")
    assert [t for t, _ in _frames(output)] == [t for t, _ in _frames(source)]


def test_a_webm_stays_vp9_in_webm(tmp_path: Path) -> None:
    source = make_clip(tmp_path / "clip.webm", Clip(codec="libvpx-vp9", audio=True, frames=12))
    output = tmp_path / "out.webm"

    assert _restore(source, output).status == "ok"

    with av.open(str(output)) as kept:
        assert kept.format.name.startswith("matroska,webm") and kept.streams.video[0].codec_context.name == "vp9"
    assert _packets(output, "audio") == _packets(source, "audio")


def test_a_transport_stream_keeps_every_frame_and_its_data_stream(tmp_path: Path) -> None:
    """MPEG-TS has no index: seeking to a segment's keyframe is approximate and must not lose
    the frames before the next one."""
    source = make_clip(tmp_path / "cam.ts", Clip(frames=24, data=True))
    output = tmp_path / "out.ts"

    assert _restore(source, output).status == "ok"

    assert [t for t, _ in _frames(output)] == [t for t, _ in _frames(source)]
    assert _packets(output, "data") == _packets(source, "data") and len(_packets(source, "data")) == 24


def test_an_interrupted_video_resumes_from_its_kept_segments_into_the_same_file(tmp_path: Path) -> None:
    source = make_clip(tmp_path / "clip.mp4", Clip(audio=True))  # 36 frames, keyframes every 6: 3 segments of 12
    whole = tmp_path / "whole.mp4"
    assert _restore(source, whole).status == "ok"
    output = tmp_path / "out.mp4"

    with pytest.raises(KeyboardInterrupt):  # during the third segment
        _restore(source, output, Inverting(interrupt_at=30))

    work = work_folder_for(output)
    assert not output.exists()
    assert sorted(p.name for p in work.iterdir() if p.suffix == ".segment") == ["000000.segment", "000001.segment"]
    assert not [p for p in work.iterdir() if p.name.startswith(".")]  # the cut segment left nothing
    notices: list[str] = []
    rerun = Inverting()
    assert _restore(source, output, rerun, notices=notices).status == "ok"
    assert rerun.calls == 12  # only the third segment was restored again
    assert notices == [f"{output}: resuming: 2 of 3 segments already restored"]
    assert output.read_bytes() == whole.read_bytes()
    assert not work.exists()


def test_a_killed_runs_half_written_segments_are_removed_and_nothing_else(tmp_path: Path) -> None:
    """A SIGKILL leaves the temp file of the segment being written; opening the work folder
    again removes those (the folder is listed once for all segments) and keeps every other file."""
    output = tmp_path / "out.mkv"
    segments = [Segment(index, None, None) for index in range(3)]
    work = work_folder_for(output)
    work.mkdir()
    cut = [".000001.segment.ab12cd_9.tmp", ".000002.segment.zz99yy88.tmp"]
    kept = ["000000.segment", ".000003.segment.ab12cd34.tmp", ".000001.segment.ab12cd3.tmp", ".000001.segment.AB12CD34.tmp", "000001.segment.ab12cd34.tmp"]
    for name in cut + kept:
        (work / name).write_bytes(b"x")

    open_work_folder(output, {"tile": 256}, segments, notice=lambda _: None)

    assert sorted(p.name for p in work.iterdir()) == sorted([*kept, "run.json"])


def test_kept_segments_of_other_options_are_discarded_and_said_so(tmp_path: Path) -> None:
    source = make_clip(tmp_path / "clip.mkv", Clip())
    output = tmp_path / "out.mkv"
    with pytest.raises(KeyboardInterrupt):
        _restore(source, output, Inverting(interrupt_at=20), identity={"tile": 256})

    notices: list[str] = []
    rerun = Inverting()
    assert _restore(source, output, rerun, notices=notices, identity={"tile": 512}).status == "ok"

    assert rerun.calls == 36
    assert notices == [f"warning: {output}: the input or the options changed since the interrupted run; its restored segments are discarded"]


def test_a_damaged_video_fails_alone_with_the_time_and_nothing_at_its_name(tmp_path: Path) -> None:
    source = make_clip(tmp_path / "cut.mkv", Clip())
    source.write_bytes(source.read_bytes()[: source.stat().st_size // 2])
    output = tmp_path / "out.mkv"

    result = _restore(source, output)

    assert result.status == "failed" and result.kind == "video"
    assert result.error is not None and result.error.startswith(f"{source}: truncated: the picture stops at 00:00:01.")
    assert not output.exists() and not work_folder_for(output).exists()


def test_a_log_gets_progress_lines_with_frames_per_second_and_the_time_left(monkeypatch) -> None:
    import io
    from types import SimpleNamespace

    from restore_cli.batch import reporting

    clock = iter([100.0, 110.0])
    monkeypatch.setattr(reporting, "time", SimpleNamespace(perf_counter=lambda: next(clock)))
    monkeypatch.setattr(reporting, "FRAME_LINE_SECONDS", 5.0)
    stderr = io.StringIO()
    reporter = reporting.Reporter(stdout=io.StringIO(), stderr=stderr, display="lines")

    reporter.frames("talk.mkv", 10, 610)  # a resumed video: 10 frames were already done
    reporter.frames("talk.mkv", 30, 610)

    assert stderr.getvalue().splitlines() == ["talk.mkv: 30/610 frames, 2.00 fps, 4 min 50 s left"]
