"""Video files at the io layer: recognising them, refusing the ones that cannot be done,
cutting them at keyframes, and choosing the encoder. No model is involved."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest

from restore_cli.errors import VideoError
from restore_cli.io.magic import family
from restore_cli.io.video.encode import check_crf, check_encoder, choose_encoder
from restore_cli.io.video.names import looks_like_video
from restore_cli.io.video.probe import probe
from restore_cli.io.video.segments import Segment, plan_segments
from tests.video_clips import Clip, make_clip


@pytest.fixture(scope="module")
def clips(tmp_path_factory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("clips")
    return {
        "mp4": make_clip(folder / "a.mp4", Clip(frames=12)),
        "mkv": make_clip(folder / "b.mkv", Clip(frames=12, pix_fmt="yuv420p10le")),
        "webm": make_clip(folder / "c.webm", Clip(frames=12, codec="libvpx-vp9")),
        "avi": make_clip(folder / "d.avi", Clip(frames=12, codec="mpeg4")),
    }


def _audio_only(path: Path) -> Path:
    with av.open(str(path), "w") as out:
        stream = out.add_stream("aac", rate=48000)
        stream.layout = "mono"
        for index in range(5):
            frame = av.AudioFrame.from_ndarray(np.zeros((1, 1024), np.float32), format="fltp", layout="mono")
            frame.sample_rate, frame.pts = 48000, index * 1024
            out.mux(stream.encode(frame))
        out.mux(stream.encode(None))
    return path


def _unknown_codec(path: Path) -> Path:
    """An AVI whose picture is tagged with a codec nobody knows (ZZZZ)."""
    with av.open(str(path), "w") as out:
        stream = out.add_stream("rawvideo", rate=12)
        stream.width, stream.height, stream.pix_fmt = 16, 16, "rgb24"
        for index in range(3):
            frame = av.VideoFrame.from_ndarray(np.zeros((16, 16, 3), np.uint8), format="rgb24")
            frame.pts = index
            out.mux(stream.encode(frame))
    data = bytearray(path.read_bytes())
    header = data.find(b"vids")
    data[header + 4 : header + 8] = b"ZZZZ"  # the stream header's handler
    bitmap = data.find(b"strf") + 8
    data[bitmap + 16 : bitmap + 20] = b"ZZZZ"  # BITMAPINFOHEADER.biCompression
    path.write_bytes(bytes(data))
    return path


def test_videos_are_recognised_by_content_whatever_their_name(clips: dict[str, Path], tmp_path: Path) -> None:
    for kind, clip in clips.items():
        renamed = tmp_path / f"{kind}.dat"
        renamed.write_bytes(clip.read_bytes())
        assert looks_like_video(renamed), kind
    png = tmp_path / "photo.mp4"
    png.write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(100))
    avif = tmp_path / "photo.avif"
    avif.write_bytes(b"\x00\x00\x00\x1cftypavif" + bytes(100))
    assert looks_like_video(png) is False and looks_like_video(avif) is False
    assert looks_like_video(tmp_path / "missing.mp4") is None


@pytest.mark.parametrize("brand", [b"mif2", b"hevx"])
def test_a_heif_image_is_not_taken_for_a_video_whatever_its_major_brand(brand: bytes, tmp_path: Path) -> None:
    """A HEIC whose ftyp box names mif2 or hevx as its major brand is a still image, as
    magic.family also says: planning must hand it to the photo path, not to FFmpeg."""
    ftyp = b"ftyp" + brand + bytes(4) + b"mif1heic"
    image = tmp_path / "photo.heic"
    image.write_bytes(len(ftyp + bytes(4)).to_bytes(4, "big") + ftyp + bytes(100))
    assert looks_like_video(image) is False
    assert family(image.read_bytes()) == "HEIF"


@pytest.mark.parametrize(
    ("make", "fragment"),
    [
        (lambda folder: _audio_only(folder / "song.m4a"), "has no video stream (it holds audio)"),
        (lambda folder: _unknown_codec(folder / "odd.avi"), "is not one FFmpeg's libraries can decode"),
        (lambda folder: folder.joinpath("junk.mp4").write_bytes(b"\x00\x00\x00\x18ftypisom" + bytes(range(256)) * 8) and folder / "junk.mp4",
         "cannot open as a video"),
    ],
)
def test_files_that_cannot_be_restored_are_refused_in_one_line(tmp_path: Path, make, fragment: str) -> None:
    path = make(tmp_path)
    with pytest.raises(VideoError) as refused:
        probe(path)
    message = str(refused.value)
    assert message.startswith(f"{path}: ") and fragment in message and "\n" not in message


def test_frames_over_the_pixel_limit_are_refused_with_the_setting_that_accepts_them(clips: dict[str, Path], flag_words) -> None:
    with pytest.raises(VideoError, match=r"frames of 96x64 = 6,144 pixels exceed the limit of 6,000; pass --max-pixels 6144"):
        probe(clips["mp4"], max_pixels=6000)
    assert probe(clips["mp4"], max_pixels=6144).frames == 12


def test_segments_start_at_keyframes_at_least_a_second_apart() -> None:
    keyframes = [0, 400, 996, 1500, 2000, 2600, 2700]
    segments = plan_segments(keyframes, Fraction(1, 1000), 1.0)
    assert segments == (Segment(0, None, 996), Segment(1, 996, 2000), Segment(2, 2000, None))
    assert plan_segments([0], Fraction(1, 1000)) == (Segment(0, None, None),)


def test_the_encoder_keeps_the_codec_the_bit_depth_and_the_container(clips: dict[str, Path], tmp_path: Path) -> None:
    chosen = {kind: choose_encoder(probe(clip), tmp_path / clip.name) for kind, clip in clips.items()}
    assert {kind: (c.codec, c.pix_fmt) for kind, c in chosen.items()} == {
        "mp4": ("libx264", "yuv420p"),
        "mkv": ("libx264", "yuv420p10le"),
        "webm": ("libvpx-vp9", "yuv420p"),
        "avi": ("mpeg4", "yuv420p"),
    }
    assert dict(chosen["mp4"].options)["crf"] == "17" and dict(chosen["webm"].options)["crf"] == "15"
    assert chosen["mp4"].global_header and not choose_encoder(probe(clips["mp4"]), tmp_path / "x.ts").global_header
    assert choose_encoder(probe(clips["mkv"]), tmp_path / "x.mkv", "ffv1").pix_fmt == "yuv420p10le"
    assert choose_encoder(probe(clips["mkv"]), tmp_path / "x.mkv", "libvpx-vp9").pix_fmt == "yuv420p"  # no 10-bit VP9 here: nearest


def test_codec_and_crf_that_cannot_be_used_are_refused(clips: dict[str, Path], tmp_path: Path, flag_words) -> None:
    assert choose_encoder(probe(clips["mp4"]), tmp_path / "out.webm").codec == "libvpx-vp9"  # WebM holds no H.264
    with pytest.raises(VideoError, match="a webm file cannot hold h264 video; choose another --video-codec or an output extension such as .mkv"):
        choose_encoder(probe(clips["mp4"]), tmp_path / "out.webm", "libx264")
    with pytest.raises(VideoError, match="no video encoder called 'x246'"):
        check_encoder("x246")
    with pytest.raises(VideoError, match="aac encodes audio, not video"):
        check_encoder("aac")
    with pytest.raises(VideoError, match="--crf 60 is out of range for libx264: use 0 .best. to 51"):
        check_crf("libx264", 60)
    with pytest.raises(VideoError, match="ffv1 has no CRF setting"):
        check_crf("ffv1", 10)
