"""One job through the model: `Pipeline.process_one(job) -> Result`, the step every executor calls.

A planned `Job` (see `restore_cli.batch.planning`) goes through three stages (read, restore, write) that never
raise: a failure becomes a `Result` and the batch goes on. The step lives on its own so that
how jobs are run can change — the local threaded loop in `local`, actors on a Ray
cluster in `ray_executor` — without touching what is done to each image. The stages are exposed separately
(`read`, `restore`, `write`) so an executor can overlap I/O with inference; models are loaded
lazily, once per run, through `models.Models`.
"""

from __future__ import annotations

import logging
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO, Literal, TypeVar

from restore_cli.batch.comparing import CompareRule, write_view
from restore_cli.batch.models import Model, Models, TileProgress
from restore_cli.batch.planning import STDIO, Job
from restore_cli.batch.video import Done, FrameProgress, VideoSettings, restore_segment, restore_video
from restore_cli.errors import ImageError, InputError, RestoreError, UsageError, one_line, setting
from restore_cli.io.decode import read_image
from restore_cli.io.encode import check_output, write_image
from restore_cli.io.image import DecodedImage, model_input, output_format, to_tensor, with_pixels
from restore_cli.io.metadata import METADATA_BLOCKS, unsupported
from restore_cli.io.raw import RawOptions
from restore_cli.io.urls import is_url

if TYPE_CHECKING:
    import torch

logger = logging.getLogger(__name__)

Status = Literal["ok", "skipped", "failed"]
_STDOUT_NAME = "stdout.png"
"""Stands for stdout when an output's format is worked out: PNG unless a format is given."""
Failure = Literal["image", "worker", "cluster"]
"""Why a job failed: its own input or output ("image": a bad file, a full disk), the Ray
workers that kept dying while restoring it ("worker"), or the Ray cluster lost before it
finished ("cluster": nothing is wrong with the image; rerun to finish it)."""
Kind = Literal["image", "video"]


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
    failure: Failure | None = None
    """None on a failed result means "image"."""
    attempts: int = 1
    """Tries it took: more than 1 when a Ray worker died holding it."""
    memory_budget: int | None = None
    """Bytes the tile plan was held to, where the engine fixed one for this image (a Ray
    worker's share of its node, smaller on a retry after a kill for memory)."""
    kind: Kind = "image"
    frames: int | None = None
    """A video's frames written (or, for one segment on a Ray worker, restored)."""
    duration: float | None = None
    """A video's length in seconds."""

    def to_json(self) -> dict[str, Any]:
        size = None if self.width is None else {"width": self.width, "height": self.height}
        video = {"frames": self.frames, "duration": None if self.duration is None else round(self.duration, 3)}
        return {
            "input": self.input,
            "output": self.output,
            "model": self.model,
            "size": size,
            "tiles": self.tiles,
            **(video if self.kind == "video" else {}),
            "seconds": round(self.seconds, 3),
            "status": self.status,
            "error": self.error,
            "failure": (self.failure or "image") if self.status == "failed" else None,
            "attempts": self.attempts,
            "memory_budget": self.memory_budget,
        }


@dataclass(frozen=True)
class FileOptions:
    """How inputs are read and outputs written, beyond the format and quality."""

    depth: int | None = None
    """The outputs' bit depth (8, 16 or 32 for float); None keeps each input's."""
    raw: RawOptions = RawOptions()
    """How camera RAWs are developed."""
    compare: CompareRule | None = None
    """Where before/after views go, if anywhere."""

    def check(self, jobs: list[Job], format: str | None) -> None:
        """Refuse, before any work, outputs this run cannot write: a depth their format cannot
        hold, or a format whose encoder is missing here (UsageError, naming the package).
        Videos are left out: they keep their own codec and bit depth."""
        written = [job for job in jobs if job.output is not None and not job.video]
        formats = {output_format(_STDOUT_NAME if job.output == STDIO else job.output, format) for job in written}
        try:
            for fmt in sorted(formats):
                check_output(fmt, self.depth)
        except ImageError as error:
            raise UsageError(str(error)) from None


