"""What one `restore` call costs beyond torch's import, and what --files-from saves.

Times, alternating so machine load falls on all alike, each a whole process:
``python -c "import torch"``; ``restore run`` on one 64x64 PNG with a tiny checkpoint
(dim 8, one block a level: the cost is start-up, not arithmetic); and N such files restored
by N calls against one call with ``--files-from``. Wall-clock and CPU seconds are both
reported: on a shared machine the wall clock also measures the neighbours.

    OMP_NUM_THREADS=1 python benchmarks/per_call.py --repeat 3 --files 10
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from restore_cli.bench import timed
from restore_cli.engine.hardware import cpu_info
from restore_cli.model.restormer import Restormer, RestormerConfig

TINY = RestormerConfig(dim=8, num_blocks=(1, 1, 1, 1), num_refinement_blocks=1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--files", type=int, default=10)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="restore-per-call-") as folder:
        work = Path(folder)
        weights = work / "tiny.pth"
        torch.manual_seed(0)
        torch.save({"params": Restormer(TINY).state_dict()}, weights)
        photos = [work / f"in{index:03d}.png" for index in range(args.files)]
        for index, photo in enumerate(photos):
            Image.fromarray(np.random.default_rng(index).integers(0, 256, (64, 64, 3), dtype=np.uint8)).save(photo)
        restore = [sys.executable, "-m", "restore_cli", "run", "--weights", str(weights), "--quiet", "--overwrite"]
        labels = ("python -c 'import torch'", "restore run, one 64x64 file", f"{args.files} files, one call each",
                  f"{args.files} files, one --files-from call")
        timings: dict[str, list[tuple[float, float]]] = {label: [] for label in labels}
        names = "".join(f"{photo}\n" for photo in photos)
        for _ in range(args.repeat):
            timings[labels[0]].append(timed([sys.executable, "-c", "import torch"]))
            timings[labels[1]].append(timed([*restore, str(photos[0]), "-o", str(work / "out.png")]))
            each = [timed([*restore, str(photo), "-o", str(work / "each" / photo.name)]) for photo in photos]
            timings[labels[2]].append((sum(wall for wall, _ in each), sum(cpu for _, cpu in each)))
            timings[labels[3]].append(timed([*restore, "--files-from", "-", "-o", str(work / "listed")], stdin=names))
    print(f"# {cpu_info().describe()}, torch {torch.__version__}, median of {args.repeat}: wall s | CPU s")
    for label, values in timings.items():
        wall = statistics.median(value[0] for value in values)
        cpu = statistics.median(value[1] for value in values)
        print(f"{label:40s} {wall:7.2f} | {cpu:6.2f}")


if __name__ == "__main__":
    main()
