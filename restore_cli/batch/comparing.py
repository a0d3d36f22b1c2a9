"""Where `--compare` puts each before/after view, decided with the plan, and writing them.

One input: the view goes to the file named. A batch: the name is a folder, and each view is
named after its output (`<output stem>_compare.jpg`), in the output's folders below the
outputs' common folder, so a recursive batch's views cannot collide. Like outputs, views are
checked before any work: one that would replace an input or an output of the run, two that
would share a file, or one that exists already (unless outputs may be overwritten) refuse the
command.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from restore_cli.batch.planning import STDIO, Job
from restore_cli.errors import ImageError, UsageError, setting
from restore_cli.io import storage
from restore_cli.io.comparison import Layout, compare_view
from restore_cli.io.encode import write_image
from restore_cli.io.image import DecodedImage, output_format

_SUFFIX = "_compare.jpg"
_QUALITY = 90


@dataclass(frozen=True)
class CompareRule:
    """Each job's view, decided on the driver (so Ray workers need no working folder of their
    own to resolve names) and looked up by the job's sources."""

    layout: Layout = "auto"
    views: dict[tuple[str, ...], str] = field(default_factory=dict)

    def path_for(self, job: Job) -> Path | None:
        view = self.views.get(job.sources)
        return None if view is None else Path(view)


def plan_views(target: str, jobs: list[Job], layout: Layout = "auto", overwrite: bool = False) -> CompareRule:
    """The rule for this run's views; UsageError if a view would replace an input or an output,
    share a file with another view, or (without `overwrite`) replace an existing file."""
    runnable = [job for job in jobs if job.problem is None and not job.skip and not job.video]  # a view is a still
    folder = target.endswith(("/", os.sep)) or Path(target).is_dir() or len(runnable) > 1
    if folder and Path(target).is_file():
        raise UsageError(f"{setting('compare')} {target} is a file, but {len(runnable)} inputs need a folder of views; give a folder")
    if not folder:
        try:
            output_format(target)
        except ImageError as error:
            raise UsageError(str(error)) from None
    outputs = [os.path.abspath(job.output) for job in runnable if job.output not in (None, STDIO)]
    base = os.path.commonpath([os.path.dirname(output) for output in outputs]) if outputs else "."
    taken = {storage.key(path): "an input" for job in runnable for path in job.sources if path != STDIO}
    taken.update({storage.key(output): "an output" for output in outputs})
    views = {}
    for job in runnable:
        view = _view_path(target, folder, base, job)
        clash = taken.get(storage.key(view))
        if clash is not None:
            raise UsageError(f"the view {view} of {job.name} would replace {clash}; choose another {setting('compare')}")
        if not overwrite and view.exists():
            raise UsageError(f"{view} already exists; pass {setting('overwrite')} to replace it, or choose another {setting('compare')}")
        taken[storage.key(view)] = "another view"
        views[job.sources] = str(view)
    return CompareRule(layout, views)


def _view_path(target: str, folder: bool, base: str, job: Job) -> Path:
    if not folder:
        return Path(target)
    if job.output in (None, STDIO):
        return Path(target, ("stdin" if job.sources[0] == STDIO else Path(job.sources[0]).stem) + _SUFFIX)
    output = Path(os.path.abspath(job.output))  # type: ignore[arg-type]
    return Path(target, output.parent.relative_to(base), output.stem + _SUFFIX)


def write_view(rule: CompareRule, job: Job, before: DecodedImage, after: DecodedImage) -> None:
    path = rule.path_for(job)
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        write_image(compare_view(before, after, rule.layout), path, quality=_QUALITY)
