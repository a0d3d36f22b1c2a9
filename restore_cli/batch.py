"""Inputs to outputs: folders, globs, pipes, naming, skip/overwrite, errors, progress, JSON.

A batch is planned before any pixel is computed — which file goes where, which outputs are
skipped — so that a command that would overwrite an input or send two images to one file is
refused up front, not after an hour of work. Each job then goes through `Pipeline.process_one`,
made of three stages (read, restore, write) that never raise: a failure becomes a `Result`
and the batch goes on. `run_local` overlaps the stages with reader and writer threads around
inference on the main thread; another executor (e.g. a distributed one) can call
`process_one` unchanged.
"""

from __future__ import annotations

import glob
import logging
import os
import re
import signal
import sys
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO, Literal, TextIO, TypeVar, Union

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TaskID, TextColumn, TimeRemainingColumn

from restore_cli.images import DecodedImage, ImageError, output_format, read_image, to_tensor, with_pixels, write_image

if TYPE_CHECKING:
    import torch

logger = logging.getLogger(__name__)

STDIO = "-"
"""As an input: read the image from stdin; as an output: write its bytes to stdout."""

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_INTERRUPTED, EXIT_TERMINATED = 0, 1, 2, 130, 143

Policy = Literal["error", "overwrite", "skip"]
Status = Literal["ok", "skipped", "failed"]
ModelSpec = Union[str, Path]
"""A zoo model name (str) or a checkpoint file (Path)."""
TileProgress = Callable[[int, int], None]

_GLOB_MAGIC = re.compile(r"[*?[]")
_EXTENSION_OF = {"PNG": ".png", "JPEG": ".jpg", "TIFF": ".tif", "WEBP": ".webp", "BMP": ".bmp"}


class UsageError(Exception):
    """A command that cannot run as given; nothing has been read or written yet (exit 2)."""


class InputError(Exception):
    """An input the chosen model cannot take (wrong number of views, mismatched sizes)."""


# ---------------------------------------------------------------- planning


@dataclass(frozen=True)
class Naming:
    """Where outputs go: the -o target, the name suffix and format, and what to do with existing files."""

    task: str
    output: str | None = None
    suffix: str | None = None
    format: str | None = None
    recursive: bool = False
    existing: Policy = "error"

    @property
    def stem_suffix(self) -> str:
        """Next to the input a suffix is needed to keep the original; in an output folder it is not."""
        if self.suffix is not None:
            return self.suffix
        return f"_{self.task}" if self.output is None else ""


@dataclass(frozen=True)
class Job:
    """One output to produce, from one image (or a dual-pixel pair of views)."""

    sources: tuple[str, ...]
    output: str | None
    skip: bool = False
    problem: str | None = None
    """Why the job fails without being run (e.g. its output exists), as the user will read it."""

    @property
    def name(self) -> str:
        return " + ".join("<stdin>" if source == STDIO else source for source in self.sources)


@dataclass(frozen=True)
class _Found:
    sources: tuple[Path, ...]
    relative: Path
    """Where the output goes below an output folder: mirrors the input's place in its tree."""
    discovered: bool = False
    """Found in a folder or by a glob, rather than named on the command line."""
    problem: str | None = None

    @property
    def path(self) -> Path:
        return self.sources[0]

    @property
    def is_stdin(self) -> bool:
        return str(self.path) == STDIO


def plan_jobs(arguments: Sequence[str], naming: Naming, views: int = 1) -> list[Job]:
    """Expand the command's inputs and decide every output; UsageError if the command is unsafe.

    ``views=2`` takes the arguments as LEFT RIGHT pairs of dual-pixel views, named after LEFT.
    """
    if not arguments:
        raise UsageError("no inputs given; pass image files, folders, globs or - for stdin")
    found = _grouped(arguments, views) if views > 1 else _expanded(arguments, naming)
    if any(item.is_stdin for item in found) and len(arguments) > 1:
        raise UsageError("- (stdin) must be the only input; run the other inputs separately")
    destination = _destination_rule(naming, found, arguments)
    planned = _drop_earlier_outputs([(item, destination(item)) for item in found])
    _refuse_files_as_folders(planned)
    _refuse_collisions(planned)
    _refuse_overwriting_inputs(planned)
    return [_job(item, output, naming.existing) for item, output in planned]


