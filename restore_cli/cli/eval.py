"""`restore eval`: score restorations the way the Restormer paper does, in one command.

  restore eval PRED GT                               score existing results against references
  restore eval --task denoise --sigma 25 --dataset CLEAN_DIR
                                                     add the official seeded noise, restore, score
  restore eval --task derain --input RAINY --target CLEAN
                                                     restore, score on Y
  restore eval --task deblur --input BLURRY --target SHARP [--tlc]
                                                     restore, score on RGB (GoPro, HIDE)

Thin: checks the command line, calls restore_cli.quality.evaluation, prints the report. A bad file
costs one row and one line on stderr, and the exit code becomes 1.
"""

from __future__ import annotations

import math
import sys
from dataclasses import asdict
from pathlib import Path
from typing import Any, Optional

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table

from restore_cli.batch import jsonl
from restore_cli.batch.pipeline import describe_error, is_expected
from restore_cli.cli import threads as cli_threads
from restore_cli.cli.console import EXIT_FAILED, EXIT_INTERRUPTED, EXIT_OK, EXIT_USAGE, debug_logging, fail
from restore_cli.cli.progress import RichDownloadBar
from restore_cli.errors import UsageError
from restore_cli.io.files import check_can_write
from restore_cli.model.onnx_format import is_onnx
from restore_cli.quality.evaluation import Outcome, Request, ScoringOptions, Summary, Task, evaluate

# --------------------------------------------------------------------------- report


def _finite(value: float | None) -> float | None:
    """JSON has no infinity: identical images (infinite PSNR) are reported as null."""
    return value if value is not None and math.isfinite(value) else None


def json_lines(outcomes: list[Outcome], summary: Summary, channel: str) -> list[str]:
    """restore_cli.batch.jsonl's schema: an `image` line per pair (`input` is the shared name) and the summary."""
    rows = [
        jsonl.line("image", input=o.name, status="failed", psnr=None, ssim=None, error=o.error)
        if o.score is None
        else jsonl.line("image", input=o.name, status="ok", psnr=_finite(o.score.psnr), ssim=o.score.ssim, error=None)
        for o in outcomes
    ]
    code = EXIT_FAILED if summary.failed else EXIT_OK
    status: jsonl.Status = "error" if summary.error is not None else "failed" if code else "done"
    fields = dict(asdict(summary), psnr=_finite(summary.psnr), channel=channel)
    if summary.error is None:
        del fields["error"]
    totals = {"total": len(outcomes), "ok": fields.pop("count"), "failed": fields.pop("failed")}
    return rows + [jsonl.summary("eval", status, code, **totals, **fields)]


def _number(value: float | None, digits: int) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def table(outcomes: list[Outcome], summary: Summary, verbose: bool, channel: str) -> Table:
    """Per-image rows with --verbose; the mean (and the paper's value, when known) always.
    The headers name the channel scored: RGB and Y differ by a dB or more."""
    title = " ".join(part for part in (summary.model, summary.benchmark) if part) or None
    grid = Table("image", f"PSNR (dB, {channel})", f"SSIM ({channel})", title=title)
    for outcome in outcomes if verbose else []:
        score = outcome.score
        grid.add_row(outcome.name, _number(score and score.psnr, 2), _number(score and score.ssim, 4))
    grid.add_row(f"mean of {summary.count}", _number(summary.psnr, 2), _number(summary.ssim, 4), style="bold")
    if summary.paper_psnr is not None:
        grid.add_row("paper", f"{summary.paper_psnr:.2f}", "")
    return grid


def report(outcomes: list[Outcome], summary: Summary, scoring: ScoringOptions, as_json: bool, verbose: bool) -> int:
    """Errors to stderr, results to stdout; the exit code says whether every image scored.
    A model that could not be loaded is one error line, as in the task commands (with
    --json, each image still gets its line, failed for that reason)."""
    channel = "Y" if scoring.y_channel else "RGB"
    if summary.error is not None:
        typer.echo(f"error: {summary.error}", err=True)
    for outcome in outcomes:
        if outcome.error is not None and outcome.error != summary.error:
            typer.echo(f"error: {outcome.error}", err=True)
    if as_json:
        for line in json_lines(outcomes, summary, channel):
            typer.echo(line)
    elif summary.error is None:
        Console().print(table(outcomes, summary, verbose, channel))
    return EXIT_FAILED if summary.failed else EXIT_OK


# --------------------------------------------------------------------------- command


def _folder(path: Path | None, option: str) -> Path:
    if path is None:
        raise UsageError(f"{option} is required")
    if not path.is_dir():
        raise UsageError(f"{option} {path}: not a folder")
    return path


