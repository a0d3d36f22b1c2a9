"""Training throughput of `restore train` on this machine: iterations/s and pixels/s per
`--size`, fp32 against bf16 where the hardware computes bf16 natively.

Times the training step itself (forward, L1 loss, backward, clipping, AdamW, schedule) on
random crops of a fixed size, after warm-up steps, one size and precision after the other
in one process so the figures are side by side. bf16 is skipped, with a message, where it
would be emulated (it is then far slower than fp32, not faster).

    OMP_NUM_THREADS=1 python benchmarks/train_throughput.py --patch 64 --batch 4 --steps 3
"""

from __future__ import annotations

import argparse
import json
import time

import torch

from restore_cli.bench import describe_machine
from restore_cli.engine.device import resolve_device
from restore_cli.engine.hardware import slow_precision_reason
from restore_cli.training.loop import Trainer
from restore_cli.training.sizes import SIZES, new_model

PRECISIONS = {"fp32": torch.float32, "bf16": torch.bfloat16}


def measure(size: str, dtype: torch.dtype, device: torch.device, patch: int, batch: int, steps: int, warmup: int) -> dict:
    torch.manual_seed(0)
    trainer = Trainer(
        new_model(size, 3, denoiser=True), device, dtype,
        lr=3e-4, iterations=steps + warmup, warmup=1, clip=0.01, ema_decay=0.0, seed=0,
    )  # fmt: skip
    clean = torch.rand(batch, 3, patch, patch)
    noisy = clean + torch.randn(clean.shape) * 25 / 255
    for _ in range(warmup):
        trainer.step(noisy, clean)
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    started = time.perf_counter()
    for _ in range(steps):
        trainer.step(noisy, clean)
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    seconds = (time.perf_counter() - started) / steps
    parameters = sum(p.numel() for p in trainer.model.parameters())
    return {
        "size": size,
        "parameters": parameters,
        "precision": str(dtype).removeprefix("torch."),
        "seconds_per_iteration": seconds,
        "iterations_per_second": 1 / seconds,
        "pixels_per_second": batch * patch * patch / seconds,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", nargs="+", default=list(SIZES), choices=list(SIZES))
    parser.add_argument("--precisions", nargs="+", default=list(PRECISIONS), choices=list(PRECISIONS))
    parser.add_argument("--patch", type=int, default=64)
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--steps", type=int, default=3, help="timed steps per size and precision")
    parser.add_argument("--warmup", type=int, default=1, help="untimed steps first")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--json", action="store_true", help="print the rows as one JSON object")
    args = parser.parse_args()

    device = resolve_device(args.device)
    rows = []
    for precision in args.precisions:
        reason = slow_precision_reason(PRECISIONS[precision], device)
        if reason is not None:
            print(f"skipping {precision}: {reason}")
            continue
        for size in args.sizes:
            rows.append(measure(size, PRECISIONS[precision], device, args.patch, args.batch, args.steps, args.warmup))
            row = rows[-1]
            print(f"{size:>5} {row['precision']:>8}: {row['iterations_per_second']:.3f} it/s, "
                  f"{row['pixels_per_second'] / 1e3:.1f} kpixel/s ({row['parameters']:,} parameters)", flush=True)  # fmt: skip
    machine = describe_machine()
    print(machine)
    if args.json:
        print(json.dumps({"machine": machine, "patch": args.patch, "batch": args.batch, "rows": rows}))


if __name__ == "__main__":
    main()
