"""Speed, memory and fidelity of the engine against the official Restormer procedure.

Every figure is measured side by side on this machine: for each image size, a pass with
our defaults and a pass reproducing the official procedure (fp32, NCHW formulation, whole
image, or uniformly averaged tiles when the whole image cannot fit) alternate, ``repeat``
times, each in a fresh interpreter. Fresh processes matter: peak RSS is per process, and
the official procedure must not inherit the allocator tuning ours switches on. The network
is full size with random weights (seed 0): the cost does not depend on the weights.

Run it as ``restore bench``; each measurement runs in :mod:`restore_cli.bench.worker`.
"""

from __future__ import annotations

import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

from restore_cli.bench.procedures import OFFICIAL, OURS, PHOTO, Spec, compare_8bit, flops_per_pixel, full_model

DEFAULT_SIZES = ("256", "512", "1024x768")
"""A 12 Mpix photo (``4000x3000``) takes about an hour a pass on 2 CPU cores: opt-in."""


@dataclass(frozen=True)
class Size:
    """An image size as typed (``512``, ``1024x768`` = width x height)."""

    label: str
    height: int
    width: int

    @property
    def megapixels(self) -> float:
        return self.height * self.width / 1e6


def parse_size(text: str) -> Size:
    """``N`` is N x N; ``WxH`` is width x height, as photo sizes are written."""
    parts = text.lower().split("x")
    if len(parts) not in (1, 2) or not all(part.isdigit() and int(part) >= 8 for part in parts):
        raise ValueError(f"size {text!r}: write N (N x N pixels) or WxH, each at least 8")
    width, height = int(parts[0]), int(parts[-1])
    return Size(text, height, width)


@dataclass
class Pass:
    """What one worker measured."""

    seconds: float
    peak_rss: int
    peak_vram: int | None
    tiles: int


@dataclass
class Row:
    """One size: both procedures' passes and the figures derived from them."""

    size: Size
    flops: float
    official: list[Pass] = field(default_factory=list)
    ours: list[Pass] = field(default_factory=list)

    def seconds(self, mode: str) -> float:
        return statistics.median(p.seconds for p in getattr(self, mode))

    def speedup(self) -> float:
        return self.seconds(OFFICIAL) / self.seconds(OURS)

    def summary(self) -> dict[str, Any]:
        figures: dict[str, Any] = {"size": self.size.label, "height": self.size.height, "width": self.size.width}
        for mode in (OFFICIAL, OURS):
            passes = getattr(self, mode)
            seconds = self.seconds(mode)
            vram = [p.peak_vram for p in passes if p.peak_vram is not None]
            figures[mode] = {
                "seconds": [round(p.seconds, 3) for p in passes],
                "median_seconds": round(seconds, 3),
                "seconds_per_mpix": round(seconds / self.size.megapixels, 2),
                "gflops": round(self.flops / seconds / 1e9, 1),
                "peak_rss_mib": round(max(p.peak_rss for p in passes) / 2**20),
                "peak_vram_mib": round(max(vram) / 2**20) if vram else None,
                "tiles": passes[0].tiles,
            }
        figures["speedup"] = round(self.speedup(), 2)
        return figures


# ---------------------------------------------------------------- the parent side

PassReport = Callable[[Size, str, Pass], None]
"""Called after each pass, so a long run shows progress."""


def run_benchmark(
    sizes: Sequence[Size],
    repeat: int,
    device: str = "cpu",
    precision: str = "auto",
    on_pass: PassReport | None = None,
    allow_slow_precision: bool = False,
) -> list[Row]:
    """Alternate official and ours ``repeat`` times per size, so that load from anything
    else running on the machine falls on both alike. Workers inherit the environment:
    set ``OMP_NUM_THREADS`` (``restore bench --threads``) to fix their thread count."""
    flops = flops_per_pixel()
    rows = []
    for size in sizes:
        row = Row(size, flops * size.height * size.width)
        for _ in range(repeat):
            for mode in (OFFICIAL, OURS):
                measured = _measure(Spec(mode, size.height, size.width, device, precision, allow_slow_precision))
                getattr(row, mode).append(measured)
                if on_pass is not None:
                    on_pass(size, mode, measured)
        rows.append(row)
    return rows


def _measure(spec: Spec) -> Pass:
    """Our passes run in the process the CLI would give them: with malloc's huge pages
    where the launcher switches them on (see :mod:`restore_cli.cli.launcher`)."""
    from restore_cli.engine.allocator import this_machine_huge_page_environment

    environment = this_machine_huge_page_environment() if spec.mode == OURS else None
    return Pass(**run_worker("pass", asdict(spec), environment))


def describe_machine() -> str:
    """CPU kind, cores and torch build, so saved results say where they were measured."""
    import platform

    import torch

    from restore_cli.engine.hardware import cpu_info

    threads = os.environ.get("OMP_NUM_THREADS", str(torch.get_num_threads()))
    return (f"{cpu_info().describe()}, {os.cpu_count()} CPUs, {threads} torch threads, "
            f"torch {torch.__version__}, Python {platform.python_version()}")


def auto_precision(device: str) -> str:
    """What ``--precision auto`` computes in on ``device``, as an option value."""
    from restore_cli.engine.device import PRECISIONS, resolve_device, resolve_precision

    dtype = resolve_precision("auto", resolve_device(device))
    return next(name for name, candidate in PRECISIONS.items() if candidate == dtype)


