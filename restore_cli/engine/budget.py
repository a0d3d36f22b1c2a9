"""How big a tile may be: memory per pixel of a forward pass, the memory this process may use,
and, on the CPU, tiles fitted to the image and timed by the speed profile, so ``tile="auto"``
picks the fastest plan that fits.

The memory model was measured with ``benchmarks/memory_per_pixel.py`` (peak activation bytes
grow linearly with the pixels in a forward pass); the speed curve is
:mod:`restore_cli.engine.profile`'s (seconds per pixel against the pass size).
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

import psutil
import torch

from restore_cli.engine.profile import TileSpeed
from restore_cli.engine.tiling import TileShape, axis_tiles, fitted_length, padded_length
from restore_cli.errors import MemoryBudgetError, setting
from restore_cli.model.restormer import SIZE_MULTIPLE

MIN_AUTO_TILE = 64
"""Smaller tiles see too little context for Restormer's channel attention to be useful."""
BUDGET_FRACTION = {"cpu": 0.5, "cuda": 0.7}
"""Share of available RAM / free VRAM that ``max_memory=None`` allows. Half of what is free
on the CPU, because that RAM belongs to the user's other programs too (a browser, the photo
editor the image came from); on a GPU, room for allocator slack the model does not capture."""


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


PLAN_TOLERANCE = 0.05
"""Plans whose estimated times are this close count as equally fast. A measured curve is
good to a few percent, while the pixels a plan computes are exact: between such plans the
one computing the fewest pixels wins, then the one with fewer tiles."""


def choose_tile(
    available: int, memory: MemoryModel, dim: int, height: int, width: int, batch: int = 1,
    speed: TileSpeed | None = None, overlap: int = 0, min_tile: int = 0,
) -> TileShape | None:
    """The tile (height, width), multiples of 8, for ``tile="auto"``; ``None`` for the whole image.

    With ``speed`` (on the CPU, where the cost per pixel depends on the pass's size): among
    the tilings fitted to the image (:func:`fitted_tilings`) whose pass of ``batch`` tiles
    fits in ``available`` bytes, the fastest by the curve, overlaps included (of those
    within :data:`PLAN_TOLERANCE` of it, the one computing the fewest pixels). Without it, or
    when not even the smallest tiling fits: the largest square tile that fits, and the whole
    image whenever it fits. Tiles narrower than ``min_tile`` (TLC's window, so that windows
    lie whole inside tiles) are considered only along an axis shorter than it."""
    pixels = memory.max_pixels(dim, available) // batch
    if speed is not None:
        timed = _timed_tilings(fitted_tilings(height, width, overlap, max(MIN_AUTO_TILE, min_tile)), speed, pixels)
        if timed:
            fastest = min(seconds for seconds, _ in timed)
            close = [(seconds, tiling) for seconds, tiling in timed if seconds <= fastest * (1 + PLAN_TOLERANCE)]
            best = min(close, key=lambda entry: (entry[1].computed_pixels, entry[1].tiles, entry[0]))[1]
            return None if best.tiles == 1 else (best.tile_height, best.tile_width)
    if padded_length(height) * padded_length(width) <= pixels:
        return None
    tile = math.isqrt(pixels) // SIZE_MULTIPLE * SIZE_MULTIPLE
    if tile < MIN_AUTO_TILE:
        needed = batch * memory.forward_bytes(dim, MIN_AUTO_TILE**2)
        raise MemoryBudgetError(
            f"the memory budget leaves {available / 2**20:.0f} MiB for the model, but even "
            f"{MIN_AUTO_TILE}-pixel tiles need {needed / 2**20:.0f} MiB; raise {setting('max_memory')} or free memory"
        )
    return tile, tile


def _timed_tilings(tilings: list[Tiling], speed: TileSpeed, max_pixels: int) -> list[tuple[float, Tiling]]:
    """(estimated seconds, tiling) of those whose tile fits ``max_pixels`` and the curve."""
    timed = []
    for tiling in tilings:
        if tiling.tile_pixels <= max_pixels:
            seconds = speed.plan_seconds(tiling)
            if seconds is not None:
                timed.append((seconds, tiling))
    return timed


@dataclass(frozen=True)
class Tiling:
    """A grid of ``rows`` x ``cols`` tiles of one size, as :func:`plan_tiles` lays it."""

    rows: int
    cols: int
    tile_height: int
    tile_width: int

    @property
    def tiles(self) -> int:
        return self.rows * self.cols

    @property
    def tile_pixels(self) -> int:
        return self.tile_height * self.tile_width

    @property
    def computed_pixels(self) -> int:
        return self.tiles * self.tile_pixels


def fitted_tilings(height: int, width: int, overlap: int, min_side: int = MIN_AUTO_TILE) -> list[Tiling]:
    """Every tiling by count: for each number of rows and of columns, the smallest tile
    that covers the padded image with that many (:func:`fitted_length`), so the only pixels
    computed twice are the overlaps and under 8 pixels of rounding per tile, whatever the
    image's size. A fixed list of sides instead computes up to a third more pixels than the
    image has (a 1024 x 1024 image in 384-pixel tiles: 9 passes, 1.33 Mpix for 1.05).
    Tiles shorter than ``min_side`` appear only along an axis shorter than it (one tile)."""
    across = [_axis_tilings(padded_length(height), overlap, min_side), _axis_tilings(padded_length(width), overlap, min_side)]
    return [Tiling(rows, cols, tile_height, tile_width)
            for rows, tile_height in across[0] for cols, tile_width in across[1]]


def _axis_tilings(length: int, overlap: int, min_side: int) -> list[tuple[int, int]]:
    """(tiles, tile length) along one axis: the whole axis, then 2, 3, ... fitted tiles
    while they stay at least ``min_side`` long."""
    found = [(1, length)]
    for count in range(2, length // SIZE_MULTIPLE + 1):
        size = fitted_length(length, count, overlap)
        if size < min_side:
            break
        if size < found[-1][1]:
            found.append((axis_tiles(length, size, overlap), size))
    return found
