"""The paper's training schedule: cosine learning-rate decay after a linear warm-up, and the
progressive patch/batch schedule ("progressive learning", Sec. 3.3 of the paper).

The paper trains 300 k iterations with patches growing 128 -> 384 pixels while the batch
shrinks 64 -> 8, so every stage sees a similar number of pixels per step and the late
stages see whole-image context. Here the stages keep the paper's proportions of the run and
of the patch side, scaled so that the last stage is the user's `--patch` and `--batch`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from restore_cli.model.restormer import SIZE_MULTIPLE

PAPER_STAGES = ((92_000, 128, 64), (64_000, 160, 40), (48_000, 192, 32), (36_000, 256, 16), (36_000, 320, 8), (24_000, 384, 8))
"""(iterations, patch, batch) of the paper's progressive schedule."""
FINAL_LR = 1e-6
"""Where the cosine ends, as in the paper (3e-4 -> 1e-6)."""
WARMUP_SHARE = 0.02
"""Share of the run spent warming up when no warm-up is given."""


@dataclass(frozen=True)
class Stage:
    """From iteration `start` on, crops are `patch` pixels square, `batch` at a time."""

    start: int
    patch: int
    batch: int


def stages(iterations: int, patch: int, batch: int, progressive: bool) -> list[Stage]:
    """The crop schedule of a run: one stage, or the paper's six scaled to this run."""
    if not progressive:
        return [Stage(0, patch, batch)]
    total = sum(length for length, _, _ in PAPER_STAGES)
    final_patch, final_batch = PAPER_STAGES[-1][1], PAPER_STAGES[-1][2]
    schedule, start = [], 0
    for length, paper_patch, paper_batch in PAPER_STAGES:
        side = max(SIZE_MULTIPLE, round(patch * paper_patch / final_patch / SIZE_MULTIPLE) * SIZE_MULTIPLE)
        schedule.append(Stage(start, min(side, patch), max(1, round(batch * paper_batch / final_batch))))
        start += round(iterations * length / total)
    return schedule


def stage_at(schedule: list[Stage], iteration: int) -> Stage:
    """The stage that iteration `iteration` (0-based) trains in."""
    return [stage for stage in schedule if stage.start <= iteration][-1]


def default_warmup(iterations: int) -> int:
    return max(1, round(iterations * WARMUP_SHARE))


class WarmupCosine(torch.optim.lr_scheduler.LRScheduler):
    """Linear warm-up to the base rate over `warmup` steps, then cosine decay to
    `final_lr` at `total` steps. A fresh model takes large, noisy first steps under AdamW
    before its moment estimates settle; warming up keeps them from wrecking the start."""

    def __init__(self, optimizer: torch.optim.Optimizer, total: int, warmup: int, final_lr: float = FINAL_LR) -> None:
        self.total = total
        self.warmup = warmup
        self.final_lr = final_lr
        super().__init__(optimizer)

    def get_lr(self) -> list[float]:
        return [self.rate(base, self.last_epoch) for base in self.base_lrs]

    def rate(self, base: float, step: int) -> float:
        """The learning rate of 0-based step `step`."""
        if step < self.warmup:
            return base * (step + 1) / self.warmup
        progress = min(1.0, (step - self.warmup) / max(1, self.total - self.warmup))
        final = min(self.final_lr, base)
        return final + (base - final) * 0.5 * (1.0 + math.cos(math.pi * progress))
