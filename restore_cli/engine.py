"""Run a Restormer over images of any size within a memory budget.

The official demo either runs the whole image (and runs out of memory on real photos) or
averages tiles uniformly (and leaves seams). ``Restorer`` pads to the network's multiple of
8, runs the whole image when it fits and otherwise streams overlapping tiles, blended with
smooth windows from :mod:`restore_cli.tiling`, into one preallocated output buffer.

Tile size comes from a memory model measured with ``benchmarks/memory_per_pixel.py``
(peak activation bytes grow linearly with the pixels in a forward pass) and, on the CPU,
from a speed curve measured with ``benchmarks/tile_speed.py`` (seconds per pixel against
the pass size).
"""

from __future__ import annotations

import contextlib
import ctypes
import functools
import logging
import math
import re
import sys
from dataclasses import dataclass, replace
from typing import Callable, ContextManager, Literal, Union

import numpy as np
import psutil
import torch
import torch.nn.functional as F
from torch import nn

from restore_cli.hardware import CpuInfo, slow_precision_reason
from restore_cli.tiling import Blend, TilePlan, padded_length, plan_tiles
from restore_cli.errors import MemoryBudgetError, SlowPrecisionError

logger = logging.getLogger(__name__)

Precision = Literal["auto", "fp32", "bf16", "fp16"]
Progress = Callable[[int, int], None]
"""Called with (tiles done, tiles total) after each batch of tiles."""
ImageArray = Union[torch.Tensor, np.ndarray]

SIZE_MULTIPLE = 8
MIN_AUTO_TILE = 64
"""Smaller tiles see too little context for Restormer's channel attention to be useful."""
MAX_AUTO_BATCH = 8
BUDGET_FRACTION = {"cpu": 0.5, "cuda": 0.7}
"""Share of available RAM / free VRAM that ``max_memory=None`` allows. Half of what is free
on the CPU, because that RAM belongs to the user's other programs too (a browser, the photo
editor the image came from); on a GPU, room for allocator slack the model does not capture."""

PRECISIONS = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}




@dataclass(frozen=True)
class MemoryModel:
    """Peak memory of one forward pass: ``fixed + per_pixel_per_dim * dim * pixels``.

    Activations scale with the network width ``dim`` (every feature map is a multiple of
    it) and not with depth (blocks run one after another and free their inputs).
    """

    fixed: int
    per_pixel_per_dim: float

    def forward_bytes(self, dim: int, pixels: int) -> int:
        return int(self.fixed + self.per_pixel_per_dim * dim * pixels)

    def max_pixels(self, dim: int, budget: int) -> int:
        return max(0, int((budget - self.fixed) / (self.per_pixel_per_dim * dim)))


MEMORY_MODELS = {
    torch.float32: MemoryModel(fixed=256 * 2**20, per_pixel_per_dim=10_500 / 48),
    torch.bfloat16: MemoryModel(fixed=256 * 2**20, per_pixel_per_dim=6_000 / 48),
    torch.float16: MemoryModel(fixed=256 * 2**20, per_pixel_per_dim=6_000 / 48),
}
"""Upper envelopes of the CPU measurements of the full model (dim 48) in
benchmarks/README.md, whose line fits were 135 MiB + 9904 B/pixel (fp32) and 137 MiB +
5390 B/pixel (bf16 autocast, which keeps normalisation in fp32, hence more than half).
fp16 is assumed to match bf16; on CUDA the caching allocator was not measured."""

TLC_MEMORY_FACTOR = 1.2
"""Per-pixel memory with TLC's local statistics relative to global attention: its per-cell
buffers fragment the heap, and a 384 x 384 pass peaked at up to 1.2x the global pass's
(fp32, benchmarks/README.md); the plan allows for it."""


def resolve_device(device: str | torch.device = "auto") -> torch.device:
    """``auto`` prefers CUDA, then Apple's MPS, then the CPU."""
    if str(device) != "auto":
        resolved = torch.device(device)
        if resolved.type == "cuda" and not torch.cuda.is_available():
            raise ValueError(f"device {device!r} requested but CUDA is not available; use --device cpu")
        return resolved
    if torch.cuda.is_available():
        return torch.device("cuda")
    if torch.backends.mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")


