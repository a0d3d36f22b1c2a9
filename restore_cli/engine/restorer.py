"""Run a Restormer over images of any size within a memory budget.

The official demo either runs the whole image (and runs out of memory on real photos) or
averages tiles uniformly (and leaves seams). ``Restorer`` pads to the network's multiple of
8, runs the whole image when it fits and otherwise streams overlapping tiles, blended with
smooth windows from :mod:`restore_cli.engine.tiling`, into one preallocated output buffer.
The tile comes from :mod:`restore_cli.engine.budget`; device and precision from
:mod:`restore_cli.engine.device`.
"""

from __future__ import annotations

import logging
from dataclasses import replace
from typing import Callable, Union

import numpy as np
import psutil
import torch
import torch.nn.functional as F
from torch import nn

from restore_cli.engine.allocator import release_freed_memory, reuse_freed_memory
from restore_cli.engine.budget import (
    MEMORY_MODELS,
    MIN_AUTO_TILE,
    TLC_MEMORY_FACTOR,
    MemoryModel,
    choose_tile,
    default_memory_budget,
    parse_memory_size,
)
from restore_cli.engine.device import PRECISIONS, Precision, autocast_context, resolve_device, resolve_precision
from restore_cli.engine.profile import TileSpeed, cpu_speed
from restore_cli.engine.tiling import Blend, TilePlan, padded_length, plan_tiles
from restore_cli.errors import MemoryBudgetError, setting
from restore_cli.model.restormer import SIZE_MULTIPLE

logger = logging.getLogger(__name__)

Progress = Callable[[int, int], None]
"""Called with (tiles done, tiles total) after each batch of tiles."""
ImageArray = Union[torch.Tensor, np.ndarray]

MAX_AUTO_BATCH = 8


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

    ``tile``: ``"auto"`` (see :func:`choose_tile`: on the CPU the fastest tiling fitted to
    the image within ``max_memory`` by :meth:`speed_profile`, the whole image when that is
    fastest; elsewhere the largest tile that fits), ``0`` or ``None`` (always the whole image), or a side length in pixels.
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
                f"statistics cover the whole tile, as without {setting('tlc')}", self.tile, tlc_window,
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
                f"out of GPU memory even with {MIN_AUTO_TILE}-pixel tiles; free GPU memory or use {setting('device')} cpu"
            )
        logger.warning("CUDA out of memory; retrying with %d-pixel tiles", tile)
        return plan_tiles(plan.height, plan.width, tile, self.overlap, blend=self.blend), 1

    def _run_plan(
        self, padded: torch.Tensor, plan: TilePlan, batch: int, output: torch.Tensor, progress: Progress | None
    ) -> None:
        if len(plan) == 1:
            output.copy_(self.forward(padded)[0, :, : plan.height, : plan.width].clamp(0, 1))
            _report(progress, 1, 1)
            return
        output.zero_()
        done = 0
        tiles = list(plan.tiles())
        for first in range(0, len(tiles), batch):
            chunk = tiles[first : first + batch]
            results = self.forward(torch.cat([_crop(padded, plan, i, j) for i, j in chunk]))
            for (i, j), result in zip(chunk, results):
                _accumulate(output, plan, i, j, result)
            done += len(chunk)
            _report(progress, done, len(tiles))
        output /= torch.from_numpy(plan.rows.total[: plan.height, None])
        output /= torch.from_numpy(plan.cols.total[None, : plan.width])
        output.clamp_(0, 1)

    def forward(self, batch: torch.Tensor) -> torch.Tensor:
        """One pass of the network over ``batch`` (NCHW, sides multiples of 8; call it under
        ``torch.inference_mode()``): the model output on the CPU in fp32. Half-precision
        results that overflowed to inf/NaN are recomputed in fp32 instead of being written
        out as black pixels. ``restore bench --calibrate`` times exactly this."""
        inputs = batch.to(self.device)
        with autocast_context(self.device, self.dtype):
            outputs = self.model(inputs).float()
        if self.dtype != torch.float32:
            bad = ~torch.isfinite(outputs).flatten(1).all(dim=1)
            if bad.any():
                logger.warning("%d tile(s) overflowed in %s; recomputed in fp32", int(bad.sum()), self.dtype)
                outputs[bad] = self.model(inputs[bad]).float()
        return outputs.cpu()

    def _auto_tile(self, height: int, width: int) -> tuple[int, int] | None:
        return choose_tile(
            self._available_bytes(height, width), self.memory_model(), self.config.dim,
            height, width, batch=self._batch_floor(), speed=self.speed_profile(), overlap=self.overlap,
            min_tile=self.tlc_window or 0,
        )

    def speed_profile(self) -> TileSpeed | None:
        """The speed curve ``tile="auto"`` plans with: on the CPU, the one measured on this
        machine for this width, precision, thread count and torch (``restore bench
        --calibrate``), else the built-in one; ``None`` elsewhere (the largest tile that
        fits wins). Looked up per image, so a calibration counts from the next image on."""
        if self.device.type != "cpu":
            return None
        precision = next(name for name, dtype in PRECISIONS.items() if dtype == self.dtype)
        return cpu_speed(self.config.dim, precision)

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
    """HWC (or HW) numpy in, same layout out: the shape restore_cli.io.decode decodes to."""
    if image.ndim not in (2, 3):
        raise ValueError(f"expected an H x W or H x W x C array, got shape {image.shape}")
    planar = image[None, None] if image.ndim == 2 else image.transpose(2, 0, 1)[None]
    tensor = torch.from_numpy(np.ascontiguousarray(planar, dtype=np.float32))
    restored = restorer.restore(tensor, progress)[0]
    if image.ndim == 2 and restored.shape[0] == 1:
        return restored[0].numpy()
    return restored.permute(1, 2, 0).contiguous().numpy()
