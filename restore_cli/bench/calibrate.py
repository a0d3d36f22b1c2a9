"""``restore bench --calibrate``: this machine's speed profile, measured and stored.

``tile="auto"`` on the CPU picks the fastest tiling by a curve of seconds per megapixel
against the side of a pass (:mod:`restore_cli.engine.profile`). The shipped curve is one
CPU's; how the cost per pixel grows with the pass's size depends on the CPU's caches, its
vector unit, the thread count and torch's kernels. Calibrating measures passes of the
full-size network (the width of every published model) at several sides, each in a fresh
process with the engine's allocator setting, and stores the warm passes' CPU seconds per
Mpix under this machine's key, where every later ``restore`` with the same CPU, thread
count and torch finds it.
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

from restore_cli.bench.compare import Size, run_worker
from restore_cli.errors import setting

CALIBRATION_SIDES = (256, 384, 512, 640, 768, 1024)
"""Passes from a small tile to about 1 Mpix, the sizes the auto rule chooses among; a side
whose pass would not fit this machine's default memory budget is skipped."""


@dataclass
class SidePoint:
    """One side's passes, CPU seconds of the worker process (all threads)."""

    side: int
    cold_cpu_seconds: float
    warm_cpu_seconds: list[float]
    cold_wall_seconds: float = 0.0
    warm_wall_seconds: list[float] = field(default_factory=list)

    @property
    def seconds_per_mpix(self) -> float:
        return statistics.median(self.warm_cpu_seconds) / (self.side**2 / 1e6)


@dataclass
class Calibration:
    """What ``restore bench --calibrate`` measured and where it stored it."""

    key: dict[str, Any]
    precision: str
    points: list[SidePoint]
    skipped: list[int]
    path: Path | None = None


SideReport = Callable[[SidePoint], None]


def calibration_sides(sizes: Sequence[Size]) -> list[int]:
    """The pass sides to calibrate from ``--sizes`` (the defaults when there are none).
    Passes are square and at least as large as the smallest tile the auto rule plans, so
    that every tiling it considers has a measured cost."""
    from restore_cli.engine.budget import MIN_AUTO_TILE

    if any(size.height != size.width or size.height < MIN_AUTO_TILE for size in sizes):
        raise ValueError(f"calibration passes are square and at least {MIN_AUTO_TILE} pixels: give {setting('sizes')} as N, N >= {MIN_AUTO_TILE}")
    return sorted({size.height for size in sizes}) or list(CALIBRATION_SIDES)


def sides_that_fit(sides: Sequence[int], precision: str) -> tuple[list[int], list[int]]:
    """The sides whose pass fits this machine's default memory budget, and the others:
    calibrating must not push the machine into swap or the OOM killer."""
    import torch

    from restore_cli.engine.budget import MEMORY_MODELS, default_memory_budget
    from restore_cli.engine.device import PRECISIONS
    from restore_cli.model.restormer import RestormerConfig

    memory = MEMORY_MODELS[PRECISIONS[precision]]
    budget = default_memory_budget(torch.device("cpu"))
    dim = RestormerConfig().dim
    fits = [side for side in sorted(sides) if memory.forward_bytes(dim, side * side) <= budget]
    return fits, [side for side in sorted(sides) if side not in fits]


def calibrate(sides: Sequence[int], precision: str, repeat: int = 1, on_side: SideReport | None = None) -> Calibration:
    """Measure each side that fits in a fresh worker (with malloc's huge pages where the
    CLI's launcher switches them on, as ``restore`` runs) and store the curve.

    ``precision`` is a concrete one (``fp32`` or ``bf16``); the curve is stored for the
    full-size width in that precision, under the key the workers report (their thread
    count is the one ``restore`` will run with, since they inherit this environment)."""
    from restore_cli.engine.allocator import this_machine_huge_page_environment
    from restore_cli.engine.profile import ProfileKey, save_curve
    from restore_cli.model.restormer import RestormerConfig

    measured, skipped = sides_that_fit(sides, precision)
    if not measured:
        return Calibration({}, precision, [], skipped)
    points, keys = [], []
    for side in measured:
        found = run_worker("calibrate", {"side": side, "precision": precision, "device": "cpu", "repeat": repeat},
                           this_machine_huge_page_environment())
        keys.append(found.pop("key"))
        points.append(SidePoint(**found))
        if on_side is not None:
            on_side(points[-1])
    if any(key != keys[0] for key in keys):
        raise RuntimeError(f"calibration workers ran under different settings: {keys}")
    path = save_curve(
        ProfileKey(**keys[0]), RestormerConfig().dim, precision,
        [(point.side, point.seconds_per_mpix) for point in points],
        {"cold_cpu_s_per_mpix": {str(point.side): round(point.cold_cpu_seconds / (point.side**2 / 1e6), 3) for point in points}},
    )
    return Calibration(keys[0], precision, points, skipped, path)
