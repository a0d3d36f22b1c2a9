"""Tile planning and blending windows for images too large to restore in one pass.

Pure geometry on numpy arrays: nothing here knows about models or devices, so the plan can
be tested exhaustively and reused by any executor.

A plan lives on the *padded* canvas: the image grown to a multiple of ``multiple`` (8 for
Restormer), because every tile must be a multiple of 8 and tiles never leave the canvas.
Tile origins are multiples of 8 too, so each tile sees the same PixelUnshuffle grid as the
whole image would, which keeps tiled output close to whole-image output.

Blending weights are separable: a tile's 2-D window is the outer product of one 1-D window
per axis. That makes the normaliser (the sum of all windows at a pixel) the outer product
of two 1-D sums, so the engine never needs an H x W weight accumulator.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Iterator, Literal

import numpy as np

TileShape = tuple[int, int]
"""A tile's (height, width) in pixels."""
Blend = Literal["smooth", "uniform"]
"""``smooth``: raised-cosine ramps across overlaps (ours). ``uniform``: plain averaging, as
the official Restormer demo does; kept so the difference can be measured."""


def padded_length(length: int, multiple: int = 8) -> int:
    """The smallest multiple of ``multiple`` that holds ``length`` pixels."""
    if length < 1:
        raise ValueError(f"image side must be at least 1 pixel, got {length}")
    return -(-length // multiple) * multiple


@dataclass(frozen=True, eq=False)
class AxisPlan:
    """Where tiles start along one axis, and how much each pixel counts from each tile."""

    length: int
    """Padded length of the canvas along this axis."""
    size: int
    """Tile length along this axis (a multiple of 8, at most ``length``)."""
    starts: tuple[int, ...]
    windows: tuple[np.ndarray, ...]
    """One float32 window of ``size`` values per start."""
    total: np.ndarray
    """float32 (length,): the sum of all windows at each position; never zero."""


@dataclass(frozen=True, eq=False)
class TilePlan:
    """A grid of overlapping tiles covering an ``height`` x ``width`` image."""

    height: int
    width: int
    rows: AxisPlan
    cols: AxisPlan

    @property
    def padded_height(self) -> int:
        return self.rows.length

    @property
    def padded_width(self) -> int:
        return self.cols.length

    @property
    def tile_height(self) -> int:
        return self.rows.size

    @property
    def tile_width(self) -> int:
        return self.cols.size

    def __len__(self) -> int:
        return len(self.rows.starts) * len(self.cols.starts)

    @property
    def computed_pixels(self) -> int:
        """Pixels the network computes for this plan: overlaps count once per tile."""
        return len(self) * self.tile_height * self.tile_width

    def tiles(self) -> Iterator[tuple[int, int]]:
        """(row index, column index) pairs in raster order; streamed, never materialised."""
        for i in range(len(self.rows.starts)):
            for j in range(len(self.cols.starts)):
                yield i, j

    def window(self, i: int, j: int) -> np.ndarray:
        """The 2-D blending weight (tile_height, tile_width) of tile (i, j)."""
        return np.outer(self.rows.windows[i], self.cols.windows[j])


def plan_tiles(
    height: int,
    width: int,
    tile: int | TileShape | None,
    overlap: int,
    *,
    multiple: int = 8,
    blend: Blend = "smooth",
) -> TilePlan:
    """Plan tiles of about ``tile`` pixels a side for an image of ``height`` x ``width``.

    ``tile`` is a side (square tiles, as ``--tile N`` asks) or a (height, width) pair (the
    tiles ``tile="auto"`` fits to the image). ``None`` (or any tile at least as large as the
    padded image) gives a single tile, i.e. whole-image inference. Each length is rounded
    down to a multiple of ``multiple`` (at least ``multiple``); ``overlap`` is capped at half
    a tile (and below one grid step for the smallest tiles) because a wider overlap would
    make a tile's two ramps cross.
    """
    if overlap < 0:
        raise ValueError(f"overlap must be >= 0, got {overlap}")
    tile_height, tile_width = tile if isinstance(tile, tuple) else (tile, tile)
    for length in (tile_height, tile_width):
        if length is not None and length < multiple:
            raise ValueError(f"tile must be at least {multiple} pixels, got {length}")
    return TilePlan(
        height=height,
        width=width,
        rows=_plan_axis(padded_length(height, multiple), tile_height, overlap, multiple, blend),
        cols=_plan_axis(padded_length(width, multiple), tile_width, overlap, multiple, blend),
    )


def axis_tiles(length: int, size: int, overlap: int, multiple: int = 8) -> int:
    """How many tiles of ``size`` :func:`plan_tiles` lays along a padded ``length``; cheap,
    so that many candidate plans can be compared without building their windows."""
    size = min(length, size // multiple * multiple)
    return _gaps(length, size, _effective_overlap(size, overlap, multiple), multiple)[1] + 1


def fitted_length(length: int, count: int, overlap: int, multiple: int = 8) -> int:
    """The smallest tile length (a multiple of ``multiple``) whose tiles cover a padded
    ``length`` in at most ``count`` tiles that overlap by ``overlap``: ``count`` tiles of it
    compute the overlaps and at most ``multiple - 1`` pixels per tile more than ``length``.

    In blocks of ``multiple``, ``count`` tiles of ``s`` blocks overlapping by ``o`` cover
    ``count * s - (count - 1) * o`` blocks, hence the first guess; the two loops settle the
    rounding and the overlap's cap on small tiles, by :func:`plan_tiles`' own arithmetic."""
    if count < 1:
        raise ValueError(f"count must be at least 1, got {count}")
    blocks = length // multiple
    size = min(length, multiple * -(-(blocks + (count - 1) * -(-overlap // multiple)) // count))
    while size < length and axis_tiles(length, size, overlap, multiple) > count:
        size += multiple
    while size > multiple and axis_tiles(length, size - multiple, overlap, multiple) <= count:
        size -= multiple
    return size


def _effective_overlap(size: int, overlap: int, multiple: int) -> int:
    return min(overlap, size // 2, size - multiple)


def _plan_axis(length: int, tile: int | None, overlap: int, multiple: int, blend: Blend) -> AxisPlan:
    size = length if tile is None else min(length, tile // multiple * multiple)
    max_ramp = min(size // 2, size - multiple)
    starts = _starts(length, size, _effective_overlap(size, overlap, multiple), multiple)
    overlaps = [previous + size - start for previous, start in zip(starts, starts[1:])]
    ramps = [min(shared, max_ramp) if blend == "smooth" else 0 for shared in overlaps]
    windows = tuple(
        _window(size, left, right) for left, right in zip([0, *ramps], [*ramps, 0])
    )
    total = np.zeros(length, dtype=np.float32)
    for start, window in zip(starts, windows):
        total[start : start + size] += window
    return AxisPlan(length=length, size=size, starts=starts, windows=windows, total=total)


def _starts(length: int, size: int, overlap: int, multiple: int) -> tuple[int, ...]:
    """Evenly spread, grid-aligned origins; the first at 0, the last flush with the edge.

    Working in blocks of ``multiple`` pixels, consecutive origins are at most
    ``size - ceil(overlap)`` blocks apart, so every overlap is at least ``overlap`` pixels,
    and spreading the slack evenly avoids the official demo's last tile that overlaps its
    neighbour almost entirely.
    """
    span, gaps = _gaps(length, size, overlap, multiple)
    if gaps == 0:
        return (0,)
    return tuple((k * span // gaps) * multiple for k in range(gaps + 1))


def _gaps(length: int, size: int, overlap: int, multiple: int) -> tuple[int, int]:
    """(blocks between the first and the last origin, number of steps between them)."""
    if size >= length:
        return 0, 0
    span = (length - size) // multiple
    stride_blocks = size // multiple - math.ceil(overlap / multiple)
    return span, math.ceil(span / stride_blocks)


def _window(size: int, left_ramp: int, right_ramp: int) -> np.ndarray:
    """1-D weight of one tile: flat in the middle, falling off over the pixels it shares
    with each neighbour. Each ramp spans the whole shared stretch, so the neighbour's
    mirrored ramp complements it (sin^2 + cos^2 = 1) and the hand-over happens mid-overlap,
    away from both tiles' borders. Image edges get no ramp: there is nothing to blend with.
    Ramps are sampled at pixel centres, so no weight is exactly 0."""
    window = np.ones(size, dtype=np.float32)
    if left_ramp:
        window[:left_ramp] = _rise(left_ramp)
    if right_ramp:
        window[size - right_ramp :] *= _rise(right_ramp)[::-1]
    return window


def _rise(ramp: int) -> np.ndarray:
    return (np.sin(0.5 * np.pi * (np.arange(ramp) + 0.5) / ramp) ** 2).astype(np.float32)