def _grouped(arguments: Sequence[str], views: int) -> list[_Found]:
    if len(arguments) % views or any(a == STDIO or _is_collection(a) for a in arguments):
        raise UsageError(f"give image files in groups of {views} views (LEFT RIGHT for dual-pixel)")
    groups = [tuple(Path(a) for a in arguments[i : i + views]) for i in range(0, len(arguments), views)]
    return [_Found(group, Path(group[0].name)) for group in groups]


def _is_collection(argument: str) -> bool:
    return Path(argument).is_dir() or _is_glob(argument)


def _is_glob(argument: str) -> bool:
    return not Path(argument).exists() and bool(_GLOB_MAGIC.search(argument))


def _expanded(arguments: Sequence[str], naming: Naming) -> list[_Found]:
    avoid = Path(naming.output).resolve() if naming.output not in (None, STDIO) else None
    return [item for argument in arguments for item in _expand(argument, naming.recursive, avoid)]


def _expand(argument: str, recursive: bool, avoid: Path | None) -> list[_Found]:
    """A missing plain path is kept as a job, so that reading it reports the problem in its turn."""
    path = Path(argument)
    if path.is_dir():
        found = _scan(path, recursive, avoid)
        hint = "" if recursive else " (pass --recursive to include subfolders)"
        return found or [_Found((path,), path, problem=f"{argument}: no images in this folder{hint}")]
    if _is_glob(argument):
        found = _glob(argument, recursive)
        return found or [_Found((path,), path, problem=f"{argument}: no image files match this pattern")]
    return [_Found((path,), Path(path.name))]


def _scan(folder: Path, recursive: bool, avoid: Path | None) -> list[_Found]:
    """Image files in a folder, skipping hidden ones (temp files of interrupted writes among them)
    and the output folder when it lies inside, so a rerun does not restore its own outputs."""
    candidates = folder.rglob("*") if recursive else folder.iterdir()
    found = []
    for path in sorted(candidates):
        relative = path.relative_to(folder)
        hidden = any(part.startswith(".") for part in relative.parts)
        inside_output = avoid is not None and avoid in path.resolve().parents
        if not hidden and not inside_output and path.is_file() and _is_image_name(path):
            found.append(_Found((path,), relative, discovered=True))
    return found


def _glob(pattern: str, recursive: bool) -> list[_Found]:
    base = Path(*[part for part in _leading_plain_parts(pattern)])
    matches = sorted(Path(match) for match in glob.glob(pattern, recursive=recursive))
    return [
        _Found((match,), match.relative_to(base) if recursive else Path(match.name), discovered=True)
        for match in matches
        if match.is_file() and _is_image_name(match)
    ]


def _leading_plain_parts(pattern: str) -> Iterator[str]:
    """The folders before the first wildcard: what --recursive mirrors below -o."""
    for part in Path(pattern).parent.parts:
        if _GLOB_MAGIC.search(part):
            return
        yield part


def _is_image_name(path: Path) -> bool:
    try:
        output_format(path)
    except ImageError:
        return False
    return True


def _destination_rule(naming: Naming, found: list[_Found], arguments: Sequence[str]) -> Callable[[_Found], str]:
    target = naming.output
    if target == STDIO or (target is None and found[0].is_stdin):
        if len(found) != 1:
            raise UsageError(f"-o - writes one image to stdout, but there are {len(found)} inputs; use -o FOLDER")
        return lambda item: STDIO
    if target is None:
        return lambda item: str(item.path.with_name(_output_name(item, naming)))
    if _needs_folder(target, found, arguments):
        if Path(target).is_file():
            raise UsageError(f"-o {target} is a file, but the inputs need a folder; give a folder path")
        if found[0].is_stdin:
            raise UsageError("- (stdin) with an output folder: give -o a file name, or -o - for stdout")
        return lambda item: str(Path(target, item.relative.parent, _output_name(item, naming)))
    _check_output_format(target, naming.format)
    return lambda item: target


def _needs_folder(target: str, found: list[_Found], arguments: Sequence[str]) -> bool:
    named_as_folder = target.endswith(("/", os.sep)) or Path(target).is_dir()
    return named_as_folder or len(found) > 1 or any(_is_collection(a) for a in arguments)


def _check_output_format(target: str, format: str | None) -> None:
    try:
        output_format(target, format)
    except ImageError as error:
        raise UsageError(str(error)) from None


def _output_name(item: _Found, naming: Naming) -> str:
    if naming.format is not None:
        extension = _EXTENSION_OF[output_format(item.path, naming.format)]
    else:
        extension = item.path.suffix if _is_image_name(item.path) else ".png"
    return f"{item.path.stem}{naming.stem_suffix}{extension}"


