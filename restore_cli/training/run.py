"""`train(...)`: a whole training run, from checked options to the written checkpoint.

Everything that can be wrong with the options, the data, the starting weights, the state
file or the folder they are written to is found before the first step; then the loop runs,
validating and saving the state file on schedule, and the checkpoint is written atomically at
the end. Ctrl-C stops the run after the step in progress, a second one at once (see
``control``); either way the state of the last completed step is saved, whole, and resumes
exactly. A write that fails after all puts the weights in a fallback folder (``state.keep``).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import torch

from restore_cli.engine.device import resolve_device, resolve_precision
from restore_cli.errors import DataError, UsageError, one_line, setting
from restore_cli.io.files import check_can_write
from restore_cli.model.checkpoints import infer_config
from restore_cli.model.restormer import Restormer
from restore_cli.model.zoo import load_model
from restore_cli.quality import metrics
from restore_cli.training.data import (
    Example,
    Sampler,
    check_images,
    load_folder,
    load_pairs,
    parse_sigma,
    split,
    validation_images,
)
from restore_cli.training.control import Interrupts, run_step
from restore_cli.training.loop import Pace, Reporter, Trainer
from restore_cli.training.schedule import default_warmup, stage_at, stages
from restore_cli.training.sizes import SIZES, new_model
from restore_cli.training.state import keep, read_state, state_path, write_checkpoint, write_state
from restore_cli.training.validation import validate

if TYPE_CHECKING:
    from restore_cli.model.download import Progress

CHECKPOINT_SUFFIXES = (".pth", ".pt")



@dataclass(frozen=True)
class TrainingOptions:
    """Every option of `restore train`, with its defaults. Exactly one data source: `data`
    with `sigma` (clean images, synthetic Gaussian noise) or `pairs` (input, target)."""

    output: Path
    data: Path | None = None
    sigma: str | float | None = None
    pairs: tuple[Path, Path] | None = None
    start: str | None = None
    size: str | None = None
    patch: int = 128
    batch: int = 8
    iters: int = 10_000
    lr: float = 3e-4
    warmup: int | None = None
    progressive: bool = False
    precision: str = "auto"
    allow_slow_precision: bool = False
    clip: float = 0.01
    seed: int = 0
    ema: float = 0.0
    val: Path | None = None
    val_pairs: tuple[Path, Path] | None = None
    val_share: float = 0.1
    val_every: int = 1000
    save_every: int = 1000
    device: str = "auto"
    resume: Path | None = None
    overwrite: bool = False
    download_progress: Progress = True
    """How downloading a zoo model for ``start`` is shown (``restore_cli.model.download.Progress``)."""

    def identity(self) -> dict[str, Any]:
        """What decides the sequence of steps: a resumed run must repeat it to continue
        the same run (paths, schedules of saving and validation may change)."""
        noise = parse_sigma(self.sigma) if self.sigma is not None else None
        return {
            "noise": [noise.low, noise.high] if noise else None,
            "pairs": self.pairs is not None,
            "from": self.start,
            "size": self.size,
            "patch": self.patch,
            "batch": self.batch,
            "iters": self.iters,
            "lr": self.lr,
            "warmup": self.warmup,
            "progressive": self.progressive,
            "precision": self.precision,
            "clip": self.clip,
            "seed": self.seed,
            "ema": self.ema,
        }


@dataclass(frozen=True)
class TrainingResult:
    """Where the checkpoint went, and how the run went: the last batch's loss and the
    validation scores by iteration."""

    output: Path
    iterations: int
    seconds: float
    last_loss: float | None
    scores: list[tuple[int, metrics.Score]] = field(default_factory=list)


class Silent:
    """A reporter that says nothing, for notebooks and tests."""

    def started(self, iteration: int, total: int) -> None:
        pass

    def stepped(self, iteration: int, loss: float, lr: float) -> None:
        pass

    def validated(self, iteration: int, score: metrics.Score) -> None:
        pass

    def saved(self, iteration: int) -> None:
        pass


def train(data: str | Path | None = None, *, output: str | Path, reporter: Reporter | None = None, **options: Any) -> TrainingResult:
    """Train or fine-tune a Restormer; keyword options are those of TrainingOptions (`start`
    is `--from`). Returns where the checkpoint went and the validation scores."""
    pairs = options.pop("pairs", None)
    val_pairs = options.pop("val_pairs", None)
    paths = {key: Path(options[key]) for key in ("val", "resume") if options.get(key) is not None}
    chosen = TrainingOptions(
        output=Path(output),
        data=Path(data) if data is not None else None,
        pairs=tuple(map(Path, pairs)) if pairs is not None else None,  # type: ignore[arg-type]
        val_pairs=tuple(map(Path, val_pairs)) if val_pairs is not None else None,  # type: ignore[arg-type]
        **{**options, **paths},
    )
    return run(chosen, reporter or Silent())


def run(options: TrainingOptions, reporter: Reporter) -> TrainingResult:
    """Check everything, then train. Raises UsageError, DataError, StateError,
    CheckpointError or ZooError before the first step; KeyboardInterrupt stops it."""
    check_options(options)
    device = training_device(options.device)
    dtype = training_dtype(options.precision, device, options.allow_slow_precision)
    noise = parse_sigma(options.sigma) if options.sigma is not None else None
    examples = load_folder(options.data) if options.data is not None else load_pairs(*options.pairs)  # type: ignore[misc]
    state = _read_resumed_state(options)
    # A resumed model is built afresh and the weights copied in (by the Trainer), not assigned
    # from the file's tensors: AdamW's vectorised update rounded differently on those, and
    # the run drifted from an uninterrupted one within a step.
    model = Restormer(infer_config(state["model"])) if state else _starting_model(options, examples, noise is not None)
    channels = model.config.in_channels
    schedule = stages(options.iters, options.patch, options.batch, options.progressive)
    check_images(examples, channels, max(stage.patch for stage in schedule))
    training, validation = _validation_split(options, examples, channels)
    trainer = Trainer(
        model,
        device,
        dtype,
        lr=options.lr,
        iterations=options.iters,
        warmup=options.warmup if options.warmup is not None else default_warmup(options.iters),
        clip=options.clip,
        ema_decay=options.ema,
        seed=options.seed,
    )
    if state:
        trainer.load_state_dict(state)
    first = trainer.iteration
    sampler = Sampler(training, channels, noise, trainer.generator)
    images = validation_images(validation, channels, noise)
    precision = "fp32" if dtype == torch.float32 else options.precision
    started = time.monotonic()
    reporter.started(trainer.iteration, options.iters)
    loss, scores = None, []

    def save_state() -> None:
        if trainer.iteration == first:  # nothing new to keep
            return
        state = {"run": options.identity(), **trainer.state_dict()}
        keep(state_path(options.output), lambda path: write_state(path, state), f"the run so far (iteration {state['iteration']})", resumable=True)
        reporter.saved(state["iteration"])

    with Interrupts(getattr(reporter, "stopping", lambda: None)) as interrupts:
        try:
            while trainer.iteration < options.iters and not interrupts.requested:
                stage = stage_at(schedule, trainer.iteration)
                batch = sampler.batch(stage.batch, stage.patch)
                timed = _estimate(reporter, trainer, options.iters, device) if trainer.iteration == first else None
                loss, lr = run_step(lambda cancelled: trainer.step(*batch, cancelled=cancelled, on_forward=timed))
                reporter.stepped(trainer.iteration, loss, lr)
                done = trainer.iteration == options.iters
                if images and options.val_every > 0 and (trainer.iteration % options.val_every == 0 or done):
                    score = validate(trainer.inference_model, images, device, precision)
                    scores.append((trainer.iteration, score))
                    reporter.validated(trainer.iteration, score)
                if not done and options.save_every > 0 and trainer.iteration % options.save_every == 0:
                    save_state()
        except KeyboardInterrupt:  # a second Ctrl-C: the last completed step is kept, then the run stops
            save_state()
            raise
    if trainer.iteration < options.iters:  # the first Ctrl-C, honoured after its step
        save_state()
        raise KeyboardInterrupt
    keep(options.output, lambda path: write_checkpoint(path, trainer.model, trainer.ema), "the trained weights")
    return TrainingResult(options.output, trainer.iteration, time.monotonic() - started, loss, scores)


def _estimate(reporter: Reporter, trainer: Trainer, iters: int, device: torch.device) -> Callable[[float], None]:
    """What the first step's forward pass tells the reporter: how long the run will take."""
    steps_left = iters - trainer.iteration
    parameters = sum(parameter.numel() for parameter in trainer.model.parameters())
    told = getattr(reporter, "estimated", None)
    return lambda seconds: told(Pace(seconds, steps_left, device.type == "cpu", parameters)) if told else None


