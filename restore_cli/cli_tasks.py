"""`restore denoise|derain|deblur|defocus`: the task commands, with a default model per task.

All task commands take the same options, so their signatures are built from one list of
parameters instead of being written out four times; each command only adds its own extras
(`--sigma` for denoise, `--dual-pixel` for defocus).
"""

from __future__ import annotations

import copy
import inspect
import logging
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, List, Literal, NoReturn, Optional

import typer

from restore_cli.batch import executor, local, models, pipeline, planning, reporting
from restore_cli.io.decode import MAX_PIXELS
from restore_cli.errors import UnknownModelError, UsageError

if TYPE_CHECKING:
    from restore_cli.batch.ray_executor import RayOptions

SIGMAS = (15, 25, 50)
GAUSSIAN = "gaussian"
DUAL_PIXEL_MODEL = "dual_pixel_defocus_deblurring"


@dataclass(frozen=True)
class Task:
    """A command: its zoo default, the word put in output names, and its help."""

    name: str
    model: Optional[str]
    summary: str
    examples: str
    word: str = ""
    log_tiles: bool = False
    """Plain tile counts on stderr when it is not a terminal (for `restore run`, which measures the engine)."""

    @property
    def output_word(self) -> str:
        return self.word or self.name


TASKS = {
    "denoise": Task(
        "denoise",
        "real_denoising",
        "Remove noise. Colour photos use real_denoising (real camera noise), grayscale ones "
        "gaussian_gray_denoising_blind; --model gaussian picks the blind Gaussian denoisers and "
        "--sigma 15|25|50 the non-blind ones.",
        "restore denoise photo.jpg                    # writes photo_denoise.jpg\n"
        "restore denoise shoot/ -r -o clean/          # mirrors the tree under clean/\n"
        "restore denoise scan.tif --sigma 25 --model gaussian\n"
        "find shoot -name '*.jpg' -print0 | restore denoise --files-from - -0 -o clean/\n"
        "cat noisy.png | restore denoise - -o - > clean.png",
    ),
    "derain": Task(
        "derain",
        "deraining",
        "Remove rain streaks (model: deraining).",
        "restore derain street.png -o street_dry.png\n"
        "restore derain 'rainy/*.jpg' -o dry/ --skip-existing --json > report.jsonl",
    ),
    "deblur": Task(
        "deblur",
        "motion_deblurring",
        "Remove motion blur (model: motion_deblurring).",
        "restore deblur shake.jpg --quality 98\n"
        "restore deblur frames/ -o sharp/ --format png --device cuda",
    ),
    "defocus": Task(
        "defocus",
        "single_image_defocus_deblurring",
        "Remove defocus blur (model: single_image_defocus_deblurring); with --dual-pixel, from "
        "the LEFT and RIGHT views of a dual-pixel capture (dual_pixel_defocus_deblurring, 16-bit capable).",
        "restore defocus portrait.jpg\n"
        "restore defocus --dual-pixel left.png right.png -o sharp.png",
    ),
}

LICENCE_NOTE = "The official weights are for non-commercial use (Academic Public License); see `restore models list`."


@dataclass(frozen=True)
class TaskOptions:
    """Every option a task command accepts, as parsed by Typer."""

    inputs: Optional[List[str]]
    output: Optional[str]
    weights: Optional[Path]
    tile: str
    overlap: int
    max_memory: Optional[str]
    device: str
    precision: str
    allow_slow_precision: bool
    recursive: bool
    overwrite: bool
    skip_existing: bool
    suffix: Optional[str]
    files_from: Optional[str]
    null: bool
    format: Optional[str]
    quality: int
    max_pixels: Optional[int]
    as_json: bool
    quiet: bool
    offline: bool
    debug: bool
    tlc: bool = False
    tlc_window: Optional[int] = None
    engine: Literal["local", "ray"] = "local"
    ray_address: Optional[str] = None
    workers: Optional[int] = None
    cpus_per_worker: Optional[float] = None
    gpus_per_worker: Optional[float] = None
    model: Optional[str] = None
    sigma: Optional[int] = None
    dual_pixel: bool = False


def _param(name: str, annotation: Any, info: Any) -> inspect.Parameter:
    return inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, default=info, annotation=annotation)


