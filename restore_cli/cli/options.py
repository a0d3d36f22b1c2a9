"""The options every task command shares, defined once.

The task commands (and ``restore run``) take the same options, so their signatures are built
from one list of parameters (``COMMON``) instead of being written out five times; each command
only adds its own extras (``--sigma`` for denoise, ``--dual-pixel`` for defocus).
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass
from pathlib import Path
from typing import Any, List, Literal, Optional, get_args

import typer

from restore_cli.cli import threads
from restore_cli.io.comparison import Layout
from restore_cli.io.decode import MAX_PIXELS
from restore_cli.io.raw import Demosaic, WhiteBalance


@dataclass(frozen=True)
class TaskOptions:
    """Every option a task command accepts, as parsed by Typer."""

    inputs: Optional[List[str]]
    output: Optional[str]
    weights: Optional[Path]
    tile: str
    overlap: int
    max_memory: Optional[str]
    device: str
    precision: str
    allow_slow_precision: bool
    recursive: bool
    overwrite: bool
    skip_existing: bool
    suffix: Optional[str]
    files_from: Optional[str]
    null: bool
    format: Optional[str]
    quality: int
    max_pixels: Optional[int]
    as_json: bool
    quiet: bool
    offline: bool
    debug: bool
    tlc: bool = False
    tlc_window: Optional[int] = None
    engine: Literal["local", "ray"] = "local"
    ray_address: Optional[str] = None
    workers: Optional[int] = None
    cpus_per_worker: Optional[float] = None
    gpus_per_worker: Optional[float] = None
    storage_option: Optional[List[str]] = None
    model: Optional[str] = None
    sigma: Optional[int] = None
    dual_pixel: bool = False
    depth: Optional[int] = None
    strength: float = 1.0
    compare: Optional[str] = None
    compare_layout: Layout = "auto"
    raw_wb: WhiteBalance = "camera"
    raw_demosaic: Demosaic = "ahd"
    video_codec: Optional[str] = None
    crf: Optional[int] = None
    threads: Optional[int] = None


def _param(name: str, annotation: Any, info: Any) -> inspect.Parameter:
    return inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, default=info, annotation=annotation)


def _choices(literal: Any) -> str:
    """The metavar of an option whose values are the io layer's Literal: a|b|c, in its order."""
    return "|".join(get_args(literal))


