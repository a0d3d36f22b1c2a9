"""Inputs to jobs: folders, globs, pipes, output naming, skip/overwrite, and the refusals.

A batch is planned before any pixel is computed — which file goes where, which outputs are
skipped — so that a command that would overwrite an input or send two images to one file is
refused up front, not after an hour of work. Planning is kept apart from running because it
must be complete, and checkable, before anything is loaded: it only looks at paths and names
and knows nothing of models, the engine or how the jobs will be executed.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import BinaryIO, Literal

from restore_cli.errors import ImageError, UsageError, setting
from restore_cli.io import storage
from restore_cli.io.image import default_extension, extension_for, is_image_name, output_format
from restore_cli.io.urls import Location, is_url, location
from restore_cli.io.video.names import FALLBACK_EXTENSION, is_video_name, looks_like_video
from restore_cli.io.video.segments import SegmentWork

STDIO = "-"
"""As an input: read the image from stdin; as an output: write its bytes to stdout."""

Policy = Literal["error", "overwrite", "skip"]

_GLOB_MAGIC = re.compile(r"[*?[]")



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
    video: bool = False
    """The source is a video: restored frame by frame, in segments (``batch.video``)."""
    segment: SegmentWork | None = None
    """One segment of a video, for an executor that spreads a video's segments over workers."""

    @property
    def name(self) -> str:
        return " + ".join("<stdin>" if source == STDIO else source for source in self.sources)


@dataclass(frozen=True)
class _Found:
    sources: tuple[Location, ...]
    relative: Path
    """Where the output goes below an output folder: mirrors the input's place in its tree."""
    discovered: bool = False
    """Found in a folder or by a glob, rather than named on the command line."""
    problem: str | None = None

    @property
    def path(self) -> Location:
        return self.sources[0]

    @property
    def is_stdin(self) -> bool:
        return str(self.path) == STDIO

    @cached_property
    def video(self) -> bool:
        """A video by its content, or by its extension where the content cannot be read yet."""
        if self.is_stdin or len(self.sources) > 1:
            return False
        if is_url(str(self.path)):
            return is_video_name(str(self.path))
        sniffed = looks_like_video(self.path)
        return is_video_name(self.path) if sniffed is None else sniffed


def read_name_list(stream: BinaryIO, null_separated: bool = False) -> list[str]:
    """File names from a list such as ``find`` prints: one per line, or NUL-separated
    (``find -print0``), which is the only way to pass names containing newlines. Names are
    taken literally (no globbing; ``-`` is a file called "-"); bytes that are not UTF-8
    survive as the OS's file-name encoding does; empty entries are skipped."""
    separator = b"\0" if null_separated else b"\n"
    names = [os.fsdecode(entry) for entry in stream.read().split(separator) if entry]
    return [os.path.abspath(name) if name == STDIO else name for name in names]


@storage.surveyed
def plan_jobs(arguments: Sequence[str], naming: Naming, views: int = 1, listed: Sequence[str] = ()) -> list[Job]:
    """Expand the command's inputs and decide every output; UsageError if the command is unsafe.

    Inputs and outputs may be local paths or URLs (``s3://bucket/scans``), planned alike: a
    URL's "folder" is the prefix of its objects.

    ``views=2`` takes the arguments as LEFT RIGHT pairs of dual-pixel views, named after LEFT.
    ``listed`` names (from ``--files-from``) are inputs too, taken as they are: never glob
    patterns. With ``naming.recursive``, a relative listed name keeps its folders below -o.
    """
    if not arguments and not listed:
        raise UsageError(f"no inputs given; pass image files, folders, globs or - for stdin, or {setting('files_from')} FILE")
    everything = [*arguments, *listed]
    storage.survey([*everything, *([naming.output] if naming.output else [])])
    if views > 1:
        found = _grouped(everything, views)
    else:
        found = _expanded(arguments, naming) + [_listed(name, naming) for name in listed]
    if any(item.is_stdin for item in found) and len(everything) > 1:
        raise UsageError("- (stdin) must be the only input; run the other inputs separately")
    destination = _destination_rule(naming, found, everything)
    planned = _drop_earlier_outputs([(item, destination(item)) for item in found])
    _refuse_files_as_folders(planned)
    _refuse_collisions(planned)
    _refuse_overwriting_inputs(planned)
    existing = _existing_outputs(planned, naming.existing)
    if naming.existing == "error":
        _refuse_existing_outputs(planned, existing)
    return [_job(item, output, naming.existing, existing) for item, output in planned]


def _grouped(arguments: Sequence[str], views: int) -> list[_Found]:
    if len(arguments) % views or any(a == STDIO or _is_collection(a) for a in arguments):
        raise UsageError(f"give image files in groups of {views} views (LEFT RIGHT for dual-pixel)")
    groups = [tuple(location(a) for a in arguments[i : i + views]) for i in range(0, len(arguments), views)]
    return [_Found(group, Path(group[0].name), problem=_missing(group)) for group in groups]