COMMON = [
    _param("inputs", Optional[List[str]], typer.Argument(None, metavar="INPUT...", help="Image files, folders, glob patterns, or - for stdin.", show_default=False)),
    _param("output", Optional[str], typer.Option(None, "-o", "--output", metavar="OUT", help="Output file, folder, or - for stdout. Default: next to each input as <stem>_<task>.<ext>.")),
    _param("model", Optional[str], typer.Option(None, "--model", metavar="NAME", help="Zoo model name instead of the task's default (see `restore models list`).")),
    _param("weights", Optional[Path], typer.Option(None, "--weights", metavar="CKPT", help="Any Restormer checkpoint file (.pth/.safetensors) instead of a zoo model.")),
    _param("tile", str, typer.Option("auto", "--tile", metavar="auto|0|N", help="Tile side in pixels, auto (fit --max-memory) or 0 (whole image).")),
    _param("overlap", int, typer.Option(32, "--overlap", min=0, metavar="N", help="Overlap between tiles, in pixels.")),
    _param("max_memory", Optional[str], typer.Option(None, "--max-memory", metavar="SIZE", help="Memory budget such as 2GB (default: a safe share of free memory).")),
    _param("device", str, typer.Option("auto", "--device", metavar="auto|cpu|cuda[:N]", help="Where to compute (mps on Apple silicon).")),
    _param("precision", str, typer.Option("auto", "--precision", metavar="auto|fp32|bf16|fp16", help="auto (fp32), fp32, bf16 (CPUs with native bf16, Ampere+ GPUs), or fp16 (CUDA only).")),
    _param("allow_slow_precision", bool, typer.Option(False, "--allow-slow-precision", help="Run --precision bf16/fp16 even where this hardware emulates it (many times slower than fp32).")),
    _param("tlc", bool, typer.Option(False, "--tlc", help="Test-time local statistics (TLC, Chu et al. 2022): attention over windows of about the training size instead of the whole image. Off by default.")),
    _param("tlc_window", Optional[int], typer.Option(None, "--tlc-window", metavar="N", help="TLC's window side in pixels (default 384); implies --tlc.")),
    _param("recursive", bool, typer.Option(False, "--recursive", "-r", help="Include subfolders, mirroring the tree under -o.")),
    _param("overwrite", bool, typer.Option(False, "--overwrite", help="Replace outputs that already exist (never an input).")),
    _param("skip_existing", bool, typer.Option(False, "--skip-existing", help="Keep outputs that already exist: resume a big batch.")),
    _param("suffix", Optional[str], typer.Option(None, "--suffix", metavar="TEXT", help="Text added to each output's name (default: _<task> next to the input, none in an -o folder).")),
    _param("files_from", Optional[str], typer.Option(None, "--files-from", metavar="FILE", help="Also restore the files named in FILE (- for stdin), one per line, in one process: find ... | restore denoise --files-from - -o out/.")),
    _param("null", bool, typer.Option(False, "-0", "--null", help="--files-from names are NUL-separated (find -print0): names may contain newlines.")),
    _param("format", Optional[Literal["png", "jpg", "tif", "webp", "bmp"]], typer.Option(None, "--format", metavar="png|jpg|tif|webp|bmp", help="Output format (default: the input's; PNG for stdout).")),
    _param("quality", int, typer.Option(95, "--quality", min=1, max=100, metavar="1-100", help="JPEG/WebP quality.")),
    _param("max_pixels", Optional[int], typer.Option(None, "--max-pixels", min=1, metavar="N", help=f"Refuse images larger than N pixels (width x height) before decoding them; raise it for trusted huge files. Default: {MAX_PIXELS:,}.")),
    _param("as_json", bool, typer.Option(False, "--json", help="One JSON line per image and a summary on stdout (see README, JSON output).")),
    _param("quiet", bool, typer.Option(False, "--quiet", "-q", help="No progress, per-image lines or summary on stderr (errors are still shown).")),
    _param("offline", bool, typer.Option(False, "--offline", help="Use only models already in the cache.")),
    _param("debug", bool, typer.Option(False, "--debug", help="restore's own debug log, and tracebacks for unexpected errors.")),
    _param("engine", Literal["local", "ray"], typer.Option("local", "--engine", metavar="local|ray", help="local: this process; ray: a Ray cluster (pip install \"restore-cli[ray]\"; paths must be visible to every node).")),
    _param("ray_address", Optional[str], typer.Option(None, "--ray-address", metavar="ADDRESS", help="Ray cluster to join: auto (the one this node is in) or HOST:PORT. Default: $RAY_ADDRESS, else a local Ray on this machine.")),
    _param("workers", Optional[int], typer.Option(None, "--workers", min=1, metavar="N", help="Ray workers, each with its own model (default: as many as the cluster's CPUs/GPUs allow).")),
    _param("cpus_per_worker", Optional[float], typer.Option(None, "--cpus-per-worker", metavar="N", help="CPUs each Ray worker reserves (and its torch threads). Default: 1.")),
    _param("gpus_per_worker", Optional[float], typer.Option(None, "--gpus-per-worker", metavar="N", help="GPUs each Ray worker reserves; fractions share a GPU (0.5: two models per GPU). Default: 0.")),
]
SIGMA = _param("sigma", Optional[int], typer.Option(None, "--sigma", metavar="15|25|50", help="Noise level 15, 25 or 50: use the non-blind Gaussian denoiser."))
DUAL_PIXEL = _param("dual_pixel", bool, typer.Option(False, "--dual-pixel", help="INPUTs are LEFT RIGHT views of a dual-pixel capture."))