def _refuse(mode: str, given: dict[str, object]) -> None:
    extra = [name for name, value in given.items() if value is not None]
    if extra:
        raise UsageError(f"{', '.join(extra)} cannot be used when {mode}")


def _check_model(model: str | None, weights: Path | None) -> None:
    from restore_cli.model import manifest

    if model is not None and weights is not None:
        raise UsageError("give --model or --weights, not both")
    if model is not None and model not in manifest.load_manifest() and not is_onnx(model):
        raise UsageError(f"unknown model {model!r}; see `restore models list`, or pass a file with --weights")


def engine_options(
    device: str, precision: str, tile: str, overlap: int, max_memory: str | None, tlc: bool = False,
    tlc_window: int | None = None, allow_slow_precision: bool = False, onnx: bool = False
) -> dict[str, Any]:
    """Check the engine options before any checkpoint is loaded (or downloaded), exactly as
    the task commands do."""
    from restore_cli.batch.models import EngineSettings
    from restore_cli.cli.engine_options import check_engine_settings, parse_tile, parse_tlc

    settings = EngineSettings(device, precision, parse_tile(tile), overlap, max_memory, tlc_window=parse_tlc(tlc, tlc_window),
                              allow_slow_precision=allow_slow_precision)
    check_engine_settings(settings, onnx)
    return {
        "device": settings.device,
        "precision": settings.precision,
        "allow_slow_precision": settings.allow_slow_precision,
        "tile": settings.tile,
        "overlap": settings.overlap,
        "max_memory": settings.max_memory,
        "tlc_window": settings.tlc_window,
    }


def paired_request(paths: list[Path], scoring: ScoringOptions, model_options: dict[str, object]) -> Request:
    _refuse("scoring PRED against GT", model_options)
    if len(paths) != 2:
        raise UsageError("give PRED and GT folders, or --task denoise|derain|deblur")
    return Request(None, _folder(paths[0], "PRED"), _folder(paths[1], "GT"), scoring)


def denoise_request(sigma: float | None, dataset: Path | None, scoring: ScoringOptions, **model: Any) -> Request:
    if sigma is None or sigma < 0:
        raise UsageError("--task denoise needs --sigma, the noise level on the 0-255 scale (e.g. 25)")
    clean = _folder(dataset, "--dataset")
    return Request(Task.denoise, clean, clean, scoring, sigma=sigma, **model)


def paired_task_request(
    task: Task, degraded: Path | None, target: Path | None, scoring: ScoringOptions, **model: Any
) -> Request:
    """Derain or deblur: degraded inputs and clean targets, paired by name."""
    return Request(task, _folder(degraded, "--input"), _folder(target, "--target"), scoring, **model)