def _missing(paths: Sequence[Location]) -> str | None:
    """Found while planning, so a typo is reported before any model is loaded or downloaded."""
    return next((problem for problem in map(storage.problem, paths) if problem is not None), None)


def _is_collection(argument: str) -> bool:
    return storage.is_dir(argument) or _is_glob(argument)


def _is_glob(argument: str) -> bool:
    return bool(_GLOB_MAGIC.search(argument)) and not storage.exists(argument)


def _expanded(arguments: Sequence[str], naming: Naming) -> list[_Found]:
    avoid = storage.resolved(location(naming.output)) if naming.output not in (None, STDIO) else None
    return [item for argument in arguments for item in _expand(argument, naming.recursive, avoid)]


def _listed(name: str, naming: Naming) -> _Found:
    path = location(name)
    keeps_folders = naming.recursive and not path.is_absolute() and ".." not in path.parts
    return _Found((path,), path if keeps_folders else Path(path.name), problem=_missing([path]))


def _expand(argument: str, recursive: bool, avoid: Location | None) -> list[_Found]:
    """A missing plain path is kept as a failed job: the rest of the batch still runs."""
    path = location(argument)
    if storage.is_dir(argument):
        found = _scan(path, recursive, avoid)
        return found or [_Found((path,), path, problem=f"{argument}: no images in this folder{_recursive_hint(path, recursive)}")]
    if _is_glob(argument):
        found = _glob(argument, recursive)
        return found or [_Found((path,), path, problem=f"{argument}: no image files match this pattern")]
    return [_Found((path,), Path(path.name), problem=None if argument == STDIO else _missing([path]))]


def _recursive_hint(folder: Location, recursive: bool) -> str:
    """For a folder without images: --recursive, when it has subfolders that may hold some (a
    store's prefix is not listed again for this: it gets the hint whenever -r is missing)."""
    if recursive:
        return ""
    if isinstance(folder, Path) and not any(entry.is_dir() and not entry.name.startswith(".") for entry in folder.iterdir()):
        return ""
    return f" (pass {setting('recursive')} to include its subfolders)"


def _scan(folder: Location, recursive: bool, avoid: Location | None) -> list[_Found]:
    """Image files in a folder, skipping hidden ones (temp files of interrupted writes among them)
    and the output folder when it lies inside, so a rerun does not restore its own outputs."""
    found = []
    for path in storage.files_in(folder, recursive):
        relative = Path(path.relative_to(folder))  # type: ignore[arg-type]
        hidden = any(part.startswith(".") for part in relative.parts)
        inside_output = avoid is not None and avoid in storage.resolved(path).parents
        if not hidden and not inside_output and _is_input_name(str(path)):
            found.append(_Found((path,), relative, discovered=True))
    return found


def _glob(pattern: str, recursive: bool) -> list[_Found]:
    base = _glob_base(pattern)
    return [
        _Found((match,), Path(match.relative_to(base)) if recursive else Path(match.name), discovered=True)  # type: ignore[arg-type]
        for match in storage.glob(pattern, recursive)
        if _is_input_name(str(match))
    ]


def _glob_base(pattern: str) -> Location:
    """The folder before the first wildcard: what --recursive mirrors below -o."""
    base = location(pattern).parent
    while any(_GLOB_MAGIC.search(part) for part in base.parts):
        base = base.parent
    return base


def _is_input_name(path: str) -> bool:
    return is_image_name(path) or is_video_name(path)


def _destination_rule(naming: Naming, found: list[_Found], arguments: Sequence[str]) -> Callable[[_Found], str]:
    target = naming.output
    if target == STDIO or (target is None and found[0].is_stdin):
        if any(item.video for item in found):
            raise UsageError(f"{setting('output')} - writes an image to stdout, but {found[0].path} is a video; give a file name")
        if len(found) != 1:
            raise UsageError(f"{setting('output')} - writes one image to stdout, but there are {len(found)} inputs; use {setting('output')} FOLDER")
        return lambda item: STDIO
    if target is None:
        return lambda item: str(item.path.with_name(_output_name(item, naming)))
    if _needs_folder(target, found, arguments):
        if storage.is_file(target):
            raise UsageError(f"{setting('output')} {target} is a file, but the inputs need a folder; give a folder path")
        if not _named_as_folder(target) and _is_input_name(Path(target)):
            inputs = f"{len(found)} inputs need" if len(found) > 1 else "a folder or pattern needs"
            raise UsageError(
                f"{setting('output')} {target} looks like a file name, but {inputs} an output folder; "
                f"give a folder ({setting('output')} {location(target).stem}/) or a single input file"
            )
        if found[0].is_stdin:
            raise UsageError(f"- (stdin) with an output folder: give {setting('output')} a file name, or {setting('output')} - for stdout")
        return lambda item: str(location(target).joinpath(item.relative.parent, _output_name(item, naming)))
    _check_output_format(target, naming.format, found[0])
    return lambda item: target


