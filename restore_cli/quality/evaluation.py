"""Scoring restorations the way the Restormer paper does: the library behind `restore eval`.

Three modes share one scoring path (restore_cli.quality.metrics):
  scored files        results already on disk, against references paired by stem
  Gaussian denoising  the official seeded noise added to clean images, restored, scored
  paired restoration  degraded images (rain, blur) restored and scored against targets

Each image is one step that never raises: a missing partner, a size mismatch or an unreadable
file becomes a failed outcome, so one bad file in a benchmark folder costs one row rather
than the whole run.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace
from enum import Enum
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any, Optional

import numpy as np

from restore_cli.errors import ImageError, InputError, MetricError, RestoreError, UsageError, one_line
from restore_cli.io.comparison import compare_view
from restore_cli.io.decode import read_image
from restore_cli.io.encode import write_image
from restore_cli.io.image import DecodedImage, model_input, with_pixels
from restore_cli.io.pairing import Pair, Problem, pair_folders
from restore_cli.quality import metrics

if TYPE_CHECKING:
    from restore_cli.model.download import Progress as Download

KNOWN_BENCHMARKS = (
    "CBSD68", "Kodak24", "McMaster", "Urban100", "Set12", "BSD68",
    "Rain100L", "Rain100H", "Test100", "Test1200", "Test2800", "GoPro", "HIDE",
)  # fmt: skip
"""Datasets whose folder name is enough to look the paper's score up in the manifest."""
OFFICIAL_SIGMAS = (15, 25, 50)
"""Noise levels with a dedicated (non-blind) official model; others use the blind one."""
STEP_ERRORS: tuple[type[Exception], ...] = (ImageError, InputError, MetricError, ValueError, RuntimeError)
"""Failures that belong to one image (bad file, wrong size, wrong channels, out of memory)."""
LOAD_ERRORS: tuple[type[Exception], ...] = (RestoreError, OSError, ValueError)
"""Failures to load the model (a missing or damaged checkpoint, a failed download): every
image fails with the same reason, as in the task commands."""
Progress = Callable[[int, int], None]
"""Told (done, total) after each image of a run that restores, for a progress display."""


class Task(str, Enum):
    """The tasks whose official test protocol `restore eval` reproduces."""

    denoise = "denoise"
    derain = "derain"
    deblur = "deblur"


@dataclass(frozen=True)
class Outcome:
    """One image's result: a score, or the reason there is none."""

    name: str
    score: metrics.Score | None = None
    error: str | None = None


@dataclass(frozen=True)
class ScoringOptions:
    y_channel: bool
    border: int


Step = Callable[[], metrics.Score]


def failed(problems: list[Problem]) -> list[Outcome]:
    """Pairing problems as failed rows of the report."""
    return [Outcome(problem.name, error=problem.message) for problem in problems]


def run_step(name: str, path: Path, step: Step) -> Outcome:
    """Turn an image's expected failures into a failed outcome, so the run goes on.

    The message is cut to one line and names the file, whichever layer raised it.
    """
    try:
        return Outcome(name, score=step())
    except STEP_ERRORS as error:
        message = one_line(error)
        return Outcome(name, error=message if str(path) in message else f"{path}: {message}")


# --------------------------------------------------------------------------- steps


def score_files(pair: Pair, options: ScoringOptions) -> metrics.Score:
    """Score a saved result against its reference, at the reference's bit depth."""
    prediction, reference = read_image(pair.source), read_image(pair.reference)
    return _score(prediction.pixels, reference.pixels, reference.levels_depth, options)


def denoise_and_score(restorer: Any, clean_path: Path, sigma: float, options: ScoringOptions, model: str = "the model") -> metrics.Score:
    """The official Gaussian-denoising protocol for one clean image."""
    clean = read_image(clean_path)
    noisy = replace(clean, pixels=metrics.gaussian_noise_input(clean.pixels, clean.levels_depth, sigma))
    return _score(_restore(restorer, noisy, clean_path, model), clean.pixels, clean.levels_depth, options)


def restore_and_score(restorer: Any, pair: Pair, options: ScoringOptions, model: str = "the model") -> metrics.Score:
    """Restore a degraded image (rain, blur) and score it against its clean target."""
    degraded, target = read_image(pair.source), read_image(pair.reference)
    return _score(_restore(restorer, degraded, pair.source, model), target.pixels, target.levels_depth, options)


def _restore(restorer: Any, image: DecodedImage, path: Path, model: str) -> np.ndarray:
    """The restored pixels, in the image's own channels, converted as the task commands
    convert them (a gray image through a colour model and back)."""
    restored = restorer.restore(model_input(image, restorer.config.in_channels, str(path), model))
    return with_pixels(image, restored).pixels


def _score(prediction: np.ndarray, reference: np.ndarray, bit_depth: int, options: ScoringOptions) -> metrics.Score:
    return metrics.score(prediction, reference, bit_depth, y_channel=options.y_channel, border=options.border)


# --------------------------------------------------------------------------- models


def default_model(task: Task, sigma: float | None, channels: int) -> str:
    """The official checkpoint the paper used for this task, noise level and colour."""
    if task is Task.derain:
        return "deraining"
    if task is Task.deblur:
        return "motion_deblurring"
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


def paper_psnr(model: str | None, benchmark: str | None, sigma: float | None = None, tlc: bool = False) -> float | None:
    """The paper's PSNR for this model on this benchmark (and noise level; with ``tlc``,
    the TLC paper's), when the manifest records it."""
    if model is None or benchmark is None:
        return None
    from restore_cli.model import manifest

    entry = manifest.load_manifest().get(model)
    return entry.paper_psnr(benchmark, sigma, tlc) if entry else None


