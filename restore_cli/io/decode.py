"""Decode image files: every format restore reads, upright, at its own bit depth.

A file is recognised by its content (``magic``). HEIC, AVIF, JPEG XL and camera RAWs have
decoders of their own (``heif``, ``avif``, ``jxl``, ``raw``); Pillow decodes the rest, except
where it offers less than the file holds: 16-bit PNG (Pillow reduces 16-bit RGB to 8 bits),
decoded with imagecodecs (libpng), and 16-bit and float TIFF, decoded with tifffile. Every
decoder hands back a ``StoredImage``; the orientation is applied to its pixels and the metadata
blocks are made true of the upright picture (see ``metadata``).
"""

from __future__ import annotations

import io
import os
import stat
import threading
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import BinaryIO

import imagecodecs
import numpy as np
import tifffile
from PIL import Image, ImageCms, UnidentifiedImageError

from restore_cli.errors import ImageError, one_line
from restore_cli.io import avif, heif, jxl, magic, metadata, raw, storage
from restore_cli.io.image import FLOAT_DEPTH, DecodedImage, describe
from restore_cli.io.metadata import ORIENTATION_TAG
from restore_cli.io.raw import RawOptions
from restore_cli.io.stored import StoredImage, alpha_levels, check_size, not_single
from restore_cli.io.urls import is_url

# Largest image (width x height) that read_image decodes by default; callers raise it (or
# pass max_pixels, which `--max-pixels` does) to accept bigger files. It replaces Pillow's
# decompression-bomb limit so there is a single knob, and so the refusal is an ImageError
# that tells the user what to do rather than a Pillow exception.
MAX_PIXELS: int = Image.MAX_IMAGE_PIXELS or 89_478_485

_READABLE = {"PNG", "JPEG", "MPO", "TIFF", "WEBP", "BMP"}
_TIFF_MAGIC = (b"II*\x00", b"MM\x00*")
_SUPPORTED = "PNG, JPEG, TIFF, WebP, BMP, HEIC, AVIF, JPEG XL or camera RAW"
_FAMILIES = {"HEIF": heif.decode, "AVIF": avif.decode, "JXL": jxl.decode}
_PILLOW_LIMIT_LOCK = threading.Lock()


def read_image(
    source: str | os.PathLike | BinaryIO, *, max_pixels: int | None = None, raw: RawOptions | None = None
) -> DecodedImage:
    """Decode a file, an object in a store (a URL) or a binary stream, upright, with its
    metadata; ImageError on bad input.

    Images over ``max_pixels`` (default MAX_PIXELS) are refused before their pixels are
    decoded: a few bytes can declare a picture that would take all memory. ``raw`` says how
    a camera RAW is developed (default: the camera's white balance, AHD).
    """
    name = describe(source)
    data = _read_bytes(source, name)
    if not data:
        raise ImageError(f"{name}: file is empty (0 bytes); supply a {_SUPPORTED} image")
    try:
        return _decode(data, name, MAX_PIXELS if max_pixels is None else max_pixels, raw or RawOptions())
    except ImageError:
        raise
    except Exception as exc:
        raise ImageError(
            f"{name}: cannot decode image ({one_line(exc)}); check that it is a complete, uncorrupted image file"
        ) from exc


def _read_bytes(source: str | os.PathLike | BinaryIO, name: str) -> bytes:
    if is_url(source):
        return storage.read_bytes(source)  # type: ignore[arg-type]
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


def _decode(data: bytes, name: str, max_pixels: int, raw_options: RawOptions) -> DecodedImage:
    fmt = magic.family(data, name)
    if fmt == "RAW":
        stored = raw.decode(data, name, max_pixels, raw_options)
    elif fmt is not None:
        stored = _FAMILIES[fmt](data, name, max_pixels)
    elif data.startswith(_TIFF_MAGIC) and _is_float_tiff(data):
        stored, fmt = _float_tiff(data, name, max_pixels), "TIFF"
    else:
        stored, fmt = _decode_pillow(data, name, max_pixels)
    return _decoded(stored, fmt)


