"""`restore eval`: score restorations the way the Restormer paper does, in one command.

Three modes share one scoring path (restore_cli.metrics) and one report:
  restore eval PRED GT                               score existing results against references
  restore eval --task denoise --sigma 25 --dataset CLEAN_DIR
                                                     add the official seeded noise, restore, score
  restore eval --task derain --input RAINY --target CLEAN
                                                     restore, score on Y

Each image is one step that never raises: a missing partner, a size mismatch or an unreadable
file becomes a failed row and one line on stderr, and the exit code becomes 1, so one bad file
in a benchmark folder costs one row rather than the whole run.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field
from enum import Enum
from functools import partial
from pathlib import Path
from typing import Any, Optional

import numpy as np
import typer
from rich.console import Console
from rich.table import Table

from restore_cli import metrics
from restore_cli.images import ImageError, is_image_name, read_image
from restore_cli.planning import UsageError

KNOWN_BENCHMARKS = (
    "CBSD68", "Kodak24", "McMaster", "Urban100", "Set12", "BSD68",
    "Rain100L", "Rain100H", "Test100", "Test1200", "Test2800",
)  # fmt: skip
"""Datasets whose folder name is enough to look the paper's score up in the manifest."""
OFFICIAL_SIGMAS = (15, 25, 50)
"""Noise levels with a dedicated (non-blind) official model; others use the blind one."""
STEP_ERRORS: tuple[type[Exception], ...] = (ImageError, metrics.MetricError, ValueError, RuntimeError)
"""Failures that belong to one image (bad file, wrong size, wrong channels, out of memory)."""


class Task(str, Enum):
    """The tasks whose official test protocol `restore eval` reproduces."""

    denoise = "denoise"
    derain = "derain"


@dataclass(frozen=True)
class Outcome:
    """One image's result: a score, or the reason there is none."""

    name: str
    score: metrics.Score | None = None
    error: str | None = None


@dataclass(frozen=True)
class Pair:
    """Two files with the same stem: what is scored (or restored) and its reference."""

    name: str
    source: Path
    reference: Path


@dataclass(frozen=True)
class ScoringOptions:
    y_channel: bool
    border: int


Step = Callable[[], metrics.Score]


# --------------------------------------------------------------------------- pairing


def natural_key(name: str) -> list[Any]:
    """Sort 2.png before 10.png, as benchmark folders are numbered without padding."""
    return [int(part) if part.isdigit() else part.lower() for part in re.split(r"(\d+)", name)]


def list_images(folder: Path) -> tuple[dict[str, Path], list[Outcome]]:
    """Images by stem; a stem held by two files (x.png and x.jpg) is ambiguous and fails."""
    by_stem: dict[str, list[Path]] = {}
    for path in sorted(folder.iterdir()):
        if path.is_file() and is_image_name(path):
            by_stem.setdefault(path.stem, []).append(path)
    unique = {stem: paths[0] for stem, paths in by_stem.items() if len(paths) == 1}
    clashes = [
        Outcome(stem, error=f"{folder / stem}.*: several files share this name ({', '.join(p.name for p in paths)})")
        for stem, paths in by_stem.items()
        if len(paths) > 1
    ]
    return unique, clashes


def pair_folders(sources: Path, references: Path) -> tuple[list[Pair], list[Outcome]]:
    """Pair by stem (extensions may differ); files without a partner become failed outcomes."""
    found, failed = list_images(sources)
    expected, clashes = list_images(references)
    failed += clashes
    pairs = [Pair(stem, found[stem], expected[stem]) for stem in found if stem in expected]
    failed += _orphans(found, expected, references) + _orphans(expected, found, sources)
    return sorted(pairs, key=lambda pair: natural_key(pair.name)), failed


def _orphans(images: dict[str, Path], partners: dict[str, Path], partner_folder: Path) -> list[Outcome]:
    return [
        Outcome(stem, error=f"{path}: no file named {stem}.* in {partner_folder}")
        for stem, path in images.items()
        if stem not in partners
    ]


def run_step(name: str, path: Path, step: Step) -> Outcome:
    """Turn an image's expected failures into a failed outcome, so the run goes on.

    The message is cut to one line and names the file, whichever layer raised it.
    """
    try:
        return Outcome(name, score=step())
    except STEP_ERRORS as error:
        message = one_line(error)
        return Outcome(name, error=message if str(path) in message else f"{path}: {message}")


def one_line(error: Exception) -> str:
    """Library errors (torch's especially) can span lines; the report keeps one per file."""
    lines = str(error).strip().splitlines()
    return lines[0] if lines else type(error).__name__


