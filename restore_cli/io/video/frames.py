"""Video frames to the pixels a model takes, and back, with the video's own colour maths.

A frame becomes a `DecodedImage` exactly as a PNG of the same picture would (8-bit
pictures as 8-bit RGB, deeper ones as 16-bit, gray as gray, alpha beside the colour), so a
frame and its PNG are restored to the same pixels. YUV is converted with the matrix and range
the stream declares (or, where it declares none, the one players assume: BT.709 from 720
lines up, BT.601 below, limited range), and converted back with the same, so restoring with
a model that changes nothing gives the input's numbers back up to rounding.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from restore_cli.io.image import DecodedImage, to_integer_levels
from restore_cli.io.video.probe import VideoInfo

if TYPE_CHECKING:
    import av

VIDEO_FORMAT = "VIDEO"
"""`DecodedImage.source_format` of a video frame."""

_SWS_MATRIX = {1: 1, 4: 4, 5: 5, 6: 5, 7: 7, 9: 9, 10: 9}
"""AVColorSpace -> swscale's matrix constant (BT.709, FCC, BT.601 twice, SMPTE 240M, BT.2020)."""
_BT709, _BT601 = 1, 5
_LIMITED, _FULL = 1, 2


@dataclass(frozen=True)
class PixelLayout:
    """How a stream's frames become model pixels (``working``) and go back (``output``)."""

    working: str
    """The packed format pixels are read in: rgb24, rgb48le, rgba, rgba64le, gray or gray16le."""
    bit_depth: int
    output: str
    """The pixel format the encoder takes."""
    matrix: int
    range: int

    @property
    def channels(self) -> int:
        return 1 if self.working.startswith("gray") else 3

    @property
    def alpha(self) -> bool:
        return self.working.startswith("rgba")


def layout_for(info: VideoInfo, output: str) -> PixelLayout:
    """The working format for ``info``'s frames and the colour maths both ways."""
    import av

    source = av.VideoFormat(info.pix_fmt)
    deep = max(component.bits for component in source.components) > 8
    alpha = any(component.is_alpha for component in source.components)
    gray = not source.is_rgb and not source.has_palette and len([c for c in source.components if not c.is_alpha]) == 1
    if gray:
        working = "gray16le" if deep else "gray"
    elif alpha:
        working = "rgba64le" if deep else "rgba"
    else:
        working = "rgb48le" if deep else "rgb24"
    default_matrix = _BT709 if info.height >= 720 else _BT601
    matrix = _SWS_MATRIX.get(info.colour.matrix, default_matrix)
    full = info.colour.range == _FULL or info.pix_fmt.startswith("yuvj")
    return PixelLayout(working, 16 if deep else 8, output, matrix, _FULL if full else _LIMITED)


def to_image(frame: av.VideoFrame, layout: PixelLayout) -> DecodedImage:
    """A decoded frame as the model's input, the same pixels a PNG of it would give."""
    samples = frame.to_ndarray(format=layout.working, **_colour(frame.format.name, layout, "src"))
    if samples.ndim == 2:
        samples = samples[..., None]
    colour, alpha = (samples[..., :3], samples[..., 3]) if layout.alpha else (samples, None)
    scale = np.float32(1 / (2**layout.bit_depth - 1))
    return DecodedImage(
        pixels=colour.astype(np.float32) * scale,
        alpha=alpha,
        bit_depth=layout.bit_depth,
        icc_profile=None,
        exif=None,
        source_format=VIDEO_FORMAT,
    )


def from_image(image: DecodedImage, layout: PixelLayout) -> av.VideoFrame:
    """A restored picture as a frame in the encoder's pixel format (timestamps not set)."""
    import av

    samples = to_integer_levels(image.pixels, layout.bit_depth)
    if layout.alpha:
        alpha = image.alpha if image.alpha is not None else np.full(samples.shape[:2], 2**layout.bit_depth - 1)
        samples = np.dstack([samples, alpha.astype(samples.dtype)])
    elif samples.shape[2] == 1:
        samples = samples[..., 0]
    frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(samples), format=layout.working)
    return frame.reformat(format=layout.output, **_colour(layout.output, layout, "dst"))


def _colour(pix_fmt: str, layout: PixelLayout, side: str) -> dict[str, int]:
    """swscale's arguments for the YUV side of a conversion; RGB and gray need none."""
    import av
    from av.video.reformatter import Interpolation

    flags = int(Interpolation.BICUBIC | Interpolation.ACCURATE_RND | Interpolation.FULL_CHR_H_INT)
    fmt = av.VideoFormat(pix_fmt)
    if fmt.is_rgb or len(fmt.components) < 3:
        return {"interpolation": flags}
    return {"interpolation": flags, f"{side}_colorspace": layout.matrix, f"{side}_color_range": layout.range}
