"""Decode and encode image files: the only place where files become arrays and back.

Everything a photographer cares about besides the pixels (bit depth, alpha, orientation, and
the metadata blocks: ICC profile, EXIF, XMP, IPTC/Photoshop resources, resolution) is carried
beside the float pixels in a `DecodedImage`, so that the restored file can be written back with
the same fidelity as the original, in any output format (`metadata` moves the blocks between
formats and keeps them true of the output).

Pillow decodes most files. Two cases need more than Pillow offers: 16-bit PNG (Pillow
reduces 16-bit RGB to 8 bits), decoded and encoded with imagecodecs (libpng), and 16-bit
TIFF, decoded with tifffile; every TIFF is written with tifffile so 8 and 16 bits share
one encoder.
"""

from __future__ import annotations

import errno
import io
import os
import re
import stat
import struct
import tempfile
import threading
import warnings
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO

import imagecodecs
import numpy as np
import tifffile
from PIL import Image, ImageCms, PngImagePlugin, UnidentifiedImageError

from restore_cli import metadata
from restore_cli.errors import ImageError, one_line
from restore_cli.metadata import EXIF_PREFIX, ORIENTATION_TAG

if TYPE_CHECKING:
    import torch

# Largest image (width x height) that read_image decodes by default; callers raise it (or
# pass max_pixels, which `--max-pixels` does) to accept bigger files. It replaces Pillow's
# decompression-bomb limit so there is a single knob, and so the refusal is an ImageError
# that tells the user what to do rather than a Pillow exception.
MAX_PIXELS: int = Image.MAX_IMAGE_PIXELS or 89_478_485

_EXTENSIONS = {
    ".png": "PNG",
    ".jpg": "JPEG",
    ".jpeg": "JPEG",
    ".tif": "TIFF",
    ".tiff": "TIFF",
    ".webp": "WEBP",
    ".bmp": "BMP",
}
_FORMAT_NAMES = {ext.lstrip("."): fmt for ext, fmt in _EXTENSIONS.items()}
_READABLE = {"PNG", "JPEG", "MPO", "TIFF", "WEBP", "BMP"}
_SIXTEEN_BIT_FORMATS = {"PNG", "TIFF"}
_TIFF_MAGIC = (b"II*\x00", b"MM\x00*")
_SUPPORTED = "PNG, JPEG, TIFF, WebP or BMP"
_FULL_DISK = {errno.ENOSPC, errno.EFBIG, errno.EDQUOT}
_NO_ALPHA_FORMATS = {"JPEG", "BMP"}  # Pillow's BMP reader ignores a 32-bit BMP's alpha
_PNG_XMP_KEY = b"XML:com.adobe.xmp\x00\x00\x00\x00\x00"  # keyword, uncompressed, no language, no translation
_LUMA = np.array([0.299, 0.587, 0.114], dtype=np.float32)
_PILLOW_LIMIT_LOCK = threading.Lock()


def _current_umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


_FILE_MODE = 0o666 & ~_current_umask()