def _drop_earlier_outputs(planned: list[tuple[_Found, str]]) -> list[tuple[_Found, str]]:
    """A found file that this very plan would produce is an earlier run's output, not a photo to restore."""
    outputs = {_key(output) for _, output in planned if output != STDIO}
    return [(item, output) for item, output in planned if not (item.discovered and _key(item.path) in outputs)]


def _refuse_files_as_folders(planned: list[tuple[_Found, str]]) -> None:
    """An output below an existing file can never be written: say so once, before any work,
    rather than once per image after it."""
    for _, output in planned:
        if output == STDIO:
            continue
        folder = next(parent for parent in Path(output).absolute().parents if parent.exists())
        if not folder.is_dir():
            raise UsageError(f"{folder} is a file, so {output} cannot be written below it; choose another -o")


def _refuse_collisions(planned: list[tuple[_Found, str]]) -> None:
    claimed: dict[str, _Found] = {}
    for item, output in planned:
        if output == STDIO or item.problem:
            continue
        earlier = claimed.setdefault(_key(output), item)
        if earlier is not item:
            raise UsageError(
                f"{earlier.path} and {item.path} would both be written to {output}; "
                "rename one, run them separately, or use --recursive to keep folders apart"
            )


def _refuse_overwriting_inputs(planned: list[tuple[_Found, str]]) -> None:
    inputs = {_key(source): source for item, _ in planned for source in item.sources if not item.is_stdin}
    for item, output in planned:
        if output != STDIO and not item.problem and _key(output) in inputs:
            raise UsageError(
                f"{output} is an input and would be overwritten; choose another -o or --suffix"
            )


def _key(path: str | Path) -> str:
    """One spelling per file, so that ./a.png, a.png and a link to it are recognised as the same."""
    return os.path.normcase(os.path.realpath(path))


def _job(item: _Found, output: str, policy: Policy) -> Job:
    sources = tuple(STDIO if item.is_stdin else str(source) for source in item.sources)
    if item.problem:
        return Job(sources, None, problem=item.problem)
    exists = output != STDIO and os.path.lexists(output)
    if exists and policy == "error":
        problem = f"{output} already exists; pass --overwrite to replace it or --skip-existing to keep it"
        return Job(sources, output, problem=problem)
    return Job(sources, output, skip=exists and policy == "skip")


# ---------------------------------------------------------------- models


@dataclass(frozen=True)
class Model:
    """A loaded model as the pipeline needs it: a name to report, what it takes, how to run it."""

    name: str
    in_channels: int
    restore: Callable[[torch.Tensor, TileProgress | None], torch.Tensor]


@dataclass(frozen=True)
class ModelChoice:
    """Which model restores an image. Colour and grayscale photos can want different models
    (denoise: real-noise RGB vs grayscale Gaussian); every other task uses one for both."""

    color: ModelSpec
    gray: ModelSpec

    @classmethod
    def single(cls, spec: ModelSpec) -> ModelChoice:
        return cls(spec, spec)

    def for_image(self, image: DecodedImage) -> ModelSpec:
        return self.gray if image.channels == 1 else self.color


class Models:
    """Loads each model the first time an image needs it, then reuses it for the whole run.

    A failed load is remembered too, so a batch does not retry a missing download per image.
    """

    def __init__(self, choice: ModelChoice, load: Callable[[ModelSpec], Model]) -> None:
        self.choice = choice
        self._load = load
        self._loaded: dict[ModelSpec, Model | Exception] = {}

    def get(self, spec: ModelSpec) -> Model:
        if spec not in self._loaded:
            try:
                self._loaded[spec] = self._load(spec)
            except Exception as error:
                self._loaded[spec] = error
        loaded = self._loaded[spec]
        if isinstance(loaded, Exception):
            raise loaded
        return loaded

    def for_image(self, image: DecodedImage) -> Model:
        return self.get(self.choice.for_image(image))


