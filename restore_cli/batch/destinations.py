"""Whether a planned batch can write its files, checked before the model loads.

Planning decides every output (and every `--compare` view) from paths and names alone; this
step then tries each folder they go to, as the writes will (``io.files.check_can_write``),
so a read-only or otherwise unwritable ``-o`` is one line before any work instead of one
failure per image after all of it. Object-store URLs are left to the store: only a write
tells whether its credentials allow one.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from pathlib import Path

from restore_cli.batch.planning import STDIO, Job
from restore_cli.io.files import check_can_write, nearest_existing
from restore_cli.io.urls import is_url


def check_destinations(jobs: Sequence[Job], views: Iterable[str] = ()) -> None:
    """Raise DestinationError for the first output (then view) that could not be written.
    Each existing folder is tried once, however many files it will hold (or folders it will
    have created in it)."""
    outputs = [(job.output, "output") for job in jobs if job.output not in (None, STDIO) and not job.skip and job.problem is None]
    tried: set[tuple[Path, bool]] = set()
    for name, flag in [*outputs, *((view, "compare") for view in views)]:
        if is_url(name):
            continue
        path = Path(name)
        folder = nearest_existing(path)
        making = folder != path.absolute().parent
        if (folder, making) not in tried:
            tried.add((folder, making))
            check_can_write(path, flag)