@dataclass
class DecodedImage:
    """Pixels ready for a model, plus what is needed to write the file back faithfully.

    Metadata is kept as the output must have it: `exif` always starts with b"Exif\\0\\0" (the
    JPEG APP1 convention) whatever the source container stored, a TIFF's own tags included;
    `xmp` is the XMP packet; `photoshop` the Photoshop image resources (8BIM blocks; IPTC is
    resource 1028); `dpi` the resolution in pixels per inch. Orientation and thumbnails are
    already made true of the upright pixels (see `metadata`).
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


def read_image(source: str | os.PathLike | BinaryIO, *, max_pixels: int | None = None) -> DecodedImage:
    """Decode a file or binary stream, upright, with its metadata; ImageError on bad input.

    Images over ``max_pixels`` (default MAX_PIXELS) are refused before their pixels are
    decoded: a few bytes can declare a picture that would take all memory.
    """
    name = _describe(source)
    data = _read_bytes(source, name)
    if not data:
        raise ImageError(f"{name}: file is empty (0 bytes); supply a {_SUPPORTED} image")
    try:
        return _decode(data, name, MAX_PIXELS if max_pixels is None else max_pixels)
    except ImageError:
        raise
    except Exception as exc:
        raise ImageError(
            f"{name}: cannot decode image ({one_line(exc)}); check that it is a complete, uncorrupted image file"
        ) from exc


def write_image(
    image: DecodedImage,
    destination: str | os.PathLike | BinaryIO,
    *,
    format: str | None = None,
    quality: int = 95,
) -> None:
    """Encode to memory first, then write atomically, so a failure never leaves a partial file."""
    name = _describe(destination)
    fmt = output_format(destination, format)
    try:
        data = _encode(image, fmt, quality)
    except Exception as exc:
        raise ImageError(f"{name}: cannot encode image as {fmt} ({one_line(exc)}); try another output format") from exc
    if isinstance(destination, (str, os.PathLike)):
        _write_file(Path(destination), data)
    else:
        _write_stream(destination, data, name)


def _write_file(path: Path, data: bytes) -> None:
    try:
        atomic_write(path, data)
    except OSError as exc:
        full = exc.errno in _FULL_DISK
        hint = "free some disk space (or lift the file size limit)" if full else "check that the folder exists and is writable"
        raise ImageError(f"{path}: cannot write ({one_line(exc)}); {hint}") from exc


def _write_stream(stream: BinaryIO, data: bytes, name: str) -> None:
    try:
        stream.write(data)
        stream.flush()
    except OSError as exc:
        hint = "check that the receiving program is still reading"
        raise ImageError(f"{name}: cannot write ({one_line(exc)}); {hint}") from exc


def is_image_name(path: str | os.PathLike) -> bool:
    """Whether the extension is one of the formats restore reads and writes, so folder scans
    (batches, `restore eval`) pick up exactly the files the codecs accept."""
    return Path(path).suffix.lower() in _EXTENSIONS


def output_format(destination: str | os.PathLike | BinaryIO, format: str | None = None) -> str:
    """Pick the encoder from an explicit name, else the extension; streams default to PNG as pipes have none."""
    if format is not None:
        fmt = _FORMAT_NAMES.get(format.lower().lstrip("."))
        if fmt is None:
            raise ImageError(f"{_describe(destination)}: unknown format {format!r}; use one of {_known_names()}")
        return fmt
    if not isinstance(destination, (str, os.PathLike)):
        return "PNG"
    suffix = Path(destination).suffix.lower()
    if suffix not in _EXTENSIONS:
        raise ImageError(
            f"{destination}: unknown image extension {suffix or '(none)'!r}; "
            f"use one of {_known_names()} or pass a format"
        )
    return _EXTENSIONS[suffix]


def to_tensor(image: DecodedImage, channels: int | None = None) -> torch.Tensor:
    """NCHW float32 batch of one, the engine's layout; channels=3 lets a gray photo feed an RGB model."""
    import torch

    pixels = image.pixels
    if channels == 3 and image.channels == 1:
        pixels = np.repeat(pixels, 3, axis=2)
    elif channels not in (None, image.channels):
        raise ValueError(f"cannot turn a {image.channels}-channel image into {channels} channels")
    return torch.from_numpy(np.ascontiguousarray(pixels.transpose(2, 0, 1)))[None]


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


def _known_names() -> str:
    return ", ".join(sorted(_FORMAT_NAMES))


def _describe(target: str | os.PathLike | BinaryIO) -> str:
    if isinstance(target, (str, os.PathLike)):
        return os.fspath(target)
    name = getattr(target, "name", None)
    return name if isinstance(name, str) else "<stream>"


def _read_bytes(source: str | os.PathLike | BinaryIO, name: str) -> bytes:
    try:
        if isinstance(source, (str, os.PathLike)):
            _refuse_devices(Path(source), name)
            return Path(source).read_bytes()
        return source.read()
    except FileNotFoundError:
        raise ImageError(f"{name}: no such file; check the path") from None
    except IsADirectoryError:
        raise ImageError(f"{name}: is a folder, not an image file; pass the image files inside it") from None
    except OSError as exc:
        raise ImageError(f"{name}: cannot read ({one_line(exc)}); check the file's permissions") from exc


def _refuse_devices(path: Path, name: str) -> None:
    """A device such as /dev/zero never ends: reading it would take all memory. Pipes stay
    allowed, for shell process substitution (<(...))."""
    mode = path.stat().st_mode
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode) or stat.S_ISSOCK(mode):
        raise ImageError(f"{name}: is a device, not an image file; pass an image file or - for stdin")