def resolve_precision(
    precision: Precision, device: torch.device, allow_slow: bool = False, cpu: CpuInfo | None = None
) -> torch.dtype:
    """The dtype to compute in; a half precision this hardware would emulate is refused
    (:class:`SlowPrecisionError`) unless ``allow_slow``. ``cpu`` replaces this machine's CPU
    (for tests).

    ``auto`` is fp32 everywhere. On the CPU the default fp32 path already runs the official
    procedure's work about 2.3x faster at 512x512 while matching it to float rounding (at
    most 1 level in 8-bit); bf16 roughly doubles that again where it is native but moves
    outputs by a few levels (about 52 dB with random weights), and on CPUs without native
    bf16 it is 15-90x slower. fp16/bf16 speed on GPUs is unmeasured. See benchmarks/README.md."""
    if precision == "auto":
        return torch.float32
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of auto, {', '.join(PRECISIONS)}; got {precision!r}")
    if precision == "fp16" and device.type != "cuda":
        raise ValueError("fp16 needs a CUDA device; use --precision fp32 on the CPU")
    reason = slow_precision_reason(PRECISIONS[precision], device, cpu)
    if reason is not None and not allow_slow:
        raise SlowPrecisionError(
            f"--precision {precision}: {reason}; use --precision fp32 (or auto), "
            "or add --allow-slow-precision to run it anyway"
        )
    return PRECISIONS[precision]


def autocast_context(device: torch.device, dtype: torch.dtype) -> ContextManager:
    """Half precision through autocast: weights stay fp32 (so the NaN fallback needs no
    second copy) and autocast keeps reductions such as normalisation in fp32."""
    if dtype == torch.float32:
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.type, dtype=dtype)


_SIZE_UNITS = {"": 1, "b": 1, "k": 10**3, "m": 10**6, "g": 10**9, "t": 10**12,
               "ki": 2**10, "mi": 2**20, "gi": 2**30, "ti": 2**40}


def parse_memory_size(size: str | int) -> int:
    """Bytes from ``2GB``, ``1.5GiB``, ``512M`` or a plain number of bytes."""
    if isinstance(size, int):
        return size
    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([kmgt]i?)?b?\s*", size.lower())
    if not match:
        raise ValueError(f"cannot read memory size {size!r}; write it like 2GB, 512MiB or 1.5G")
    return int(float(match.group(1)) * _SIZE_UNITS[match.group(2) or ""])


def default_memory_budget(device: torch.device) -> int:
    """What this process may use in total: a safe share of what the machine has free now,
    on top of what the process already holds."""
    if device.type == "cuda":
        free, _ = torch.cuda.mem_get_info(device)
        return torch.cuda.memory_allocated(device) + int(free * BUDGET_FRACTION["cuda"])
    held = psutil.Process().memory_info().rss
    return held + int(psutil.virtual_memory().available * BUDGET_FRACTION["cpu"])


def smallest_budget(device: torch.device) -> int:
    """The least memory budget anything can run in: what the process holds now plus the
    fixed cost of a forward pass, before a single pixel. A budget below it can only fail."""
    held = torch.cuda.memory_allocated(device) if device.type == "cuda" else psutil.Process().memory_info().rss
    return held + min(model.fixed for model in MEMORY_MODELS.values())


_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3
_C_INT_MAX = 2**31 - 1


@functools.lru_cache(maxsize=None)
def _glibc() -> ctypes.CDLL | None:
    if not sys.platform.startswith("linux"):
        return None
    try:
        libc = ctypes.CDLL("libc.so.6")
        return libc if hasattr(libc, "mallopt") and hasattr(libc, "malloc_trim") else None
    except OSError:
        return None


def reuse_freed_memory() -> bool:
    """Make glibc keep freed feature maps for reuse instead of unmapping them.

    By default every allocation above 32 MiB is a fresh mmap, so each layer of a large
    forward pass page-faults its output into existence and zeroes it: measured here, 3-4
    million faults per 256x256 pass and a third or more of its time, growing faster than
    the pixels. With the thresholds raised, buffers are recycled and a second pass takes
    no faults. The threshold is the largest mallopt accepts (2 GiB), which still holds the
    widest map of the full model (510 channels, fp32) for a whole 1024 x 1024 image; with
    1 GiB, 1024 x 1024 ran 1.4x slower per pixel than 512 x 512. Process-wide; returns
    whether it took effect (glibc only).
    """
    libc = _glibc()
    if libc is None:
        return False
    return bool(libc.mallopt(_M_MMAP_THRESHOLD, _C_INT_MAX) and libc.mallopt(_M_TRIM_THRESHOLD, _C_INT_MAX))