# --------------------------------------------------------------------------- steps


def score_files(pair: Pair, options: ScoringOptions) -> metrics.Score:
    """Score a saved result against its reference, at the reference's bit depth."""
    prediction, reference = read_image(pair.source), read_image(pair.reference)
    return _score(prediction.pixels, reference.pixels, reference.bit_depth, options)


def denoise_and_score(restorer: Any, clean_path: Path, sigma: float, options: ScoringOptions) -> metrics.Score:
    """The official Gaussian-denoising protocol for one clean image."""
    clean = read_image(clean_path)
    _check_channels(clean.channels, restorer)
    noisy = metrics.gaussian_noise_input(clean.pixels, clean.bit_depth, sigma)
    restored = restorer.restore(noisy)
    return _score(restored, clean.pixels, clean.bit_depth, options)


def restore_and_score(restorer: Any, pair: Pair, options: ScoringOptions) -> metrics.Score:
    """Restore a degraded image (rain, blur) and score it against its clean target."""
    degraded, target = read_image(pair.source), read_image(pair.reference)
    _check_channels(degraded.channels, restorer)
    restored = restorer.restore(degraded.pixels)
    return _score(restored, target.pixels, target.bit_depth, options)


def _check_channels(channels: int, restorer: Any) -> None:
    expected = restorer.config.in_channels
    if channels != expected:
        kind = {1: "gray", 3: "colour"}.get(expected, f"{expected}-channel")
        raise ValueError(f"has {channels} channel(s) but the model takes {kind} images; choose a matching --model")


def _score(prediction: np.ndarray, reference: np.ndarray, bit_depth: int, options: ScoringOptions) -> metrics.Score:
    return metrics.score(prediction, reference, bit_depth, y_channel=options.y_channel, border=options.border)


# --------------------------------------------------------------------------- models


def default_model(task: Task, sigma: float | None, channels: int) -> str:
    """The official checkpoint the paper used for this task, noise level and colour."""
    if task is Task.derain:
        return "deraining"
    kind = "gray" if channels == 1 else "color"
    level = f"sigma{int(sigma)}" if sigma in OFFICIAL_SIGMAS else "blind"
    return f"gaussian_{kind}_denoising_{level}"


def first_channels(paths: Iterable[Path]) -> int:
    """Channel count of the first readable image: decides between the gray and colour models."""
    for path in paths:
        try:
            return read_image(path).channels
        except ImageError:
            continue
    return 3


def benchmark_name(folder: Path) -> str | None:
    """A known benchmark named by the folder or its parent (Rain100L/input), else None."""
    resolved = folder.resolve()
    known = {name.lower(): name for name in KNOWN_BENCHMARKS}
    for candidate in (resolved.name, resolved.parent.name):
        if candidate.lower() in known:
            return known[candidate.lower()]
    return None


def paper_psnr(model: str | None, benchmark: str | None, sigma: float | None = None) -> float | None:
    """The paper's PSNR for this model on this benchmark (and noise level), when the
    manifest records it."""
    if model is None or benchmark is None:
        return None
    from restore_cli import registry

    entry = registry.load_manifest().get(model)
    return entry.paper_psnr(benchmark, sigma) if entry else None


def build_restorer(model: str | None, weights: Path | None, engine_options: dict[str, Any]) -> Any:
    """Load the checkpoint (zoo name or file) and wrap it in the engine."""
    from restore_cli.checkpoints import load_model
    from restore_cli.engine import Restorer

    network = load_model(weights if weights is not None else str(model))
    return Restorer(network, **engine_options)


# --------------------------------------------------------------------------- report


@dataclass(frozen=True)
class Summary:
    count: int
    failed: int
    psnr: float | None
    ssim: float | None
    benchmark: str | None = None
    model: str | None = None
    paper_psnr: float | None = None


def summarise(outcomes: list[Outcome], benchmark: str | None, model: str | None, paper: float | None) -> Summary:
    """Means over the scored images: papers average per-image PSNR, not pooled MSE."""
    scores = [outcome.score for outcome in outcomes if outcome.score is not None]
    return Summary(
        count=len(scores),
        failed=len(outcomes) - len(scores),
        psnr=float(np.mean([s.psnr for s in scores])) if scores else None,
        ssim=float(np.mean([s.ssim for s in scores])) if scores else None,
        benchmark=benchmark,
        model=model,
        paper_psnr=paper,
    )


def _finite(value: float | None) -> float | None:
    """JSON has no infinity: identical images (infinite PSNR) are reported as null."""
    return value if value is not None and math.isfinite(value) else None