# ---------------------------------------------------------------- decoding


def _decode(data: bytes, name: str, max_pixels: int) -> DecodedImage:
    with _open_unlimited(data, name) as im:
        fmt = "JPEG" if im.format == "MPO" else im.format
        if im.format not in _READABLE:
            raise ImageError(f"{name}: {im.format or 'this'} files are not supported; convert it to PNG, JPEG or TIFF")
        _check_size(im.size, name, max_pixels)
        _check_single_frame(im, name)
        orientation = _orientation(im)  # first: for a PNG whose eXIf follows the pixels, this loads it
        icc = im.info.get("icc_profile") or None
        with _quiet_pillow():
            blocks = metadata.read_blocks(im, fmt, data).for_upright_pixels(orientation)
        channels, bit_depth, icc = _decode_samples(im, fmt, data, name, icc)
    colour, alpha = _split_alpha(_upright(channels, orientation))
    scale = np.float32(1 / (2**bit_depth - 1))
    return DecodedImage(
        pixels=colour.astype(np.float32) * scale,
        alpha=alpha,
        bit_depth=bit_depth,
        icc_profile=icc,
        exif=blocks.exif,
        source_format=fmt,
        xmp=blocks.xmp,
        photoshop=blocks.photoshop,
        dpi=blocks.dpi,
    )


@contextmanager
def _quiet_pillow() -> Iterator[None]:
    """Pillow warns (rather than fails) about damaged metadata such as a corrupt EXIF block;
    restore reads past it, and a Python warning would break the one-line-per-file output.
    The lock serialises header parsing so that concurrent readers neither see each other's
    lifted bomb limit nor restore each other's warning filters."""
    with _PILLOW_LIMIT_LOCK, warnings.catch_warnings():
        warnings.simplefilter("ignore")
        yield


@contextmanager
def _open_unlimited(data: bytes, name: str) -> Iterator[Image.Image]:
    """Open with Pillow's bomb limit lifted for the (lazy, header-only) open.

    The pixel limit is enforced right after by _check_size; without lifting, Pillow would
    refuse anything over twice its own limit even when a caller raised the limit on purpose.
    """
    with _quiet_pillow():
        saved, Image.MAX_IMAGE_PIXELS = Image.MAX_IMAGE_PIXELS, None
        try:
            image = Image.open(io.BytesIO(data))
        except UnidentifiedImageError:
            raise ImageError(_unidentified(data, name)) from None
        finally:
            Image.MAX_IMAGE_PIXELS = saved
    try:
        yield image
    finally:
        image.close()


def _unidentified(data: bytes, name: str) -> str:
    """Pillow cannot open some valid TIFFs (float samples, many channels): say which kind it is."""
    if data.startswith(_TIFF_MAGIC):
        try:
            with tifffile.TiffFile(io.BytesIO(data)) as tif:
                return _unsupported_tiff(tif.pages.first, name)
        except Exception:
            pass
    return f"{name}: not a readable image (unknown or damaged content); supply a complete {_SUPPORTED} image"


def _unsupported_tiff(page: tifffile.TiffPage, name: str) -> str:
    samples = {1: "unsigned", 2: "signed", 3: "floating-point"}.get(int(page.sampleformat), "unusual")
    photometric = getattr(page.photometric, "name", f"photometric {page.photometric}")
    return (
        f"{name}: {page.bitspersample}-bit {samples} {photometric} TIFF with {page.samplesperpixel} samples "
        "per pixel is not supported; save it as 8- or 16-bit unsigned RGB or grayscale"
    )


def _check_size(size: tuple[int, int], name: str, max_pixels: int) -> None:
    width, height = size
    if width * height > max_pixels:
        raise ImageError(
            f"{name}: {width}x{height} is {width * height:,} pixels, over the limit of {max_pixels:,}; "
            f"if you trust this file, pass --max-pixels {width * height} (or raise restore_cli.images.MAX_PIXELS)"
        )


def _check_single_frame(im: Image.Image, name: str) -> None:
    """Restoring one frame of an animation or one page of a document and writing it as the
    whole would silently drop the rest. MPO is exempt: cameras store a JPEG photo plus
    previews that way, and the photo is the first frame."""
    frames = getattr(im, "n_frames", 1)
    if frames > 1 and im.format != "MPO":
        raise ImageError(
            f"{name}: has {frames} frames or pages (an animation or multi-page file); restore works on single "
            "images: extract the frame you want (e.g. as PNG) and restore that"
        )


