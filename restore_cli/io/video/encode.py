"""The encoder a restored video gets, decided once per video and then set up identically for
every segment and for the joined file.

By default the picture is re-encoded with the input's codec (h264 stays h264, through
libx264) at a visually lossless quality, in the input's pixel format where the encoder takes
it (else the nearest one of the same family and bit depth), with the input's colour tags.
Every segment's encoder is opened from the same `EncoderSettings`, with a fixed thread count,
so segments made by any worker, in any run, fit together and the file does not depend on the
machine that made it.
"""

from __future__ import annotations

import io
import os
from dataclasses import dataclass, field
from fractions import Fraction
from typing import TYPE_CHECKING, Any

from restore_cli.errors import VideoError, setting
from restore_cli.io.video.names import muxer_for
from restore_cli.io.video.probe import Colour, VideoInfo

if TYPE_CHECKING:
    import av

ENCODER_THREADS = 4
"""Fixed rather than one per core: several encoders' output depends on their thread count."""

_PREFERRED = {"h264": "libx264", "hevc": "libx265", "vp9": "libvpx-vp9", "vp8": "libvpx", "av1": "libsvtav1", "prores": "prores_ks"}
"""Decoder name -> the encoder used for it, where FFmpeg's own encoder of that name is not the best one."""
_FALLBACKS = ("libx264", "libvpx-vp9", "mpeg4", "ffv1")
"""Tried in order, for inputs whose codec no encoder writes (VC-1, Theora, ...) or that the
output's container cannot hold: the first the container takes."""


@dataclass(frozen=True)
class Quality:
    """How an encoder is told its quality: CRF (``option``, default, the largest value), plus
    options every use of it gets."""

    option: str | None
    default: int | None
    top: int | None
    extra: dict[str, str] = field(default_factory=dict)


_QUALITY = {
    "libx264": Quality("crf", 17, 51, {"preset": "medium"}),
    "libx265": Quality("crf", 18, 51, {"preset": "medium", "x265-params": "log-level=error"}),
    "libvpx-vp9": Quality("crf", 15, 63, {"b": "0", "row-mt": "1"}),
    "libvpx": Quality("crf", 8, 63, {"b": "50M"}),
    "libsvtav1": Quality("crf", 20, 63, {"preset": "8"}),
}
"""Encoders with a constant-quality (CRF) mode, with their visually lossless defaults: x264's
17-18 and x265's 18-20 are the usual "visually lossless" advice; VP9, VP8 and AV1 count on
another scale."""
_FIXED_QUANTISER = {"mpeg4", "mpeg2video", "mpeg1video", "mjpeg", "msmpeg4", "msmpeg4v2", "wmv1", "wmv2", "h263", "h263p", "flv"}
"""Encoders without CRF, run at their finest practical quantiser (qscale 2)."""
_QP2LAMBDA = 118


@dataclass(frozen=True)
class EncoderSettings:
    """Everything an encoder of one video is opened with; picklable, sent to Ray workers."""

    codec: str
    options: tuple[tuple[str, str], ...]
    pix_fmt: str
    width: int
    height: int
    time_base: Fraction
    frame_rate: Fraction | None
    colour: Colour
    sample_aspect_ratio: Fraction | None
    global_header: bool
    threads: int = ENCODER_THREADS


def check_encoder(name: str) -> None:
    """An FFmpeg encoder of that name exists and writes video; VideoError naming a few if not."""
    import av

    try:
        codec = av.codec.Codec(name, "w")
    except av.codec.codec.UnknownCodecError:
        raise VideoError(f"no video encoder called {name!r}; use an FFmpeg encoder name such as {_examples()}") from None
    if codec.type != "video":
        raise VideoError(f"{name} encodes {codec.type}, not video; use one such as {_examples()}")


def check_crf(encoder: str, crf: int | None) -> None:
    """``crf`` suits ``encoder``: it has a CRF mode and the value is in its range."""
    if crf is None:
        return
    quality = _QUALITY.get(encoder)
    if quality is None or quality.top is None:
        raise VideoError(
            f"{encoder} has no CRF setting (it encodes at a fixed quality or losslessly); drop {setting('crf')} "
            f"or choose a {setting('video_codec')} among {', '.join(_QUALITY)}"
        )
    if not 0 <= crf <= quality.top:
        raise VideoError(f"{setting('crf')} {crf} is out of range for {encoder}: use 0 (best) to {quality.top}")