@dataclass(frozen=True)
class Loaded:
    """A job whose images are decoded: what `read` hands to `restore`."""

    job: Job
    images: tuple[DecodedImage, ...]
    seconds: float = 0.0


@dataclass(frozen=True)
class Restored:
    """A job's restored image: what `restore` hands to `write`."""

    job: Job
    image: DecodedImage
    model: str
    tiles: int
    seconds: float = 0.0
    before: DecodedImage | None = None
    """The input, kept only when a before/after view is to be written."""


_Stage = TypeVar("_Stage", Loaded, Restored, Result)


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
    on_frames: FrameProgress | None = None
    video: VideoSettings = field(default_factory=VideoSettings)
    on_notice: Callable[[str], None] = field(default=lambda line: print(line, file=sys.stderr))
    """Receives the run's warnings (metadata an output format cannot hold), said once a run."""
    files: FileOptions = field(default_factory=FileOptions)
    _dropped: dict[str, list[str]] = field(default_factory=dict, init=False, repr=False)
    _dropped_lock: threading.Lock = field(default_factory=threading.Lock, init=False, repr=False)

    def process_one(self, job: Job) -> Result:
        """Read, restore and write one job; raises only when the model cannot be loaded."""
        loaded = self.read(job)
        restored = self.restore(loaded) if isinstance(loaded, Loaded) else loaded
        return self.write(restored) if isinstance(restored, Restored) else restored

    def read(self, job: Job) -> Loaded | Result:
        """Decode a job's images; a video is only opened when it is restored, frame by frame."""
        if _is_video(job):
            return settled(job) or Loaded(job, ())
        return settled(job) or _guarded(job, 0.0, lambda: Loaded(job, tuple(self._decode(source) for source in job.sources)))

    def restore(self, loaded: Loaded) -> Restored | Result:
        """Restore a job's image, or the whole of a video (which is then written too). A model
        that cannot be loaded for an image is not that image's failure but the whole batch's:
        its error is raised, and the executor ends the batch with it."""
        job = loaded.job
        if _is_video(job):
            return _guarded(job, loaded.seconds, lambda: video_result(job, self._restore_video(job)))
        model = self.models.for_image(loaded.images[0])
        return _guarded(job, loaded.seconds, lambda: self.restore_images(job, loaded.images, model))

    def restore_images(self, job: Job, images: tuple[DecodedImage, ...], model: Model | None = None) -> Restored:
        """The model on one picture (two for a dual-pixel pair): the step every photo and
        every video frame goes through, so an option that changes pixels belongs here."""
        model = model or self.models.for_image(images[0])
        tiles = _TileCount(self.on_tiles)
        pixels = _run_model(model, images, tiles, job.name)
        before = images[0] if self.files.compare is not None else None
        return Restored(job, with_pixels(images[0], pixels), model.name, tiles.total, before=before)

    def _restore_video(self, job: Job) -> Done:
        def frame(image: DecodedImage) -> Restored:
            return self.restore_images(job, (image,))

        if job.segment is not None:
            return restore_segment(job.segment, frame)
        return restore_video(job, self.video, self.max_pixels, frame, self.on_frames, self.on_notice)

    def write(self, restored: Restored) -> Result:
        job, image = restored.job, restored.image

        def work() -> Result:
            assert job.output is not None
            depth = self.files.depth
            if job.output == STDIO:
                write_image(image, self.stdout, format=self.format, quality=self.quality, depth=depth)
            else:
                if not is_url(job.output):
                    _make_folder(Path(job.output).parent)
                write_image(image, job.output, format=self.format, quality=self.quality, depth=depth)
            if self.files.compare is not None and restored.before is not None:
                write_view(self.files.compare, job, restored.before, image)
            self._note_dropped_metadata(image, output_format(self.stdout if job.output == STDIO else job.output, self.format))
            return Result(job.name, job.output, "ok", restored.model, image.width, image.height, restored.tiles)

        return _guarded(job, restored.seconds, work)

    def warn_dropped_metadata(self) -> None:
        """At the end of a run: one line per output format that had to leave metadata out,
        naming every block it left out over the whole run (not one line per image)."""
        with self._dropped_lock:
            dropped, self._dropped = self._dropped, {}
        for fmt, blocks in dropped.items():
            listed = ", ".join(blocks[:-1]) + (" and " if len(blocks) > 1 else "") + blocks[-1]
            self.on_notice(
                f"warning: {fmt} files cannot hold {listed}: left out of the {fmt} outputs "
                "(JPEG and TIFF keep every metadata block)"
            )

    def _note_dropped_metadata(self, image: DecodedImage, fmt: str) -> None:
        with self._dropped_lock:
            blocks = set(self._dropped.get(fmt, ())) | set(unsupported(image, fmt))
            if blocks:
                self._dropped[fmt] = [block for block in METADATA_BLOCKS if block in blocks]

    def _decode(self, source: str) -> DecodedImage:
        return read_image(self.stdin if source == STDIO else source, max_pixels=self.max_pixels, raw=self.files.raw)


