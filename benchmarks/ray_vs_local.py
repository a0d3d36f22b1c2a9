"""`--engine ray` against `--engine local` on this machine, side by side in one run.

Each run is a real `restore run ... --json` process. The benchmark timestamps every JSON line
as it arrives, which separates a run's fixed cost (launch to first result: imports, Ray
start-up, model loading) from its steady throughput (results per second between the first
and the last one). Both engines get the same cores: local uses all of them as torch threads,
Ray one worker per core with one thread each.

Ray starts its workers at nice 15 (its `worker_niceness`), which on a machine shared with
other work hands them only what is left over; the benchmark sets `RAY_worker_niceness=0` so
that both engines compete for the CPU on equal terms.

Scaling: a `ray.cluster_utils.Cluster` of N nodes with 1 CPU each (all on this machine, so
they share its cores) and a model heavy enough that compute dominates.

    python benchmarks/ray_vs_local.py --images 200 --full-images 20 --nodes 1 2 4
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

from restore_cli.io.decode import read_image
from restore_cli.io.encode import write_image
from restore_cli.model.restormer import Restormer, RestormerConfig

ROOT = Path(__file__).parent.parent
TINY = ROOT / "tests" / "data" / "golden" / "tiny_rgb_withbias.pth"
PHOTO = ROOT / "tests" / "data" / "images" / "Landscape_9.jpg"


@dataclasses.dataclass
class Run:
    label: str
    images: int
    wall: float
    first: float
    """Seconds from launch to the first result."""
    steady: float
    """Images per second between the first and the last result."""


def make_photos(folder: Path, count: int, height: int, width: int) -> Path:
    photo = read_image(PHOTO)
    rows, cols = photo.pixels.shape[0] - height, photo.pixels.shape[1] - width
    folder.mkdir(parents=True)
    for index in range(count):
        top, left = (index * 37) % rows, (index * 53) % cols
        crop = photo.pixels[top : top + height, left : left + width]
        write_image(dataclasses.replace(photo, pixels=crop, exif=None), folder / f"{index:04d}.png")
    return folder


def full_size_checkpoint(path: Path) -> Path:
    """The paper's architecture (26 M parameters) with random weights: the official ones are
    not needed to time it."""
    torch.manual_seed(0)
    torch.save({"params": Restormer(RestormerConfig()).state_dict()}, path)
    return path


def run(label: str, weights: Path, inputs: Path, out: Path, *engine: str, threads: int | None = None) -> Run:
    command = [sys.executable, "-m", "restore_cli", "run", "--weights", str(weights), str(inputs), "-o", str(out),
               "--json", "--tile", "0", *engine]
    started = time.perf_counter()
    env = {**os.environ, **({"OMP_NUM_THREADS": str(threads)} if threads else {})}
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    arrivals = []
    for line in process.stdout:  # type: ignore[union-attr]
        if json.loads(line)["type"] == "image":
            arrivals.append(time.perf_counter() - started)
    _, stderr = process.communicate()
    wall = time.perf_counter() - started
    if process.returncode != 0:
        raise SystemExit(f"{label} failed ({process.returncode}): {stderr}")
    steady = (len(arrivals) - 1) / (arrivals[-1] - arrivals[0]) if len(arrivals) > 1 else float("nan")
    result = Run(label, len(arrivals), wall, arrivals[0], steady)
    print(f"{label:<34} {result.images:>4} images  wall {wall:6.1f} s  first result {result.first:5.1f} s  "
          f"steady {steady:6.2f} images/s", flush=True)
    return result


def compare(title: str, weights: Path, inputs: Path, work: Path, cores: int) -> None:
    """One core each (Ray's own overhead per image), then all cores each."""
    print(f"\n{title}")
    for count in sorted({1, cores}):
        local = run(f"local, {count} thread(s)", weights, inputs, work / f"{inputs.name}-local{count}", threads=count)
        ray = run(f"ray, {count} worker(s) x 1 CPU", weights, inputs, work / f"{inputs.name}-ray{count}",
                  "--engine", "ray", "--workers", str(count))
        overhead = (1 / ray.steady - 1 / local.steady) * 1000
        print(f"    {count} core(s): ray / local throughput {ray.steady / local.steady:.2f}; ray's extra fixed cost "
              f"{ray.first - local.first:+.1f} s; extra time per image {overhead:+.0f} ms")


def scaling(weights: Path, inputs: Path, work: Path, node_counts: list[int]) -> None:
    from ray.cluster_utils import Cluster

    print("\nscaling: N nodes of 1 CPU each (all on this machine)")
    base = None
    for nodes in node_counts:
        cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 0})
        try:
            for _ in range(nodes):
                cluster.add_node(num_cpus=1)
            cluster.wait_for_nodes()
            result = run(f"{nodes} node(s)", weights, inputs, work / f"scale-{nodes}", "--engine", "ray",
                         "--ray-address", cluster.address, "--workers", str(nodes))
        finally:
            cluster.shutdown()
        base = base or result.steady
        print(f"    speed-up over 1 node: {result.steady / base:.2f}")


def main() -> None:
    os.environ["RAY_worker_niceness"] = "0"
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=200, help="small photos for the tiny model")
    parser.add_argument("--size", type=int, nargs=2, default=(96, 128), metavar=("H", "W"))
    parser.add_argument("--full-images", type=int, default=20, help="photos for the full-size model (0: skip)")
    parser.add_argument("--full-size", type=int, nargs=2, default=(64, 64), metavar=("H", "W"))
    parser.add_argument("--nodes", type=int, nargs="*", default=[1, 2, 4], help="node counts for the scaling run")
    args = parser.parse_args()
    cores = os.cpu_count() or 1
    print(f"CPU: {platform.processor() or platform.machine()}, {cores} cores; torch {torch.__version__}")
    with tempfile.TemporaryDirectory() as temp:
        work = Path(temp)
        small = make_photos(work / "small", args.images, *args.size)
        compare(f"{args.images} photos {args.size[0]}x{args.size[1]}, tiny model (dim 8)", TINY, small, work, cores)
        if args.full_images:
            full = full_size_checkpoint(work / "full.pth")
            photos = make_photos(work / "full", args.full_images, *args.full_size)
            compare(f"{args.full_images} photos {args.full_size[0]}x{args.full_size[1]}, full-size model", full, photos, work, cores)
            if args.nodes:
                scaling(full, photos, work, args.nodes)


if __name__ == "__main__":
    main()
