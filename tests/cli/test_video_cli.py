"""Videos through the task commands, with a tiny real checkpoint and the real engine.

A frame of a losslessly coded video must come out with exactly the pixels its PNG gets
through the image path; folders mix photos and videos; refusals come before any work;
Ctrl-C leaves nothing at the output's name and a rerun finishes the video.
"""

from __future__ import annotations

from pathlib import Path

import av
import numpy as np
import pytest
from PIL import Image

from restore_cli.batch.pipeline import Pipeline
from restore_cli.batch.video_work import work_folder_for
from tests.cli.test_tasks import RGB_WITHBIAS, _invoke, _json_lines, one_thread  # noqa: F401
from tests.cli_assertions import assert_one_line_error
from tests.video_clips import Clip, make_clip


def _rgb_frames(path: Path) -> list[np.ndarray]:
    with av.open(str(path)) as container:
        return [frame.to_ndarray(format="rgb24") for frame in container.decode(video=0)]


def test_a_frame_and_the_png_of_that_frame_are_restored_to_the_same_pixels(tmp_path: Path) -> None:
    clip = make_clip(tmp_path / "clip.mkv", Clip(frames=6, codec="ffv1", pix_fmt="bgr0", gop=1))  # lossless RGB
    stills = tmp_path / "stills"
    stills.mkdir()
    for index, picture in enumerate(_rgb_frames(clip)):
        Image.fromarray(picture).save(stills / f"{index}.png")

    video = _invoke("run", "--weights", RGB_WITHBIAS, clip, "-o", tmp_path / "out.mkv", "--video-codec", "ffv1", "--quiet")
    photos = _invoke("run", "--weights", RGB_WITHBIAS, stills, "-o", tmp_path / "restored", "--quiet")

    assert video.exit_code == photos.exit_code == 0, video.output + photos.output
    restored = _rgb_frames(tmp_path / "out.mkv")
    assert len(restored) == 6
    for index, frame in enumerate(restored):
        expected = np.asarray(Image.open(tmp_path / "restored" / f"{index}.png"))
        assert np.array_equal(frame, expected)
        assert not np.array_equal(frame, np.asarray(Image.open(stills / f"{index}.png")))


def test_a_folder_of_photos_and_videos_gives_a_json_line_each_and_a_damaged_video_fails_alone(tmp_path: Path) -> None:
    folder = tmp_path / "in"
    folder.mkdir()
    make_clip(folder / "clip.mp4", Clip(frames=12, audio=True))
    Image.fromarray(np.full((40, 48, 3), 120, np.uint8)).save(folder / "photo.png")
    (folder / "broken.mp4").write_bytes(b"\x00\x00\x00\x18ftypisom" + bytes(range(256)) * 8)

    result = _invoke("run", "--weights", RGB_WITHBIAS, folder, "-o", tmp_path / "out", "--json")

    assert_one_line_error(result, 1, f"{folder / 'broken.mp4'}: cannot open as a video")
    lines = {Path(line["input"]).name: line for line in _json_lines(result.stdout)[:-1]}
    assert {name: (line["type"], line["status"]) for name, line in lines.items()} == {
        "broken.mp4": ("video", "failed"),
        "clip.mp4": ("video", "ok"),
        "photo.png": ("image", "ok"),
    }
    assert lines["clip.mp4"]["frames"] == 12 and lines["clip.mp4"]["duration"] == pytest.approx(1.0, abs=0.01)
    assert lines["clip.mp4"]["size"] == {"width": 96, "height": 64} and "frames" not in lines["photo.png"]
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["clip.mp4", "photo.png"]  # no work folder, no broken output
    assert len(_rgb_frames(tmp_path / "out" / "clip.mp4")) == 12


@pytest.mark.parametrize(
    ("extra", "fragment"),
    [
        (["-o", "{tmp}/out.png"], "is a video, but -o {tmp}/out.png is not named as a video file; give a name such as clip_restored.mp4"),
        (["--video-codec", "x246"], "no video encoder called 'x246'"),
        (["--video-codec", "libx264", "--crf", "60"], "--crf 60 is out of range for libx264"),
        (["-o", "{tmp}/exists.mp4"], "exists.mp4 already exists; pass --overwrite"),
    ],
)
def test_unusable_video_commands_are_refused_before_any_work(tmp_path: Path, extra: list[str], fragment: str) -> None:
    clip = make_clip(tmp_path / "clip.mp4", Clip(frames=2))
    (tmp_path / "exists.mp4").write_bytes(b"kept")

    result = _invoke("run", "--weights", RGB_WITHBIAS, clip, *[arg.format(tmp=tmp_path) for arg in extra])

    assert_one_line_error(result, 2, fragment.format(tmp=tmp_path))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["clip.mp4", "exists.mp4"]


def test_ctrl_c_leaves_nothing_at_the_output_and_the_same_command_finishes_the_video(tmp_path: Path, monkeypatch) -> None:
    clip = make_clip(tmp_path / "clip.mp4", Clip(frames=24))  # two segments of 12 frames
    listed = tmp_path / "list.txt"
    listed.write_text(f"{clip}\n")
    output, restore = tmp_path / "clip_restored.mp4", Pipeline.restore_images
    calls: list[int] = []

    def interrupted_at_frame_16(self, job, images):
        calls.append(1)
        if len(calls) == 16:
            raise KeyboardInterrupt
        return restore(self, job, images)

    with monkeypatch.context() as patched:
        patched.setattr(Pipeline, "restore_images", interrupted_at_frame_16)
        stopped = _invoke("run", "--weights", RGB_WITHBIAS, "--files-from", listed)
    assert stopped.exit_code == 130 and not output.exists()
    assert "run the same command again to finish the video where it stopped" in stopped.stderr
    assert [p.name for p in work_folder_for(output).glob("*.segment")] == ["000000.segment"]

    finished = _invoke("run", "--weights", RGB_WITHBIAS, "--files-from", listed)

    assert finished.exit_code == 0, finished.output
    assert f"{output}: resuming: 1 of 2 segments already restored" in finished.stderr
    assert len(_rgb_frames(output)) == 24 and not work_folder_for(output).exists()
