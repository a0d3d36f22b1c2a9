"""Speed, memory and fidelity of the engine against the official Restormer procedure.

Every figure is measured side by side on this machine: for each image size, a pass with
our defaults and a pass reproducing the official procedure (fp32, NCHW formulation, whole
image, or uniformly averaged tiles when the whole image cannot fit) alternate, ``repeat``
times, each in a fresh interpreter. Fresh processes matter: peak RSS is per process, and
the official procedure must not inherit the allocator tuning ours switches on. The network
is full size with random weights (seed 0): the cost does not depend on the weights.

Run it as ``restore bench``; this module is also the worker each measurement runs in
(``python -m restore_cli.bench SPEC_JSON``).
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
from typing import TYPE_CHECKING, Any, Callable, Sequence

import numpy as np

if TYPE_CHECKING:
    from restore_cli.engine.restorer import Restorer
    from restore_cli.model.restormer import Restormer

OFFICIAL, OURS = "official", "ours"
DEFAULT_SIZES = ("256", "512", "1024x768")
"""A 12 Mpix photo (``4000x3000``) takes about an hour a pass on 2 CPU cores: opt-in."""
OFFICIAL_TILE, OFFICIAL_OVERLAP = 512, 32
"""Above ``OFFICIAL_WHOLE_LIMIT`` pixels the baseline averages 512-pixel tiles uniformly,
as the official demo's tiled mode does; whole-image inference would need ~100 GiB."""
OFFICIAL_WHOLE_LIMIT = 4_000_000
FLOP_PROBE = 32
"""Side of the input FLOPs are counted on; every layer's cost is linear in pixels."""
PHOTO = Path(__file__).resolve().parent / "assets" / "3096.png"


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


@dataclass(frozen=True)
class Spec:
    """One measurement, as handed to a worker process."""

    mode: str
    height: int
    width: int
    device: str = "cpu"
    precision: str = "auto"
    allow_slow_precision: bool = False


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
    return Pass(**_worker(["pass", json.dumps(asdict(spec))], environment))


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


def native_precisions(device: str) -> tuple[str, ...]:
    """The precisions worth measuring on ``device``: fp32 and the half precisions it runs natively."""
    from restore_cli.engine.device import PRECISIONS, resolve_device
    from restore_cli.engine.hardware import slow_precision_reason

    resolved = resolve_device(device)
    halves = ("bf16", "fp16") if resolved.type == "cuda" else ("bf16",)
    return ("fp32",) + tuple(name for name in halves if slow_precision_reason(PRECISIONS[name], resolved) is None)


