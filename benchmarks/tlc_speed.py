"""What TLC (``--tlc``) costs: the full-size network with local statistics against global
attention, side by side in one run, in both formulations.

Whole images: for each size, global and TLC passes alternate ``--repeats`` times (so
background load falls on both) and the medians are compared. Tiled: a ``--tiled`` image
through the engine with ``--tile``-pixel tiles, global then TLC, timing the first
``--max-tiles`` tiles of the plan (every tile has the same size; 0 runs them all).
Random weights (seed 0): speed does not depend on them.

Times are the process's CPU seconds, not wall-clock: on a machine shared with other jobs,
waiting for a core is not the network's cost. Run with one thread (OMP_NUM_THREADS=1), so
CPU time is the time of one core doing the work.

    OMP_NUM_THREADS=1 python benchmarks/tlc_speed.py --sizes 256 1024 --tiled 2048 --tile 512 --max-tiles 2
"""

from __future__ import annotations

import argparse
import platform
import statistics
import time

import torch
from tile_memory import run_some_tiles

from restore_cli.engine.allocator import reuse_freed_memory
from restore_cli.engine.restorer import Restorer
from restore_cli.model.restormer import Restormer, RestormerConfig
from restore_cli.model.tlc import DEFAULT_WINDOW, window_grid

FORMULATIONS = {"channels_last": True, "nchw": False}


def cpu_name() -> str:
    """The CPU model and its bf16-relevant flags, to quote with every figure."""
    try:
        with open("/proc/cpuinfo") as info:
            lines = info.read().splitlines()
    except OSError:
        return platform.processor() or "unknown CPU"
    name = next((line.split(":", 1)[1].strip() for line in lines if line.startswith("model name")), "unknown CPU")
    flags = next((line.split(":", 1)[1].split() for line in lines if line.startswith("flags")), [])
    wanted = [flag for flag in ("avx2", "avx512f", "avx512_bf16", "amx_bf16") if flag in flags]
    return f"{name} ({', '.join(wanted) or 'no AVX2'})"


def timed_pass(model: Restormer, image: torch.Tensor, window: int | None) -> float:
    model.tlc_window = window
    started = time.process_time()
    with torch.inference_mode():
        model(image)
    return time.process_time() - started


def compare_whole(model: Restormer, size: int, window: int, repeats: int) -> tuple[float, float]:
    """Median CPU seconds of a whole ``size`` x ``size`` pass: global, TLC."""
    image = torch.rand(1, 3, size, size)
    times: dict[int | None, list[float]] = {None: [], window: []}
    for _ in range(repeats):
        for mode in times:
            times[mode].append(timed_pass(model, image, mode))
    return statistics.median(times[None]), statistics.median(times[window])


def compare_tiled(model: Restormer, size: int, tile: int, window: int, max_tiles: int) -> tuple[float, float, int, int]:
    """CPU seconds per tile through the engine: global, TLC; tiles timed, tiles in the plan."""
    image = torch.rand(1, 3, size, size)
    per_tile = []
    for mode in (None, window):
        restorer = Restorer(model, device="cpu", tile=tile, overlap=32, tlc_window=mode)
        started = time.process_time()
        done = run_some_tiles(restorer, image, max_tiles)
        per_tile.append((time.process_time() - started) / done)
    return per_tile[0], per_tile[1], done, len(restorer.plan(size, size)[0])


def windows_per_level(size: int, window: int) -> str:
    grids = [window_grid(size >> level, size >> level, window >> level) for level in range(4)]
    return " ".join(f"{len(g.rows.starts)}x{len(g.cols.starts)}" for g in grids)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=int, nargs="*", default=[256, 1024])
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--tiled", type=int, default=2048, help="side of the tiled image (0: skip)")
    parser.add_argument("--tile", type=int, default=512)
    parser.add_argument("--max-tiles", type=int, default=2)
    parser.add_argument("--window", type=int, default=DEFAULT_WINDOW)
    parser.add_argument("--formulations", nargs="+", choices=sorted(FORMULATIONS), default=sorted(FORMULATIONS))
    parser.add_argument("--tiled-formulations", nargs="+", choices=sorted(FORMULATIONS), default=["channels_last"])
    args = parser.parse_args()

    reuse_freed_memory()  # as the engine does on the CPU
    torch.manual_seed(0)
    model = Restormer(RestormerConfig()).eval()
    print(f"{cpu_name()}; torch {torch.__version__}, {torch.get_num_threads()} threads; full-size Restormer, "
          f"random weights, fp32; TLC window {args.window}")
    for formulation in args.formulations:
        model.channels_last = FORMULATIONS[formulation]
        for mode in (None, args.window):
            timed_pass(model, torch.rand(1, 3, 64, 64), mode)  # load kernels
        for size in args.sizes:
            plain, local = compare_whole(model, size, args.window, args.repeats)
            print(f"{formulation:13s} {size}x{size} whole (windows per level {windows_per_level(size, args.window)}): "
                  f"global {plain:.2f} CPU s, TLC {local:.2f} CPU s -> {local / plain:.3f}x", flush=True)
        if args.tiled and formulation in args.tiled_formulations:
            plain, local, done, total = compare_tiled(model, args.tiled, args.tile, args.window, args.max_tiles)
            print(f"{formulation:13s} {args.tiled}x{args.tiled} tiled ({args.tile}-px tiles, {done} of {total} timed): "
                  f"global {plain:.2f} CPU s/tile, TLC {local:.2f} CPU s/tile -> {local / plain:.3f}x", flush=True)


if __name__ == "__main__":
    main()
