"""`restore train`: fine-tune a model on your own images, or train one from scratch.

Thin: turns the command line into TrainingOptions, runs restore_cli.training, and shows
progress (a bar on stderr when it is a terminal), validation scores and errors.
"""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Optional, Tuple

import typer
from rich.console import Console
from rich.progress import BarColumn, Progress, ProgressColumn, Task, TextColumn, TimeRemainingColumn
from rich.text import Text

from restore_cli.cli.console import EXIT_FAILED, EXIT_INTERRUPTED, EXIT_USAGE, fail
from restore_cli.cli.progress import RichDownloadBar
from restore_cli.errors import CheckpointError, DataError, StateError, UsageError, ZooError

if TYPE_CHECKING:
    from restore_cli.quality import metrics

EPILOG = (
    "Examples:\n\n"
    "restore train clean_photos/ --sigma 25 -o my_denoiser.pth           # synthetic noise, from scratch\n"
    "restore train clean_photos/ --sigma 0-50 --size small -o blind.pth  # a blind denoiser\n"
    "restore train --pairs rainy/ clean/ --from deraining -o derain_ours.pth\n"
    "restore train --pairs noisy/ clean/ --from real_denoising --val-pairs vnoisy/ vclean/ -o ft.pth --iters 20000\n"
    "restore train --pairs noisy/ clean/ --from real_denoising -o ft.pth --iters 20000 --resume ft.state"
)

Folders = Optional[Tuple[Path, Path]]