def eval_command(
    paths: Optional[list[Path]] = typer.Argument(
        None, metavar="[PRED GT]", help="Folders of results and references, paired by file name."
    ),
    task: Optional[Task] = typer.Option(
        None, "--task", metavar="denoise|derain|deblur", help="Run a model first: denoise (--sigma, --dataset), or derain / deblur (--input, --target)."
    ),
    sigma: Optional[float] = typer.Option(None, "--sigma", metavar="SIGMA", help="Gaussian noise level on the 0-255 scale (denoise)."),
    dataset: Optional[Path] = typer.Option(None, "--dataset", metavar="FOLDER", help="Folder of clean images (denoise)."),
    rainy: Optional[Path] = typer.Option(None, "--input", metavar="FOLDER", help="Folder of degraded images (derain, deblur)."),
    target: Optional[Path] = typer.Option(None, "--target", metavar="FOLDER", help="Folder of clean targets (derain, deblur)."),
    model: Optional[str] = typer.Option(None, "--model", metavar="NAME", help="Zoo model to run (default: the paper's for the task)."),
    weights: Optional[Path] = typer.Option(None, "--weights", metavar="CKPT", help="Any Restormer checkpoint file (or .onnx graph from `restore export`) to run instead."),
    y_channel: Optional[bool] = typer.Option(
        None, "--y-channel/--rgb", help="Score luma (BT.601 Y) or RGB. Default: Y for --task derain, RGB otherwise (PRED GT too, even for deraining results)."
    ),
    border: int = typer.Option(0, "--crop-border", metavar="N", help="Ignore this many pixels at each edge."),
    as_json: bool = typer.Option(False, "--json", help="One JSON line per image and a summary, on stdout (see README, JSON output)."),
    verbose: bool = typer.Option(False, "--verbose", "-v", help="List every image, not only the mean."),
    device: str = typer.Option("auto", "--device", metavar="auto|cpu|cuda[:N]", help="auto, cpu, cuda or cuda:N."),
    precision: str = typer.Option("auto", "--precision", metavar="auto|fp32|bf16|fp16", help="auto, fp32, bf16 or fp16: see what it costs in dB."),
    allow_slow_precision: bool = typer.Option(False, "--allow-slow-precision", help="Run bf16/fp16 even where this hardware emulates it."),
    tile: str = typer.Option("auto", "--tile", metavar="auto|0|N", help="auto, 0 (whole image) or a tile side in pixels."),
    overlap: int = typer.Option(32, "--overlap", metavar="N", help="Tile overlap in pixels."),
    max_memory: Optional[str] = typer.Option(None, "--max-memory", metavar="SIZE", help="Memory budget, e.g. 4GB."),
    tlc: bool = typer.Option(False, "--tlc", help="Test-time local statistics (TLC, Chu et al. 2022), as in their tables."),
    tlc_window: Optional[int] = typer.Option(None, "--tlc-window", metavar="N", help="TLC's window side in pixels (default 384); implies --tlc."),
    compare: Optional[Path] = typer.Option(None, "--compare", metavar="FOLDER", help="With --task: before/after views of the worst and best images (by PSNR) in FOLDER."),
    offline: bool = typer.Option(False, "--offline", help="Use only models already in the cache."),
    threads: Optional[int] = cli_threads.option(),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress or download bar on stderr (errors are still shown)."),
    debug: bool = typer.Option(False, "--debug", help="restore's own debug log, and tracebacks for unexpected errors."),
) -> None:
    """PSNR / SSIM as in the paper: of existing results, or of a model run on a benchmark."""
    try:
        if border < 0:
            raise UsageError("--crop-border must be 0 or more")
        scoring = ScoringOptions(y_channel if y_channel is not None else task is Task.derain, border)
        if task is None:
            given = {"--sigma": sigma, "--dataset": dataset, "--input": rainy, "--target": target}
            model_options = {"--model": model, "--weights": weights, "--tlc": tlc or None, "--tlc-window": tlc_window, "--compare": compare}
            request = paired_request(paths or [], scoring, {**given, **model_options})
        else:
            _refuse(f"--task {task.value}", {"PRED/GT": paths or None})
            _check_model(model, weights)
            if compare is not None:  # the views are written after every image is scored: try the folder first
                check_can_write(compare / "worst.jpg", "compare")
            watched = not quiet and sys.stderr.isatty()
            chosen = {"model": model, "weights": weights, "download_progress": RichDownloadBar if watched else False,
                      "offline": True if offline else None, "compare": compare}  # fmt: skip
            chosen["engine"] = engine_options(
                device, precision, tile, overlap, max_memory, tlc, tlc_window, allow_slow_precision, is_onnx(weights or model)
            )
            if task is Task.denoise:
                _refuse("--task denoise", {"--input": rainy, "--target": target})
                request = denoise_request(sigma, dataset, scoring, **chosen)
            else:
                _refuse(f"--task {task.value}", {"--sigma": sigma, "--dataset": dataset})
                request = paired_task_request(task, rainy, target, scoring, **chosen)
    except UsageError as error:
        fail(str(error), EXIT_USAGE)
    if debug:
        debug_logging()
    if request.task is not None:
        cli_threads.use(threads)
    outcomes, summary = _evaluate_or_exit(request, as_json, quiet, debug)
    raise typer.Exit(report(outcomes, summary, request.scoring, as_json, verbose))


def _evaluate_or_exit(request: Request, as_json: bool, quiet: bool, debug: bool) -> tuple[list[Outcome], Summary]:
    """Failures that stop the whole run end in one line: nothing to score (exit 2), an
    unexpected error (exit 1; its traceback with --debug)."""
    bar = Progress(TextColumn("images"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(),
                   console=Console(stderr=True), transient=True, disable=quiet or not sys.stderr.isatty())  # fmt: skip
    task = bar.add_task("images", total=None)
    try:
        with bar:
            return evaluate(request, progress=lambda done, total: bar.update(task, completed=done, total=total))
    except KeyboardInterrupt:  # the scores so far are not kept: the summary only says how it ended
        typer.echo("interrupted: nothing was written", err=True)
        if as_json:
            typer.echo(jsonl.summary("eval", "interrupted", EXIT_INTERRUPTED))
        raise typer.Exit(EXIT_INTERRUPTED) from None
    except UsageError as error:
        fail(str(error), EXIT_USAGE)
    except Exception as error:
        if debug and not is_expected(error):
            raise
        fail(describe_error(error), EXIT_FAILED)