WEIGHTS_REQUIRED = _param("weights", Path, typer.Option(..., "--weights", metavar="CKPT", help="Restormer checkpoint (.pth or .safetensors); its configuration is read from the file."))


def _command(task: Task, parameters: list[inspect.Parameter]) -> Callable[..., None]:
    """A Typer command for ``task`` with the given signature."""

    def command(**values: Any) -> None:
        run_task(task, TaskOptions(**values))

    parameters = [_named_for(task, parameter) for parameter in parameters]
    command.__signature__ = inspect.Signature(parameters)  # type: ignore[attr-defined]
    command.__annotations__ = {parameter.name: parameter.annotation for parameter in parameters}
    command.__name__ = task.name
    command.__doc__ = f"{task.summary}\n\n{LICENCE_NOTE}"
    return command


def _named_for(task: Task, parameter: inspect.Parameter) -> inspect.Parameter:
    """Help that names outputs spells the task's own word: photo_denoise.jpg, photo_restored.jpg."""
    info = parameter.default
    if "<task>" not in (getattr(info, "help", None) or ""):
        return parameter
    named = copy.copy(info)
    named.help = info.help.replace("<task>", task.output_word)
    return parameter.replace(default=named)


def epilog(task: Task) -> str:
    """Examples, kept apart from the summary; Click's \\b keeps them one per line."""
    return "Examples:\n\n\b\n" + task.examples


denoise = _command(TASKS["denoise"], COMMON + [SIGMA])
derain = _command(TASKS["derain"], COMMON)
deblur = _command(TASKS["deblur"], COMMON)
defocus = _command(TASKS["defocus"], COMMON + [DUAL_PIXEL])


def checkpoint_command(task: Task) -> Callable[..., None]:
    """A command for ``task`` that runs the checkpoint given by a required --weights, no zoo model."""
    return _command(task, [WEIGHTS_REQUIRED if p.name == "weights" else p for p in COMMON if p.name != "model"])


# ---------------------------------------------------------------- running


def run_task(task: Task, options: TaskOptions) -> None:
    """Plan, load and run; every outcome ends in typer.Exit with the documented exit code."""
    if options.debug:
        _debug_logging()
    try:
        code = _run(task, options)
    except UsageError as error:
        _fail(str(error), reporting.EXIT_USAGE)
    except Exception as error:
        if options.debug and not pipeline.is_expected(error):
            raise
        _fail(pipeline.describe_error(error), reporting.EXIT_FAILED)
    raise typer.Exit(code)


