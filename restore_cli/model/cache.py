"""The zoo's files on disk: where checkpoints live, the checksums they are held to, and the
locks that keep two processes from fetching or deleting the same file at once.

Nothing is handed out before its SHA-256 matched: the manifest's value when one is published,
else the value the Hub reported for its LFS file (or a user gave at import), recorded here so
offline use can still check it. A match is remembered with the file's size and mtime so later
runs do not re-hash 100 MB unless the file changed. Locations follow the Hugging Face cache
conventions (``HF_HOME``, ``HF_HUB_CACHE``), read when a model is resolved, not at import.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from filelock import FileLock

from restore_cli.errors import ZooError, ZooUsageError
from restore_cli.model.manifest import ModelEntry

logger = logging.getLogger(__name__)

SHA256 = re.compile(r"[0-9a-f]{64}")
HASH_ORIGINS = {
    "manifest": "the pinned SHA-256",
    "hub": "the SHA-256 the Hub reported; no pinned value",
    "import": "the SHA-256 given to `restore models import --sha256`; no pinned value",
}
"""Where an expected SHA-256 came from, as `restore models verify` reports it."""
CHUNK = 1 << 20
_TRUE = {"1", "ON", "YES", "TRUE"}


# --------------------------------------------------------------------------- locations


def _hf_home() -> Path:
    # Read at call time: huggingface_hub freezes its constants at import, before a test
    # (or a long-lived caller) may have changed the environment.
    default = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "huggingface"
    return Path(os.environ.get("HF_HOME", default)).expanduser()


def hub_cache() -> Path:
    return Path(os.environ.get("HF_HUB_CACHE", _hf_home() / "hub")).expanduser()


def hub_endpoint() -> str:
    return os.environ.get("HF_ENDPOINT", "https://huggingface.co").rstrip("/")


def offline_from_env() -> bool:
    return os.environ.get("HF_HUB_OFFLINE", "").upper() in _TRUE


def zoo_dir() -> Path:
    """Our part of the cache: release/imported checkpoints, checksum records and locks."""
    return _hf_home() / "restore"


def own_path(entry: ModelEntry) -> Path:
    """Where a checkpoint fetched from the release URL or imported by hand is kept."""
    return zoo_dir() / "models" / entry.filename


def lock(name: str) -> FileLock:
    """A cross-process lock; one per model, so two processes never fetch, check or delete
    the same file at once, and one for the shared checksum records."""
    lock_dir = zoo_dir() / ".locks"
    lock_dir.mkdir(parents=True, exist_ok=True)
    return FileLock(lock_dir / f"{name}.lock")


def locate(entry: ModelEntry) -> Path | None:
    """The cached file for a model, if any: the Hub cache first, then our own folder."""
    if entry.hub is not None:
        from huggingface_hub import try_to_load_from_cache

        hit = try_to_load_from_cache(
            entry.hub.repo, entry.hub.filename, cache_dir=hub_cache(), revision=entry.hub.revision
        )
        if isinstance(hit, str):
            return Path(hit)
    own = own_path(entry)
    return own if own.is_file() else None


# --------------------------------------------------------------------------- checksum records


def _records_file() -> Path:
    return zoo_dir() / "checksums.json"


def read_records() -> dict[str, dict[str, Any]]:
    try:
        return json.loads(_records_file().read_text("utf-8"))
    except FileNotFoundError:
        return {}
    except (OSError, ValueError):
        logger.warning("ignoring unreadable %s: cached models will be re-hashed", _records_file())
        return {}


def _write_record(name: str, record: dict[str, Any] | None) -> None:
    """Update one model's record; the JSON is shared by all models, hence its own lock."""
    target = _records_file()
    target.parent.mkdir(parents=True, exist_ok=True)
    with lock(".checksums"):
        records = read_records()
        if record is None:
            records.pop(name, None)
        else:
            records[name] = record
        with TempBeside(target) as (tmp, handle):
            handle.write(json.dumps(records, indent=1, sort_keys=True).encode())
        os.replace(tmp, target)


@dataclass(frozen=True)
class Expected:
    """The SHA-256 a file must have, and where that value came from (a key of HASH_ORIGINS)."""

    sha256: str
    origin: str


def forget(name: str) -> None:
    """Drop a model's record (its file was deleted)."""
    _write_record(name, None)


def remember(name: str, path: Path, expected: Expected, source: str) -> None:
    stat = path.stat()
    record = {"path": str(path), "sha256": expected.sha256, "size": stat.st_size, "mtime_ns": stat.st_mtime_ns}
    _write_record(name, {**record, "source": source, "sha256_from": expected.origin})


def vouched_for(record: dict[str, Any] | None, path: Path, expected: Expected) -> bool:
    """True when this very file (same path, size, mtime) already matched ``expected``."""
    if not record or record.get("path") != str(path) or record.get("sha256") != expected.sha256:
        return False
    stat = path.stat()
    return record.get("size") == stat.st_size and record.get("mtime_ns") == stat.st_mtime_ns


def expected_sha(entry: ModelEntry) -> Expected | None:
    """The manifest's SHA-256, else the one recorded from the Hub (or given at import)."""
    if entry.sha256_known:
        return Expected(entry.sha256, "manifest")
    record = read_records().get(entry.name, {})
    if "sha256" not in record:
        return None
    # Records written before origins were kept: an imported file's hash came with the import.
    origin = record.get("sha256_from") or ("import" if record.get("source") == "import" else "hub")
    return Expected(record["sha256"], origin)


def check_sha256(text: str) -> str:
    """A SHA-256 as given by a user, lower-cased; refused unless it is 64 hex digits."""
    value = text.strip().lower()
    if not SHA256.fullmatch(value):
        raise ZooUsageError(f"{text!r} is not a SHA-256: it must be 64 hexadecimal digits, as on the Hub's file page")
    return value


# --------------------------------------------------------------------------- hashing and files


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(CHUNK), b""):
            digest.update(block)
    return digest.hexdigest()


class TempBeside:
    """A uniquely named temp file next to ``target``: os.replace onto it is then atomic."""

    def __init__(self, target: Path) -> None:
        self._target = target

    def __enter__(self) -> tuple[Path, IO[bytes]]:
        handle = tempfile.NamedTemporaryFile(
            dir=self._target.parent, prefix=f".{self._target.name}.", suffix=".part", delete=False
        )
        self._path = Path(handle.name)
        self._handle = handle
        return self._path, handle

    def __exit__(self, exc_type: object, *_: object) -> None:
        self._handle.close()
        if exc_type is not None:
            self._path.unlink(missing_ok=True)


def _discard(path: Path) -> None:
    """Delete a cached file; for a Hub-cache symlink also the blob it points to."""
    blob = path.resolve()
    path.unlink(missing_ok=True)
    blob.unlink(missing_ok=True)


def mismatch(entry: ModelEntry, where: str, expected: str, actual: str) -> ZooError:
    return ZooError(
        f"{entry.name}: checksum mismatch for {where} (expected sha256 {expected[:16]}…, "
        f"got {actual[:16]}…); the file was deleted — run `restore models download {entry.name}` "
        "to fetch it again"
    )


def check(entry: ModelEntry, path: Path, expected: Expected, source: str) -> Path:
    """Hash a file in place; keep and record it on a match, delete it on a mismatch."""
    actual = sha256_of(path)
    if actual != expected.sha256:
        _discard(path)
        _write_record(entry.name, None)
        raise mismatch(entry, str(path), expected.sha256, actual)
    remember(entry.name, path, expected, source)
    return path