def check_options(options: TrainingOptions) -> None:
    """Refuse, before reading any image, options no run could use."""
    if (options.data is None) == (options.pairs is None):
        raise UsageError(f"give a folder of clean images with {setting('sigma')}, or {setting('pairs')} INPUT TARGET")
    if options.data is not None and options.sigma is None:
        raise UsageError(f"clean images need a degradation: add {setting('sigma')} 25 (or a range such as 0-50)")
    if options.pairs is not None and options.sigma is not None:
        raise UsageError(f"{setting('sigma')} adds noise to clean images; it cannot be used with {setting('pairs')}")
    if options.sigma is not None:
        try:
            parse_sigma(options.sigma)
        except ValueError as error:
            raise UsageError(str(error)) from None
    if options.start is not None and options.size is not None:
        raise UsageError(f"give {setting('start')} (start from weights) or {setting('size')} (start from scratch), not both")
    if options.size is not None and options.size not in SIZES:
        raise UsageError(f"unknown {setting('size')} {options.size!r}; choose one of {', '.join(SIZES)}")
    if options.val is not None and options.val_pairs is not None:
        raise UsageError(f"give {setting('val')} or {setting('val_pairs')}, not both")
    if options.val is not None and options.sigma is None:
        raise UsageError(f"{setting('val')} takes clean images for a {setting('sigma')} run; with {setting('pairs')}, use {setting('val_pairs')} INPUT TARGET")
    _check_numbers(options)
    _check_output(options)