def choose_encoder(info: VideoInfo, output: str | os.PathLike, codec: str | None = None, crf: int | None = None) -> EncoderSettings:
    """The encoder for ``info``'s restored frames written to ``output``: ``codec``, else the
    input's own, else the first fallback the output's container takes. VideoError when the
    container cannot hold it or ``crf`` does not suit it, before any frame is restored."""
    import av

    muxer = muxer_for(output)
    candidates = [codec] if codec else [_PREFERRED.get(info.codec, info.codec), *_FALLBACKS]
    for name in dict.fromkeys(candidates):
        try:
            written = av.codec.Codec(name, "w")
        except av.codec.codec.UnknownCodecError:
            continue
        check_crf(name, crf)
        settings = EncoderSettings(
            codec=name,
            options=tuple(sorted(_options(name, crf).items())),
            pix_fmt=_pixel_format(written, info.pix_fmt),
            width=info.width,
            height=info.height,
            time_base=info.time_base,
            frame_rate=info.frame_rate,
            colour=info.colour,
            sample_aspect_ratio=info.sample_aspect_ratio,
            global_header=bool(av.format.ContainerFormat(muxer, "w").flags & av.format.Flags.global_header.value),
        )
        if _fits(muxer, settings):
            return settings
    what = f"{av.codec.Codec(codec, 'w').canonical_name} video" if codec else "this video with any encoder available"
    raise VideoError(
        f"{os.fspath(output)}: a {muxer} file cannot hold {what}; choose another {setting('video_codec')} "
        "or an output extension such as .mkv"
    )


def _fits(muxer: str, settings: EncoderSettings) -> bool:
    """Whether the container takes the encoder as set up: tried on an empty file in memory,
    since muxers only say for sure when their header is written."""
    import av

    with av.open(io.BytesIO(), "w", format=muxer) as trial:
        try:
            stream = trial.add_stream(settings.codec)
            configure(stream.codec_context, settings)
            trial.start_encoding()
        except (av.error.FFmpegError, ValueError):
            return False
    return True


def open_encoder(settings: EncoderSettings) -> av.video.codeccontext.VideoCodecContext:
    """A standalone encoder for one segment."""
    import av

    context = av.CodecContext.create(settings.codec, "w")
    configure(context, settings)
    if settings.global_header:
        context.flags |= av.codec.context.Flags.global_header
    context.open()
    return context


def configure(context: Any, settings: EncoderSettings) -> None:
    """Set an encoder (standalone, or an output stream's) up from ``settings``; the joined
    file's stream gets the same, so its headers are the segments' headers."""
    context.width, context.height, context.pix_fmt = settings.width, settings.height, settings.pix_fmt
    context.time_base = settings.time_base
    if settings.frame_rate:
        context.framerate = settings.frame_rate
    if settings.sample_aspect_ratio:
        context.sample_aspect_ratio = settings.sample_aspect_ratio
    colour = settings.colour
    context.color_primaries, context.color_trc = colour.primaries, colour.transfer
    context.colorspace, context.color_range = colour.matrix, colour.range
    context.thread_count = settings.threads
    context.options = dict(settings.options)
    os.environ.setdefault("SVT_LOG", "1")  # SVT-AV1 prints banners to stderr unless told errors only


def _options(encoder: str, crf: int | None) -> dict[str, str]:
    quality = _QUALITY.get(encoder)
    if quality is not None and quality.option is not None:
        return {**quality.extra, quality.option: str(quality.default if crf is None else crf)}
    if encoder in _FIXED_QUANTISER:
        return {"flags": "+qscale", "global_quality": str(2 * _QP2LAMBDA)}
    return {}


def _pixel_format(codec: av.codec.Codec, source: str) -> str:
    """The source's format if the encoder takes it, else the closest: same family (RGB, YUV,
    gray), alpha, bit depth and chroma subsampling, in that order of importance."""
    import av

    formats = [f.name for f in codec.video_formats or ()]
    if not formats or source in formats:
        return source
    wanted = _traits(av.VideoFormat(source))
    return max(formats, key=lambda name: _closeness(_traits(av.VideoFormat(name)), wanted))


def _traits(fmt: Any) -> tuple[str, bool, int, tuple[int, int]]:
    colour = [c for c in fmt.components if not c.is_alpha]
    family = "rgb" if fmt.is_rgb else "gray" if len(colour) == 1 else "yuv"
    alpha = any(c.is_alpha for c in fmt.components)
    return family, alpha, max(c.bits for c in fmt.components), (fmt.chroma_width(64), fmt.chroma_height(64)) if family == "yuv" else (0, 0)


def _closeness(candidate: tuple[str, bool, int, tuple[int, int]], wanted: tuple[str, bool, int, tuple[int, int]]) -> tuple[bool, bool, bool, int, bool]:
    family, alpha, bits, chroma = candidate
    return family == wanted[0], alpha == wanted[1], bits == wanted[2], -abs(bits - wanted[2]), chroma == wanted[3]


def _examples() -> str:
    return "libx264, libx265, libvpx-vp9, libsvtav1 or ffv1"