def _decode_samples(
    im: Image.Image, fmt: str, data: bytes, name: str, icc: bytes | None
) -> tuple[np.ndarray, int, bytes | None]:
    """Raw samples as HxWxC (alpha last, if any) in the stored dtype, their bit depth, and the
    ICC profile that describes them (converting CMYK to RGB changes it)."""
    if fmt == "PNG" and _png_bit_depth(data) == 16:
        return _channels_last(imagecodecs.png_decode(data)), 16, icc
    if fmt == "TIFF":
        samples = _decode_tiff(data, name)
        if samples is not None:
            return _channels_last(samples), samples.dtype.itemsize * 8, icc
    if im.mode == "CMYK":
        rgb, icc = _cmyk_to_rgb(im)
        return _channels_last(np.asarray(rgb)), 8, icc
    return _channels_last(np.asarray(_to_standard_mode(im, name))), 8, icc


def _png_bit_depth(data: bytes) -> int:
    return data[24] if len(data) > 25 else 8


def _decode_tiff(data: bytes, name: str) -> np.ndarray | None:
    """Unsigned 8/16-bit gray and RGB TIFFs are decoded by tifffile: it keeps 16 bits, and
    unlike Pillow's libtiff it reports damaged strips as exceptions instead of printing
    them on stderr. Other 8-bit kinds (palette, CMYK, 1-bit...) are left to Pillow (None)."""
    with tifffile.TiffFile(io.BytesIO(data)) as tif:
        page = tif.pages.first
        expected_samples = {tifffile.PHOTOMETRIC.MINISBLACK: (1, 2), tifffile.PHOTOMETRIC.RGB: (3, 4)}
        plain = page.samplesperpixel in expected_samples.get(page.photometric, ())
        unsigned = page.sampleformat == tifffile.SAMPLEFORMAT.UINT
        if not unsigned or page.bitspersample > 16 or (page.bitspersample == 16 and not plain):
            raise ImageError(_unsupported_tiff(page, name))
        if not plain or page.bitspersample not in (8, 16):
            return None
        samples = page.asarray()
    if page.planarconfig == tifffile.PLANARCONFIG.SEPARATE and samples.ndim == 3:
        samples = np.moveaxis(samples, 0, -1)
    return samples


def _to_standard_mode(im: Image.Image, name: str) -> Image.Image:
    """Bring Pillow's many modes to L, LA, RGB or RGBA, keeping transparency and true colours."""
    if im.mode in ("L", "LA", "RGB", "RGBA"):
        return im
    if im.mode in ("P", "PA"):
        has_alpha = im.mode == "PA" or "transparency" in im.info or im.palette.mode == "RGBA"
        return im.convert("RGBA" if has_alpha else "RGB")
    if im.mode in ("1", "La"):
        return im.convert("L" if im.mode == "1" else "LA")
    if im.mode in ("RGBX", "RGBa", "YCbCr", "LAB", "HSV"):
        return im.convert("RGBA" if im.mode == "RGBa" else "RGB")
    raise ImageError(f"{name}: pixel mode {im.mode} is not supported; save it as 8/16-bit RGB or grayscale")


def _cmyk_to_rgb(im: Image.Image) -> tuple[Image.Image, bytes | None]:
    """RGB pixels and their profile. The embedded press profile is used when there is one (a
    naive CMYK→RGB formula shifts colours), giving sRGB; a damaged profile falls back to the
    naive formula, whose result has no profile, rather than losing the photo."""
    icc = im.info.get("icc_profile")
    if icc:
        try:
            source = ImageCms.ImageCmsProfile(io.BytesIO(icc))
            return ImageCms.profileToProfile(im, source, ImageCms.createProfile("sRGB"), outputMode="RGB"), _srgb_profile()
        except (ImageCms.PyCMSError, OSError, ValueError):
            pass
    return im.convert("RGB"), None


def _srgb_profile() -> bytes:
    return ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()


def _channels_last(samples: np.ndarray) -> np.ndarray:
    return samples[..., None] if samples.ndim == 2 else samples


