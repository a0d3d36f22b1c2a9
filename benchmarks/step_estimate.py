"""How well `restore train`'s first estimate (three times the first forward pass) predicts a
training step: per `--size`, the first step's forward and whole step, then the next steps.

    OMP_NUM_THREADS=1 python benchmarks/step_estimate.py --patch 64 --batch 4 --steps 3
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from restore_cli.training.loop import Pace, Trainer  # noqa: E402  (the repository's own)
from restore_cli.training.sizes import SIZES, new_model  # noqa: E402


def measure(size: str, patch: int, batch: int, steps: int) -> dict:
    torch.manual_seed(0)
    trainer = Trainer(new_model(size, 3, denoiser=True), torch.device("cpu"), torch.float32,
                      lr=3e-4, iterations=steps + 1, warmup=1, clip=0.01, ema_decay=0.0, seed=0)  # fmt: skip
    clean = torch.rand(batch, 3, patch, patch)
    noisy = clean + torch.randn(clean.shape) * 25 / 255
    forwards: list[float] = []
    seconds = []
    for _ in range(steps + 1):
        started = time.perf_counter()
        trainer.step(noisy, clean, on_forward=forwards.append)
        seconds.append(time.perf_counter() - started)
    estimate = forwards[0] * Pace.STEP_PER_FORWARD
    later = statistics.median(seconds[1:])
    return {"size": size, "first_forward": round(forwards[0], 2), "first_step": round(seconds[0], 2),
            "estimate": round(estimate, 2), "later_steps_median": round(later, 2),
            "step_per_forward_first": round(seconds[0] / forwards[0], 2),
            "step_per_forward_later": round(statistics.median(s / f for s, f in zip(seconds[1:], forwards[1:])), 2),
            "estimate_over_later": round(estimate / later, 2)}  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", nargs="+", default=list(SIZES), choices=list(SIZES))
    parser.add_argument("--patch", type=int, default=64)
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--steps", type=int, default=3)
    args = parser.parse_args()
    print(f"torch {torch.__version__}, {torch.get_num_threads()} thread(s)", flush=True)
    for size in reversed(args.sizes):
        print(json.dumps(measure(size, args.patch, args.batch, args.steps)), flush=True)


if __name__ == "__main__":
    main()
