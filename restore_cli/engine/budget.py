"""How big a tile may be: memory per pixel of a forward pass, the memory this process may use,
and, on the CPU, the speed of each pass size, so ``tile="auto"`` picks the fastest plan that fits.

The memory model was measured with ``benchmarks/memory_per_pixel.py`` (peak activation bytes
grow linearly with the pixels in a forward pass) and the speed curve with
``benchmarks/tile_speed.py`` (seconds per pixel against the pass size).
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

import psutil
import torch

from restore_cli.engine.tiling import TilePlan, padded_length, plan_tiles
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
"""CPU seconds per Mpix of a warm full-model fp32 pass, measured on an Intel Xeon Sapphire
Rapids with 1 thread (``python benchmarks/tile_speed.py``; figures in benchmarks/README.md).
The curve is flat up to 640: what decides is the overlap computed twice, so large tiles win.
Sides above 768 are left out: 1024-pixel passes cost 1.2-1.5x per pixel (page faults) and
need about 11 GB."""


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
            f"{MIN_AUTO_TILE}-pixel tiles need {needed / 2**20:.0f} MiB; raise {setting('max_memory')} or free memory"
        )
    return tile