def _split_alpha(samples: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
    if samples.shape[2] in (2, 4):
        return samples[..., :-1], samples[..., -1]
    return samples, None


# ---------------------------------------------------------------- orientation and EXIF


def _orientation(im: Image.Image) -> int:
    try:
        with _quiet_pillow():
            value = im.getexif().get(ORIENTATION_TAG, 1)
    except Exception:
        return 1
    return value if value in range(1, 9) else 1


def _upright(samples: np.ndarray, orientation: int) -> np.ndarray:
    """Apply the EXIF orientation (1..8) to HxW(xC) samples, as a viewer would when displaying."""
    if orientation in (5, 6, 7, 8):
        samples = samples.swapaxes(0, 1)
    flip_rows = orientation in (3, 4, 7, 8)
    flip_cols = orientation in (2, 3, 6, 7)
    return np.ascontiguousarray(samples[:: -1 if flip_rows else 1, :: -1 if flip_cols else 1])


# ---------------------------------------------------------------- encoding


def _encode(image: DecodedImage, fmt: str, quality: int) -> bytes:
    bit_depth = image.bit_depth if fmt in _SIXTEEN_BIT_FORMATS else 8
    colour = to_integer_levels(image.pixels, bit_depth)
    alpha = _alpha_for(image.alpha, bit_depth)
    if fmt in _NO_ALPHA_FORMATS and alpha is not None:
        colour, alpha = to_integer_levels(_flatten_on_white(image), 8), None
    samples = colour if alpha is None else np.concatenate([colour, alpha[..., None]], axis=2)
    if fmt == "TIFF":
        return _encode_tiff(samples, image)
    if bit_depth == 16:
        return _encode_png16(samples, image)
    return _encode_pillow(samples, fmt, image, quality)


def to_integer_levels(pixels: np.ndarray, bit_depth: int) -> np.ndarray:
    """Float [0, 1] to the unsigned integers a file of this depth stores. Rounds (not
    truncates) so that a decode/encode round trip returns the original values."""
    top = 2**bit_depth - 1
    scaled = np.rint(np.nan_to_num(pixels, nan=0.0) * top)
    return np.clip(scaled, 0, top).astype(np.uint16 if bit_depth == 16 else np.uint8)


def _alpha_for(alpha: np.ndarray | None, bit_depth: int) -> np.ndarray | None:
    """The alpha as stored when the output depth allows it, else rescaled to the output depth."""
    if alpha is None:
        return None
    target = np.uint16 if bit_depth == 16 else np.uint8
    if alpha.dtype == target:
        return alpha
    source_top = np.iinfo(alpha.dtype).max
    return to_integer_levels(alpha.astype(np.float64) / source_top, bit_depth)


def _flatten_on_white(image: DecodedImage) -> np.ndarray:
    """Without alpha, composite as viewers show it, rather than exposing colours hidden under transparency."""
    assert image.alpha is not None
    opacity = (image.alpha.astype(np.float32) / np.iinfo(image.alpha.dtype).max)[..., None]
    return image.pixels * opacity + (1.0 - opacity)


def _encode_pillow(samples: np.ndarray, fmt: str, image: DecodedImage, quality: int) -> bytes:
    picture = Image.fromarray(samples.squeeze(2) if samples.shape[2] == 1 else samples)
    options: dict[str, object] = {}
    if fmt in ("JPEG", "WEBP"):
        options["quality"] = quality
    if fmt == "JPEG":
        options["subsampling"] = 0  # 4:4:4: chroma subsampling would blur the detail just restored
    dpi = image.dpi or ((0, 0) if fmt == "BMP" else None)  # a BMP header always has one: 0 = unknown, not Pillow's 96
    blocks = {
        "icc_profile": image.icc_profile if fmt != "BMP" else None,
        "exif": image.exif if fmt in ("PNG", "WEBP") or (fmt == "JPEG" and metadata.jpeg_holds("EXIF", image.exif)) else None,
        "xmp": image.xmp if fmt == "WEBP" or (fmt == "JPEG" and metadata.jpeg_holds("XMP", image.xmp)) else None,
        "pnginfo": _png_xmp(image.xmp) if fmt == "PNG" and image.xmp else None,
        "extra": metadata.jpeg_app13(image.photoshop) if fmt == "JPEG" else None,
        "dpi": dpi if fmt != "WEBP" else None,
    }
    options.update({key: value for key, value in blocks.items() if value})
    buffer = io.BytesIO()
    picture.save(buffer, fmt, **options)
    return buffer.getvalue()


def _png_xmp(xmp: bytes) -> PngImagePlugin.PngInfo:
    """XMP in PNG: an uncompressed iTXt chunk with the keyword Adobe defines."""
    info = PngImagePlugin.PngInfo()
    info.add(b"iTXt", _PNG_XMP_KEY + xmp)
    return info


def _encode_png16(samples: np.ndarray, image: DecodedImage) -> bytes:
    """libpng via imagecodecs writes no metadata, so the metadata chunks are added after IHDR."""
    # libpng needs C-ordered rows; restored pixels often arrive as a permuted tensor view.
    png = imagecodecs.png_encode(np.ascontiguousarray(samples.squeeze(2) if samples.shape[2] == 1 else samples))
    chunks = b""
    if image.icc_profile:
        chunks += _png_chunk(b"iCCP", b"ICC Profile\x00\x00" + zlib.compress(image.icc_profile))
    if image.dpi:
        per_metre = (round(value / 0.0254) for value in image.dpi)
        chunks += _png_chunk(b"pHYs", struct.pack(">IIB", *per_metre, 1))
    if image.exif:
        chunks += _png_chunk(b"eXIf", image.exif[len(EXIF_PREFIX) :])
    if image.xmp:
        chunks += _png_chunk(b"iTXt", _PNG_XMP_KEY + image.xmp)
    header_end = 8 + 25
    return png[:header_end] + chunks + png[header_end:]


def _png_chunk(kind: bytes, payload: bytes) -> bytes:
    crc = zlib.crc32(kind + payload)
    return struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", crc)


def _encode_tiff(samples: np.ndarray, image: DecodedImage) -> bytes:
    """tifffile lays out the pixels (with no description or software tag of its own); the
    metadata is then merged into the first IFD, in the EXIF block's byte order so its values
    are copied as they are."""
    colour_channels = 1 if samples.shape[2] in (1, 2) else 3
    order = metadata.exif_byte_order(image.exif)
    buffer = io.BytesIO()
    tifffile.imwrite(
        buffer,
        samples.squeeze(2) if samples.shape[2] == 1 else samples,
        byteorder=order,
        photometric="minisblack" if colour_channels == 1 else "rgb",
        extrasamples=("unassalpha",) if samples.shape[2] in (2, 4) else None,
        planarconfig="contig",
        compression="zlib",
        resolution=image.dpi,
        resolutionunit="INCH" if image.dpi else None,
        metadata=None,
        software=False,
    )
    return metadata.tiff_with_entries(buffer.getvalue(), metadata.tiff_entries(image, order))


_TEMP_SUFFIX = ".tmp"


def _temp_prefix(path: Path) -> str:
    """Hidden, so that folder scans skip the temp file of a write in progress."""
    return f".{path.name}."


def leftover_temp_files(path: str | os.PathLike) -> list[Path]:
    """Temp files of writes of ``path`` whose process was killed outright (SIGKILL, a lost
    node), which no clean-up code ran in. Only a caller that knows those writers are dead
    may remove them: a live writer's temp file looks the same."""
    target = Path(path)
    name = re.compile(re.escape(_temp_prefix(target)) + r"[a-z0-9_]{8}" + re.escape(_TEMP_SUFFIX))  # mkstemp's names
    return sorted(p for p in target.parent.glob(".*" + _TEMP_SUFFIX) if name.fullmatch(p.name))


def atomic_write(path: Path, data: bytes) -> None:
    """Temp file in the same folder, fsync, then rename: readers see the old file or the whole new one."""
    handle, temp_name = tempfile.mkstemp(prefix=_temp_prefix(path), suffix=_TEMP_SUFFIX, dir=path.parent or ".")
    try:
        with os.fdopen(handle, "wb") as temp:
            temp.write(data)
            temp.flush()
            os.fchmod(temp.fileno(), _FILE_MODE)
            os.fsync(temp.fileno())
        os.replace(temp_name, path)
    except BaseException:
        Path(temp_name).unlink(missing_ok=True)
        raise
    _fsync_folder(path.parent)


def _fsync_folder(folder: Path) -> None:
    """Make the rename itself durable; some platforms cannot open folders, which is fine."""
    try:
        handle = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(handle)
    except OSError:
        pass
    finally:
        os.close(handle)