def _decoded(stored: StoredImage, fmt: str) -> DecodedImage:
    colour, alpha = _split_alpha(_upright(stored.samples, stored.orientation))
    if stored.bit_depth == FLOAT_DEPTH:
        pixels = np.clip(np.nan_to_num(colour.astype(np.float32), nan=0.0), 0.0, 1.0)
    else:
        pixels = colour.astype(np.float32) * stored.scale()
    blocks = stored.blocks.for_upright_pixels(stored.orientation if stored.orientation != 1 else stored.applied)
    return DecodedImage(
        pixels=pixels,
        alpha=None if alpha is None else alpha_levels(alpha, stored.bit_depth),
        bit_depth=stored.bit_depth,
        icc_profile=stored.icc_profile,
        exif=blocks.exif,
        source_format=fmt,
        xmp=blocks.xmp,
        photoshop=blocks.photoshop,
        dpi=blocks.dpi,
    )


def _decode_pillow(data: bytes, name: str, max_pixels: int) -> tuple[StoredImage, str]:
    with _open_unlimited(data, name) as im:
        fmt = "JPEG" if im.format == "MPO" else im.format
        if im.format not in _READABLE:
            raise ImageError(f"{name}: {im.format or 'this'} files are not supported; convert it to PNG, JPEG or TIFF")
        check_size(im.size, name, max_pixels)
        _check_single_frame(im, name)
        orientation = _orientation(im)  # first: for a PNG whose eXIf follows the pixels, this loads it
        icc = im.info.get("icc_profile") or None
        with _quiet_pillow():
            blocks = metadata.read_blocks(im, fmt, data)
        samples, bit_depth, icc = _decode_samples(im, fmt, data, name, icc)
    return StoredImage(samples, bit_depth, icc, blocks, orientation=orientation), fmt


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


def _check_single_frame(im: Image.Image, name: str) -> None:
    """Restoring one frame of an animation or one page of a document and writing it as the
    whole would silently drop the rest. MPO is exempt: cameras store a JPEG photo plus
    previews that way, and the photo is the first frame."""
    frames = getattr(im, "n_frames", 1)
    if frames > 1 and im.format != "MPO":
        raise not_single(name, f"has {frames} frames or pages (an animation or multi-page file)")


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
        plain = _plain(page)
        unsigned = page.sampleformat == tifffile.SAMPLEFORMAT.UINT
        if not unsigned or page.bitspersample > 16 or (page.bitspersample == 16 and not plain):
            raise ImageError(_unsupported_tiff(page, name))
        if not plain or page.bitspersample not in (8, 16):
            return None
        return _page_samples(page)


def _is_float_tiff(data: bytes) -> bool:
    try:
        with tifffile.TiffFile(io.BytesIO(data)) as tif:
            return bool(tif.pages.first.sampleformat == tifffile.SAMPLEFORMAT.IEEEFP)
    except Exception:  # a damaged TIFF is Pillow's to name
        return False


def _float_tiff(data: bytes, name: str, max_pixels: int) -> StoredImage:
    """Float gray and RGB TIFFs (16, 32 or 64-bit), their samples taken as they are."""
    with tifffile.TiffFile(io.BytesIO(data)) as tif:
        page = tif.pages.first
        if not _plain(page):
            raise ImageError(_unsupported_tiff(page, name))
        if len(tif.pages) > 1:
            raise not_single(name, f"has {len(tif.pages)} frames or pages (an animation or multi-page file)")
        check_size((page.imagewidth, page.imagelength), name, max_pixels)
        samples = _channels_last(_page_samples(page).astype(np.float32))
        orientation = int(page.tags.valueof(274, 1))
    blocks = metadata.blocks_from_tiff(data)
    return StoredImage(samples, FLOAT_DEPTH, page.iccprofile, blocks, orientation=orientation if orientation in range(1, 9) else 1)


def _plain(page: tifffile.TiffPage) -> bool:
    """Gray or RGB, with at most an alpha channel."""
    expected_samples = {tifffile.PHOTOMETRIC.MINISBLACK: (1, 2), tifffile.PHOTOMETRIC.RGB: (3, 4)}
    return page.samplesperpixel in expected_samples.get(page.photometric, ())


def _page_samples(page: tifffile.TiffPage) -> np.ndarray:
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


_GRAY_MODES = {"1", "L", "LA", "La", "I", "I;16", "I;16B", "I;16L", "F"}


def peek_channels(path: str | os.PathLike) -> int | None:
    """1 for a grayscale file, 3 for a colour one, from its header alone (as `read_image`
    would decode it); None where the header cannot be read (stdin, a damaged file)."""
    try:
        with _quiet_pillow(), Image.open(path) as im:
            return 1 if im.mode in _GRAY_MODES else 3
    except Exception:  # any reader's failure means only "unknown": decoding will say why
        return None
