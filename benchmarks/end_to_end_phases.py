"""Where whole `restore run` processes spend their CPU time, and what a default run costs
per pixel at each image size.

The parent writes a random full-size checkpoint and, per ``--sizes``, a photo (BSD68 3096
resized), then for each size starts fresh interpreters that go through the CLI's steps one
by one and report, for each, the CPU seconds of the process (user + system, all threads)
and its minor page faults: importing torch, importing the CLI (Typer, rich, pydantic,
Pillow...), building the model and loading the weights, decoding the photo, restoring it
with the defaults (`--tile auto`: the tile plan, the forward passes, blending) and encoding
the result. The rest of the child's CPU time, as the parent's getrusage sees it, is the
interpreter's start and exit. Sizes alternate within each of ``--repeat`` rounds, so load
from other work falls on all alike; medians are printed, and the restore phase's CPU
seconds per Mpix relative to the first size. HF_HOME decides which speed profile the
children plan with (a calibrated one, or the built-in curve).

    OMP_NUM_THREADS=1 python benchmarks/end_to_end_phases.py --sizes 512 1024 2000x1072 --repeat 1
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def _usage() -> tuple[float, int]:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime, usage.ru_minflt


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def child(weights: str, photo: str, out: str) -> None:
    phases: dict[str, dict[str, float]] = {}
    last = _usage()

    def mark(name: str) -> None:
        nonlocal last
        now = _usage()
        phases[name] = {"cpu_s": now[0] - last[0], "minor_faults": now[1] - last[1]}
        last = now

    import torch  # noqa: F401

    mark("import torch")
    import restore_cli.cli.app  # noqa: F401

    mark("import the CLI")
    from restore_cli.engine.restorer import Restorer
    from restore_cli.io.decode import read_image
    from restore_cli.io.encode import write_image
    from restore_cli.io.image import with_pixels
    from restore_cli.model.zoo import load_model

    model = load_model(weights)
    mark("build model + load weights")
    image = read_image(photo)
    mark("decode")
    restorer = Restorer(model, device="cpu")
    plan, _ = restorer.plan(*image.pixels.shape[:2])
    restored = restorer.restore(image.pixels)
    mark("restore (forward passes)")
    write_image(with_pixels(image, restored), out)
    mark("encode")
    tiles = f"{len(plan.rows.starts)}x{len(plan.cols.starts)} of {plan.tile_width}x{plan.tile_height}"
    print(json.dumps({"phases": phases, "plan": tiles, "computed_pixels": plan.computed_pixels}))


def prepare(folder: Path, sizes: list[tuple[int, int]]) -> tuple[Path, list[Path]]:
    import torch
    from PIL import Image

    from restore_cli.bench.procedures import PHOTO, full_model

    weights = folder / "random_full.pth"
    torch.manual_seed(0)
    torch.save({"params": full_model(channels_last=False).state_dict()}, weights)
    photos = []
    for width, height in sizes:
        photos.append(folder / f"photo_{width}x{height}.png")
        Image.open(PHOTO).convert("RGB").resize((width, height), Image.BICUBIC).save(photos[-1])
    return weights, photos


def _size(text: str) -> tuple[int, int]:
    width, _, height = text.lower().partition("x")
    return int(width), int(height or width)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", nargs="+", default=["512"], help="N or WxH")
    parser.add_argument("--repeat", type=int, default=1)
    parser.add_argument("--child", nargs=3, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(*args.child)
        return
    from restore_cli.engine.allocator import this_machine_huge_page_environment
    from restore_cli.engine.hardware import cpu_info

    sizes = [_size(text) for text in args.sizes]
    print(f"# {cpu_info().describe()}, sizes {args.sizes}, {args.repeat} rounds", flush=True)
    runs: dict[tuple[int, int], list[dict]] = {size: [] for size in sizes}
    with tempfile.TemporaryDirectory(prefix="restore-phases-") as folder:
        weights, photos = prepare(Path(folder), sizes)
        for _ in range(args.repeat):
            for size, photo in zip(sizes, photos):
                command = [sys.executable, __file__, "--child", str(weights), str(photo), str(Path(folder) / "out.png")]
                before, started = _children_cpu(), time.perf_counter()
                done = subprocess.run(command, capture_output=True, text=True, check=True,
                                      env=this_machine_huge_page_environment())
                wall, total = time.perf_counter() - started, _children_cpu() - before
                found = json.loads(done.stdout.strip().splitlines()[-1])
                phases = found["phases"]
                phases["interpreter start and exit"] = {
                    "cpu_s": total - sum(phase["cpu_s"] for phase in phases.values()), "minor_faults": 0}
                runs[size].append({**found, "wall_s": wall, "total_cpu_s": total})
                print(json.dumps({"size": f"{size[0]}x{size[1]}", "plan": found["plan"], "wall_s": round(wall, 1),
                                  "total_cpu_s": round(total, 2),
                                  **{name: round(phase["cpu_s"], 3) for name, phase in phases.items()}}), flush=True)
    _summary(sizes, runs)


def _summary(sizes: list[tuple[int, int]], runs: dict[tuple[int, int], list[dict]]) -> None:
    first = None
    for size in sizes:
        measured = runs[size]
        print(f"## {size[0]}x{size[1]}: {measured[0]['plan']}, "
              f"{measured[0]['computed_pixels'] / (size[0] * size[1]):.3f}x the image's pixels computed")
        for name in measured[0]["phases"]:
            cpu = statistics.median(run["phases"][name]["cpu_s"] for run in measured)
            faults = statistics.median(run["phases"][name]["minor_faults"] for run in measured)
            print(f"   {name:30s} {cpu:8.2f} CPU s  {faults:10.0f} minor faults")
        restore = statistics.median(run["phases"]["restore (forward passes)"]["cpu_s"] for run in measured)
        total = statistics.median(run["total_cpu_s"] for run in measured)
        per_mpix = restore / (size[0] * size[1] / 1e6)
        first = first or (per_mpix, total / (size[0] * size[1] / 1e6))
        print(f"   restore: {per_mpix:.1f} CPU s/Mpix ({per_mpix / first[0]:.3f}x the first size); "
              f"whole process: {total:.1f} CPU s, {total / (size[0] * size[1] / 1e6) / first[1]:.3f}x per pixel")


if __name__ == "__main__":
    main()