def _check_numbers(options: TrainingOptions) -> None:
    if options.patch < 8 or options.patch % 8:
        raise UsageError(f"{setting('patch')} must be a multiple of 8 (the network halves it three times), got {options.patch}")
    for name, value in ((setting("batch"), options.batch), (setting("iters"), options.iters)):
        if value < 1:
            raise UsageError(f"{name} must be at least 1, got {value}")
    for name, value in ((setting("save_every"), options.save_every), (setting("val_every"), options.val_every)):
        if value < 0:
            raise UsageError(f"{name} must be 0 (never) or more, got {value}")
    if not options.lr > 0:
        raise UsageError(f"{setting('lr')} must be positive, got {options.lr}")
    if options.warmup is not None and not 0 < options.warmup <= options.iters:
        raise UsageError(f"{setting('warmup')} must be between 1 and {setting('iters')} ({options.iters}), got {options.warmup}")
    if options.clip < 0:
        raise UsageError(f"{setting('clip')} must be 0 (off) or a positive gradient norm, got {options.clip}")
    if not 0 <= options.ema < 1:
        raise UsageError(f"{setting('ema')} must be 0 (off) or a decay below 1 such as 0.999, got {options.ema}")
    if not 0 <= options.val_share < 1:
        raise UsageError(f"{setting('val_share')} must be in [0, 1), got {options.val_share}")


def _check_output(options: TrainingOptions) -> None:
    output = options.output
    if output.suffix not in CHECKPOINT_SUFFIXES:
        raise UsageError(f"{setting('output')} {output}: name the checkpoint .pth (it is written as a PyTorch file)")
    if not output.parent.is_dir():
        raise UsageError(f"{setting('output')} {output}: folder {output.parent} does not exist; create it first")
    if output.exists() and not options.overwrite:
        raise UsageError(f"{setting('output')} {output}: already exists; pass {setting('overwrite')} to replace it")
    state = state_path(output)
    for written in (output, state):  # the checkpoint at the end, the state file on schedule and on Ctrl-C
        check_can_write(written)
    resuming_here = options.resume is not None and options.resume.resolve() == state.resolve()
    if state.exists() and not resuming_here and not options.overwrite:
        raise UsageError(
            f"{state}: a state file of an earlier run is there; resume it with {setting('resume')} {state}, or pass {setting('overwrite')}"
        )


def training_device(name: str) -> torch.device:
    try:
        return resolve_device(name)
    except (ValueError, RuntimeError) as error:  # RuntimeError: torch cannot parse the name
        raise UsageError(f"{setting('device')} {name}: {one_line(error)}") from None


def training_dtype(precision: str, device: torch.device, allow_slow: bool) -> torch.dtype:
    """The engine's precision rules: a half precision this hardware would emulate (much
    slower, not faster) is refused unless asked for."""
    try:
        return resolve_precision(precision, device, allow_slow)  # type: ignore[arg-type]
    except ValueError as error:
        raise UsageError(str(error)) from None


def _read_resumed_state(options: TrainingOptions) -> dict[str, Any] | None:
    if options.resume is None:
        return None
    state = read_state(options.resume)
    recorded, current = state["run"], options.identity()
    changed = [key for key in current if recorded.get(key) != current[key]]
    if changed:
        was = ", ".join(f"{key}={recorded.get(key)!r}" for key in changed)
        raise UsageError(f"{options.resume}: written by a run with {was}; resume with the same options")
    return state


def _starting_model(options: TrainingOptions, examples: list[Example], denoiser: bool) -> torch.nn.Module:
    """The weights to fine-tune, or a new network initialised from the run's seed."""
    if options.start is not None:
        return load_model(options.start, progress=options.download_progress)
    channels = 3 if any(example.channels == 3 for example in examples) else 1
    torch.manual_seed(options.seed)
    return new_model(options.size or "base", channels, denoiser)


def _validation_split(
    options: TrainingOptions, examples: list[Example], channels: int
) -> tuple[list[Example], list[Example]]:
    """Training images and validation images: the given validation set, else a held-out share."""
    if options.val is not None or options.val_pairs is not None:
        validation = load_folder(options.val) if options.val is not None else load_pairs(*options.val_pairs)  # type: ignore[misc]
        check_images(validation, channels, 0)
        return examples, validation
    training, held = split(examples, options.val_share, options.seed)
    if not training:
        raise DataError(f"no images left for training after holding out the validation share; lower {setting('val_share')}")
    return training, held