@dataclass(frozen=True)
class EngineSettings:
    """The engine and zoo options shared by every command."""

    device: str = "auto"
    precision: str = "auto"
    tile: int | str = "auto"
    overlap: int = 32
    max_memory: str | None = None
    offline: bool | None = None
    download_progress: bool = False

    def check(self) -> None:
        """Reject bad values before any work, as usage errors, rather than once per image."""
        from restore_cli import engine

        try:
            engine.resolve_precision(self.precision, engine.resolve_device(self.device))  # type: ignore[arg-type]
            if self.max_memory is not None:
                engine.parse_memory_size(self.max_memory)
        except (ValueError, RuntimeError) as error:
            raise UsageError(str(error)) from None

    def load(self, spec: ModelSpec) -> Model:
        """Resolve a zoo name or file to a checkpoint, build the network and wrap it in the engine."""
        from restore_cli import registry
        from restore_cli.checkpoints import load_model
        from restore_cli.engine import Restorer

        path = spec if isinstance(spec, Path) else registry.resolve(spec, offline=self.offline, progress=self.download_progress)
        network = load_model(path)
        restorer = Restorer(
            network,
            device=self.device,
            precision=self.precision,  # type: ignore[arg-type]
            tile=self.tile,
            overlap=self.overlap,
            max_memory=self.max_memory,
        )
        return Model(str(spec), network.config.in_channels, restorer.restore)  # type: ignore[arg-type]


# ---------------------------------------------------------------- running one job


@dataclass(frozen=True)
class Result:
    """What happened to one job; the JSON line `--json` prints for it."""

    input: str
    output: str | None
    status: Status
    model: str | None = None
    width: int | None = None
    height: int | None = None
    tiles: int | None = None
    seconds: float = 0.0
    error: str | None = None

    def to_json(self) -> dict[str, Any]:
        size = None if self.width is None else {"width": self.width, "height": self.height}
        return {
            "input": self.input,
            "output": self.output,
            "model": self.model,
            "size": size,
            "tiles": self.tiles,
            "seconds": round(self.seconds, 3),
            "status": self.status,
            "error": self.error,
        }


@dataclass(frozen=True)
class _Loaded:
    job: Job
    images: tuple[DecodedImage, ...]
    seconds: float = 0.0


@dataclass(frozen=True)
class _Restored:
    job: Job
    image: DecodedImage
    model: str
    tiles: int
    seconds: float = 0.0


_Stage = TypeVar("_Stage", _Loaded, _Restored, Result)


@dataclass
class _TileCount:
    """Forwards tile progress and remembers the number of tiles, for the result."""

    forward: TileProgress | None
    total: int = 0

    def __call__(self, done: int, total: int) -> None:
        self.total = total
        if self.forward is not None:
            self.forward(done, total)


@dataclass
class Pipeline:
    """The per-job work, split in stages so an executor can overlap I/O with inference."""

    models: Models
    format: str | None = None
    quality: int = 95
    max_pixels: int | None = None
    """Largest input accepted, in pixels; None keeps images.MAX_PIXELS."""
    stdin: BinaryIO = field(default_factory=lambda: sys.stdin.buffer)
    stdout: BinaryIO = field(default_factory=lambda: sys.stdout.buffer)
    on_tiles: TileProgress | None = None

    def process_one(self, job: Job) -> Result:
        """Read, restore and write one job; never raises."""
        loaded = self.read(job)
        restored = self.restore(loaded) if isinstance(loaded, _Loaded) else loaded
        return self.write(restored) if isinstance(restored, _Restored) else restored

    def read(self, job: Job) -> _Loaded | Result:
        if job.problem is not None:
            return Result(job.name, job.output, "failed", error=job.problem)
        if job.skip:
            return Result(job.name, job.output, "skipped")
        return _guarded(job, 0.0, lambda: _Loaded(job, tuple(self._decode(source) for source in job.sources)))

    def restore(self, loaded: _Loaded) -> _Restored | Result:
        def work() -> _Restored:
            model = self.models.for_image(loaded.images[0])
            tiles = _TileCount(self.on_tiles)
            pixels = _run_model(model, loaded.images, tiles, loaded.job.name)
            return _Restored(loaded.job, with_pixels(loaded.images[0], pixels), model.name, tiles.total)

        return _guarded(loaded.job, loaded.seconds, work)

    def write(self, restored: _Restored) -> Result:
        job, image = restored.job, restored.image

        def work() -> Result:
            assert job.output is not None
            if job.output == STDIO:
                write_image(image, self.stdout, format=self.format, quality=self.quality)
            else:
                _make_folder(Path(job.output).parent)
                write_image(image, job.output, format=self.format, quality=self.quality)
            return Result(job.name, job.output, "ok", restored.model, image.width, image.height, restored.tiles)

        return _guarded(job, restored.seconds, work)

    def _decode(self, source: str) -> DecodedImage:
        return read_image(self.stdin if source == STDIO else source, max_pixels=self.max_pixels)