COMMON = [
    _param("inputs", Optional[List[str]], typer.Argument(None, metavar="INPUT...", help="Image or video files, folders, glob patterns, URLs (s3://, gs://, az://...), or - for stdin (images only).", show_default=False)),
    _param("output", Optional[str], typer.Option(None, "-o", "--output", metavar="OUT", help="Output file, folder, URL (s3://bucket/clean/), or - for stdout. Default: next to each input as <stem>_<task>.<ext>.")),
    _param("model", Optional[str], typer.Option(None, "--model", metavar="NAME", help="Zoo model name instead of the task's default (see `restore models list`).")),
    _param("weights", Optional[Path], typer.Option(None, "--weights", metavar="CKPT", help="Any Restormer checkpoint file (.pth/.safetensors) instead of a zoo model, or an .onnx graph from `restore export` (runs on ONNX Runtime).")),
    _param("tile", str, typer.Option("auto", "--tile", metavar="auto|0|N", help="Tile side in pixels, auto (fit --max-memory) or 0 (whole image).")),
    _param("overlap", int, typer.Option(32, "--overlap", min=0, metavar="N", help="Overlap between tiles, in pixels.")),
    _param("max_memory", Optional[str], typer.Option(None, "--max-memory", metavar="SIZE", help="Memory budget such as 2GB (default: a safe share of free memory).")),
    _param("device", str, typer.Option("auto", "--device", metavar="auto|cpu|cuda[:N]", help="Where to compute (mps on Apple silicon). ONNX models: also tensorrt, directml, coreml, openvino.")),
    _param("precision", str, typer.Option("auto", "--precision", metavar="auto|fp32|bf16|fp16", help="auto (fp32), fp32, bf16 (CPUs with native bf16, Ampere+ GPUs), or fp16 (CUDA only).")),
    _param("allow_slow_precision", bool, typer.Option(False, "--allow-slow-precision", help="Run --precision bf16/fp16 even where this hardware emulates it (many times slower than fp32).")),
    _param("tlc", bool, typer.Option(False, "--tlc", help="Test-time local statistics (TLC, Chu et al. 2022): attention over windows of about the training size instead of the whole image. Off by default.")),
    _param("tlc_window", Optional[int], typer.Option(None, "--tlc-window", metavar="N", help="TLC's window side in pixels (default 384); implies --tlc.")),
    _param("recursive", bool, typer.Option(False, "--recursive", "-r", help="Include subfolders, mirroring the tree under -o.")),
    _param("overwrite", bool, typer.Option(False, "--overwrite", help="Replace outputs that already exist (never an input).")),
    _param("skip_existing", bool, typer.Option(False, "--skip-existing", help="Keep outputs that already exist: resume a big batch.")),
    _param("suffix", Optional[str], typer.Option(None, "--suffix", metavar="TEXT", help="Text added to each output's name (default: _<task> next to the input, none in an -o folder).")),
    _param("files_from", Optional[str], typer.Option(None, "--files-from", metavar="FILE", help="Also restore the files named in FILE (- for stdin), one per line, in one process: find ... | restore denoise --files-from - -o out/.")),
    _param("null", bool, typer.Option(False, "-0", "--null", help="--files-from names are NUL-separated (find -print0): names may contain newlines.")),
    _param("format", Optional[Literal["png", "jpg", "tif", "webp", "bmp", "heic", "avif", "jxl"]], typer.Option(None, "--format", metavar="png|jpg|tif|webp|bmp|heic|avif|jxl", help="Output format (default: the input's; 16-bit TIFF for camera RAW; PNG for stdout).")),
    _param("quality", int, typer.Option(95, "--quality", min=1, max=100, metavar="1-100", help="JPEG/WebP/HEIC/AVIF/JXL quality; 100 is lossless for HEIC, AVIF and JXL.")),
    _param("max_pixels", Optional[int], typer.Option(None, "--max-pixels", min=1, metavar="N", help=f"Refuse images larger than N pixels (width x height) before decoding them; raise it for trusted huge files. Default: {MAX_PIXELS:,}.")),
    _param("as_json", bool, typer.Option(False, "--json", help="One JSON line per image and a summary on stdout (see README, JSON output).")),
    _param("quiet", bool, typer.Option(False, "--quiet", "-q", help="No progress, per-image lines or summary on stderr (errors are still shown).")),
    _param("offline", bool, typer.Option(False, "--offline", help="Use only models already in the cache.")),
    _param("debug", bool, typer.Option(False, "--debug", help="restore's own debug log, and tracebacks for unexpected errors.")),
    _param("engine", Literal["local", "ray"], typer.Option("local", "--engine", metavar="local|ray", help="local: this process; ray: a Ray cluster (pip install \"restore-cli[ray]\"; paths or URLs every node can reach).")),
    _param("ray_address", Optional[str], typer.Option(None, "--ray-address", metavar="ADDRESS", help="Ray cluster to join: auto (the one this node is in) or HOST:PORT. Default: $RAY_ADDRESS, else a local Ray on this machine.")),
    _param("workers", Optional[int], typer.Option(None, "--workers", min=1, metavar="N", help="Ray workers, each with its own model (default: as many as the cluster's CPUs/GPUs allow).")),
    _param("cpus_per_worker", Optional[float], typer.Option(None, "--cpus-per-worker", metavar="N", help="CPUs each Ray worker reserves (and its torch threads). Default: 1.")),
    _param("gpus_per_worker", Optional[float], typer.Option(None, "--gpus-per-worker", metavar="N", help="GPUs each Ray worker reserves; fractions share a GPU (0.5: two models per GPU). Default: 0.")),
    _param("threads", threads.THREADS_TYPE, threads.option()),  # every command's, defined in cli/threads.py
    # How much of the restoration is kept, how outputs are written and shown, how RAWs are developed.
    _param("strength", float, typer.Option(1.0, "--strength", min=0.0, max=1.0, metavar="0-1", help="Keep this much of the restoration: input + S x (restored - input), per pixel. 0 returns the input, 1 (default) the model's output.")),
    _param("depth", Optional[int], typer.Option(None, "--depth", metavar="8|16|32", help="Output bits per sample (default: the input's). 16: PNG, TIFF, JXL (HEIC/AVIF: 12); 32: float TIFF, the model's output unquantised.")),
    _param("compare", Optional[str], typer.Option(None, "--compare", metavar="FILE|FOLDER", help="Also write a before/after view (input and output, and the most changed region at 100 %); a folder for a batch.")),
    _param("compare_layout", Layout, typer.Option("auto", "--compare-layout", metavar=_choices(Layout), help="--compare view: side by side, or one picture split down the middle (auto: split when side by side would be small).")),
    _param("raw_wb", WhiteBalance, typer.Option("camera", "--raw-wb", metavar=_choices(WhiteBalance), help="Camera RAW white balance: as the camera measured it, or estimated from the picture.")),
    _param("raw_demosaic", Demosaic, typer.Option("ahd", "--raw-demosaic", metavar=_choices(Demosaic), help="Camera RAW demosaicing (LibRaw's algorithms; ahd is its default).")),
    _param("storage_option", Optional[List[str]], typer.Option(None, "--storage-option", metavar="KEY=VALUE", help="Passed to the object store's fsspec filesystem for URLs (e.g. endpoint_url=http://127.0.0.1:9000); repeatable. Credentials come from the store's own configuration (docs/storage.md).")),
    _param("video_codec", Optional[str], typer.Option(None, "--video-codec", metavar="NAME", help="Videos: the FFmpeg encoder for the picture (libx264, libx265, libvpx-vp9, libsvtav1, ffv1, ...). Default: the input's codec.")),
    _param("crf", Optional[int], typer.Option(None, "--crf", min=0, metavar="N", help="Videos: the encoder's constant quality, lower is better (default: visually lossless, e.g. 17 for libx264).")),
]
SIGMA = _param("sigma", Optional[int], typer.Option(None, "--sigma", metavar="15|25|50", help="Noise level 15, 25 or 50: use the non-blind Gaussian denoiser."))
DUAL_PIXEL = _param("dual_pixel", bool, typer.Option(False, "--dual-pixel", help="INPUTs are LEFT RIGHT views of a dual-pixel capture."))


WEIGHTS_REQUIRED = _param("weights", Path, typer.Option(..., "--weights", metavar="CKPT", help="Restormer checkpoint (.pth or .safetensors; its configuration is read from the file), or an .onnx graph from `restore export`."))


