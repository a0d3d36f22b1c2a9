"""Does memory stay flat over a long video? Restore clips of growing length and watch RSS.

Every stage of the video path holds a bounded number of frames (two between decoder and
model, two between model and encoder), segment files are streamed to disk and the join reads
them packet by packet; so resident memory should not depend on the video's length. The model
here is cheap (1 - x) so that thousands of frames take minutes: the network's own memory is
per frame and measured elsewhere (memory_per_pixel.py).

    python benchmarks/video_memory.py [--frames 750 3000] [--width 640] [--height 360]

For each length it prints the peak RSS of a fresh process over the whole run, and RSS at
each tenth of the run, sampled from /proc (Linux).
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def rss_mib() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS in /proc status")


def run(frames: int, width: int, height: int) -> None:
    """One length, in this (fresh) process."""
    sys.path.insert(0, str(ROOT))
    from restore_cli.batch.models import Model, ModelChoice, Models
    from restore_cli.batch.pipeline import Pipeline
    from restore_cli.batch.planning import Naming, plan_jobs
    from tests.video_clips import Clip, make_clip

    with tempfile.TemporaryDirectory() as folder:
        clip = make_clip(Path(folder, "clip.mp4"), Clip(frames=frames, width=width, height=height, rate=25, gop=25, audio=True))
        models = Models(ModelChoice.single("invert"), lambda spec: Model("invert", 3, lambda tensor, progress: 1 - tensor))
        (job,) = plan_jobs([str(clip)], Naming("run", output=str(Path(folder, "out.mp4"))))
        samples: list[float] = []
        done = threading.Event()

        def sample() -> None:
            while not done.wait(0.25):
                samples.append(rss_mib())

        sampler = threading.Thread(target=sample, daemon=True)
        before = rss_mib()
        sampler.start()
        started = time.perf_counter()
        result = Pipeline(models).process_one(job)
        done.set()
        sampler.join()
    assert result.status == "ok", result.error
    tenths = [samples[min(len(samples) - 1, len(samples) * k // 10)] for k in range(1, 11)] if samples else []
    print(
        f"{frames} frames {width}x{height}: {time.perf_counter() - started:.0f} s, RSS before {before:.0f} MiB, "
        f"peak {max(samples, default=before):.0f} MiB; each tenth: {' '.join(f'{value:.0f}' for value in tenths)}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--frames", type=int, nargs="+", default=[750, 3000])
    parser.add_argument("--width", type=int, default=640)
    parser.add_argument("--height", type=int, default=360)
    parser.add_argument("--one", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        run(args.frames[0], args.width, args.height)
        return
    for frames in args.frames:
        command = [sys.executable, __file__, "--one", "--frames", str(frames), "--width", str(args.width), "--height", str(args.height)]
        subprocess.run(command, check=True)


if __name__ == "__main__":
    main()