def _make_folder(folder: Path) -> None:
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        reason = error.strerror or type(error).__name__
        raise OSError(f"{folder}: cannot create the output folder ({reason}); choose another -o") from error


def _guarded(job: Job, spent: float, work: Callable[[], _Stage]) -> _Stage | Result:
    """Run one stage, turning any exception into a failed Result and accumulating the stage's time."""
    started = time.perf_counter()
    try:
        outcome = work()
    except Exception as error:
        seconds = spent + time.perf_counter() - started
        return Result(job.name, job.output, "failed", seconds=seconds, error=_describe_failure(job, error))
    return replace(outcome, seconds=spent + time.perf_counter() - started)


def describe_error(error: Exception) -> str:
    """One line for the user. Errors raised by this package (and OS errors) are the user's to
    fix and already say how; anything else is a bug, reported as such with a pointer to --debug."""
    text = (str(error).splitlines() or [""])[0].strip() or type(error).__name__
    if isinstance(error, OSError) or type(error).__module__.startswith("restore_cli"):
        return text
    logger.debug("unexpected error", exc_info=error)
    return f"unexpected {type(error).__name__}: {text} (rerun with --debug for the traceback)"


def _describe_failure(job: Job, error: Exception) -> str:
    text = describe_error(error)
    return text if text.startswith(job.name) else f"{job.name}: {text}"


def _run_model(model: Model, images: tuple[DecodedImage, ...], progress: TileProgress, name: str) -> torch.Tensor:
    """Feed the model what it takes: two views for dual-pixel models, gray photos as RGB for RGB
    models (written back as gray by `with_pixels`). A colour photo is refused by a gray model:
    restoring each channel alone would be slower and worse than the colour model the user
    almost certainly meant, so the message names it."""
    if model.in_channels == 6:
        return model.restore(_dual_pixel_tensor(images, model.name, name), progress)
    if len(images) != 1:
        raise InputError(f"{name}: {model.name} restores one image, not a dual-pixel pair; use a dual-pixel model")
    image = images[0]
    if model.in_channels == 1 and image.channels == 3:
        raise InputError(
            f"{name}: is a colour image but {model.name} is a grayscale model; use a colour model "
            "(for denoising, the default or --model gaussian picks one per image)"
        )
    return model.restore(to_tensor(image, channels=model.in_channels), progress)


def _dual_pixel_tensor(images: tuple[DecodedImage, ...], model: str, name: str) -> torch.Tensor:
    import torch

    if len(images) != 2:
        raise InputError(f"{name}: {model} needs two views; use `restore defocus --dual-pixel LEFT RIGHT`")
    left, right = images
    if (left.width, left.height) != (right.width, right.height):
        raise InputError(
            f"{name}: the views differ in size ({left.width}x{left.height} vs {right.width}x{right.height}); "
            "give the two views of one dual-pixel capture"
        )
    return torch.cat([to_tensor(view, channels=3) for view in images], dim=1)


# ---------------------------------------------------------------- executing a batch


def run_local(
    jobs: Sequence[Job],
    pipeline: Pipeline,
    on_result: Callable[[Result], None],
    *,
    readers: int = 2,
    writers: int = 2,
    ahead: int = 2,
) -> list[Result]:
    """Restore on this thread while threads decode the next images and encode the previous ones.

    At most ``ahead`` decoded images wait for the model and ``ahead`` restored ones for the
    writers, which bounds memory on big photos. Results are reported in job order. On an
    interrupt, reads not yet started are cancelled and writes already handed over finish
    (they are atomic, so every output on disk is whole).
    """
    results: list[Result] = []
    pending = iter(jobs)
    reads: deque[Future[_Loaded | Result]] = deque()
    writes: deque[Future[Result]] = deque()
    read_pool = ThreadPoolExecutor(readers, thread_name_prefix="restore-read")
    write_pool = ThreadPoolExecutor(writers, thread_name_prefix="restore-write")

    def report(future: Future[Result]) -> None:
        results.append(future.result())
        on_result(results[-1])

    try:
        _read_ahead(read_pool, reads, pending, pipeline, ahead)
        while reads:
            loaded = reads.popleft().result()
            _read_ahead(read_pool, reads, pending, pipeline, ahead)
            restored = pipeline.restore(loaded) if isinstance(loaded, _Loaded) else loaded
            writes.append(write_pool.submit(pipeline.write, restored) if isinstance(restored, _Restored) else _done(restored))
            while writes and (writes[0].done() or len(writes) > ahead):
                report(writes.popleft())
    finally:
        read_pool.shutdown(wait=True, cancel_futures=True)
        write_pool.shutdown(wait=True)
        while writes:  # also on an interrupt: these files were written, so they are reported
            report(writes.popleft())
    return results


