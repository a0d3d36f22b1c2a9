"""Inputs and outputs wherever they are, local paths or objects in a store, behind one API.

Planning asks what a name is (`kind`, `is_dir`, `problem`), what a folder holds (`files_in`,
`glob`) and which outputs exist already (`existing`); decoding and encoding fetch and store
whole files (`read_bytes`, `write_bytes`). Local paths keep the os calls they always had; URLs
go to their store (`stores`), so planning, naming and refusals are one code path for both.

Against a store every question is a round trip, so planning is frugal: the names a command
gives are looked up in parallel (`survey`), each answer is kept for the rest of that planning
pass (`surveyed`), and which outputs exist is learnt from one listing per prefix, never one
request per file. Nothing is written anywhere but at the final name: an upload is a single
request that the store applies whole or not at all.
"""

from __future__ import annotations

import functools
import glob as globbing
import os
import tempfile
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from contextvars import ContextVar
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any, Literal, TypeVar

from restore_cli.errors import StorageError, StorageSetupError
from restore_cli.io import stores
from restore_cli.io.urls import Location, Url, has_password, is_url, without_password

Kind = Literal["file", "folder"]

_IN_ONE_GO = 64 * 2**20
"""Objects up to this size are fetched in one request; bigger ones stream through a temporary
file in ranges of this size, so memory never holds more than the file itself (as for a local
file) plus one range."""
_PARALLEL_LOOKUPS = 32

_F = TypeVar("_F", bound=Callable)


@dataclass(frozen=True)
class _Look:
    kind: Kind | None
    problem: str | None = None
    """Why the name could not be looked at (no such object, access denied), as users read it."""


@dataclass
class _Survey:
    looks: dict[str, _Look] = field(default_factory=dict)
    fresh: set[int] = field(default_factory=set)
    """Filesystems whose listing caches were emptied for this pass (another process, a Ray
    worker or an earlier run, may have written since)."""


_survey: ContextVar[_Survey | None] = ContextVar("restore_storage_survey", default=None)


def surveyed(function: _F) -> _F:
    """Run ``function`` (a planning pass) with every answer about a URL kept until it returns."""

    @functools.wraps(function)
    def within_a_survey(*args, **kwargs):  # type: ignore[no-untyped-def]
        token = _survey.set(_Survey())
        try:
            return function(*args, **kwargs)
        finally:
            _survey.reset(token)

    return within_a_survey  # type: ignore[return-value]


def survey(names: Iterable[str]) -> None:
    """Look up every URL among ``names`` at once, in parallel, for the planning pass."""
    pending = list(dict.fromkeys(name for name in names if is_url(name) and not _known(name)))
    if len(pending) < 2:
        return
    for name in pending:
        _filesystem(name)  # a missing extra is one error, raised here rather than in a thread
    with ThreadPoolExecutor(min(_PARALLEL_LOOKUPS, len(pending)), thread_name_prefix="restore-lookup") as pool:
        looks = list(pool.map(_look_up, pending))
    current = _survey.get()
    if current is not None:
        current.looks.update(zip(pending, looks))


# ---------------------------------------------------------------- what a name is


def kind(name: str | Location) -> Kind | None:
    """A file (or object), a folder (or prefix holding objects), or nothing that can be read."""
    url = _url(name)
    if url is not None:
        return _look(url).kind
    path = Path(name)  # type: ignore[arg-type]
    return "folder" if path.is_dir() else "file" if path.exists() else None


def is_dir(name: str | Location) -> bool:
    return kind(name) == "folder"


def is_file(name: str | Location) -> bool:
    url = _url(name)
    return _look(url).kind == "file" if url is not None else Path(name).is_file()  # type: ignore[arg-type]


def exists(name: str | Location) -> bool:
    return kind(name) is not None


def problem(name: str | Location) -> str | None:
    """Why an input cannot be read, found while planning (so a typo is reported before any
    model loads), or None. A dangling local link counts as present, and fails when read."""
    url = _url(name)
    if url is not None:
        look = _look(url)
        return None if look.kind is not None else look.problem
    return None if os.path.lexists(name) else f"{name}: no such file; check the path"


def resolved(where: Location) -> Location:
    """Absolute, with links followed, for comparing places; an object's URL is already that."""
    return where.resolve() if isinstance(where, Path) else where


def key(name: str | Location) -> str:
    """One spelling per file, so that ./a.png, a.png and a link to it are recognised as the same."""
    url = _url(name)
    if url is not None:
        return str(Url.parse(url))
    return os.path.normcase(os.path.realpath(name))  # type: ignore[arg-type]


# ---------------------------------------------------------------- what a folder holds