def train_command(
    data: Optional[Path] = typer.Argument(None, metavar="[CLEAN]", help="Folder of clean images (with --sigma)."),
    output: Path = typer.Option(..., "-o", "--output", metavar="CKPT", help="Checkpoint to write (.pth, official layout)."),
    sigma: Optional[str] = typer.Option(None, "--sigma", help="Gaussian noise level on the 0-255 scale: 25, or a range 0-50 (blind)."),
    pairs: Folders = typer.Option(None, "--pairs", metavar="INPUT TARGET", help="Degraded and clean folders, paired by file name."),
    start: Optional[str] = typer.Option(None, "--from", metavar="NAME|CKPT", help="Start from a zoo model or checkpoint file (fine-tune)."),
    size: Optional[str] = typer.Option(None, "--size", help="Train from scratch: base (the paper's, 26 M parameters; the default), small or tiny."),
    patch: int = typer.Option(128, "--patch", help="Side of the random training crops, a multiple of 8 (the last stage's with --progressive)."),
    batch: int = typer.Option(8, "--batch", help="Crops per step (the last stage's with --progressive)."),
    iters: int = typer.Option(10_000, "--iters", help="Total iterations (the paper: 300000)."),
    lr: float = typer.Option(3e-4, "--lr", help="Peak learning rate (AdamW), reached after the warm-up, then cosine decay to 1e-6."),
    warmup: Optional[int] = typer.Option(None, "--warmup", help="Warm-up iterations (default: 2% of --iters)."),
    progressive: bool = typer.Option(False, "--progressive", help="The paper's progressive schedule: patches grow to --patch while batches shrink to --batch."),
    precision: str = typer.Option("auto", "--precision", help="auto (fp32), fp32, bf16 (where native), fp16 (CUDA)."),
    allow_slow_precision: bool = typer.Option(False, "--allow-slow-precision", help="Train in a half precision this hardware would emulate (slower)."),
    clip: float = typer.Option(0.01, "--clip", help="Clip the gradient norm to this (0 = off); the authors' training clips to 0.01."),
    seed: int = typer.Option(0, "--seed", help="Seed for crops, augmentation, noise and initial weights."),
    ema: float = typer.Option(0.0, "--ema", help="Also keep an exponential moving average of the weights with this decay (e.g. 0.999), saved as params_ema."),
    val: Optional[Path] = typer.Option(None, "--val", metavar="CLEAN", help="Clean validation images (with --sigma)."),
    val_pairs: Folders = typer.Option(None, "--val-pairs", metavar="INPUT TARGET", help="Validation pairs (with --pairs)."),
    val_share: float = typer.Option(0.1, "--val-share", help="Without --val/--val-pairs, hold out this share of the images (from 4 images up)."),
    val_every: int = typer.Option(1000, "--val-every", help="Validate every N iterations and at the end (0 = never)."),
    save_every: int = typer.Option(1000, "--save-every", help="Write the state file (CKPT with .state) every N iterations (0 = never)."),
    device: str = typer.Option("auto", "--device", help="auto, cpu, cuda or cuda:N."),
    resume: Optional[Path] = typer.Option(None, "--resume", metavar="STATE", help="Continue the run that wrote this state file (same options)."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace an existing checkpoint or state file."),
    as_json: bool = typer.Option(False, "--json", help="One JSON line per validation, and one at the end, on stdout."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress bar or validation lines on stderr."),
) -> None:
    """Fine-tune a Restormer on your own images, or train one from scratch.

    Fine-tuning the official weights (--from a zoo model) keeps them under the authors'
    non-commercial licence."""
    chosen = {name: value for name, value in locals().items() if name not in ("as_json", "quiet")}
    # Imported here, not at the top: torch would slow down every other command's start.
    from restore_cli.training.run import TrainingOptions, run
    from restore_cli.training.state import state_path

    options = TrainingOptions(**chosen, download_progress=RichDownloadBar)
    console = Console(stderr=True, quiet=quiet)
    reporter = ProgressReporter(console, as_json)
    try:
        with reporter.progress:
            result = run(options, reporter)
    except (UsageError, DataError, StateError) as error:  # what was asked for: options, data, state file
        fail(str(error), EXIT_USAGE)
    except (CheckpointError, ZooError) as error:
        fail(str(error), EXIT_FAILED)
    except KeyboardInterrupt:
        fail(reporter.interrupted(state_path(output)), EXIT_INTERRUPTED)
    if as_json:
        loss = result.last_loss
        _emit({"type": "done", "output": str(result.output), "iterations": result.iterations,
               "seconds": round(result.seconds, 1), "loss": loss})  # fmt: skip
    console.print(f"wrote {result.output} after {result.iterations} iterations ({result.seconds / 60:.1f} min)")


def _emit(row: dict) -> None:
    sys.stdout.write(json.dumps(row) + "\n")
    sys.stdout.flush()


class RateColumn(ProgressColumn):
    """Iterations per second, as the bar's own speed estimate measures them."""

    def render(self, task: Task) -> Text:
        return Text(f"{task.speed:.2f} it/s" if task.speed else "- it/s")


class ProgressReporter:
    """A bar with iteration, loss, learning rate, speed and ETA on a terminal; validation
    scores as lines on stderr, or as JSON on stdout with --json."""

    def __init__(self, console: Console, as_json: bool) -> None:
        self.console = console
        self.as_json = as_json
        self.last_saved: int | None = None
        self.iteration = 0
        self.first = 0
        self.progress = Progress(
            TextColumn("iteration {task.completed:.0f}/{task.total:.0f}"),
            BarColumn(),
            TextColumn("loss {task.fields[loss]}  lr {task.fields[lr]}"),
            RateColumn(),
            TimeRemainingColumn(),
            console=console,
            disable=not console.is_terminal,
        )
        self.task = self.progress.add_task("train", total=1, loss="-", lr="-", start=False)

    def started(self, iteration: int, total: int) -> None:
        self.iteration = self.first = iteration
        self.progress.update(self.task, completed=iteration, total=total)
        self.progress.start_task(self.task)

    def stepped(self, iteration: int, loss: float, lr: float) -> None:
        self.iteration = iteration
        self.progress.update(self.task, completed=iteration, loss=f"{loss:.4f}", lr=f"{lr:.2e}")

    def validated(self, iteration: int, score: metrics.Score) -> None:
        psnr = score.psnr if math.isfinite(score.psnr) else None
        if self.as_json:
            _emit({"type": "validation", "iteration": iteration, "psnr": psnr, "ssim": score.ssim})
        else:
            self.console.print(f"iteration {iteration}: validation PSNR {score.psnr:.2f} dB, SSIM {score.ssim:.4f}")

    def saved(self, iteration: int) -> None:
        self.last_saved = iteration

    def interrupted(self, state: Path) -> str:
        if self.last_saved is None and self.first == 0:
            return f"interrupted at iteration {self.iteration}, before the first state file was written"
        if self.last_saved is None:
            return f"interrupted at iteration {self.iteration}; the state file resumed from still holds iteration {self.first}"
        return (
            f"interrupted at iteration {self.iteration}; {state} holds iteration {self.last_saved}: "
            f"continue with the same options and --resume {state}"
        )