def _worker(arguments: list[str], environment: dict[str, str] | None = None) -> dict[str, Any]:
    done = subprocess.run(
        [sys.executable, "-m", "restore_cli.bench", *arguments], capture_output=True, text=True, check=False,
        env=environment,
    )
    if done.returncode != 0:
        raise RuntimeError(f"benchmark worker failed:\n{done.stderr.strip()}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def flops_per_pixel() -> float:
    """Counted by torch on the official formulation of the full model, per input pixel:
    convolutions and matrix products, which is where nearly all the arithmetic is."""
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    with torch.device("meta"):
        model = _full_model(channels_last=False)
        probe = torch.empty(1, model.config.in_channels, FLOP_PROBE, FLOP_PROBE)
    with FlopCounterMode(display=False) as counter, torch.inference_mode():
        model(probe)
    return counter.get_total_flops() / FLOP_PROBE**2


@dataclass
class Fidelity:
    """A fast mode's 8-bit output against the official fp32 output of the same photo."""

    mode: str
    max_abs_diff: int
    psnr_db: float


def measure_fidelity(photo: Path = PHOTO, device: str = "cpu", precisions: Sequence[str] = ("fp32", "bf16")) -> list[Fidelity]:
    """Our modes against the official procedure on a real photo, in one worker."""
    found = _worker(["fidelity", json.dumps({"photo": str(photo), "device": device, "precisions": list(precisions)})])
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
        torch.save({"params": _full_model(channels_last=False).state_dict()}, weights)
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


def compare_8bit(ours: np.ndarray, reference: np.ndarray) -> tuple[int, float]:
    """Max abs difference in 8-bit levels and PSNR (dB, peak 255) of two uint8 images."""
    from restore_cli.quality.metrics import psnr

    difference = np.abs(ours.astype(np.int16) - reference.astype(np.int16))
    return int(difference.max()), psnr(ours, reference, 255.0)


def to_8bit(pixels: np.ndarray) -> np.ndarray:
    """Float [0, 1] to uint8 exactly as `restore` writes an 8-bit file."""
    from restore_cli.io.image import to_integer_levels

    return to_integer_levels(pixels, 8)


def _read_8bit(path: Path) -> np.ndarray:
    from PIL import Image

    return np.asarray(Image.open(path).convert("RGB"))


# ---------------------------------------------------------------- the worker side


def _full_model(channels_last: bool) -> Restormer:
    from restore_cli.model.restormer import Restormer, RestormerConfig

    model = Restormer(RestormerConfig()).eval()
    model.channels_last = channels_last
    return model


def _official_restorer(model: Restormer, device: str, height: int, width: int) -> Restorer:
    """The official procedure: fp32, NCHW, padded to a multiple of 8, whole image or
    uniformly averaged tiles; no allocator tuning, no autotuning."""
    tile = OFFICIAL_TILE if height * width > OFFICIAL_WHOLE_LIMIT else 0
    return _plain_restorer(model, device, tile)


def _plain_restorer(model: Restormer, device: str, tile: int) -> Restorer:
    """The engine with none of its speed-ups, for the baseline: padding and tiling only."""
    from restore_cli.engine.restorer import Restorer

    return Restorer(model, device=device, precision="fp32", tile=tile, overlap=OFFICIAL_OVERLAP,
                    blend="uniform", batch_size=1, tune_process=False)


def _restorer_for(spec: Spec) -> Restorer:
    from restore_cli.engine.restorer import Restorer

    model = _full_model(channels_last=spec.mode == OURS)
    if spec.mode == OFFICIAL:
        return _official_restorer(model, spec.device, spec.height, spec.width)
    return Restorer(model, device=spec.device, precision=spec.precision,  # type: ignore[arg-type]
                    allow_slow_precision=spec.allow_slow_precision)


def _run_pass(spec: Spec) -> dict[str, Any]:
    import torch

    torch.manual_seed(0)
    restorer = _restorer_for(spec)
    image = torch.rand(1, 3, spec.height, spec.width, generator=torch.Generator().manual_seed(1))
    restorer.restore(image[..., :64, :64])  # warm-up: kernel selection, first allocations
    cuda = restorer.device.type == "cuda"
    if cuda:
        torch.cuda.reset_peak_memory_stats()
    started = time.perf_counter()
    restorer.restore(image)  # returns on the host, so CUDA work is finished
    seconds = time.perf_counter() - started
    return {
        "seconds": seconds,
        "peak_rss": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024,
        "peak_vram": torch.cuda.max_memory_allocated() if cuda else None,
        "tiles": len(restorer.plan(spec.height, spec.width)[0]),
    }


def _run_fidelity(photo: str, device: str, precisions: list[str]) -> dict[str, Any]:
    import torch
    from PIL import Image

    from restore_cli.engine.restorer import Restorer

    pixels = np.asarray(Image.open(photo).convert("RGB"), dtype=np.float32) / 255.0
    torch.manual_seed(0)
    model = _full_model(channels_last=False)
    reference = to_8bit(_plain_restorer(model, device, 0).restore(pixels))
    model.channels_last = True
    modes = []
    for precision in precisions:
        restored = to_8bit(Restorer(model, device=device, precision=precision, tile=0).restore(pixels))  # type: ignore[arg-type]
        diff, psnr_db = compare_8bit(restored, reference)
        modes.append({"mode": f"ours {precision}", "max_abs_diff": diff, "psnr_db": round(psnr_db, 2)})
    return {"modes": modes}


def _run_official_file(weights: str, photo: str, out: str, device: str) -> dict[str, Any]:
    """Load, read, restore, write: what the official test script does for one image."""
    import torch
    from PIL import Image

    from restore_cli.model.restormer import Restormer, RestormerConfig

    model = Restormer(RestormerConfig())
    model.load_state_dict(torch.load(weights, map_location="cpu", weights_only=True)["params"])
    model.channels_last = False
    pixels = np.asarray(Image.open(photo).convert("RGB"), dtype=np.float32) / 255.0
    image = torch.from_numpy(pixels).permute(2, 0, 1)[None]
    restored = _official_restorer(model, device, *image.shape[-2:]).restore(image)
    Image.fromarray(to_8bit(restored[0].permute(1, 2, 0).numpy())).save(out)
    return {}


def _worker_main(argv: list[str]) -> None:
    command, payload = argv[0], json.loads(argv[1])
    if command == "pass":
        result = _run_pass(Spec(**payload))
    elif command == "fidelity":
        result = _run_fidelity(**payload)
    else:
        result = _run_official_file(**payload)
    sys.stdout.write(json.dumps(result) + "\n")


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    _worker_main(sys.argv[1:])