def _debug_logging() -> None:
    """--debug shows this package's own log and the tracebacks of unexpected errors; the
    libraries' debug chatter (Pillow's chunk-by-chunk PNG log, say) stays off. One handler,
    on the current stderr, however many commands run in this process."""
    package = logging.getLogger("restore_cli")
    for earlier in [handler for handler in package.handlers if handler.get_name() == "restore-debug"]:
        package.removeHandler(earlier)
    handler = logging.StreamHandler(sys.stderr)
    handler.set_name("restore-debug")
    handler.setFormatter(logging.Formatter("%(name)s: %(message)s"))
    package.addHandler(handler)
    package.setLevel(logging.DEBUG)


def _run(task: Task, options: TaskOptions) -> int:
    listed = _listed_names(options)
    if not options.inputs and not listed:
        raise UsageError(f"Missing argument 'INPUT...' or --files-from FILE (see `restore {task.name} --help`)")
    choice = model_choice(task, options)
    settings = _settings(options)
    ray_options = _ray_options(options, settings)
    if ray_options is None:
        settings.check()
    jobs = planning.plan_jobs(options.inputs or [], _naming(task, options), views=2 if options.dual_pixel else 1, listed=listed)
    if ray_options is None:
        runner: executor.Executor = _local_executor(options, settings, choice)
    else:
        runner = _ray_executor(options, ray_options, settings, choice, jobs)
    reporter = reporting.Reporter(
        stdout=sys.stdout,
        stderr=sys.stderr,
        command=task.name,
        json=options.as_json,
        display="quiet" if options.quiet else "live" if sys.stderr.isatty() else "lines",
        log_tiles=task.log_tiles and not options.quiet,
    )
    return executor.execute(jobs, runner, reporter)


def _local_executor(options: TaskOptions, settings: models.EngineSettings, choice: models.ModelChoice) -> local.LocalExecutor:
    loaded = models.Models(choice, settings.load)
    steps = pipeline.Pipeline(loaded, format=options.format, quality=options.quality, max_pixels=options.max_pixels)
    return local.LocalExecutor(steps, load=lambda: _load_up_front(loaded))


def _load_up_front(models: models.Models) -> None:
    """Load (downloading and verifying) the model before the first image, so a bad checkpoint
    is one error rather than one per image. When colour and gray photos get different models,
    each is loaded up front only if it is already cached: a folder of gray scans must not
    download (or, offline, fail for) the colour model it never uses."""
    from restore_cli.model import zoo

    choice = models.choice
    for spec in dict.fromkeys((choice.color, choice.gray)):
        if choice.color == choice.gray or isinstance(spec, Path) or zoo.cached_path(spec) is not None:
            models.get(spec)


_RAY_FLAGS = {"ray_address": "--ray-address", "workers": "--workers", "cpus_per_worker": "--cpus-per-worker", "gpus_per_worker": "--gpus-per-worker"}


def _ray_options(options: TaskOptions, settings: models.EngineSettings) -> Optional[RayOptions]:
    """`ray_executor.RayOptions` for --engine ray (checked, with Ray imported), else None."""
    given = [flag for name, flag in _RAY_FLAGS.items() if getattr(options, name) is not None]
    if options.engine == "local":
        if given:
            raise UsageError(f"{given[0]} applies to --engine ray only; add --engine ray or drop it")
        return None
    ray_executor = _import_ray_executor()
    ray_options = ray_executor.RayOptions(
        address=options.ray_address,
        workers=options.workers,
        cpus_per_worker=1.0 if options.cpus_per_worker is None else options.cpus_per_worker,
        gpus_per_worker=options.gpus_per_worker or 0.0,
        debug=options.debug,
    )
    ray_options.check(settings)
    return ray_options


def _import_ray_executor() -> Any:
    try:
        from restore_cli.batch import ray_executor
    except ModuleNotFoundError as error:
        if error.name != "ray" and not str(error.name).startswith("ray."):
            raise
        raise UsageError('--engine ray needs Ray, which is not installed: pip install "restore-cli[ray]"') from None
    return ray_executor


def _ray_executor(
    options: TaskOptions, ray_options: RayOptions, settings: models.EngineSettings, choice: models.ModelChoice, jobs: list[planning.Job]
) -> executor.Executor:
    if any(job.output == planning.STDIO or planning.STDIO in job.sources for job in jobs):
        raise UsageError("--engine ray reads and writes files every worker can see; - (stdin/stdout) needs --engine local")
    ray_executor = _import_ray_executor()
    return ray_executor.RayExecutor.for_batch(
        ray_options, settings, choice, format=options.format, quality=options.quality, max_pixels=options.max_pixels
    )


