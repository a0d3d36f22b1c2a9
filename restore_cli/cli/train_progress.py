"""What `restore train` shows while it runs: speed and time left from the first step on, the
CPU warning, the answer to Ctrl-C, validation scores.

Speed comes from the steps themselves, not a sampling window: a full-size step on a CPU takes
minutes, so a rate averaged over the last seconds would show nothing for most of the run.
Before the first step ends, the run's own estimate (from the first forward pass) stands in.
"""

from __future__ import annotations

import json
import math
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING

from rich.console import Console
from rich.progress import BarColumn, Progress, ProgressColumn, Task, TextColumn
from rich.text import Text

if TYPE_CHECKING:
    from restore_cli.quality import metrics
    from restore_cli.training.loop import Pace

LOG_LINES = 10
"""Progress lines over a whole run when stderr is not a terminal (a log)."""


def duration(seconds: float) -> str:
    """A duration as people say it: 40 s, 12 min, 3 h 20 min, 2 days 5 h."""
    if seconds < 90:
        return f"{max(seconds, 0.1):.1f} s" if seconds < 10 else f"{seconds:.0f} s"
    minutes = seconds / 60
    if minutes < 90:
        return f"{minutes:.0f} min"
    hours = minutes / 60
    if hours < 48:
        return f"{int(hours)} h {int(minutes % 60)} min"
    return f"{int(hours // 24)} days {int(hours % 24)} h"


def iterations(count: int) -> str:
    return f"{count} iteration{'' if count == 1 else 's'}"


def emit(row: dict) -> None:
    """One JSON line on stdout."""
    sys.stdout.write(json.dumps(row) + "\n")
    sys.stdout.flush()


class _PaceColumn(ProgressColumn):
    """Speed and time left, read from the reporter at every refresh, so the time left counts
    down between steps however long they are."""

    def __init__(self, reporter: TrainingReporter) -> None:
        super().__init__()
        self.reporter = reporter

    def render(self, task: Task) -> Text:
        return Text(self.reporter.pace_text())


class TrainingReporter:
    """A bar with iteration, loss, learning rate, speed and time left on a terminal (a line
    every tenth of the run in a log); validation scores as lines on stderr, or as JSON on
    stdout with --json."""

    def __init__(self, console: Console, as_json: bool, fine_tuning: bool) -> None:
        self.console = console
        self.as_json = as_json
        self.fine_tuning = fine_tuning
        self.log = not console.is_terminal and not console.quiet
        self._loud = Console(stderr=True, soft_wrap=True)
        """For what -q does not silence: warnings, and the answer to Ctrl-C."""
        self.last_saved: int | None = None
        self.iteration = self.first = self.total = 0
        self.loss = "-"
        self._estimate: float | None = None
        self._began = self._second_step = self._last_step = 0.0
        self.progress = Progress(
            TextColumn("iteration {task.completed:.0f}/{task.total:.0f}"),
            BarColumn(bar_width=15),
            TextColumn("loss {task.fields[loss]} lr {task.fields[lr]}"),
            _PaceColumn(self),
            console=console,
            disable=not console.is_terminal,
        )
        self.task = self.progress.add_task("train", total=1, loss="-", lr="-", start=False)

    # ------------------------------------------------------------------ the run's events

    def started(self, iteration: int, total: int) -> None:
        self.iteration = self.first = iteration
        self.total = total
        self._began = self._last_step = time.monotonic()
        self.progress.update(self.task, completed=iteration, total=total)
        self.progress.start_task(self.task)

    def estimated(self, pace: Pace) -> None:
        self._estimate = pace.seconds_per_step
        if pace.full_size_on_cpu:
            smaller = "fewer --iters, a smaller --patch or --batch" if self.fine_tuning else "--size tiny or --size small, or fewer --iters"
            self._loud.print(
                f"warning: the full-size network trains on the CPU at about {duration(pace.seconds_per_step)} per iteration, "
                f"so {iterations(pace.steps_left)} take about {duration(pace.seconds_left)}; try {smaller}, or a GPU"
            )
        elif self.log:
            self.console.print(f"about {duration(pace.seconds_per_step)} per iteration: {iterations(pace.steps_left)} take about {duration(pace.seconds_left)}")

    def stepped(self, iteration: int, loss: float, lr: float) -> None:
        now = time.monotonic()
        if iteration == self.first + 1:
            self._second_step = now
        self.iteration, self._last_step, self.loss = iteration, now, f"{loss:.4f}"
        self.progress.update(self.task, completed=iteration, loss=self.loss, lr=f"{lr:.1e}")
        every = max(1, self.total // LOG_LINES)
        if self.log and (iteration % every == 0 or iteration == self.total):
            self.console.print(f"iteration {iteration}/{self.total}: loss {self.loss}, {self.pace_text()}")

    def validated(self, iteration: int, score: metrics.Score) -> None:
        psnr = score.psnr if math.isfinite(score.psnr) else None
        if self.as_json:
            emit({"type": "validation", "iteration": iteration, "psnr": psnr, "ssim": score.ssim})
        else:
            self.console.print(f"iteration {iteration}: validation PSNR {score.psnr:.2f} dB, SSIM {score.ssim:.4f}")

    def saved(self, iteration: int) -> None:
        self.last_saved = iteration

    def stopping(self) -> None:
        """Said at once, and despite -q: the user pressed Ctrl-C and waits for an answer."""
        self._loud.print("stopping after this step… (Ctrl-C again to stop now)")

    # ------------------------------------------------------------------ what is shown

    def seconds_per_step(self) -> float | None:
        """The mean step since the first (which also pays for warming up), else the first
        step, else the run's estimate."""
        done = self.iteration - self.first
        if done >= 2:
            return (self._last_step - self._second_step) / (done - 1)
        if done == 1:
            return self._second_step - self._began
        return self._estimate

    def pace_text(self) -> str:
        per_step = self.seconds_per_step()
        if not per_step:
            return "- it/s"
        rate = f"{1 / per_step:.2f} it/s" if per_step < 1 else f"{duration(per_step)}/it"
        left = per_step * (self.total - self.iteration) - min(time.monotonic() - self._last_step, per_step)
        return f"{rate}, {duration(max(left, 0.0))} left" if self.iteration < self.total else rate

    def interrupted(self, state: Path) -> str:
        """What the state file holds after Ctrl-C, and how to continue."""
        resume = f"continue with the same options and --resume {state}"
        if self.last_saved is None and self.first == 0:
            return f"stopped at iteration {self.iteration}, before any state was saved"
        if self.last_saved is None:
            return f"stopped at iteration {self.iteration}; the state file resumed from still holds iteration {self.first}"
        if self.last_saved == self.iteration:
            return f"stopped at iteration {self.iteration}; {state} holds it: {resume}"
        return f"stopped at iteration {self.iteration}; {state} holds iteration {self.last_saved}: {resume}"
