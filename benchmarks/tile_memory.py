"""Does ``tile="auto"`` keep the whole process under ``--max-memory`` on a large photo?

Builds a full-width Restormer (random weights: only memory is measured), blows a real photo
up to ``--size`` (default 4000x3000), lets the engine pick the tile for ``--max-memory``
and prints the chosen tile and this process's peak RSS next to the budget.

Every tile has the same size and every buffer is allocated before the first tile runs, so
the peak is reached within the first batch; ``--max-tiles`` stops after that many tiles to
keep CPU runs short (say so when quoting figures). Run it in a fresh interpreter:

    python benchmarks/tile_memory.py --max-memory 3GB --max-tiles 2
"""

from __future__ import annotations

import argparse
import resource
import time
from pathlib import Path

import numpy as np
import psutil
import torch
from PIL import Image

from restore_cli.engine.budget import parse_memory_size
from restore_cli.engine.restorer import Restorer
from restore_cli.model.restormer import Restormer, RestormerConfig

PHOTO = Path(__file__).parent.parent / "restore_cli" / "assets" / "3096.png"


class EnoughTiles(Exception):
    """Raised from the progress callback to end a run early."""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--max-memory", required=True, help="budget for the whole process, e.g. 3GB")
    parser.add_argument("--size", default="4000x3000", help="WIDTHxHEIGHT of the test image")
    parser.add_argument("--precision", default="fp32", choices=["fp32", "bf16"])
    parser.add_argument("--depth", default="full", choices=["full", "shallow"],
                        help="shallow = one block per level: same activation width, less compute")
    parser.add_argument("--max-tiles", type=int, default=0, help="stop after this many tiles (0: all)")
    args = parser.parse_args()

    width, height = (int(side) for side in args.size.lower().split("x"))
    image = _photo(width, height)
    torch.manual_seed(0)
    config = RestormerConfig() if args.depth == "full" else RestormerConfig(num_blocks=(1, 1, 1, 1), num_refinement_blocks=1)
    restorer = Restorer(Restormer(config), device="cpu", precision=args.precision, max_memory=args.max_memory)
    plan, _ = restorer.plan(height, width)
    print(f"image {width}x{height}, {args.depth} Restormer (dim {config.dim}), {args.precision}, "
          f"{torch.get_num_threads()} threads")
    print(f"RSS before restore: {_mib(psutil.Process().memory_info().rss)}")
    print(f"chosen tile: {plan.tile_width}x{plan.tile_height}, {len(plan)} tiles")

    started = time.perf_counter()
    done = run_some_tiles(restorer, image, args.max_tiles)
    seconds = time.perf_counter() - started
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    budget = parse_memory_size(args.max_memory)
    print(f"ran {done} of {len(plan)} tiles in {seconds:.0f} s ({seconds / max(done, 1):.1f} s/tile)")
    print(f"peak RSS: {_mib(peak)} / budget {_mib(budget)} -> {'HELD' if peak <= budget else 'EXCEEDED'}")


def run_some_tiles(restorer: Restorer, image: torch.Tensor, max_tiles: int) -> int:
    """Restore ``image``, stopping after ``max_tiles`` tiles (0: all); returns the tiles run."""
    done = 0

    def progress(finished: int, total: int) -> None:
        nonlocal done
        done = finished
        if max_tiles and finished >= max_tiles and finished < total:
            raise EnoughTiles

    try:
        restorer.restore(image, progress)
    except EnoughTiles:
        pass
    return done


def _photo(width: int, height: int) -> torch.Tensor:
    """A real photo resized to the requested size, as the engine's NCHW float32."""
    pixels = np.array(Image.open(PHOTO).convert("RGB").resize((width, height), Image.BICUBIC))
    return torch.from_numpy(pixels).permute(2, 0, 1)[None].float().div_(255)


def _mib(size: int) -> str:
    return f"{size / 2**20:.0f} MiB"


if __name__ == "__main__":
    main()
