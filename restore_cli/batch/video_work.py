"""The hidden work folder beside a video's output, which makes an interrupted video resumable.

``.<output name>.restore-work/`` holds one file per finished segment and a record of what
they were made from: the input file (size, modification time and a hash of its ends), the
model and engine settings, the encoder settings and the segment plan. A rerun of the same
command keeps the finished segments and restores only the others; if anything in the record
differs, the kept segments would not fit the new run, so they are deleted (and the user told)
before work starts. The folder is removed once the output is complete.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import shutil
from collections.abc import Callable, Mapping, Sequence
from fractions import Fraction
from pathlib import Path
from typing import Any

from restore_cli.io.files import atomic_write, remove_leftover_temp_files
from restore_cli.io.video.segments import Segment

WORK_SUFFIX = ".restore-work"
_RECORD = "run.json"
_HASHED_BYTES = 1 << 20
"""Bytes hashed at each end of the input: a changed file is caught even when its size and
time were kept, without reading hours of video."""


def work_folder_for(output: str | os.PathLike) -> Path:
    """Hidden, so that folder scans skip it, and beside the output, so it is on the same disk."""
    target = Path(output)
    return target.parent / f".{target.name}{WORK_SUFFIX}"


class WorkFolder:
    """The segments of one video's output, finished so far."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def segment_path(self, segment: Segment) -> Path:
        return self.path / f"{segment.index:06d}.segment"

    def is_finished(self, segment: Segment) -> bool:
        return self.segment_path(segment).is_file()

    def remove(self) -> None:
        shutil.rmtree(self.path, ignore_errors=True)


def open_work_folder(output: str | os.PathLike, record: Mapping[str, Any], segments: Sequence[Segment], notice: Callable[[str], None]) -> WorkFolder:
    """The work folder for ``output``, keeping the segments an earlier run with the same
    ``record`` finished; a folder from another input or other settings is emptied first."""
    folder = WorkFolder(work_folder_for(output))
    wanted = _plain(dict(record))
    kept = _read_record(folder.path)
    if kept is not None and kept != wanted:
        notice(f"warning: {output}: the input or the options changed since the interrupted run; its restored segments are discarded")
        folder.remove()
    elif kept is not None:
        done = sum(folder.is_finished(segment) for segment in segments)
        notice(f"{output}: resuming: {done} of {len(segments)} segments already restored")
    folder.path.mkdir(parents=True, exist_ok=True)
    remove_leftover_temp_files(folder.segment_path(segment) for segment in segments)  # a killed run's half-written segments
    if kept != wanted:
        atomic_write(folder.path / _RECORD, json.dumps(wanted, sort_keys=True, indent=1).encode())
    return folder


def input_identity(path: str | os.PathLike) -> dict[str, Any]:
    """What tells this input file from an edited or replaced one."""
    status = os.stat(path)
    digest = hashlib.sha256()
    with open(path, "rb") as file:
        digest.update(file.read(_HASHED_BYTES))
        if status.st_size > 2 * _HASHED_BYTES:
            file.seek(-_HASHED_BYTES, os.SEEK_END)
        digest.update(file.read(_HASHED_BYTES))
    return {"path": os.path.abspath(path), "size": status.st_size, "mtime_ns": status.st_mtime_ns, "sha256_of_ends": digest.hexdigest()}


def _read_record(folder: Path) -> Any:
    try:
        return json.loads((folder / _RECORD).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def _plain(value: Any) -> Any:
    """``value`` as JSON keeps it, so a record read back compares equal to a new one."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {field.name: _plain(getattr(value, field.name)) for field in dataclasses.fields(value)}
    if isinstance(value, Mapping):
        return {str(key): _plain(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(item) for item in value]
    if isinstance(value, (Fraction, Path)):
        return str(value)
    return value
