"""How fast this machine runs a forward pass of each size: the speed profile ``tile="auto"``
plans CPU tiles with.

A profile is a curve of CPU seconds per megapixel against the side of a square pass. The
engine ships one per vector unit, each measured on one CPU (:data:`BUILTIN_CPU_SPEEDS`); ``restore bench
--calibrate`` measures this machine's and stores it in the cache directory, keyed by what
changes the curve: the CPU (model name, vector unit, native bf16), the number of torch
threads and the torch version. Within a key a profile holds one curve per model width and
precision. A stored profile is used only where every part of its key matches this process;
otherwise the built-in curve is, so a profile copied from another machine, or made before a
torch upgrade, is never trusted.
"""

from __future__ import annotations

import json
import math
import os
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import torch

from restore_cli.engine.hardware import CpuInfo, cpu_info
from restore_cli.model.cache import zoo_dir

FORMAT_VERSION = 1


class Grid(Protocol):
    """A grid of equal tiles as a time estimate sees it: a laid-out ``tiling.TilePlan``, or a
    candidate the auto-tile planner is still weighing (``budget.Tiling``)."""

    @property
    def tile_height(self) -> int: ...

    @property
    def tile_width(self) -> int: ...

    @property
    def computed_pixels(self) -> int: ...


@dataclass(frozen=True)
class TileSpeed:
    """Seconds per megapixel of one forward pass against its size: ``points`` are (side,
    s/Mpix) of side x side passes, by increasing side. ``source`` says where the curve
    came from, for ``restore bench`` to show."""

    points: tuple[tuple[int, float], ...]
    source: str = "built-in"

    @property
    def sides(self) -> tuple[int, ...]:
        return tuple(side for side, _ in self.points)

    def seconds_per_mpix(self, pixels: int) -> float | None:
        """Linear in the side between measured points, flat below the smallest; ``None``
        above the largest, where nothing was measured (the cost per pixel may grow there).
        A rectangular pass counts as the square of the same area."""
        side = math.sqrt(pixels)
        if side > self.points[-1][0]:
            return None
        upper = next(index for index, (measured, _) in enumerate(self.points) if measured >= side)
        if upper == 0:
            return self.points[0][1]
        (low_side, low_cost), (high_side, high_cost) = self.points[upper - 1], self.points[upper]
        return low_cost + (high_cost - low_cost) * (side - low_side) / (high_side - low_side)

    def plan_seconds(self, plan: Grid) -> float | None:
        """Estimated time of every pass of ``plan``, overlaps computed twice as they are."""
        rate = self.seconds_per_mpix(plan.tile_height * plan.tile_width)
        return None if rate is None else plan.computed_pixels * rate / 1e6


BUILTIN_CPU_SPEEDS = {
    "AVX-512": TileSpeed(
        ((128, 142.2), (256, 139.3), (384, 132.6), (512, 138.0), (640, 140.1), (768, 152.6)),
        source="built-in (measured on an Intel Xeon Sapphire Rapids, AVX-512, 1 thread)",
    ),
    "AVX2": TileSpeed(
        ((256, 203.7), (512, 210.5), (640, 221.9), (768, 257.9)),
        source="built-in (measured on an AMD EPYC, AVX2, 1 thread)",
    ),
}
"""CPU seconds per Mpix of a warm full-model fp32 pass, by vector unit, each measured on one
CPU of that kind with 1 thread (``restore bench --calibrate --threads 1``; figures in
benchmarks/README.md). Both are flat to about 512 and rise beyond, the AVX2 one more
(+22% at 768 on the EPYC, whose depth-wise convs slow down once three rows of a wide map
no longer fit its cache); neither measured 1024-pixel passes, which cost 1.2-1.5x per
pixel on the Xeon (page faults) and need about 11 GB."""


def builtin_speed(cpu: CpuInfo | None = None) -> TileSpeed:
    """The shipped curve of the CPU kind closest to ``cpu`` (this machine's by default):
    the AVX2 one for CPUs with neither AVX-512 nor AVX2, whose passes are slower still."""
    return BUILTIN_CPU_SPEEDS.get((cpu or cpu_info()).vector_unit, BUILTIN_CPU_SPEEDS["AVX2"])


@dataclass(frozen=True)
class ProfileKey:
    """What a measured curve holds for: the same CPU, thread count and torch build."""

    cpu: str
    threads: int
    torch: str

    @classmethod
    def this_process(cls) -> ProfileKey:
        return cls(cpu_info().describe(), torch.get_num_threads(), torch.__version__)

    def file_name(self) -> str:
        """A readable, file-system-safe name; the key inside the file is what is checked."""
        text = f"{self.cpu}-{self.threads}threads-torch{self.torch}"
        return "".join(char if char.isalnum() or char in "._-" else "_" for char in text) + ".json"


def profile_dir() -> Path:
    """Where measured profiles live: beside the model zoo in the cache directory."""
    return zoo_dir() / "speed-profiles"


def curve_name(dim: int, precision: str) -> str:
    """A curve's name within a profile: the model width and the precision it was measured in."""
    return f"dim{dim}-{precision}"


def save_curve(key: ProfileKey, dim: int, precision: str, points: list[tuple[int, float]], details: dict[str, Any]) -> Path:
    """Store a measured curve under ``key`` (replacing one of the same width and precision),
    atomically, so a concurrent ``restore`` reads either the old profile or the new one."""
    path = profile_dir() / key.file_name()
    stored = _read(path, key) or {"format": FORMAT_VERSION, "key": key.__dict__, "curves": {}}
    stored["curves"][curve_name(dim, precision)] = {
        "points": [[side, round(cost, 3)] for side, cost in sorted(points)],
        "measured": time.strftime("%Y-%m-%d %H:%M:%S"),
        **details,
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    descriptor, temporary = tempfile.mkstemp(dir=path.parent, prefix=".profile-", suffix=".tmp")
    try:
        with os.fdopen(descriptor, "w", encoding="utf-8") as file:
            json.dump(stored, file, indent=1)
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    return path


def measured_speed(key: ProfileKey, dim: int, precision: str) -> TileSpeed | None:
    """The curve measured for ``key``, width ``dim`` and ``precision``, or ``None``."""
    path = profile_dir() / key.file_name()
    curve = (_read(path, key) or {}).get("curves", {}).get(curve_name(dim, precision))
    if not curve or not curve.get("points"):
        return None
    points = tuple((int(side), float(cost)) for side, cost in curve["points"])
    return TileSpeed(points, source=f"measured on this machine {curve.get('measured', '')} ({path})")


def cpu_speed(dim: int, precision: str, key: ProfileKey | None = None) -> TileSpeed:
    """The curve ``tile="auto"`` plans CPU tiles with: this machine's measured one where
    there is one, the built-in curve of its CPU kind otherwise."""
    return measured_speed(key or ProfileKey.this_process(), dim, precision) or builtin_speed()


def _read(path: Path, key: ProfileKey) -> dict[str, Any] | None:
    """A stored profile, or ``None`` when there is none, it cannot be read, or it was
    measured under another key (a file copied from elsewhere, a renamed one)."""
    try:
        stored = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(stored, dict) or stored.get("format") != FORMAT_VERSION or stored.get("key") != key.__dict__:
        return None
    return stored
