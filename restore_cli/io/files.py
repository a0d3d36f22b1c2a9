"""Writing files so that nothing is ever half-written: temp file, fsync, rename.

A reader (or a rerun with ``--skip-existing``) sees the old file or the whole new one, never a
partial one; temp files are hidden so folder scans skip them, and a caller that knows their
writer is dead (a killed worker) can find and remove them. Before any work, a destination can
be probed the way the write will use it (:func:`check_can_write`), so an unwritable folder is
found before hours of compute rather than after.
"""

from __future__ import annotations

import os
import re
import tempfile
from collections.abc import Iterable
from pathlib import Path
from typing import BinaryIO

from restore_cli.io.urls import is_url

from restore_cli.errors import DestinationError, setting


def _current_umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


_FILE_MODE = 0o666 & ~_current_umask()


_TEMP_SUFFIX = ".tmp"


def _temp_prefix(path: Path) -> str:
    """Hidden, so that folder scans skip the temp file of a write in progress."""
    return f".{path.name}."


_TEMP_NAME = re.compile(r"\.(?P<target>.+)\.[a-z0-9_]{8}" + re.escape(_TEMP_SUFFIX), re.DOTALL)
"""A temp file's name (mkstemp's eight characters between ``_temp_prefix`` and the suffix),
which gives back the name of the file it was writing."""


def remove_leftover_temp_files(paths: Iterable[str | os.PathLike]) -> None:
    """Remove the temp files of writes of ``paths`` whose process was killed outright
    (SIGKILL, a lost node), which no clean-up code ran in. Only a caller that knows those
    writers are dead may call this: a live writer's temp file looks the same. Each folder is
    listed once however many of its files are named (a video's thousands of segments). An
    object in a store (a URL) never has any: it is uploaded whole, in one request, to its
    final name."""
    names_by_folder: dict[Path, set[str]] = {}
    for path in paths:
        if not is_url(path):
            target = Path(path)
            names_by_folder.setdefault(target.parent, set()).add(target.name)
    for folder, names in names_by_folder.items():
        for candidate in folder.glob(".*" + _TEMP_SUFFIX):
            written = _TEMP_NAME.fullmatch(candidate.name)
            if written is not None and written["target"] in names:
                candidate.unlink(missing_ok=True)


def atomic_write(path: Path, data: bytes) -> None:
    """Temp file in the same folder, fsync, then rename: readers see the old file or the whole new one."""
    with AtomicFile(path) as file:
        file.write(data)


class AtomicFile:
    """A file written under a hidden temp name and renamed to ``path`` only once complete:
    for outputs written piece by piece (a video, a segment of one), as a context manager
    (renamed on a clean exit, removed on any exception, Ctrl-C included) or by hand
    (`commit` / `discard`)."""

    def __init__(self, path: str | os.PathLike) -> None:
        self.path = Path(path)
        handle, name = tempfile.mkstemp(prefix=_temp_prefix(self.path), suffix=_TEMP_SUFFIX, dir=self.path.parent or ".")
        self.temp = Path(name)
        self.file = os.fdopen(handle, "w+b")

    def __enter__(self) -> BinaryIO:
        return self.file

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None, trace: object) -> None:
        if kind is None:
            self.commit()
        else:
            self.discard()

    def commit(self) -> None:
        try:
            self.file.flush()
            os.fchmod(self.file.fileno(), _FILE_MODE)
            os.fsync(self.file.fileno())
            self.file.close()
            os.replace(self.temp, self.path)
        except BaseException:
            self.discard()
            raise
        _fsync_folder(self.path.parent)

    def discard(self) -> None:
        self.file.close()
        self.temp.unlink(missing_ok=True)


def _fsync_folder(folder: Path) -> None:
    """Make the rename itself durable; some platforms cannot open folders, which is fine."""
    try:
        handle = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(handle)
    except OSError:
        pass
    finally:
        os.close(handle)


def nearest_existing(path: Path) -> Path:
    """``path``'s closest ancestor that exists: where its missing folders would be created."""
    folder = path.absolute().parent
    while not folder.exists() and folder != folder.parent:
        folder = folder.parent
    return folder


def check_can_write(path: Path, flag: str = "output") -> None:
    """Refuse (DestinationError, naming ``path`` and the setting ``flag`` that chose it) a file
    that could not be written: a hidden temp file is created and removed in its folder, as
    `atomic_write` will do, or a temp folder where its folders are still to be made. Permission
    bits cannot tell: root ignores them, while a read-only mount or /proc refuse root too."""
    folder = nearest_existing(path)
    if not folder.is_dir():
        raise DestinationError(f"{path}: {folder} is a file, so nothing can be written below it; choose another {setting(flag)}")
    making = folder != path.absolute().parent
    try:
        if making:
            os.rmdir(tempfile.mkdtemp(prefix=_temp_prefix(path), suffix=_TEMP_SUFFIX, dir=folder))
        else:
            handle, name = tempfile.mkstemp(prefix=_temp_prefix(path), suffix=_TEMP_SUFFIX, dir=folder)
            os.close(handle)
            os.unlink(name)
    except OSError as error:
        what = "create folders" if making else "write files"
        reason = error.strerror or type(error).__name__
        raise DestinationError(f"{path}: cannot {what} in {folder} ({reason}); choose another {setting(flag)}") from None
