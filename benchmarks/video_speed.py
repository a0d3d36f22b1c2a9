"""Frames per second of a video through the full-size model, and the share of wall time spent
outside the model (decoding, colour conversion, encoding, segment files, the join).

The clip is made here (H.264, yuv420p, 1 s keyframe interval, a moving pattern with noise),
then restored through the same `Pipeline` the commands use, with the engine choosing tiles.
Each call of the model is timed; the rest of the wall time is what the video machinery costs
beyond it. Decoding and encoding run on their own threads, so they are hidden behind the
model except where they compete with it for cores.

    python benchmarks/video_speed.py [--frames 4] [--width 1280] [--height 720] [--weights CKPT]

Without --weights the network is a full-size Restormer with random weights (seed 0), whose
speed is the trained models'. Prints one line per run: frames, wall seconds, model seconds,
fps, the share outside the model, and the process's CPU seconds (user + system).
"""

from __future__ import annotations

import argparse
import os
import platform
import resource
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from restore_cli.batch.models import EngineSettings, Model, ModelChoice, Models  # noqa: E402
from restore_cli.batch.pipeline import Pipeline  # noqa: E402
from restore_cli.batch.planning import Naming, plan_jobs  # noqa: E402
from tests.video_clips import Clip, make_clip  # noqa: E402


def full_size_model(weights: Path | None) -> Model:
    import torch

    from restore_cli.model.restormer import Restormer, RestormerConfig
    from restore_cli.model.zoo import load_model

    if weights is not None:
        network = load_model(weights)
    else:
        torch.manual_seed(0)
        network = Restormer(RestormerConfig())
    return EngineSettings().wrap("full-size", network)


class Timed:
    """The model, with the seconds spent in it."""

    def __init__(self, model: Model) -> None:
        self.model, self.seconds, self.calls = model, 0.0, 0

    def __call__(self, tensor, progress):
        started = time.perf_counter()
        try:
            return self.model.restore(tensor, progress)
        finally:
            self.seconds += time.perf_counter() - started
            self.calls += 1


def cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--frames", type=int, default=4)
    parser.add_argument("--width", type=int, default=1280)
    parser.add_argument("--height", type=int, default=720)
    parser.add_argument("--weights", type=Path)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as folder:
        clip = make_clip(Path(folder, "clip.mp4"), Clip(frames=args.frames, width=args.width, height=args.height, rate=25, gop=25))
        timed = Timed(full_size_model(args.weights))
        pipeline = Pipeline(Models(ModelChoice.single("full-size"), lambda spec: Model("full-size", 3, timed)))
        (job,) = plan_jobs([str(clip)], Naming("run", output=str(Path(folder, "out.mp4"))))
        cpu, started = cpu_seconds(), time.perf_counter()
        result = pipeline.process_one(job)
        wall, cpu = time.perf_counter() - started, cpu_seconds() - cpu
    assert result.status == "ok", result.error
    import torch

    print(f"# {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, torch {torch.__version__}, {torch.get_num_threads()} threads")
    print(
        f"{args.width}x{args.height}, {result.frames} frames, tiles {result.tiles}: wall {wall:.1f} s, model {timed.seconds:.1f} s, "
        f"{result.frames / wall:.4f} fps, outside the model {100 * (1 - timed.seconds / wall):.2f}% of wall time, "
        f"CPU {cpu:.1f} s"
    )


if __name__ == "__main__":
    main()