def _read_ahead(
    pool: ThreadPoolExecutor, reads: deque[Future[_Loaded | Result]], pending: Iterator[Job], pipeline: Pipeline, ahead: int
) -> None:
    while len(reads) < ahead and (job := next(pending, None)) is not None:
        reads.append(pool.submit(pipeline.read, job))


def _done(result: Result) -> Future[Result]:
    future: Future[Result] = Future()
    future.set_result(result)
    return future


class Terminated(BaseException):
    """SIGTERM, raised like KeyboardInterrupt so that the same clean-up runs."""


@contextmanager
def _sigterm_raises() -> Iterator[None]:
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum: int, frame: object) -> None:
        raise Terminated()

    previous = signal.signal(signal.SIGTERM, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def execute(jobs: Sequence[Job], pipeline: Pipeline, reporter: Reporter) -> int:
    """Run the batch with the local executor and return the process exit code."""
    reporter.start(len(jobs))
    pipeline.on_tiles = reporter.tiles
    try:
        with _sigterm_raises():
            results = run_local(jobs, pipeline, reporter.result)
    except KeyboardInterrupt:
        return reporter.interrupted(EXIT_INTERRUPTED)
    except Terminated:
        return reporter.interrupted(EXIT_TERMINATED)
    reporter.finish(results)
    return EXIT_FAILED if any(result.status == "failed" for result in results) else EXIT_OK


# ---------------------------------------------------------------- reporting


@dataclass
class Reporter:
    """What a batch tells the user: errors on stderr, JSON on stdout with --json, and rich
    progress (images and tiles, with ETA) only when someone is watching stderr."""

    stdout: TextIO
    stderr: TextIO
    json: bool = False
    progress: bool = False
    log_tiles: bool = False
    """Without the live display, write plain tile counts (for logs of engine measurements)."""
    _console: Console = field(init=False)
    _bar: Progress | None = field(init=False, default=None)
    _images: TaskID = field(init=False, default=TaskID(0))
    _tiles: TaskID = field(init=False, default=TaskID(1))
    _started: float = field(init=False, default=0.0)
    _done: int = field(init=False, default=0)

    def __post_init__(self) -> None:
        self._console = Console(file=self.stderr, soft_wrap=True, markup=False, highlight=False, emoji=False)

    def start(self, total: int) -> None:
        self._started = time.perf_counter()
        if not self.progress:
            return
        self._bar = Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeRemainingColumn(),
            console=self._console,
            transient=True,
        )
        self._images = self._bar.add_task("images", total=total)
        self._tiles = self._bar.add_task("tiles", total=None)
        self._bar.start()

    def tiles(self, done: int, total: int) -> None:
        if self._bar is not None:
            self._bar.update(self._tiles, completed=done, total=total)
        elif self.log_tiles and total > 1:
            self.stderr.write(f"\rtiles {done}/{total}" + ("\n" if done == total else ""))
            self.stderr.flush()

    def result(self, result: Result) -> None:
        self._done += 1
        if result.error is not None:
            self._console.print(f"error: {result.error}")
        if self.json:
            self._json_line(result.to_json())
        if self._bar is not None:
            self._bar.advance(self._images)

    def finish(self, results: list[Result]) -> None:
        self._stop()
        counts = {status: sum(r.status == status for r in results) for status in ("ok", "skipped", "failed")}
        seconds = time.perf_counter() - self._started
        if self.json:
            self._json_line({"summary": {"total": len(results), **counts, "seconds": round(seconds, 3)}})
        if self.progress:
            self._console.print(
                f"{counts['ok']} restored, {counts['skipped']} skipped, {counts['failed']} failed in {seconds:.1f} s"
            )

    def interrupted(self, code: int) -> int:
        self._stop()
        self._console.print(f"interrupted after {self._done} image(s); every file written is complete")
        return code

    def _stop(self) -> None:
        if self._bar is not None:
            self._bar.stop()
            self._bar = None

    def _json_line(self, payload: dict[str, Any]) -> None:
        import json

        self.stdout.write(json.dumps(payload) + "\n")
        self.stdout.flush()
