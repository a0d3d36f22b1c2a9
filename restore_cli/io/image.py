"""The decoded image every part of restore passes around, and the names of the formats.

``DecodedImage`` holds float pixels ready for a model plus everything needed to write the
file back faithfully (bit depth, alpha, ICC profile and the other metadata blocks), so any
decoder and any encoder can meet through it. The format tables decide which files a folder
scan picks up and which encoder an output name selects.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO

import numpy as np

from restore_cli.errors import ImageError, InputError, setting

if TYPE_CHECKING:
    import torch

EXTENSIONS = {
    ".png": "PNG",
    ".jpg": "JPEG",
    ".jpeg": "JPEG",
    ".tif": "TIFF",
    ".tiff": "TIFF",
    ".webp": "WEBP",
    ".bmp": "BMP",
    ".heic": "HEIF",
    ".heif": "HEIF",
    ".hif": "HEIF",
    ".avif": "AVIF",
    ".jxl": "JXL",
}
"""The formats restore writes (and reads), by extension."""
RAW_EXTENSIONS = frozenset(
    {".dng", ".cr2", ".cr3", ".crw", ".nef", ".nrw", ".arw", ".srf", ".sr2", ".raf", ".orf", ".rw2", ".rwl", ".pef"}
    | {".srw", ".3fr", ".fff", ".erf", ".kdc", ".dcr", ".mrw", ".mos", ".iiq", ".x3f"}
)
"""Camera RAW files: read (developed by LibRaw), never written."""
FORMAT_NAMES = {ext.lstrip("."): fmt for ext, fmt in EXTENSIONS.items()}
_EXTENSION_OF = {"PNG": ".png", "JPEG": ".jpg", "TIFF": ".tif", "WEBP": ".webp", "BMP": ".bmp", "HEIF": ".heic", "AVIF": ".avif", "JXL": ".jxl"}
FLOAT_DEPTH = 32
"""`bit_depth` of an image whose samples are floating point (float TIFF, float JPEG XL)."""
DEPTHS = {
    "PNG": (8, 16),
    "TIFF": (8, 16, FLOAT_DEPTH),
    "JPEG": (8,),
    "WEBP": (8,),
    "BMP": (8,),
    "HEIF": (8, 10, 12),
    "AVIF": (8, 10, 12),
    "JXL": (8, 16),
}
"""The sample depths each output format is written at: 16-bit AVIF and HEIC do not exist, so a
deeper picture gets their 12 bits; float only goes to TIFF."""
_LUMA = np.array([0.299, 0.587, 0.114], dtype=np.float32)


@dataclass
class DecodedImage:
    """Pixels ready for a model, plus what is needed to write the file back faithfully.

    `bit_depth` is the source's bits per sample: 8, 10, 12 or 16 for integer samples (a 10-bit
    HEIC says 10), FLOAT_DEPTH for floating-point ones; `alpha` is stored as 8 or 16-bit levels.
    Metadata is kept as the output must have it: `exif` always starts with b"Exif\\0\\0" (the
    JPEG APP1 convention) whatever the source container stored, a TIFF's own tags included;
    `xmp` is the XMP packet; `photoshop` the Photoshop image resources (8BIM blocks; IPTC is
    resource 1028); `dpi` the resolution in pixels per inch. Orientation and thumbnails are
    already made true of the upright pixels (see `restore_cli.io.metadata`).
    """

    pixels: np.ndarray
    alpha: np.ndarray | None
    bit_depth: int
    icc_profile: bytes | None
    exif: bytes | None
    source_format: str
    xmp: bytes | None = None
    photoshop: bytes | None = None
    dpi: tuple[float, float] | None = None

    @property
    def height(self) -> int:
        return int(self.pixels.shape[0])

    @property
    def width(self) -> int:
        return int(self.pixels.shape[1])

    @property
    def channels(self) -> int:
        return int(self.pixels.shape[2])

    @property
    def levels_depth(self) -> int:
        """The integer depth that holds the samples: the source's own, 16 for float samples.
        What scores and training data quantise to."""
        return min(self.bit_depth, 16)


def is_image_name(path: str | os.PathLike) -> bool:
    """Whether the extension is one of the formats restore reads, so folder scans (batches,
    `restore eval`) pick up exactly the files the codecs accept."""
    suffix = Path(path).suffix.lower()
    return suffix in EXTENSIONS or suffix in RAW_EXTENSIONS


def extension_for(fmt: str) -> str:
    """The extension an output of this format is named with."""
    return _EXTENSION_OF[fmt]


def default_extension(source: str | os.PathLike) -> str:
    """An output's extension when no format is asked for: the input's own, except that a camera
    RAW (which cannot be written) becomes a TIFF, the format that holds all 16 of its bits."""
    suffix = Path(source).suffix
    if suffix.lower() in RAW_EXTENSIONS:
        return _EXTENSION_OF["TIFF"]
    return suffix if suffix.lower() in EXTENSIONS else _EXTENSION_OF["PNG"]


def output_depth(fmt: str, source_depth: int, requested: int | None = None) -> int:
    """The depth an output is written at: the one asked for (see `check_depth`), else the
    source's; rounded up to the nearest depth the format has, or down to its deepest."""
    wanted = requested or source_depth
    depths = DEPTHS[fmt]
    return next((depth for depth in depths if depth >= wanted), depths[-1])