def _needs_folder(target: str, found: list[_Found], arguments: Sequence[str]) -> bool:
    return _named_as_folder(target) or len(found) > 1 or any(_is_collection(a) for a in arguments)


def _named_as_folder(target: str) -> bool:
    """An existing folder, or a path ending in a slash: `-o shots.jpg/` is a folder on purpose."""
    return target.endswith(("/", os.sep)) or storage.is_dir(target)


def _check_output_format(target: str, format: str | None, item: _Found) -> None:
    if item.video or is_video_name(target):
        if item.video != is_video_name(target):
            kind = "a video" if item.video else "an image"
            raise UsageError(f"{item.path} is {kind}, but {setting('output')} {target} is not named as {kind} file; give a name such as {_example(item)}")
        return
    try:
        output_format(target, format)
    except ImageError as error:
        raise UsageError(str(error)) from None


def _example(item: _Found) -> str:
    return f"{item.path.stem}_restored{_video_extension(item.path)}" if item.video else "out.png"


def _video_extension(path: Path) -> str:
    """A video keeps its container; one whose extension names none is written as Matroska."""
    return path.suffix if is_video_name(path) else FALLBACK_EXTENSION


def _output_name(item: _Found, naming: Naming) -> str:
    if item.video:
        extension = _video_extension(item.path)
    elif naming.format is not None:
        extension = extension_for(output_format(item.path, naming.format))
    else:
        extension = default_extension(str(item.path))
    return f"{item.path.stem}{naming.stem_suffix}{extension}"


def _drop_earlier_outputs(planned: list[tuple[_Found, str]]) -> list[tuple[_Found, str]]:
    """A found file that this very plan would produce is an earlier run's output, not a photo to restore."""
    outputs = {storage.key(output) for _, output in planned if output != STDIO}
    return [(item, output) for item, output in planned if not (item.discovered and storage.key(item.path) in outputs)]


def _refuse_files_as_folders(planned: list[tuple[_Found, str]]) -> None:
    """An output below an existing file can never be written: say so once, before any work,
    rather than once per image after it. Object stores have no folders to be in the way."""
    for _, output in planned:
        if output == STDIO or is_url(output):
            continue
        folder = next(parent for parent in Path(output).absolute().parents if parent.exists())
        if not folder.is_dir():
            raise UsageError(f"{folder} is a file, so {output} cannot be written below it; choose another {setting('output')}")


def _refuse_collisions(planned: list[tuple[_Found, str]]) -> None:
    claimed: dict[str, _Found] = {}
    for item, output in planned:
        if output == STDIO or item.problem:
            continue
        earlier = claimed.setdefault(storage.key(output), item)
        if earlier is not item:
            raise UsageError(
                f"{earlier.path} and {item.path} would both be written to {output}; "
                f"rename one, run them separately, or use {setting('recursive')} to keep folders apart"
            )


def _refuse_overwriting_inputs(planned: list[tuple[_Found, str]]) -> None:
    inputs = {storage.key(source): source for item, _ in planned for source in item.sources if not item.is_stdin}
    for item, output in planned:
        if output != STDIO and not item.problem and storage.key(output) in inputs:
            raise UsageError(
                f"{output} is an input and would be overwritten; choose another {setting('output')} or {setting('suffix')}"
            )


def _existing_outputs(planned: list[tuple[_Found, str]], policy: Policy) -> set[str]:
    """The planned outputs that exist, when the policy needs to know: in a store, learnt from
    one listing per prefix. With overwrite nothing is looked at (credentials that may write but
    not list are enough)."""
    if policy == "overwrite":
        return set()
    return storage.existing(output for item, output in planned if output != STDIO and not item.problem)


def _refuse_existing_outputs(planned: list[tuple[_Found, str]], present: set[str]) -> None:
    """Existing outputs are found before any work, and said once: a rerun into a full folder
    would otherwise fail every image in turn."""
    existing = [output for item, output in planned if not item.problem and output in present]
    if len(existing) == 1:
        raise UsageError(f"{existing[0]} already exists; pass {setting('overwrite')} to replace it or {setting('skip_existing')} to keep it")
    if existing:
        raise UsageError(
            f"{len(existing)} of the {len(planned)} outputs already exist (the first is {existing[0]}); pass "
            f"{setting('skip_existing')} to keep them and restore the rest, or {setting('overwrite')} to replace them"
        )


def _job(item: _Found, output: str, policy: Policy, existing: set[str]) -> Job:
    """A job for a planned output (with the "error" policy, existing outputs were refused before this)."""
    sources = tuple(STDIO if item.is_stdin else str(source) for source in item.sources)
    if item.problem:
        return Job(sources, None, problem=item.problem, video=item.video)
    if item.video and is_url(sources[0]):
        return Job(sources, None, problem=f"{sources[0]}: videos in object storage are not supported; copy the video to a local disk", video=True)
    return Job(sources, output, skip=output in existing and policy == "skip", video=item.video)

