"""Whether a planned batch can write its outputs, checked before the model loads.

Planning decides every output from paths and names alone; this step then tries each folder
the outputs go to, as the writes will (``io.files.check_can_write``), so a read-only or
otherwise unwritable ``-o`` is one line before any work instead of one failure per image
after all of it.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from restore_cli.batch.planning import STDIO, Job
from restore_cli.io.files import check_can_write, nearest_existing


def check_destinations(jobs: Sequence[Job]) -> None:
    """Raise DestinationError for the first output that could not be written. Each existing
    folder is tried once, however many outputs it will hold (or create folders in)."""
    tried: set[tuple[Path, bool]] = set()
    for job in jobs:
        if job.output is None or job.output == STDIO or job.skip or job.problem is not None:
            continue
        output = Path(job.output)
        folder = nearest_existing(output)
        making = folder != output.absolute().parent
        if (folder, making) not in tried:
            tried.add((folder, making))
            check_can_write(output)
