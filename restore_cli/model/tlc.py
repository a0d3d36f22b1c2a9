"""Channel attention over local windows: the Test-time Local Converter (TLC) of Chu et al.,
"Improving Image Restoration by Revisiting Global Information Aggregation" (ECCV 2022).

Restormer is trained on 256-384 px crops, but at test time each MDTA pools its attention
statistics (q kᵀ and the norms of q and k) over the whole feature map. TLC pools them over
windows of about the training size instead: every pixel gets the mean of the outputs of the
windows that cover it. Written here from the paper's description.

The definition, per axis of a map of ``side`` pixels and a window of ``size`` at that level:
``k = min(side, size)`` pixels a window, ``n = ceil(side / k)`` windows, starts 0, step,
2 step, ... with ``step = ceil((side - k) / (n - 1))``, the last clamped to ``side - k``;
the windows of the map are all (row start, column start) pairs.

Computing it window by window repeats the work wherever windows overlap. Instead the map is
cut into *cells*: the rectangles between consecutive window edges, each covered by one fixed
set of windows. Each cell's partial statistics are computed once; a window's statistics are
the sum over its cells, which gives every window's C x C attention matrix; and each cell
applies the mean of its windows' matrices to its own values once, since the mean of the
window outputs ``A_w v`` is ``(mean A_w) v``. The pixel work is then that of global attention.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass
from typing import Callable, Protocol

import torch

DEFAULT_WINDOW = 384
"""TLC's published window for Restormer: 1.5 x its 256-pixel training crops."""

Statistics = Callable[[torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor]
"""(q kᵀ, |q|, |k|) of a window -> its attention matrix: (..., C, C), (..., C), (..., C) -> (..., C, C)."""

def window_starts(side: int, size: int) -> tuple[int, ...]:
    """Where the windows along one axis start (see the module docstring)."""
    if side < 1 or size < 1:
        raise ValueError(f"side and window must be positive, got side {side}, window {size}")
    length = min(side, size)
    count = math.ceil(side / length)
    if count == 1:
        return (0,)
    step = math.ceil((side - length) / (count - 1))
    return tuple(index * step for index in range(count - 1)) + (side - length,)


@dataclass(frozen=True)
class AxisCells:
    """The windows along one axis and the cells they cut it into."""

    length: int
    """Pixels a window spans (``k``)."""
    starts: tuple[int, ...]
    cells: tuple[slice, ...]
    """Consecutive stretches between window edges, covering the axis."""

    @classmethod
    def of(cls, side: int, size: int) -> AxisCells:
        starts = window_starts(side, size)
        length = min(side, size)
        edges = sorted({0, side, *starts, *(start + length for start in starts)})
        return cls(length, starts, tuple(slice(a, b) for a, b in zip(edges, edges[1:])))

    def membership(self, like: torch.Tensor) -> torch.Tensor:
        """(windows, cells): 1 where the window covers the cell, on ``like``'s device and dtype.
        Cells lie between window edges, so a window holds a cell whole or not at all."""
        covered = [[float(start <= cell.start and cell.stop <= start + self.length) for cell in self.cells]
                   for start in self.starts]
        return torch.tensor(covered, dtype=like.dtype, device=like.device)


class Layout(Protocol):
    """How one feature-map layout exposes a cell as (..., pixels, channels) and takes it back."""

    def cell(self, tensor: torch.Tensor, rows: slice, cols: slice) -> torch.Tensor: ...

    def store(self, out: torch.Tensor, rows: slice, cols: slice, values: torch.Tensor) -> None: ...


class PixelLayout:
    """Maps stored (..., H, W, C): the channels-last formulation."""

    @staticmethod
    def cell(tensor: torch.Tensor, rows: slice, cols: slice) -> torch.Tensor:
        return tensor[..., rows, cols, :].flatten(-3, -2)

    @staticmethod
    def store(out: torch.Tensor, rows: slice, cols: slice, values: torch.Tensor) -> None:
        out[..., rows, cols, :] = values.unflatten(-2, (rows.stop - rows.start, -1))


class PlaneLayout:
    """Maps stored (..., C, H, W): the NCHW formulation. Cells stay channel-major in memory;
    the (pixels, channels) view is a free transpose that matrix products read directly."""

    @staticmethod
    def cell(tensor: torch.Tensor, rows: slice, cols: slice) -> torch.Tensor:
        return tensor[..., rows, cols].flatten(-2).mT

    @staticmethod
    def store(out: torch.Tensor, rows: slice, cols: slice, values: torch.Tensor) -> None:
        out[..., rows, cols] = values.mT.unflatten(-1, (rows.stop - rows.start, -1))


@dataclass(frozen=True)
class WindowGrid:
    """The TLC windows of one map size at one window size."""

    rows: AxisCells
    cols: AxisCells

    @property
    def is_global(self) -> bool:
        """One window covering the whole map: exactly global attention."""
        return len(self.rows.starts) == 1 and len(self.cols.starts) == 1

    def attend(
        self, query: torch.Tensor, key: torch.Tensor, value: torch.Tensor, layout: Layout, attention: Statistics
    ) -> torch.Tensor:
        """Every pixel's mean over its windows of ``attention(window stats) @ v``, in the
        layout of the inputs, freshly allocated. Statistics are summed in fp32 whatever the
        input precision: they add up many cells."""
        grams, query_norms, key_norms = [], [], []
        for rows in self.rows.cells:
            for cols in self.cols.cells:
                query_cell, key_cell = layout.cell(query, rows, cols), layout.cell(key, rows, cols)
                grams.append((query_cell.mT @ key_cell).float())
                query_norms.append(_squared_norms(query_cell))
                key_norms.append(_squared_norms(key_cell))
        shape = (len(self.rows.cells), len(self.cols.cells))
        gram, query_norm, key_norm = (torch.stack(parts).unflatten(0, shape) for parts in (grams, query_norms, key_norms))
        row_windows, col_windows = self.rows.membership(gram), self.cols.membership(gram)

        def per_window(per_cell: torch.Tensor) -> torch.Tensor:
            return torch.einsum("ia,jb,ab...->ij...", row_windows, col_windows, per_cell)

        windows = attention(per_window(gram), per_window(query_norm).sqrt(), per_window(key_norm).sqrt())
        covering = row_windows.sum(0)[:, None] * col_windows.sum(0)[None, :]
        mean = torch.einsum("ia,jb,ij...->ab...", row_windows, col_windows, windows)
        mean = (mean / covering.reshape(*shape, *[1] * (mean.dim() - 2))).to(value.dtype)

        out = value.new_empty(value.shape)
        for a, rows in enumerate(self.rows.cells):
            for b, cols in enumerate(self.cols.cells):
                layout.store(out, rows, cols, layout.cell(value, rows, cols) @ mean[a, b].mT)
        return out


def _squared_norms(cell: torch.Tensor) -> torch.Tensor:
    """(..., pixels, C) -> (..., C) in fp32: a window's squared norms are sums of its cells'."""
    return torch.linalg.vector_norm(cell, dim=-2, dtype=torch.float32).square()


@functools.lru_cache(maxsize=256)
def window_grid(height: int, width: int, size: int) -> WindowGrid:
    """The grid of ``size`` x ``size`` windows over an ``height`` x ``width`` map (cached:
    every block of a level asks for the same one)."""
    return WindowGrid(AxisCells.of(height, size), AxisCells.of(width, size))
