"""Does memory stay flat over a long batch? Restore 1,000 small images and watch RSS.

A leak of even a few kB per image (a cached tensor, a growing list of results, an
unclosed file) shows up as a steady slope over a thousand images. The script generates
the images, runs the real `restore run` command in a child process with --json, and
samples the child's resident memory each time it reports an image.

    python benchmarks/flat_memory.py [--images 1000] [--size 64] [--weights CKPT]

It prints RSS every 100 images and the growth between the first and last tenth of the
batch (the first images pay for imports, model load and allocator warm-up).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_WEIGHTS = ROOT / "tests" / "data" / "golden" / "tiny_rgb_withbias.pth"


def rss_mib(pid: int) -> float:
    """Resident set size from /proc (Linux), so the benchmark needs nothing beyond the project."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS in /proc status")


def make_images(folder: Path, count: int, size: int) -> None:
    rng = np.random.default_rng(0)
    for index in range(count):
        pixels = rng.integers(0, 256, (size, size, 3), dtype=np.uint8)
        Image.fromarray(pixels).save(folder / f"{index:04d}.png")


def measure(folder: Path, out: Path, weights: Path) -> list[float]:
    """RSS after each reported image, in MiB."""
    command = [sys.executable, "-m", "restore_cli", "run", "--weights", str(weights), str(folder), "-o", str(out), "--json", "--quiet"]
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    samples = []
    with subprocess.Popen(command, stdout=subprocess.PIPE, text=True, env=env) as process:
        assert process.stdout is not None
        for line in process.stdout:
            if json.loads(line)["type"] == "image":
                samples.append(rss_mib(process.pid))
    if process.returncode != 0:
        raise SystemExit(f"restore exited with {process.returncode}")
    return samples


def report(samples: list[float]) -> None:
    for index in range(0, len(samples), 100):
        print(f"image {index + 1:5d}: RSS {samples[index]:7.1f} MiB")
    print(f"image {len(samples):5d}: RSS {samples[-1]:7.1f} MiB")
    tenth = max(1, len(samples) // 10)
    first, last = np.median(samples[tenth : 2 * tenth]), np.median(samples[-tenth:])
    per_image = (last - first) * 1024 / max(1, len(samples) - 2 * tenth)
    print(f"median RSS, 2nd tenth {first:.1f} MiB -> last tenth {last:.1f} MiB: {last - first:+.1f} MiB ({per_image:+.2f} KiB/image)")
    print(f"peak {max(samples):.1f} MiB")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=1000)
    parser.add_argument("--size", type=int, default=64, help="side of each square image, in pixels")
    parser.add_argument("--weights", type=Path, default=DEFAULT_WEIGHTS)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="restore-flat-memory-") as scratch:
        folder, out = Path(scratch, "in"), Path(scratch, "out")
        folder.mkdir()
        make_images(folder, args.images, args.size)
        report(measure(folder, out, args.weights))


if __name__ == "__main__":
    main()