def release_freed_memory() -> None:
    """Hand recycled buffers back to the OS, so RSS (which the tile budget is measured
    against) reflects what the process holds, not the last image's peak."""
    libc = _glibc()
    if libc is not None:
        libc.malloc_trim(0)


def _tune_process(device: torch.device) -> None:
    """On the CPU, recycle freed memory; on CUDA, let cuDNN pick the fastest kernels for
    the first tile's shape, which every tile of a plan shares."""
    if device.type == "cpu":
        reuse_freed_memory()
    elif device.type == "cuda":
        torch.backends.cudnn.benchmark = True


def pad_to_multiple(image: torch.Tensor, multiple: int = SIZE_MULTIPLE) -> torch.Tensor:
    """Grow NCHW ``image`` at the bottom and right to multiples of ``multiple``.

    Reflection continues image structure into the pad, which the network handles better
    than a flat edge; it needs the pad to be smaller than the side, so tiny images fall
    back to replicating the last row/column.
    """
    height, width = image.shape[-2:]
    image = _pad_axis(image, -(-height // multiple) * multiple - height, dim=-2)
    return _pad_axis(image, -(-width // multiple) * multiple - width, dim=-1)


def _pad_axis(image: torch.Tensor, amount: int, dim: int) -> torch.Tensor:
    if amount == 0:
        return image
    mode = "reflect" if amount < image.shape[dim] else "replicate"
    pad = (0, 0, 0, amount) if dim == -2 else (0, amount, 0, 0)
    return F.pad(image, pad, mode=mode)


class Restorer:
    """Restores images of any size with one model, loaded once and reused.

    ``tile``: ``"auto"`` (see :func:`choose_tile`: on the CPU the fastest measured tile
    within ``max_memory``, the whole image when it is small; elsewhere the largest tile that
    fits), ``0`` or ``None`` (always the whole image), or a side length in pixels.
    ``max_memory``: bytes or a string like ``"2GB"``; the whole process on the CPU, the GPU
    memory on CUDA. ``blend="uniform"`` reproduces the official demo's averaging, for
    comparison only.

    ``tune_process`` switches on process-wide speed settings (see :func:`_tune_process`);
    benchmarks turn it off to reproduce the official procedure. The model runs in its
    channels-last formulation unless ``model.channels_last`` was turned off.
    ``allow_slow_precision`` accepts a half precision this hardware would emulate.

    ``tlc_window``: TLC (Chu et al., ECCV 2022): attention statistics over windows of this
    many pixels instead of the whole image (384 is the published choice); ``None``, the
    default, is the paper's global attention. It is set on ``model`` (see
    :attr:`~restore_cli.model.restormer.Restormer.tlc_window`).
    """

    def __init__(
        self,
        model: nn.Module,
        device: str | torch.device = "auto",
        precision: Precision = "auto",
        tile: int | str | None = "auto",
        overlap: int = 32,
        max_memory: int | str | None = None,
        batch_size: int | str = "auto",
        blend: Blend = "smooth",
        tune_process: bool = True,
        tlc_window: int | None = None,
        allow_slow_precision: bool = False,
    ) -> None:
        self.device = resolve_device(device)
        self.dtype = resolve_precision(precision, self.device, allow_slow_precision)
        model.tlc_window = tlc_window
        self.tlc_window = tlc_window
        self.model = model.eval().to(self.device)
        if tune_process:
            _tune_process(self.device)
        self.config = model.config
        self.tile = _check_tile(tile)
        if tlc_window is not None and isinstance(self.tile, int) and self.tile < tlc_window:
            logger.warning(
                "%d-pixel tiles are narrower than the %d-pixel TLC window: each tile's attention "
                "statistics cover the whole tile, as without --tlc", self.tile, tlc_window,
            )
        if overlap < 0:
            raise ValueError(f"overlap must be >= 0, got {overlap}")
        self.overlap = overlap
        self.max_memory = None if max_memory is None else parse_memory_size(max_memory)
        if batch_size != "auto" and (not isinstance(batch_size, int) or batch_size < 1):
            raise ValueError(f"batch_size must be 'auto' or a positive integer, got {batch_size!r}")
        self.batch_size = batch_size
        self.blend = blend

    def restore(self, image: ImageArray, progress: Progress | None = None) -> ImageArray:
        """Restore float [0, 1] ``image``: an NCHW tensor, or an HWC / HW numpy array.
        Returns the same type and spatial size (channels are the model's output channels)."""
        if isinstance(image, np.ndarray):
            return _restore_array(self, image, progress)
        if image.ndim != 4 or image.shape[1] != self.config.in_channels:
            raise ValueError(
                f"expected an N x {self.config.in_channels} x H x W tensor, got shape {tuple(image.shape)}"
            )
        image = image.detach().to("cpu", torch.float32)
        batch, _, height, width = image.shape
        output = torch.empty(batch, self.config.out_channels, height, width)
        try:
            with torch.inference_mode():
                for index in range(batch):
                    self._restore_one(image[index : index + 1], output[index], progress)
        finally:
            if self.device.type == "cpu":
                release_freed_memory()
        return output

    def plan(self, height: int, width: int) -> tuple[TilePlan, int]:
        """The tile plan and batch size ``restore`` would use for a ``height`` x ``width``
        image; exposed so callers can report or test the memory decision."""
        if self.tile is None:
            return plan_tiles(height, width, None, self.overlap, blend=self.blend), 1
        tile = self.tile if self.tile != "auto" else self._auto_tile(height, width)
        plan = plan_tiles(height, width, tile, self.overlap, blend=self.blend)
        return plan, self._batch_size(plan)

    def _restore_one(self, image: torch.Tensor, output: torch.Tensor, progress: Progress | None) -> None:
        height, width = image.shape[-2:]
        plan, batch = self.plan(height, width)
        padded = pad_to_multiple(image)
        while True:
            try:
                return self._run_plan(padded, plan, batch, output, progress)
            except torch.cuda.OutOfMemoryError:
                pass  # shrink outside the handler: the traceback pins the failed pass's tensors
            plan, batch = self._shrink(plan, batch)

    def _shrink(self, plan: TilePlan, batch: int) -> tuple[TilePlan, int]:
        """After a CUDA out-of-memory error: fewer tiles per pass first, then smaller tiles."""
        torch.cuda.empty_cache()
        if batch > 1:
            return plan, batch // 2
        tile = max(plan.tile_height, plan.tile_width) * 3 // 4 // SIZE_MULTIPLE * SIZE_MULTIPLE
        if tile < MIN_AUTO_TILE:
            raise MemoryBudgetError(
                f"out of GPU memory even with {MIN_AUTO_TILE}-pixel tiles; free GPU memory or use --device cpu"
            )
        logger.warning("CUDA out of memory; retrying with %d-pixel tiles", tile)
        return plan_tiles(plan.height, plan.width, tile, self.overlap, blend=self.blend), 1

    def _run_plan(
        self, padded: torch.Tensor, plan: TilePlan, batch: int, output: torch.Tensor, progress: Progress | None
    ) -> None:
        if len(plan) == 1:
            output.copy_(self._forward(padded)[0, :, : plan.height, : plan.width].clamp(0, 1))
            _report(progress, 1, 1)
            return
        output.zero_()
        done = 0
        tiles = list(plan.tiles())
        for first in range(0, len(tiles), batch):
            chunk = tiles[first : first + batch]
            results = self._forward(torch.cat([_crop(padded, plan, i, j) for i, j in chunk]))
            for (i, j), result in zip(chunk, results):
                _accumulate(output, plan, i, j, result)
            done += len(chunk)
            _report(progress, done, len(tiles))
        output /= torch.from_numpy(plan.rows.total[: plan.height, None])
        output /= torch.from_numpy(plan.cols.total[None, : plan.width])
        output.clamp_(0, 1)

    def _forward(self, batch: torch.Tensor) -> torch.Tensor:
        """Model output on the CPU in fp32. Half-precision results that overflowed to
        inf/NaN are recomputed in fp32 instead of being written out as black pixels."""
        inputs = batch.to(self.device)
        with autocast_context(self.device, self.dtype):
            outputs = self.model(inputs).float()
        if self.dtype != torch.float32:
            bad = ~torch.isfinite(outputs).flatten(1).all(dim=1)
            if bad.any():
                logger.warning("%d tile(s) overflowed in %s; recomputed in fp32", int(bad.sum()), self.dtype)
                outputs[bad] = self.model(inputs[bad]).float()
        return outputs.cpu()

    def _auto_tile(self, height: int, width: int) -> int | None:
        return choose_tile(
            self._available_bytes(height, width), self.memory_model(), self.config.dim,
            height, width, batch=self._batch_floor(),
            speed=CPU_TILE_SPEED if self.device.type == "cpu" else None, overlap=self.overlap,
            min_tile=self.tlc_window or 0,
        )

    def memory_model(self) -> MemoryModel:
        """What the tile plan assumes a forward pass needs: the precision's model, with
        TLC's allowance when it is on."""
        memory = MEMORY_MODELS[self.dtype]
        if self.tlc_window is None:
            return memory
        return replace(memory, per_pixel_per_dim=memory.per_pixel_per_dim * TLC_MEMORY_FACTOR)

    def _available_bytes(self, height: int, width: int) -> int:
        """The budget left after what the process holds now and the buffers restore() is
        about to allocate (padded input copy, output); those stay on the host under CUDA."""
        budget = self.max_memory if self.max_memory is not None else default_memory_budget(self.device)
        if self.device.type == "cuda":
            return budget - torch.cuda.memory_allocated(self.device)
        return budget - psutil.Process().memory_info().rss - self._buffer_bytes(height, width)

    def _buffer_bytes(self, height: int, width: int) -> int:
        padded = (padded_length(height), padded_length(width))
        input_copy = self.config.in_channels * padded[0] * padded[1] if padded != (height, width) else 0
        return 4 * (input_copy + self.config.out_channels * height * width)

    def _batch_floor(self) -> int:
        return self.batch_size if isinstance(self.batch_size, int) else 1

    def _batch_size(self, plan: TilePlan) -> int:
        """Several tiles per pass only on accelerators, where it raises throughput; on the
        CPU a bigger batch only costs memory."""
        if self.batch_size != "auto":
            return self.batch_size
        if self.device.type == "cpu" or len(plan) == 1:
            return 1
        memory = self.memory_model()
        pixels = memory.max_pixels(self.config.dim, self._available_bytes(plan.height, plan.width))
        fits = pixels // (plan.tile_height * plan.tile_width)
        return max(1, min(MAX_AUTO_BATCH, fits, len(plan)))


@dataclass(frozen=True)
class TileSpeed:
    """Measured seconds per megapixel of one forward pass against its size: ``points`` are
    (side, s/Mpix) of side x side passes, by increasing side."""

    points: tuple[tuple[int, float], ...]

    @property
    def sides(self) -> tuple[int, ...]:
        return tuple(side for side, _ in self.points)

    def seconds_per_mpix(self, pixels: int) -> float | None:
        """Linear in the side between measured points, flat below the smallest; ``None``
        above the largest, where nothing was measured (the cost per pixel grows there)."""
        side = math.sqrt(pixels)
        if side > self.points[-1][0]:
            return None
        upper = next(index for index, (measured, _) in enumerate(self.points) if measured >= side)
        if upper == 0:
            return self.points[0][1]
        (low_side, low_cost), (high_side, high_cost) = self.points[upper - 1], self.points[upper]
        return low_cost + (high_cost - low_cost) * (side - low_side) / (high_side - low_side)

    def plan_seconds(self, plan: TilePlan) -> float | None:
        """Estimated time of every pass of ``plan``, overlaps computed twice as they are."""
        pixels = plan.tile_height * plan.tile_width
        rate = self.seconds_per_mpix(pixels)
        return None if rate is None else len(plan) * pixels * rate / 1e6


CPU_TILE_SPEED = TileSpeed(((128, 142.2), (256, 139.3), (384, 132.6), (512, 138.0), (640, 140.1), (768, 152.6)))
"""CPU seconds per Mpix of a warm full-model fp32 pass (benchmarks/tile_speed.py, 1 thread,
Intel Xeon Sapphire Rapids, shared machine; see benchmarks/README.md). Flat within noise up
to 640: what decides is the overlap computed twice, so large tiles win. Sides above 768 are
left out on purpose: 1024-pixel passes cost 1.2-1.5x per pixel (page faults) and ~11 GB."""


def choose_tile(
    available: int, memory: MemoryModel, dim: int, height: int, width: int, batch: int = 1,
    speed: TileSpeed | None = None, overlap: int = 0, min_tile: int = 0,
) -> int | None:
    """The tile side (a multiple of 8) for ``tile="auto"``; ``None`` for the whole image.

    With ``speed`` (on the CPU, where large passes cost more per pixel): the fastest of the
    whole image and the measured sides whose pass of ``batch`` tiles fits in ``available``
    bytes, by the estimated time of each plan, overlaps included; on a tie the whole
    image, then the larger tile (fewer passes) wins. Without it, or when no measured side fits: the largest square tile that fits,
    and the whole image whenever it fits. Measured sides below ``min_tile`` (TLC's window,
    so that windows lie whole inside tiles) are not considered."""
    pixels = memory.max_pixels(dim, available) // batch
    if speed is not None:
        timed = []
        for tile in (None, *(side for side in speed.sides if side >= min_tile)):
            plan = plan_tiles(height, width, tile, overlap)
            seconds = speed.plan_seconds(plan)
            if seconds is not None and plan.tile_height * plan.tile_width <= pixels:
                timed.append((seconds, tile))
        if timed:
            return min(timed, key=lambda entry: (entry[0], entry[1] is not None, -(entry[1] or 0)))[1]
    if padded_length(height) * padded_length(width) <= pixels:
        return None
    tile = math.isqrt(pixels) // SIZE_MULTIPLE * SIZE_MULTIPLE
    if tile < MIN_AUTO_TILE:
        needed = batch * memory.forward_bytes(dim, MIN_AUTO_TILE**2)
        raise MemoryBudgetError(
            f"the memory budget leaves {available / 2**20:.0f} MiB for the model, but even "
            f"{MIN_AUTO_TILE}-pixel tiles need {needed / 2**20:.0f} MiB; raise --max-memory or free memory"
        )
    return tile


def _check_tile(tile: int | str | None) -> int | str | None:
    if isinstance(tile, str) and tile.isdigit():
        tile = int(tile)
    if tile in (None, 0):
        return None
    if tile == "auto":
        return tile
    if not isinstance(tile, int) or tile < SIZE_MULTIPLE:
        raise ValueError(f"tile must be 'auto', 0 (whole image) or at least {SIZE_MULTIPLE} pixels, got {tile!r}")
    return tile


def _crop(padded: torch.Tensor, plan: TilePlan, i: int, j: int) -> torch.Tensor:
    top, left = plan.rows.starts[i], plan.cols.starts[j]
    return padded[:, :, top : top + plan.tile_height, left : left + plan.tile_width]


def _accumulate(output: torch.Tensor, plan: TilePlan, i: int, j: int, result: torch.Tensor) -> None:
    """Add a weighted tile into the unpadded output; the part over the padding is dropped."""
    top, left = plan.rows.starts[i], plan.cols.starts[j]
    rows = min(plan.tile_height, plan.height - top)
    cols = min(plan.tile_width, plan.width - left)
    if rows <= 0 or cols <= 0:
        return
    weight = torch.from_numpy(plan.window(i, j)[:rows, :cols])
    output[:, top : top + rows, left : left + cols].addcmul_(result[:, :rows, :cols], weight)


def _report(progress: Progress | None, done: int, total: int) -> None:
    if progress is not None:
        progress(done, total)


def _restore_array(restorer: Restorer, image: np.ndarray, progress: Progress | None) -> np.ndarray:
    """HWC (or HW) numpy in, same layout out: the shape images.py decodes to."""
    if image.ndim not in (2, 3):
        raise ValueError(f"expected an H x W or H x W x C array, got shape {image.shape}")
    planar = image[None, None] if image.ndim == 2 else image.transpose(2, 0, 1)[None]
    tensor = torch.from_numpy(np.ascontiguousarray(planar, dtype=np.float32))
    restored = restorer.restore(tensor, progress)[0]
    if image.ndim == 2 and restored.shape[0] == 1:
        return restored[0].numpy()
    return restored.permute(1, 2, 0).contiguous().numpy()