def files_in(folder: Location, recursive: bool) -> list[Location]:
    """The files in ``folder`` (and its subfolders, if ``recursive``), sorted."""
    if isinstance(folder, Path):
        candidates = folder.rglob("*") if recursive else folder.iterdir()
        return sorted(path for path in candidates if path.is_file())
    fs, path = _filesystem(str(folder))
    found = stores.call(str(folder), "list", lambda: fs.find(path, maxdepth=None if recursive else 1))
    return sorted(Url(folder.protocol, PurePosixPath(item)) for item in found)


def glob(pattern: str, recursive: bool) -> list[Location]:
    """The files matching ``pattern``, sorted; ``**`` spans folders only if ``recursive``."""
    if not is_url(pattern):
        return sorted(match for match in map(Path, globbing.glob(pattern, recursive=recursive)) if match.is_file())
    protocol = Url.parse(pattern).protocol
    fs, path = _filesystem(pattern)
    found = stores.call(pattern, "list", lambda: fs.glob(path if recursive else path.replace("**", "*"), detail=True))
    return sorted(Url(protocol, PurePosixPath(item)) for item, info in found.items() if info.get("type") == "file")


def existing(names: Iterable[str]) -> set[str]:
    """Which of ``names`` exist. Local names are checked one by one, as a folder's entries are
    cheap to stat; for URLs, each prefix that holds some of them is listed once (recursively,
    so a mirrored tree of outputs is one listing), not one request per object."""
    names = list(names)
    found = {name for name in names if not is_url(name) and os.path.lexists(name)}
    wanted = {name: Url.parse(name) for name in names if is_url(name)}
    for root in _roots({url.parent for url in wanted.values()}):
        listed = _listed_below(root)
        found |= {name for name, url in wanted.items() if url in listed}
    return found


def _roots(prefixes: set[Url]) -> list[Url]:
    """The prefixes that are not below another one: listing them recursively covers all."""
    return sorted(prefix for prefix in prefixes if not any(parent in prefixes for parent in prefix.parents))


def _listed_below(root: Url) -> set[Url]:
    fs, path = _filesystem(str(root))
    try:
        found = stores.call(str(root), "list", lambda: fs.find(path))
    except StorageError as error:
        if error.missing:
            return set()  # no such bucket yet: nothing exists, and each write will say why it fails
        raise
    return {Url(root.protocol, PurePosixPath(item)) for item in found}


# ---------------------------------------------------------------- whole files in and out


def read_bytes(url: str) -> bytes:
    """The object's bytes, fetched with retries; StorageError (one line) if it cannot be."""
    fs, path = _filesystem(url)
    size = stores.call(url, "read", lambda: fs.size(path))
    if size <= _IN_ONE_GO:
        return stores.call(url, "read", lambda: fs.cat_file(path))
    with tempfile.TemporaryFile(prefix="restore-") as spool:
        for start in range(0, size, _IN_ONE_GO):
            end = min(start + _IN_ONE_GO, size)
            spool.write(stores.call(url, "read", lambda start=start, end=end: fs.cat_file(path, start=start, end=end)))
        spool.seek(0)
        return spool.read()


def write_bytes(url: str, data: bytes) -> None:
    """Store ``data`` at ``url`` in one upload that the store applies whole: the object appears
    complete or not at all, and no temporary object is ever made. Retried on transient
    failures (the same bytes again is harmless)."""
    fs, path = _filesystem(url)
    if Url.parse(url).protocol not in stores.OBJECT_STORES:
        stores.call(url, "write", lambda: fs.makedirs(fs._parent(path), exist_ok=True))
    stores.call(url, "write", lambda: fs.pipe_file(path, data, **stores.upload_options(url)))


# ---------------------------------------------------------------- helpers


def _url(name: str | Location) -> str | None:
    if isinstance(name, Url):
        return str(name)
    return name if is_url(name) else None


def _filesystem(url: str) -> tuple[Any, str]:
    if has_password(url):
        raise StorageSetupError(
            f"{without_password(url)}: a password in a URL would be repeated in every report line; "
            "give credentials through the store's own configuration (see docs/storage.md)"
        )
    fs, path = stores.filesystem(url)
    current = _survey.get()
    if current is not None and id(fs) not in current.fresh:
        fs.invalidate_cache()
        current.fresh.add(id(fs))
    return fs, path


def _known(url: str) -> bool:
    current = _survey.get()
    return current is not None and url in current.looks


def _look(url: str) -> _Look:
    current = _survey.get()
    if current is None:
        return _look_up(url)
    if url not in current.looks:
        current.looks[url] = _look_up(url)
    return current.looks[url]


def _look_up(url: str) -> _Look:
    fs, path = _filesystem(url)
    try:
        info = stores.call(url, "read", lambda: fs.info(path))
    except StorageError as error:
        return _Look(None, str(error))
    return _Look("folder" if info.get("type") == "directory" else "file")