def build_restorer(
    model: str | None, weights: Path | None, engine_options: dict[str, Any], progress: Download = True, offline: bool | None = None
) -> Any:
    """Load the checkpoint (zoo name, fetched from the cache only when ``offline``, or file;
    either possibly ONNX) and wrap it in the engine."""
    from restore_cli.engine.onnx_runtime import load_network, restorer_for
    from restore_cli.model import zoo

    source = weights if weights is not None else zoo.resolve(str(model), offline=offline, progress=progress)
    return restorer_for(load_network(source, engine_options.get("device", "auto"), progress), **engine_options)


# --------------------------------------------------------------------------- summary


@dataclass(frozen=True)
class Summary:
    count: int
    failed: int
    psnr: float | None
    ssim: float | None
    benchmark: str | None = None
    model: str | None = None
    """The zoo model or the checkpoint file run (None when scoring existing results)."""
    paper_psnr: float | None = None
    error: str | None = None
    """Why nothing could be scored (the model could not be loaded); every image failed with it."""


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


# --------------------------------------------------------------------------- requests


@dataclass(frozen=True)
class Request:
    """What to evaluate, already checked. Denoising scores against the images it adds noise to, so
    there `sources` and `references` are the same folder."""

    task: Optional[Task]
    sources: Path
    references: Path
    scoring: ScoringOptions
    sigma: float | None = None
    model: str | None = None
    weights: Path | None = None
    engine: dict[str, Any] = field(default_factory=dict)
    download_progress: Download = True
    """How a model download is shown (see ``restore_cli.model.download.Progress``)."""
    compare: Path | None = None
    """A folder for before/after views of the worst and the best scored images."""
    offline: bool | None = None
    """Use only models already in the cache (None: as HF_HUB_OFFLINE says)."""


def evaluate(request: Request, progress: Progress | None = None) -> tuple[list[Outcome], Summary]:
    """Run the requested mode over every image; never raises for a single image's problem.
    Folders with nothing to score are a UsageError, found before any model is loaded. A
    model that cannot be loaded fails every image with the same reason (``Summary.error``)."""
    pairs, problems = pair_folders(request.sources, request.references)
    if not pairs:
        raise UsageError(_nothing_to_score(request.sources, request.references))
    unpaired = failed(problems)
    if request.task is None:
        outcomes = [run_step(p.name, p.source, partial(score_files, p, request.scoring)) for p in pairs]
        return unpaired + outcomes, summarise(unpaired + outcomes, None, None, None)
    model = request.model
    if model is None and request.weights is None:
        model = default_model(request.task, request.sigma, first_channels(p.source for p in pairs))
    shown = str(request.weights) if request.weights is not None else model
    benchmark = benchmark_name(request.sources)
    try:
        restorer = build_restorer(model, request.weights, request.engine, request.download_progress, request.offline)
    except LOAD_ERRORS as error:
        reason = one_line(error)
        outcomes = unpaired + [Outcome(p.name, error=reason) for p in pairs]
        return outcomes, replace(summarise(outcomes, benchmark, shown, None), error=reason)
    outcomes = []
    for done, pair in enumerate(pairs, 1):
        outcomes.append(run_step(pair.name, pair.source, _model_step(request, restorer, pair, str(shown))))
        if progress is not None:
            progress(done, len(pairs))
    if request.compare is not None:
        write_extreme_views(request, restorer, pairs, outcomes, str(shown))
    paper = paper_psnr(model, benchmark, request.sigma, tlc=request.engine.get("tlc_window") is not None)
    return unpaired + outcomes, summarise(unpaired + outcomes, benchmark, shown, paper)


def write_extreme_views(request: Request, restorer: Any, pairs: list[Pair], outcomes: list[Outcome], model: str = "the model") -> list[Path]:
    """Before/after views (`io.comparison`) of the lowest and highest PSNR images, named
    worst_<name>.jpg and best_<name>.jpg: the two are restored again, the model input being
    exactly the scored one (the seeded noise for denoising)."""
    scored = sorted((o for o in outcomes if o.score is not None and math.isfinite(o.score.psnr)), key=lambda o: o.score.psnr)  # type: ignore[union-attr]
    by_name = {pair.name: pair for pair in pairs}
    assert request.compare is not None
    request.compare.mkdir(parents=True, exist_ok=True)
    written = []
    for label, outcome in {"worst": scored[0], "best": scored[-1]}.items() if scored else ():
        pair = by_name[outcome.name]
        if request.task is Task.denoise:
            clean = read_image(pair.reference)
            before = replace(clean, pixels=metrics.gaussian_noise_input(clean.pixels, clean.levels_depth, request.sigma))  # type: ignore[arg-type]
        else:
            before = read_image(pair.source)
        path = request.compare / f"{label}_{outcome.name}.jpg"
        after = replace(before, pixels=_restore(restorer, before, pair.source, model))
        write_image(compare_view(before, after), path, quality=90)
        written.append(path)
    return written


def _nothing_to_score(sources: Path, references: Path) -> str:
    if sources == references:
        return f"no images in {sources}"
    return (
        f"no file names in common between {sources} and {references}; files are paired by name "
        "without the extension (12.png with 12.jpg)"
    )


def _model_step(request: Request, restorer: Any, pair: Pair, model: str) -> Step:
    if request.task is Task.denoise:
        return partial(denoise_and_score, restorer, pair.reference, request.sigma, request.scoring, model)
    return partial(restore_and_score, restorer, pair, request.scoring, model)