def _listed_names(options: TaskOptions) -> list[str]:
    """The names --files-from lists, read before anything else happens."""
    if options.files_from is None:
        if options.null:
            raise UsageError("-0/--null describes a --files-from list; give --files-from FILE or drop -0")
        return []
    if options.files_from == planning.STDIO:
        if planning.STDIO in (options.inputs or []):
            raise UsageError("--files-from - reads names from stdin, so - cannot also be an image input")
        return planning.read_name_list(sys.stdin.buffer, options.null)
    try:
        with open(options.files_from, "rb") as names:
            return planning.read_name_list(names, options.null)
    except OSError as error:
        raise UsageError(f"--files-from {options.files_from}: {error.strerror or error}") from None


def model_choice(task: Task, options: TaskOptions) -> models.ModelChoice:
    """The model for colour and for gray images, from the task's default and the options."""
    if options.weights is not None:
        if options.model is not None or options.sigma is not None:
            raise UsageError("--weights replaces the zoo model: drop --model/--sigma")
        return models.ModelChoice.single(options.weights)
    if task.name == "denoise":
        choice = _denoise_choice(options.model, options.sigma)
    else:
        default = DUAL_PIXEL_MODEL if options.dual_pixel else task.model
        choice = models.ModelChoice.single(options.model or default)
    _check_zoo_names(choice)
    return choice


def _denoise_choice(model: Optional[str], sigma: Optional[int]) -> models.ModelChoice:
    if sigma is not None and sigma not in SIGMAS:
        raise UsageError(f"--sigma {sigma}: the non-blind denoisers exist for sigma {', '.join(map(str, SIGMAS))}")
    if sigma is not None:
        if model not in (None, GAUSSIAN):
            raise UsageError(f"--sigma picks a Gaussian denoiser; it cannot be combined with --model {model}")
        return models.ModelChoice(f"gaussian_color_denoising_sigma{sigma}", f"gaussian_gray_denoising_sigma{sigma}")
    if model == GAUSSIAN:
        return models.ModelChoice("gaussian_color_denoising_blind", "gaussian_gray_denoising_blind")
    if model is not None:
        return models.ModelChoice.single(model)
    return models.ModelChoice(TASKS["denoise"].model, "gaussian_gray_denoising_blind")


def _check_zoo_names(choice: models.ModelChoice) -> None:
    from restore_cli.model import manifest

    for spec in (choice.color, choice.gray):
        if isinstance(spec, str):
            try:
                manifest.get_entry(spec)
            except UnknownModelError as error:
                raise UsageError(str(error)) from None


def _settings(options: TaskOptions) -> models.EngineSettings:
    return models.EngineSettings(
        device=options.device,
        precision=options.precision,
        tile=models.parse_tile(options.tile),
        overlap=options.overlap,
        max_memory=options.max_memory,
        tlc_window=models.parse_tlc(options.tlc, options.tlc_window),
        allow_slow_precision=options.allow_slow_precision,
        offline=True if options.offline else None,
        download_progress=_watched(options),
    )


def _naming(task: Task, options: TaskOptions) -> planning.Naming:
    if options.overwrite and options.skip_existing:
        raise UsageError("--overwrite and --skip-existing contradict each other; pick one")
    if options.output == planning.STDIO and options.as_json:
        raise UsageError("-o - and --json both need stdout; write the image to a file or drop --json")
    to_stdout = options.output == planning.STDIO or (options.output is None and options.inputs == [planning.STDIO])
    if to_stdout and sys.stdout.isatty():
        raise UsageError("refusing to write image bytes to a terminal; redirect stdout (> out.png) or give -o FILE")
    policy: planning.Policy = "overwrite" if options.overwrite else "skip" if options.skip_existing else "error"
    return planning.Naming(
        task=task.output_word,
        output=options.output,
        suffix=options.suffix,
        format=options.format,
        recursive=options.recursive,
        existing=policy,
    )


def _watched(options: TaskOptions) -> bool:
    return not options.quiet and sys.stderr.isatty()


def _fail(message: str, code: int) -> NoReturn:
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(code)