def json_lines(outcomes: list[Outcome], summary: Summary) -> list[str]:
    rows = [
        {"type": "image", "name": o.name, "error": o.error}
        if o.score is None
        else {"type": "image", "name": o.name, "psnr": _finite(o.score.psnr), "ssim": o.score.ssim}
        for o in outcomes
    ]
    fields = dict(asdict(summary), psnr=_finite(summary.psnr))
    return [json.dumps(row) for row in rows] + [json.dumps({"type": "summary", **fields})]


def _number(value: float | None, digits: int) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def table(outcomes: list[Outcome], summary: Summary, verbose: bool) -> Table:
    """Per-image rows with --verbose; the mean (and the paper's value, when known) always."""
    title = " ".join(part for part in (summary.model, summary.benchmark) if part) or None
    grid = Table("image", "PSNR (dB)", "SSIM", title=title)
    for outcome in outcomes if verbose else []:
        score = outcome.score
        grid.add_row(outcome.name, _number(score and score.psnr, 2), _number(score and score.ssim, 4))
    grid.add_row(f"mean of {summary.count}", _number(summary.psnr, 2), _number(summary.ssim, 4), style="bold")
    if summary.paper_psnr is not None:
        grid.add_row("paper", f"{summary.paper_psnr:.2f}", "")
    return grid


def report(outcomes: list[Outcome], summary: Summary, as_json: bool, verbose: bool) -> int:
    """Errors to stderr, results to stdout; the exit code says whether every image scored."""
    for outcome in outcomes:
        if outcome.error is not None:
            typer.echo(f"error: {outcome.error}", err=True)
    if as_json:
        for line in json_lines(outcomes, summary):
            typer.echo(line)
    else:
        Console().print(table(outcomes, summary, verbose))
    return 1 if summary.failed else 0


# --------------------------------------------------------------------------- command


@dataclass(frozen=True)
class Request:
    """A checked command line. Denoising scores against the images it adds noise to, so
    there `sources` and `references` are the same folder."""

    task: Optional[Task]
    sources: Path
    references: Path
    scoring: ScoringOptions
    sigma: float | None = None
    model: str | None = None
    weights: Path | None = None
    engine: dict[str, Any] = field(default_factory=dict)


def evaluate(request: Request) -> tuple[list[Outcome], Summary]:
    """Run the requested mode over every image; never raises for a single image's problem."""
    pairs, failed = pair_folders(request.sources, request.references)
    if request.task is None:
        outcomes = [run_step(p.name, p.source, partial(score_files, p, request.scoring)) for p in pairs]
        return failed + outcomes, summarise(failed + outcomes, None, None, None)
    model = request.model
    if model is None and request.weights is None:
        model = default_model(request.task, request.sigma, first_channels(p.source for p in pairs))
    restorer = build_restorer(model, request.weights, request.engine)
    outcomes = [run_step(p.name, p.source, _model_step(request, restorer, p)) for p in pairs]
    benchmark = benchmark_name(request.sources)
    return failed + outcomes, summarise(failed + outcomes, benchmark, model, paper_psnr(model, benchmark, request.sigma))


def _model_step(request: Request, restorer: Any, pair: Pair) -> Step:
    if request.task is Task.denoise:
        return partial(denoise_and_score, restorer, pair.reference, request.sigma, request.scoring)
    return partial(restore_and_score, restorer, pair, request.scoring)


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
    from restore_cli import registry

    if model is not None and weights is not None:
        raise UsageError("give --model or --weights, not both")
    if model is not None and model not in registry.load_manifest():
        raise UsageError(f"unknown model {model!r}; see `restore models list`, or pass a file with --weights")


def engine_options(device: str, precision: str, tile: str, overlap: int, max_memory: str | None) -> dict[str, Any]:
    """Check the engine options before any checkpoint is loaded (or downloaded), exactly as
    the task commands do."""
    from restore_cli.batch import EngineSettings, parse_tile

    settings = EngineSettings(device, precision, parse_tile(tile), overlap, max_memory)
    settings.check()
    return {
        "device": settings.device,
        "precision": settings.precision,
        "tile": settings.tile,
        "overlap": settings.overlap,
        "max_memory": settings.max_memory,
    }


def paired_request(paths: list[Path], scoring: ScoringOptions, model_options: dict[str, object]) -> Request:
    _refuse("scoring PRED against GT", model_options)
    if len(paths) != 2:
        raise UsageError("give PRED and GT folders, or --task denoise|derain")
    return Request(None, _folder(paths[0], "PRED"), _folder(paths[1], "GT"), scoring)


