"""Measure Restormer's peak activation memory per pixel on the CPU, for fp32 and bf16.

Each (tile, precision) runs in a fresh interpreter, so the peak RSS it reports
(``ru_maxrss``) belongs to that one forward pass: peak minus the RSS just before the pass
is what the activations and the allocator's slack took. A line fitted through the
measurements gives the ``bytes = fixed + per_pixel * pixels`` model that
``restore_cli.engine.budget`` uses to pick tile sizes.

    python benchmarks/memory_per_pixel.py --tiles 128 256 384 512 --depth full

``--tlc-window N`` measures the network with TLC's local statistics (``--tlc``) instead.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys

import numpy as np
import psutil
import torch

from restore_cli.engine.allocator import reuse_freed_memory
from restore_cli.engine.device import autocast_context
from restore_cli.model.restormer import Restormer, RestormerConfig

DEPTHS = {
    "full": RestormerConfig(),
    "shallow": RestormerConfig(num_blocks=(1, 1, 1, 1), num_refinement_blocks=1),
}


def measure_once(tile: int, precision: str, depth: str, tlc_window: int | None = None) -> dict:
    """Peak bytes one forward pass of a ``tile`` x ``tile`` input adds to this process."""
    torch.manual_seed(0)
    reuse_freed_memory()  # as the engine does on the CPU: freed feature maps stay in the heap
    model = Restormer(DEPTHS[depth]).eval()
    model.tlc_window = tlc_window
    dtype = {"fp32": torch.float32, "bf16": torch.bfloat16}[precision]
    image = torch.rand(1, 3, tile, tile)
    with torch.inference_mode(), autocast_context(torch.device("cpu"), dtype):
        model(torch.rand(1, 3, 16, 16))  # load kernels before measuring
        before = max(psutil.Process().memory_info().rss, _peak_rss())
        model(image)
    return {"tile": tile, "precision": precision, "depth": depth, "bytes": _peak_rss() - before}


def _peak_rss() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tiles", type=int, nargs="+", default=[128, 256, 384, 512])
    parser.add_argument("--precisions", nargs="+", default=["fp32", "bf16"])
    parser.add_argument("--depth", choices=sorted(DEPTHS), default="full")
    parser.add_argument("--tlc-window", type=int, default=None, help="run with TLC's local statistics")
    parser.add_argument("--one", nargs=3, metavar=("TILE", "PRECISION", "DEPTH"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        print(json.dumps(measure_once(int(args.one[0]), args.one[1], args.one[2], args.tlc_window)))
        return
    label = args.depth if args.tlc_window is None else f"{args.depth} TLC {args.tlc_window}"
    for precision in args.precisions:
        rows = [_measure_in_child(tile, precision, args.depth, args.tlc_window) for tile in args.tiles]
        for row in rows:
            print(f"{precision} {label} tile {row['tile']:4d}: +{row['bytes'] / 2**20:7.0f} MiB"
                  f"  ({row['bytes'] / row['tile'] ** 2:6.0f} B/pixel)")
        pixels = np.array([row["tile"] ** 2 for row in rows], dtype=float)
        per_pixel, fixed = np.polyfit(pixels, [row["bytes"] for row in rows], 1)
        print(f"{precision} {label} fit: {fixed / 2**20:.0f} MiB + {per_pixel:.0f} B/pixel")


def _measure_in_child(tile: int, precision: str, depth: str, tlc_window: int | None) -> dict:
    command = [sys.executable, __file__, "--one", str(tile), precision, depth]
    if tlc_window is not None:
        command += ["--tlc-window", str(tlc_window)]
    return json.loads(subprocess.run(command, check=True, capture_output=True, text=True).stdout)


if __name__ == "__main__":
    main()
