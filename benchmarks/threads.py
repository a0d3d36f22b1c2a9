"""Threads for a batch: `restore run` with --threads 1, 2 and the default, side by side.

15 crops of 128x128 from the CBSD68 photo through the demonstration model, each a whole
`restore run` process (start-up and model load included), the thread counts alternated so
that they meet the same load. For each run: wall seconds, CPU seconds of the process, the
cores other processes kept busy meanwhile (from /proc/stat, net of the run's own CPU time),
the 1-minute load average at the start, and the count the default chose (from --debug).
Outputs are compared byte for byte across thread counts.

    python benchmarks/threads.py --repeat 3 [--images 15] [--side 128] [--json results.jsonl]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import re
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
PHOTO = ROOT / "restore_cli" / "assets" / "3096.png"
WEIGHTS = ROOT / "tests" / "data" / "tiny_sigma25.pth"
sys.path.insert(0, str(ROOT))

from restore_cli.engine import threads  # noqa: E402  (the repository's own, not an installed copy)


def make_inputs(folder: Path, count: int, side: int) -> None:
    pixels = np.asarray(Image.open(PHOTO).convert("RGB"))
    height, width = pixels.shape[:2]
    folder.mkdir(parents=True, exist_ok=True)
    for index in range(count):
        top, left = (37 * index) % (height - side), (53 * index) % (width - side)
        Image.fromarray(pixels[top : top + side, left : left + side]).save(folder / f"{index:02d}.png")


def run_once(inputs: Path, output: Path, count: str) -> dict:
    command = [sys.executable, "-m", "restore_cli", "run", "--weights", str(WEIGHTS), str(inputs), "-o", str(output),
               "--overwrite", "--debug"]  # fmt: skip
    if count != "default":
        command += ["--threads", count]
    env = {key: value for key, value in os.environ.items() if key != "OMP_NUM_THREADS"}
    load = os.getloadavg()[0]
    before, children = threads.sample(), resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    result = subprocess.run(command, capture_output=True, text=True, env=env, check=True)
    wall = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - children.ru_utime) + (after.ru_stime - children.ru_stime)
    now = threads.sample()
    others = None if now.busy is None or before.busy is None else max(0.0, (now.busy - before.busy - cpu) / wall)
    chosen = re.search(r"restore_cli\.engine\.threads: (\d+) threads", result.stderr)
    digest = hashlib.sha256(b"".join(path.read_bytes() for path in sorted(output.iterdir()))).hexdigest()[:16]
    return {"threads": count, "chosen": int(chosen.group(1)) if chosen else int(count), "wall": round(wall, 2),
            "cpu": round(cpu, 2), "others_busy": None if others is None else round(others, 2), "load1": load, "outputs": digest}  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--images", type=int, default=15)
    parser.add_argument("--side", type=int, default=128)
    parser.add_argument("--counts", nargs="+", default=["1", "2", "default"])
    parser.add_argument("--json", type=Path, help="append one JSON line per run to this file")
    args = parser.parse_args()
    print(f"{os.cpu_count()} CPUs, affinity {threads.affinity_cpus()}", flush=True)
    with tempfile.TemporaryDirectory() as scratch:
        inputs = Path(scratch) / "in"
        make_inputs(inputs, args.images, args.side)
        for repeat in range(args.repeat):
            for count in args.counts:
                row = {"repeat": repeat, **run_once(inputs, Path(scratch) / f"out-{count}", count)}
                print(json.dumps(row), flush=True)
                if args.json:
                    with args.json.open("a") as log:
                        log.write(json.dumps(row) + "\n")


if __name__ == "__main__":
    main()