def denoise_request(sigma: float | None, dataset: Path | None, scoring: ScoringOptions, **model: Any) -> Request:
    if sigma is None or sigma < 0:
        raise UsageError("--task denoise needs --sigma, the noise level on the 0-255 scale (e.g. 25)")
    clean = _folder(dataset, "--dataset")
    return Request(Task.denoise, clean, clean, scoring, sigma=sigma, **model)


def derain_request(rainy: Path | None, target: Path | None, scoring: ScoringOptions, **model: Any) -> Request:
    return Request(Task.derain, _folder(rainy, "--input"), _folder(target, "--target"), scoring, **model)


def eval_command(
    paths: Optional[list[Path]] = typer.Argument(
        None, metavar="[PRED GT]", help="Folders of results and references, paired by file name."
    ),
    task: Optional[Task] = typer.Option(
        None, "--task", help="Run a model first: denoise (--sigma, --dataset) or derain (--input, --target)."
    ),
    sigma: Optional[float] = typer.Option(None, "--sigma", help="Gaussian noise level on the 0-255 scale (denoise)."),
    dataset: Optional[Path] = typer.Option(None, "--dataset", help="Folder of clean images (denoise)."),
    rainy: Optional[Path] = typer.Option(None, "--input", help="Folder of degraded images (derain)."),
    target: Optional[Path] = typer.Option(None, "--target", help="Folder of clean targets (derain)."),
    model: Optional[str] = typer.Option(None, "--model", help="Zoo model to run (default: the paper's for the task)."),
    weights: Optional[Path] = typer.Option(None, "--weights", help="Any Restormer checkpoint file to run instead."),
    y_channel: Optional[bool] = typer.Option(
        None, "--y-channel/--rgb", help="Score luma (BT.601 Y) or RGB. Default: Y for derain, RGB otherwise."
    ),
    border: int = typer.Option(0, "--crop-border", help="Ignore this many pixels at each edge."),
    as_json: bool = typer.Option(False, "--json", help="One JSON object per image and a summary, on stdout."),
    verbose: bool = typer.Option(False, "--verbose", "-v", help="List every image, not only the mean."),
    device: str = typer.Option("auto", "--device", help="auto, cpu, cuda or cuda:N."),
    precision: str = typer.Option("auto", "--precision", help="auto, fp32, bf16 or fp16: see what it costs in dB."),
    tile: str = typer.Option("auto", "--tile", help="auto, 0 (whole image) or a tile side in pixels."),
    overlap: int = typer.Option(32, "--overlap", help="Tile overlap in pixels."),
    max_memory: Optional[str] = typer.Option(None, "--max-memory", help="Memory budget, e.g. 4GB."),
) -> None:
    """PSNR / SSIM as in the paper: of existing results, or of a model run on a benchmark."""
    try:
        if border < 0:
            raise UsageError("--crop-border must be 0 or more")
        scoring = ScoringOptions(y_channel if y_channel is not None else task is Task.derain, border)
        if task is None:
            given = {"--sigma": sigma, "--dataset": dataset, "--input": rainy, "--target": target}
            request = paired_request(paths or [], scoring, {**given, "--model": model, "--weights": weights})
        else:
            _refuse(f"--task {task.value}", {"PRED/GT": paths or None})
            _check_model(model, weights)
            chosen = {"model": model, "weights": weights}
            chosen["engine"] = engine_options(device, precision, tile, overlap, max_memory)
            if task is Task.denoise:
                _refuse("--task denoise", {"--input": rainy, "--target": target})
                request = denoise_request(sigma, dataset, scoring, **chosen)
            else:
                _refuse("--task derain", {"--sigma": sigma, "--dataset": dataset})
                request = derain_request(rainy, target, scoring, **chosen)
    except UsageError as error:
        typer.echo(f"error: {error}", err=True)
        raise typer.Exit(2) from None
    outcomes, summary = _evaluate_or_exit(request)
    raise typer.Exit(report(outcomes, summary, as_json, verbose))


def _evaluate_or_exit(request: Request) -> tuple[list[Outcome], Summary]:
    """Failures that stop the whole run (no usable model) end in one line and exit 1."""
    from restore_cli.checkpoints import CheckpointError
    from restore_cli.engine import MemoryBudgetError
    from restore_cli.registry import RegistryError

    try:
        return evaluate(request)
    except (CheckpointError, RegistryError, MemoryBudgetError, ValueError, OSError) as error:
        typer.echo(f"error: {one_line(error)}", err=True)
        raise typer.Exit(1) from None
