"""`restore train`: fine-tune a model on your own images, or train one from scratch.

Thin: turns the command line into TrainingOptions, runs restore_cli.training, and shows
progress (``train_progress``), validation scores and errors. A write that fails after all is
one line naming where the weights went instead (exit 1); Ctrl-C is `interrupted:` (130).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Optional, Tuple

import typer
from rich.console import Console

from restore_cli.batch.pipeline import describe_error, is_expected
from restore_cli.cli import threads as cli_threads
from restore_cli.cli.console import EXIT_FAILED, EXIT_INTERRUPTED, EXIT_USAGE, debug_logging, fail
from restore_cli.cli.progress import RichDownloadBar
from restore_cli.cli.train_progress import TrainingReporter, duration, emit
from restore_cli.errors import DataError, StateError, UsageError

EPILOG = (
    "Examples:\n\n\b\n"
    "restore train clean_photos/ --sigma 25 --size tiny --patch 64 --iters 300 -o my_denoiser.pth   # minutes on a laptop CPU\n"
    "restore train clean_photos/ --sigma 0-50 --size small -o blind.pth  # a blind denoiser\n"
    "restore train --pairs rainy/ clean/ --from deraining -o derain_ours.pth   # fine-tune (a GPU: hours, a CPU: days)\n"
    "restore train --pairs noisy/ clean/ --from real_denoising --val-pairs vnoisy/ vclean/ -o ft.pth --iters 20000\n"
    "restore train --pairs noisy/ clean/ --from real_denoising -o ft.pth --iters 20000 --resume ft.state"
)

Folders = Optional[Tuple[Path, Path]]


def train_command(
    data: Optional[Path] = typer.Argument(None, metavar="[CLEAN]", help="Folder of clean images (with --sigma)."),
    output: Path = typer.Option(..., "-o", "--output", metavar="CKPT", help="Checkpoint to write (.pth, official layout); its folder must exist."),
    sigma: Optional[str] = typer.Option(None, "--sigma", metavar="SIGMA", help="Gaussian noise level on the 0-255 scale: 25, or a range 0-50 (blind)."),
    pairs: Folders = typer.Option(None, "--pairs", metavar="INPUT TARGET", help="Degraded and clean folders, paired by file name."),
    start: Optional[str] = typer.Option(None, "--from", metavar="NAME|CKPT", help="Start from a zoo model or checkpoint file (fine-tune)."),
    size: Optional[str] = typer.Option(None, "--size", metavar="base|small|tiny", help="Train from scratch: base (the paper's, 26 M parameters; the default; days on a CPU), small (3.8 M) or tiny (0.21 M)."),
    patch: int = typer.Option(128, "--patch", metavar="PIXELS", help="Side of the random training crops, a multiple of 8 (the last stage's with --progressive)."),
    batch: int = typer.Option(8, "--batch", metavar="N", help="Crops per step (the last stage's with --progressive)."),
    iters: int = typer.Option(10_000, "--iters", metavar="N", help="Total iterations (the paper: 300000)."),
    lr: float = typer.Option(3e-4, "--lr", metavar="RATE", help="Peak learning rate (AdamW), reached after the warm-up, then cosine decay to 1e-6."),
    warmup: Optional[int] = typer.Option(None, "--warmup", metavar="N", help="Warm-up iterations (default: 2% of --iters)."),
    progressive: bool = typer.Option(False, "--progressive", help="The paper's progressive schedule: patches grow to --patch while batches shrink to --batch."),
    precision: str = typer.Option("auto", "--precision", metavar="auto|fp32|bf16|fp16", help="auto (fp32), fp32, bf16 (where native), fp16 (CUDA)."),
    allow_slow_precision: bool = typer.Option(False, "--allow-slow-precision", help="Train in a half precision this hardware would emulate (slower)."),
    clip: float = typer.Option(0.01, "--clip", metavar="NORM", help="Clip the gradient norm to this (0 = off); the authors' training clips to 0.01."),
    seed: int = typer.Option(0, "--seed", metavar="N", help="Seed for crops, augmentation, noise and initial weights."),
    ema: float = typer.Option(0.0, "--ema", metavar="DECAY", help="Also keep an exponential moving average of the weights with this decay (e.g. 0.999), saved as params_ema."),
    val: Optional[Path] = typer.Option(None, "--val", metavar="CLEAN", help="Clean validation images (with --sigma)."),
    val_pairs: Folders = typer.Option(None, "--val-pairs", metavar="INPUT TARGET", help="Validation pairs (with --pairs)."),
    val_share: float = typer.Option(0.1, "--val-share", metavar="SHARE", help="Without --val/--val-pairs, hold out this share of the images (from 4 images up)."),
    val_every: int = typer.Option(1000, "--val-every", metavar="N", help="Validate every N iterations and at the end (0 = never)."),
    save_every: int = typer.Option(1000, "--save-every", metavar="N", help="Write the state file (CKPT with .state) every N iterations (0 = never; Ctrl-C still saves it)."),
    device: str = typer.Option("auto", "--device", metavar="auto|cpu|cuda[:N]", help="auto, cpu, cuda or cuda:N."),
    resume: Optional[Path] = typer.Option(None, "--resume", metavar="STATE", help="Continue the run that wrote this state file (same options)."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace an existing checkpoint or state file."),
    threads: Optional[int] = cli_threads.option(),
    as_json: bool = typer.Option(False, "--json", help="One JSON line per validation, and one at the end, on stdout."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress bar or validation lines on stderr (warnings and errors still show)."),
    debug: bool = typer.Option(False, "--debug", help="restore's own debug log, and tracebacks for unexpected errors."),
) -> None:
    """Fine-tune a Restormer on your own images, or train one from scratch.

    Ctrl-C stops after the step in progress (twice: at once), saving the state to resume from.
    Fine-tuning the official weights (--from a zoo model) keeps them under the authors'
    non-commercial licence."""
    chosen = {name: value for name, value in locals().items() if name not in ("as_json", "quiet", "threads", "debug")}
    # Imported here, not at the top: torch would slow down every other command's start.
    from restore_cli.training.control import step_in_flight
    from restore_cli.training.run import TrainingOptions, run
    from restore_cli.training.state import state_path

    options = TrainingOptions(**chosen, download_progress=RichDownloadBar)
    console = Console(stderr=True, quiet=quiet, soft_wrap=True)  # a line per message, whatever the width
    reporter = TrainingReporter(console, as_json, fine_tuning=start is not None)
    if debug:
        debug_logging()
    try:
        cli_threads.use(threads)
        with reporter.progress:
            result = run(options, reporter)
    except (UsageError, DataError, StateError) as error:  # what was asked for: options, data, state file
        fail(str(error), EXIT_USAGE)
    except KeyboardInterrupt:
        typer.echo(f"interrupted: {reporter.interrupted(state_path(output))}", err=True)
        if step_in_flight():  # an abandoned step still computing: exit without waiting for it
            sys.stdout.flush()
            sys.stderr.flush()
            os._exit(EXIT_INTERRUPTED)
        raise typer.Exit(EXIT_INTERRUPTED) from None
    except Exception as error:  # anything else: one line (a bug's traceback with --debug)
        if debug and not is_expected(error):
            raise
        fail(describe_error(error), EXIT_FAILED)
    if as_json:
        loss = result.last_loss
        emit({"type": "done", "output": str(result.output), "iterations": result.iterations,
              "seconds": round(result.seconds, 1), "loss": loss})  # fmt: skip
    console.print(f"wrote {result.output} after {result.iterations} iterations ({duration(result.seconds)})")
