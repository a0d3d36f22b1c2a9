"""Seconds per output megapixel of the full model against the CPU tile side: the curve
behind ``engine.CPU_TILE_CURVE``, which ``tile="auto"`` uses to pick the fastest tile.

Each side runs in a fresh interpreter with the engine's CPU allocator setting: a 64x64
warm-up, then a first ("cold") pass of a side x side input, as a whole image is run, and a
second ("warm") pass, as the second and later tiles of a tiled image are run. The
per-output-pixel cost of tiling with ``--overlap`` is the warm time over the tile's
stride squared, ``(side - overlap)**2``: the overlap is computed twice.

Times are the process's CPU seconds, not wall-clock seconds: on a shared machine the wall
clock measures the neighbours; with one thread (``OMP_NUM_THREADS=1``) CPU time is what the
pass itself costs. Both are printed.

    OMP_NUM_THREADS=1 python benchmarks/tile_speed.py --sides 128 256 384 512 768 1024
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time


def measure_side(side: int) -> dict:
    import torch

    from restore_cli.engine.allocator import reuse_freed_memory
    from restore_cli.model.restormer import Restormer

    reuse_freed_memory()
    torch.manual_seed(0)
    model = Restormer().eval()
    image = torch.rand(1, 3, side, side)
    cpu, wall = [], []
    with torch.inference_mode():
        model(image[..., :64, :64])
        for _ in range(2):
            started, started_cpu = time.perf_counter(), time.process_time()
            model(image)
            cpu.append(time.process_time() - started_cpu)
            wall.append(time.perf_counter() - started)
    return {"side": side, "cold_cpu_s": cpu[0], "warm_cpu_s": cpu[1], "cold_wall_s": wall[0], "warm_wall_s": wall[1],
            "threads": torch.get_num_threads()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sides", type=int, nargs="+", default=[128, 256, 384, 512, 768, 1024])
    parser.add_argument("--overlap", type=int, default=32)
    parser.add_argument("--one", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        print(json.dumps(measure_side(args.one)))
        return
    print(f"# {_cpu_name()}, OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS', 'unset')}", flush=True)
    for side in args.sides:
        done = subprocess.run([sys.executable, __file__, "--one", str(side)], check=True, capture_output=True, text=True)
        row = json.loads(done.stdout)
        whole = row["cold_cpu_s"] / side**2 * 1e6
        tiled = row["warm_cpu_s"] / max(side - args.overlap, 1) ** 2 * 1e6
        print(json.dumps({**row, "whole_cpu_s_per_mpix": round(whole, 1),
                          "tiled_cpu_s_per_mpix": round(tiled, 1)}), flush=True)


def _cpu_name() -> str:
    with open("/proc/cpuinfo", encoding="utf-8") as cpuinfo:
        return next((line.split(":", 1)[1].strip() for line in cpuinfo if line.startswith("model name")), "unknown CPU")


if __name__ == "__main__":
    main()