def _is_video(job: Job) -> bool:
    return job.video or job.segment is not None


def _kind(job: Job) -> Kind:
    return "video" if _is_video(job) else "image"


def video_result(job: Job, done: Done) -> Result:
    return Result(
        job.name, job.output, "ok", done.model, done.width, done.height, done.tiles, kind="video", frames=done.frames, duration=done.duration
    )


def settled(job: Job) -> Result | None:
    """The result of a job decided at planning time (refused, or its output kept), which needs
    no image and no model: executors can report it without sending it anywhere."""
    if job.problem is not None:
        return Result(job.name, job.output, "failed", error=job.problem, kind=_kind(job))
    if job.skip:
        return Result(job.name, job.output, "skipped", kind=_kind(job))
    return None


def _make_folder(folder: Path) -> None:
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        reason = error.strerror or type(error).__name__
        raise OSError(f"{folder}: cannot create the output folder ({reason}); choose another {setting('output')}") from error


def _guarded(job: Job, spent: float, work: Callable[[], _Stage]) -> _Stage | Result:
    """Run one stage, turning any exception into a failed Result and accumulating the stage's time."""
    started = time.perf_counter()
    try:
        outcome = work()
    except Exception as error:
        seconds = spent + time.perf_counter() - started
        return Result(job.name, job.output, "failed", seconds=seconds, error=describe_failure(job, error), kind=_kind(job))
    return replace(outcome, seconds=spent + time.perf_counter() - started)


def is_expected(error: Exception) -> bool:
    """Errors raised by this package (and OS errors) are the user's to fix and already say
    how; anything else is a bug."""
    return isinstance(error, (OSError, RestoreError))


def describe_error(error: Exception) -> str:
    """One line for the user; a bug is reported as such, with a pointer to --debug (which
    then logs its traceback)."""
    text = one_line(error)
    if is_expected(error):
        return text
    logger.debug("unexpected error", exc_info=error)
    return f"unexpected {type(error).__name__}: {text} (rerun with {setting('debug')} for the traceback)"


def describe_failure(job: Job, error: Exception) -> str:
    """``describe_error``, starting with the job's name."""
    text = describe_error(error)
    return text if text.startswith(job.name) else f"{job.name}: {text}"


def _run_model(model: Model, images: tuple[DecodedImage, ...], progress: TileProgress, name: str) -> torch.Tensor:
    """Feed the model what it takes: two views for dual-pixel models, otherwise the image as
    `io.image.model_input` converts it (gray photos as RGB for RGB models)."""
    if model.in_channels == 6:
        return model.restore(_dual_pixel_tensor(images, model.name, name), progress)
    if len(images) != 1:
        raise InputError(f"{name}: {model.name} restores one image, not a dual-pixel pair; use a dual-pixel model")
    return model.restore(model_input(images[0], model.in_channels, name, model.name), progress)


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