def check_depth(fmt: str, requested: int | None, name: str = "") -> None:
    """Refuse a requested depth the format cannot hold, in one line naming the formats that can."""
    if requested is None or requested in _requestable(fmt):
        return
    kind = "float samples" if requested == FLOAT_DEPTH else f"{requested}-bit samples"
    holders = "|".join(_EXTENSION_OF[other].lstrip(".") for other in DEPTHS if requested in _requestable(other))
    prefix = f"{name}: " if name else ""
    raise ImageError(
        f"{prefix}{fmt} files cannot hold {kind} ({setting('depth')} {requested}); "
        f"write a format that can ({setting('format')} {holders}) or choose another depth"
    )


def _requestable(fmt: str) -> set[int]:
    """The depths one can ask of a format: 8 always; 16 wherever more than 8 bits exist (12 for
    HEIC and AVIF); FLOAT_DEPTH only where float samples do."""
    depths = DEPTHS[fmt]
    return {8} | ({16} if depths[-1] > 8 else set()) | ({FLOAT_DEPTH} if FLOAT_DEPTH in depths else set())


def output_format(destination: str | os.PathLike | BinaryIO, format: str | None = None) -> str:
    """Pick the encoder from an explicit name, else the extension; streams default to PNG as pipes have none."""
    if format is not None:
        fmt = FORMAT_NAMES.get(format.lower().lstrip("."))
        if fmt is None:
            raise ImageError(f"{describe(destination)}: unknown format {format!r}; use one of {known_names()}")
        return fmt
    if not isinstance(destination, (str, os.PathLike)):
        return "PNG"
    suffix = Path(destination).suffix.lower()
    if suffix in RAW_EXTENSIONS:
        raise ImageError(f"{destination}: camera RAW files cannot be written; name the output .tif (16 bits) or pass a format")
    if suffix not in EXTENSIONS:
        raise ImageError(
            f"{destination}: unknown image extension {suffix or '(none)'!r}; "
            f"use one of {known_names()} or pass a format"
        )
    return EXTENSIONS[suffix]


def to_tensor(image: DecodedImage, channels: int | None = None) -> torch.Tensor:
    """NCHW float32 batch of one, the engine's layout; channels=3 lets a gray photo feed an RGB model."""
    import torch

    pixels = image.pixels
    if channels == 3 and image.channels == 1:
        pixels = np.repeat(pixels, 3, axis=2)
    elif channels not in (None, image.channels):
        raise ValueError(f"cannot turn a {image.channels}-channel image into {channels} channels")
    return torch.from_numpy(np.ascontiguousarray(pixels.transpose(2, 0, 1)))[None]


def model_input(image: DecodedImage, channels: int, name: str, model: str) -> torch.Tensor:
    """The tensor a model taking ``channels`` channels gets for ``image``, by the one rule
    every command follows: a gray photo feeds an RGB model as three equal channels (and
    `with_pixels` brings the result back to gray); a colour photo is refused by a gray model,
    since restoring each channel alone would be slower and worse than the colour model the
    user almost certainly meant, so the message names it."""
    if channels == 1 and image.channels == 3:
        raise InputError(
            f"{name}: is a colour image but {model} is a grayscale model; use a colour model "
            f"(for denoising, the default or {setting('model')} gaussian picks one per image)"
        )
    return to_tensor(image, channels=channels)


def with_pixels(image: DecodedImage, pixels: np.ndarray | torch.Tensor) -> DecodedImage:
    """Attach restored pixels, back in the image's own channel count, so gray photos stay gray."""
    array = _as_hwc(pixels)
    if array.shape[:2] != image.pixels.shape[:2]:
        raise ValueError(f"restored size {array.shape[:2]} differs from the image's {image.pixels.shape[:2]}")
    if image.channels == 1 and array.shape[2] == 3:
        array = (array @ _LUMA)[..., None]
    return replace(image, pixels=np.clip(array, 0.0, 1.0).astype(np.float32, copy=False))


def _as_hwc(pixels: np.ndarray | torch.Tensor) -> np.ndarray:
    if isinstance(pixels, np.ndarray):
        return pixels if pixels.ndim == 3 else pixels[..., None]
    import torch

    chw = pixels.detach().to("cpu", dtype=torch.float32)
    chw = chw[0] if chw.ndim == 4 else chw
    return chw.permute(1, 2, 0).numpy()


def to_integer_levels(pixels: np.ndarray, bit_depth: int) -> np.ndarray:
    """Float [0, 1] to the unsigned integers a file of this depth stores. Rounds (not
    truncates) so that a decode/encode round trip returns the original values."""
    top = 2**bit_depth - 1
    scaled = np.fmin(np.fmax(pixels * top, 0), top)  # fmax and fmin turn NaN into the bound, unlike clip
    return np.rint(scaled).astype(np.uint8 if bit_depth <= 8 else np.uint16)


def known_names() -> str:
    return ", ".join(sorted(FORMAT_NAMES))


def describe(target: str | os.PathLike | BinaryIO) -> str:
    if isinstance(target, (str, os.PathLike)):
        return os.fspath(target)
    name = getattr(target, "name", None)
    return name if isinstance(name, str) else "<stream>"
