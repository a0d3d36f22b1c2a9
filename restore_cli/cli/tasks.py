"""`restore denoise|derain|deblur|defocus`: the task commands, with a default model per task.

Each is built from the shared options (``options.COMMON``) plus its own extras; all of them
(and ``restore run``) plan the inputs, load the model once and run the batch on the local or
the Ray executor.
"""

from __future__ import annotations

import copy
import inspect
import shlex
import sys
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable, Optional

import typer

from restore_cli.batch import comparing, destinations, executor, local, models, pipeline, planning, reporting, video
from restore_cli.cli import threads
from restore_cli.cli.console import debug_logging, fail
from restore_cli.cli.engine_options import check_engine_settings, engine_settings, import_ray_executor, ray_options
from restore_cli.cli.options import COMMON, DUAL_PIXEL, SIGMA, WEIGHTS_REQUIRED, TaskOptions
from restore_cli.errors import UnknownModelError, UsageError, VideoError
from restore_cli.io.raw import RawOptions
from restore_cli.io import stores
from restore_cli.model.onnx_format import is_onnx

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
    debug_logging(options.debug)
    try:
        with stores.options_in_force(stores.parse_options(options.storage_option or [])):
            code = _run(task, options)
    except UsageError as error:
        fail(str(error), reporting.EXIT_USAGE)
    except Exception as error:
        if options.debug and not pipeline.is_expected(error):
            raise
        fail(pipeline.describe_error(error), reporting.EXIT_FAILED)
    raise typer.Exit(code)


def _run(task: Task, options: TaskOptions) -> int:
    listed = _listed_names(options)
    if not options.inputs and not listed:
        raise UsageError(f"Missing argument 'INPUT...' or --files-from FILE (see `restore {task.name} --help`)")
    choice = model_choice(task, options)
    settings = engine_settings(options)
    onnx = is_onnx(choice.color) or is_onnx(choice.gray)
    on_ray = ray_options(options, settings, onnx)
    if on_ray is None:
        check_engine_settings(settings, onnx)
    jobs = planning.plan_jobs(options.inputs or [], _naming(task, options), views=2 if options.dual_pixel else 1, listed=listed)
    files = _file_options(options, jobs)
    videos = _video_settings(options, settings, choice)
    destinations.check_destinations(jobs, files.compare.views.values() if files.compare is not None else ())
    if on_ray is None:
        runner: executor.Executor = _local_executor(options, settings, choice, jobs, files, videos)
    else:
        runner = _ray_executor(options, on_ray, settings, choice, jobs, files, videos)
    reporter = reporting.Reporter(
        stdout=sys.stdout,
        stderr=sys.stderr,
        command=task.name,
        json=options.as_json,
        display="quiet" if options.quiet else "live" if sys.stderr.isatty() else "lines",
        log_tiles=task.log_tiles and not options.quiet,
        resume=_resume_command(task.name),
    )
    return executor.execute(jobs, runner, reporter)


def _file_options(options: TaskOptions, jobs: list[planning.Job]) -> pipeline.FileOptions:
    """Depth, RAW development and before/after views, checked against the planned outputs."""
    if options.depth not in (None, 8, 16, 32):
        raise UsageError(f"--depth {options.depth}: choose 8, 16 or 32 (float TIFF)")
    compare = comparing.plan_views(options.compare, jobs, options.compare_layout, options.overwrite) if options.compare else None
    files = pipeline.FileOptions(options.depth, RawOptions(options.raw_wb, options.raw_demosaic), compare)
    files.check(jobs, options.format)
    return files


def _resume_command(command: str) -> Optional[str]:
    """The command line typed, made to finish what a batch left undone: --skip-existing, and
    no --overwrite. None when this process was not started as that command (a library caller)."""
    typed = sys.argv[1:]
    if typed[:1] != [command]:
        return None
    kept = [arg for arg in typed if arg not in ("--overwrite", "--skip-existing")]
    return shlex.join(["restore", *kept, "--skip-existing"])


def _video_settings(options: TaskOptions, settings: models.EngineSettings, choice: models.ModelChoice) -> video.VideoSettings:
    """--video-codec and --crf, checked before any work (they apply to every video of the batch)."""
    from restore_cli.io.video.encode import check_crf, check_encoder

    try:
        if options.video_codec is not None:
            check_encoder(options.video_codec)
            check_crf(options.video_codec, options.crf)
    except VideoError as error:
        raise UsageError(str(error)) from None
    return video.video_settings(settings, choice, options.video_codec, options.crf)


def _local_executor(
    options: TaskOptions,
    settings: models.EngineSettings,
    choice: models.ModelChoice,
    jobs: list[planning.Job],
    files: pipeline.FileOptions,
    videos: video.VideoSettings,
) -> local.LocalExecutor:
    count = threads.use(options.threads)
    loaded = models.Models(choice, settings.load)
    steps = pipeline.Pipeline(
        loaded, format=options.format, quality=options.quality, max_pixels=options.max_pixels, files=files, video=videos
    )
    sources = [job.sources[0] for job in jobs if job.problem is None and not job.skip and job.sources[0] != planning.STDIO]
    return local.LocalExecutor(steps, load=lambda: loaded.load_for(sources), io_threads=min(2, count))


def _ray_executor(
    options: TaskOptions,
    chosen: RayOptions,
    settings: models.EngineSettings,
    choice: models.ModelChoice,
    jobs: list[planning.Job],
    files: pipeline.FileOptions,
    videos: video.VideoSettings,
) -> executor.Executor:
    if any(job.output == planning.STDIO or planning.STDIO in job.sources for job in jobs):
        raise UsageError("--engine ray reads and writes files or URLs every worker can reach; - (stdin/stdout) needs --engine local")
    return import_ray_executor().RayExecutor.for_batch(
        chosen,
        settings,
        choice,
        format=options.format,
        quality=options.quality,
        max_pixels=options.max_pixels,
        files=files,
        video=videos,
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
    for spec in (choice.color, choice.gray):
        if isinstance(spec, str) and not is_onnx(spec):  # imported ONNX models are found when loaded
            check_zoo_name(spec)


def check_zoo_name(name: str) -> None:
    """Refuse a name the zoo does not know as a usage error (exit 2), before any download: a
    typo on the command line is the user's to fix, not a failed run."""
    from restore_cli.model import manifest

    try:
        manifest.get_entry(name)
    except UnknownModelError as error:
        raise UsageError(str(error)) from None


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