def speed_profile(precision: str, device: str) -> str:
    """Which speed profile ``--tile auto`` plans this machine's tiles with for the full-size
    model at ``precision``, in the threads the workers get: measured here, or built in."""
    if not device.startswith("cpu"):
        return "none on GPUs: the largest tile that fits"
    import torch

    from restore_cli.engine.hardware import cpu_info
    from restore_cli.engine.profile import ProfileKey, cpu_speed
    from restore_cli.model.restormer import RestormerConfig

    concrete = auto_precision(device) if precision == "auto" else precision
    key = ProfileKey(cpu_info().describe(), int(os.environ.get("OMP_NUM_THREADS", torch.get_num_threads())), torch.__version__)
    return cpu_speed(RestormerConfig().dim, concrete, key).source


def native_precisions(device: str) -> tuple[str, ...]:
    """The precisions worth measuring on ``device``: fp32 and the half precisions it runs natively."""
    from restore_cli.engine.device import PRECISIONS, resolve_device
    from restore_cli.engine.hardware import slow_precision_reason

    resolved = resolve_device(device)
    halves = ("bf16", "fp16") if resolved.type == "cuda" else ("bf16",)
    return ("fp32",) + tuple(name for name in halves if slow_precision_reason(PRECISIONS[name], resolved) is None)


def run_worker(command: str, payload: dict[str, Any], environment: dict[str, str] | None = None) -> dict[str, Any]:
    """One measurement in a fresh interpreter (:mod:`restore_cli.bench.worker`); its JSON result."""
    done = subprocess.run(
        [sys.executable, "-m", "restore_cli.bench", command, json.dumps(payload)], capture_output=True, text=True,
        check=False, env=environment,
    )
    if done.returncode != 0:
        raise RuntimeError(f"benchmark worker failed:\n{done.stderr.strip()}")
    return json.loads(done.stdout.strip().splitlines()[-1])


@dataclass
class Fidelity:
    """A fast mode's 8-bit output against the official fp32 output of the same photo."""

    mode: str
    max_abs_diff: int
    psnr_db: float


def measure_fidelity(photo: Path = PHOTO, device: str = "cpu", precisions: Sequence[str] = ("fp32", "bf16")) -> list[Fidelity]:
    """Our modes against the official procedure on a real photo, in one worker."""
    found = run_worker("fidelity", {"photo": str(photo), "device": device, "precisions": list(precisions)})
    return [Fidelity(**entry) for entry in found["modes"]]


@dataclass
class EndToEnd:
    """``restore run`` on a file against the official procedure on the same file, each a
    whole process from interpreter start to the written PNG (model load included).

    Wall-clock and CPU seconds (user + system, all threads) of each process: on a machine
    shared with other work the wall clock also measures the neighbours, while with one
    thread the CPU time is what the process itself cost."""

    size: Size
    official_seconds: list[float]
    ours_seconds: list[float]
    psnr_db: float
    max_abs_diff: int
    official_cpu_seconds: list[float] = field(default_factory=list)
    ours_cpu_seconds: list[float] = field(default_factory=list)

    def speedup(self) -> float:
        return statistics.median(self.official_seconds) / statistics.median(self.ours_seconds)

    def cpu_speedup(self) -> float:
        return statistics.median(self.official_cpu_seconds) / statistics.median(self.ours_cpu_seconds)


def measure_end_to_end(
    size: Size, repeat: int, precision: str = "auto", device: str = "cpu", allow_slow_precision: bool = False
) -> EndToEnd:
    """The issue's headline: a photo through the CLI, against the official procedure."""
    import torch
    from PIL import Image

    with tempfile.TemporaryDirectory(prefix="restore-bench-") as folder:
        work = Path(folder)
        weights, photo = work / "random_full.pth", work / "photo.png"
        torch.manual_seed(0)
        torch.save({"params": full_model(channels_last=False).state_dict()}, weights)
        Image.open(PHOTO).convert("RGB").resize((size.width, size.height), Image.BICUBIC).save(photo)
        official, ours = work / "official.png", work / "ours.png"
        ours_command = [sys.executable, "-m", "restore_cli", "run", "--weights", str(weights), str(photo),
                        "-o", str(ours), "--overwrite", "--quiet", "--precision", precision, "--device", device]
        ours_command += ["--allow-slow-precision"] if allow_slow_precision else []
        official_command = [sys.executable, "-m", "restore_cli.bench", "official-file",
                            json.dumps({"weights": str(weights), "photo": str(photo), "out": str(official), "device": device})]
        timings: dict[str, list[tuple[float, float]]] = {OFFICIAL: [], OURS: []}
        for _ in range(repeat):
            timings[OFFICIAL].append(timed(official_command))
            timings[OURS].append(timed(ours_command))
        diff, psnr_db = compare_8bit(_read_8bit(ours), _read_8bit(official))
    return EndToEnd(size, [wall for wall, _ in timings[OFFICIAL]], [wall for wall, _ in timings[OURS]], psnr_db, diff,
                    [cpu for _, cpu in timings[OFFICIAL]], [cpu for _, cpu in timings[OURS]])


def timed(command: list[str], stdin: str | None = None) -> tuple[float, float]:
    """Wall-clock and CPU seconds (user + system, all threads) of one child process."""
    before = _children_cpu_seconds()
    started = time.perf_counter()
    done = subprocess.run(command, input=stdin, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(command[:4])} failed:\n{done.stderr.strip()}")
    return time.perf_counter() - started, _children_cpu_seconds() - before


def _children_cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def _read_8bit(path: Path) -> np.ndarray:
    from PIL import Image

    return np.asarray(Image.open(path).convert("RGB"))
