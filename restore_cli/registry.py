"""The model zoo: turn a model name into a local, checksum-verified checkpoint file.

Checkpoints come from the Hugging Face Hub (pinned revision, its cache and env vars) and,
when the Hub lacks a file or cannot be reached, from the authors' GitHub release. Nothing
is handed out before its SHA-256 matched: the manifest's value when one is published, else
the value the Hub reports for its LFS file, recorded at download time so offline use can
still check it. Files that come from the release URL or `restore models import` live in
``$HF_HOME/restore/models``; see weights/README.md for the whole layout.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import sys
import tempfile
import urllib.request
from dataclasses import dataclass
from importlib.resources import files
from pathlib import Path
from typing import IO, Any, Iterator

from filelock import FileLock
from rich.console import Console
from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TransferSpeedColumn
from tqdm.std import tqdm
from restore_cli.errors import CheckpointError, UnknownModelError, ZooError, ZooUsageError

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on Python 3.10 only
    import tomli as tomllib

__all__ = [
    "HubFile",
    "ModelEntry",
    "PaperResult",
    "ZooError",
    "ZooUsageError",
    "UnknownModelError",
    "Verification",
    "cached_path",
    "check_sha256",
    "hash_origin",
    "get_entry",
    "import_file",
    "load_manifest",
    "model_names",
    "parse_manifest",
    "resolve",
    "verify",
    "zoo_dir",
]

logger = logging.getLogger(__name__)

_SHA256 = re.compile(r"[0-9a-f]{64}")
HASH_ORIGINS = {
    "manifest": "the pinned SHA-256",
    "hub": "the SHA-256 the Hub reported; no pinned value",
    "import": "the SHA-256 given to `restore models import --sha256`; no pinned value",
}
"""Where an expected SHA-256 came from, as `restore models verify` reports it."""
_CHUNK = 1 << 20
_TRUE = {"1", "ON", "YES", "TRUE"}





@dataclass(frozen=True)
class HubFile:
    """Where a checkpoint lives on the Hugging Face Hub, pinned to one commit."""

    repo: str
    filename: str
    revision: str


@dataclass(frozen=True)
class PaperResult:
    """One score the paper reports for a checkpoint: a benchmark, and for Gaussian
    denoising the noise level it was measured at. ``tlc`` marks the scores TLC's paper
    (Chu et al., ECCV 2022) reports for the same checkpoint with local statistics."""

    benchmark: str
    psnr: float
    ssim: float | None = None
    sigma: int | None = None
    tlc: bool = False


@dataclass(frozen=True)
class ModelEntry:
    """One official checkpoint as the manifest describes it."""

    name: str
    task: str
    description: str
    variant: str
    filename: str
    url: str
    sha256: str
    sha256_known: bool
    size: int
    licence: str
    training_data: str
    hub: HubFile | None = None
    paper: tuple[PaperResult, ...] = ()

    def paper_psnr(self, benchmark: str, sigma: float | None = None, tlc: bool = False) -> float | None:
        """The paper's PSNR on this benchmark (at this noise level; with TLC's local
        statistics, the TLC paper's), if the manifest has it."""
        for result in self.paper:
            if result.benchmark.lower() == benchmark.lower() and result.sigma in (None, sigma) and result.tlc == tlc:
                return result.psnr
        return None


@dataclass(frozen=True)
class Verification:
    """Outcome of re-hashing one cached checkpoint (``restore models verify``)."""

    name: str
    state: str  # "ok", "unpinned", "missing", "unverifiable" or "mismatch"
    path: Path | None
    message: str = ""


# --------------------------------------------------------------------------- manifest


def parse_manifest(text: str) -> dict[str, ModelEntry]:
    """Parse manifest TOML; separate from loading so tests can build their own zoo."""
    return {name: _entry(name, fields) for name, fields in tomllib.loads(text)["models"].items()}


def _entry(name: str, fields: dict[str, Any]) -> ModelEntry:
    fields = dict(fields)
    hub = fields.pop("hub", None)
    paper = tuple(PaperResult(**result) for result in fields.pop("paper", []))
    if fields["sha256_known"] != bool(fields["sha256"]):
        raise ValueError(f"manifest entry {name}: sha256 and sha256_known disagree")
    return ModelEntry(
        name=name,
        hub=HubFile(**hub) if hub else None,
        paper=paper,
        **fields,
    )


def load_manifest() -> dict[str, ModelEntry]:
    """The zoo as shipped in the wheel, keyed by model name."""
    return parse_manifest((files("restore_cli.weights") / "manifest.toml").read_text("utf-8"))


def model_names() -> list[str]:
    """Every model name, in manifest order."""
    return list(load_manifest())


def get_entry(name: str) -> ModelEntry:
    """Look a model up, failing with the list of valid names so a typo is easy to fix."""
    manifest = load_manifest()
    if name not in manifest:
        raise UnknownModelError(
            f"unknown model {name!r}; known models: {', '.join(manifest)} (see `restore models list`)"
        )
    return manifest[name]


# --------------------------------------------------------------------------- locations


def _hf_home() -> Path:
    # Read at call time: huggingface_hub freezes its constants at import, before a test
    # (or a long-lived caller) may have changed the environment.
    default = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "huggingface"
    return Path(os.environ.get("HF_HOME", default)).expanduser()


def _hub_cache() -> Path:
    return Path(os.environ.get("HF_HUB_CACHE", _hf_home() / "hub")).expanduser()


def _hub_endpoint() -> str:
    return os.environ.get("HF_ENDPOINT", "https://huggingface.co").rstrip("/")


def _offline_from_env() -> bool:
    return os.environ.get("HF_HUB_OFFLINE", "").upper() in _TRUE


def zoo_dir() -> Path:
    """Our part of the cache: release/imported checkpoints, checksum records and locks."""
    return _hf_home() / "restore"


def _own_path(entry: ModelEntry) -> Path:
    return zoo_dir() / "models" / entry.filename


def _lock(name: str) -> FileLock:
    """A cross-process lock; one per model, so two processes never fetch, check or delete
    the same file at once, and one for the shared checksum records."""
    lock_dir = zoo_dir() / ".locks"
    lock_dir.mkdir(parents=True, exist_ok=True)
    return FileLock(lock_dir / f"{name}.lock")


def _locate(entry: ModelEntry) -> Path | None:
    """The cached file for a model, if any: the Hub cache first, then our own folder."""
    if entry.hub is not None:
        from huggingface_hub import try_to_load_from_cache

        hit = try_to_load_from_cache(
            entry.hub.repo, entry.hub.filename, cache_dir=_hub_cache(), revision=entry.hub.revision
        )
        if isinstance(hit, str):
            return Path(hit)
    own = _own_path(entry)
    return own if own.is_file() else None


def cached_path(name: str) -> Path | None:
    """Where a model's file is cached, without checking or fetching it (for listings)."""
    return _locate(get_entry(name))


# --------------------------------------------------------------------------- checksum records


def _records_file() -> Path:
    return zoo_dir() / "checksums.json"


def _read_records() -> dict[str, dict[str, Any]]:
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
    with _lock(".checksums"):
        records = _read_records()
        if record is None:
            records.pop(name, None)
        else:
            records[name] = record
        with _temp_beside(target) as (tmp, handle):
            handle.write(json.dumps(records, indent=1, sort_keys=True).encode())
        os.replace(tmp, target)


@dataclass(frozen=True)
class _Expected:
    """The SHA-256 a file must have, and where that value came from (a key of HASH_ORIGINS)."""

    sha256: str
    origin: str


def _remember(name: str, path: Path, expected: _Expected, source: str) -> None:
    stat = path.stat()
    record = {"path": str(path), "sha256": expected.sha256, "size": stat.st_size, "mtime_ns": stat.st_mtime_ns}
    _write_record(name, {**record, "source": source, "sha256_from": expected.origin})


def _vouched_for(record: dict[str, Any] | None, path: Path, expected: _Expected) -> bool:
    """True when this very file (same path, size, mtime) already matched ``expected``."""
    if not record or record.get("path") != str(path) or record.get("sha256") != expected.sha256:
        return False
    stat = path.stat()
    return record.get("size") == stat.st_size and record.get("mtime_ns") == stat.st_mtime_ns


def _expected_sha(entry: ModelEntry) -> _Expected | None:
    """The manifest's SHA-256, else the one recorded from the Hub (or given at import)."""
    if entry.sha256_known:
        return _Expected(entry.sha256, "manifest")
    record = _read_records().get(entry.name, {})
    if "sha256" not in record:
        return None
    # Records written before origins were kept: an imported file's hash came with the import.
    origin = record.get("sha256_from") or ("import" if record.get("source") == "import" else "hub")
    return _Expected(record["sha256"], origin)


def hash_origin(name: str) -> str | None:
    """Where the SHA-256 a cached model is checked against came from, in words (None: no value)."""
    expected = _expected_sha(get_entry(name))
    return None if expected is None else HASH_ORIGINS[expected.origin]


def check_sha256(text: str) -> str:
    """A SHA-256 as given by a user, lower-cased; refused unless it is 64 hex digits."""
    value = text.strip().lower()
    if not _SHA256.fullmatch(value):
        raise ZooUsageError(f"{text!r} is not a SHA-256: it must be 64 hexadecimal digits, as on the Hub's file page")
    return value


# --------------------------------------------------------------------------- hashing and files


def _sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(_CHUNK), b""):
            digest.update(block)
    return digest.hexdigest()


class _temp_beside:
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


def _mismatch(entry: ModelEntry, where: str, expected: str, actual: str) -> ZooError:
    return ZooError(
        f"{entry.name}: checksum mismatch for {where} (expected sha256 {expected[:16]}…, "
        f"got {actual[:16]}…); the file was deleted — run `restore models download {entry.name}` "
        "to fetch it again"
    )


def _check(entry: ModelEntry, path: Path, expected: _Expected, source: str) -> Path:
    """Hash a file in place; keep and record it on a match, delete it on a mismatch."""
    actual = _sha256_of(path)
    if actual != expected.sha256:
        _discard(path)
        _write_record(entry.name, None)
        raise _mismatch(entry, str(path), expected.sha256, actual)
    _remember(entry.name, path, expected, source)
    return path


# --------------------------------------------------------------------------- progress


class _QuietBar(tqdm):
    """tqdm's interface with nothing drawn: huggingface_hub must not draw its own bar."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.pop("name", None)
        super().__init__(*args, **{**kwargs, "disable": True})

    def update(self, n: float | None = 1) -> bool | None:
        self.n += n or 0  # a disabled tqdm stops counting; huggingface_hub's Xet path reads n
        return None


class _RichBar(_QuietBar):
    """huggingface_hub's tqdm calls, drawn as one rich download bar on stderr."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        label = kwargs.get("desc") or "download"  # a disabled tqdm does not keep its desc
        self._rich = Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            DownloadColumn(),
            TransferSpeedColumn(),
            console=Console(stderr=True),
        )
        self._task = self._rich.add_task(label, total=self.total, completed=self.n)
        self._rich.start()

    def update(self, n: float | None = 1) -> bool | None:
        super().update(n)
        self._rich.update(self._task, completed=self.n, total=self.total)
        return None

    def close(self) -> None:
        self._rich.stop()
        super().close()


def _bar_class(progress: bool) -> type[tqdm]:
    return _RichBar if progress else _QuietBar


# --------------------------------------------------------------------------- downloads


def _ask_hub(entry: ModelEntry) -> tuple[bool, str | None]:
    """Whether the Hub serves this file, and the SHA-256 it reports for it (its LFS etag)."""
    if entry.hub is None:
        return False, None
    from huggingface_hub import get_hf_file_metadata, hf_hub_url

    endpoint = _hub_endpoint()
    url = hf_hub_url(entry.hub.repo, entry.hub.filename, revision=entry.hub.revision, endpoint=endpoint)
    try:
        meta = get_hf_file_metadata(url, endpoint=endpoint)
    except Exception as err:  # any failure to reach or understand the Hub: use the release URL
        logger.warning("%s: the Hub at %s is unavailable (%s); using %s", entry.name, endpoint, _why(err), entry.url)
        return False, None
    if meta.commit_hash is None:  # an answer, but not from a Hub (captive portal, proxy page)
        logger.warning("%s: %s does not answer like a Hub; using %s", entry.name, endpoint, entry.url)
        return False, None
    etag = meta.etag or ""
    return True, etag if _SHA256.fullmatch(etag) else None


def _why(err: BaseException) -> str:
    return f"{type(err).__name__}: {str(err).splitlines()[0] if str(err) else 'no detail'}"


def _from_hub(entry: ModelEntry, progress: bool) -> Path | None:
    from huggingface_hub import hf_hub_download

    assert entry.hub is not None
    try:
        return Path(
            hf_hub_download(
                entry.hub.repo,
                entry.hub.filename,
                revision=entry.hub.revision,
                cache_dir=_hub_cache(),
                endpoint=_hub_endpoint(),
                tqdm_class=_bar_class(progress),
            )
        )
    except Exception as err:  # the Hub failed mid-way: the release URL is the documented fallback
        logger.warning("%s: download from the Hub failed (%s); using %s", entry.name, _why(err), entry.url)
        return None


def _stream(source: IO[bytes], sink: IO[bytes], total: int | None, label: str, progress: bool) -> str:
    """Copy while hashing, so the file is verified before it ever gets its final name."""
    digest = hashlib.sha256()
    with _bar_class(progress)(total=total, desc=label) as bar:
        for block in iter(lambda: source.read(_CHUNK), b""):
            digest.update(block)
            sink.write(block)
            bar.update(len(block))
    return digest.hexdigest()


def _from_release(entry: ModelEntry, expected: _Expected, progress: bool) -> Path:
    target = _own_path(entry)
    target.parent.mkdir(parents=True, exist_ok=True)
    try:
        with urllib.request.urlopen(entry.url, timeout=60) as response, _temp_beside(target) as (tmp, sink):
            length = response.headers.get("Content-Length")
            actual = _stream(response, sink, int(length) if length else None, entry.filename, progress)
    except OSError as err:  # urllib's URLError and HTTPError are OSErrors
        raise ZooError(
            f"{entry.name}: could not download {entry.url} ({_why(err)}); check the connection, or fetch "
            f"the file elsewhere and run `restore models import FILE`"
        ) from None
    if actual != expected.sha256:
        tmp.unlink()
        raise _mismatch(entry, entry.url, expected.sha256, actual)
    os.replace(tmp, target)
    _remember(entry.name, target, expected, "release")
    return target


def _download(entry: ModelEntry, progress: bool) -> Path:
    on_hub, hub_sha = _ask_hub(entry)
    expected = _Expected(entry.sha256, "manifest") if entry.sha256_known else hub_sha and _Expected(hub_sha, "hub")
    if not expected:
        raise ZooError(
            f"{entry.name} has no pinned SHA-256 and the Hub did not report one, so {entry.url} cannot be "
            f"verified; retry when {_hub_endpoint()} is reachable, or run `restore models import FILE "
            f"--name {entry.name} --sha256 HEX` with the SHA-256 shown on the Hub's file page"
        )
    hub_path = _from_hub(entry, progress) if on_hub else None
    if hub_path is not None:
        return _check(entry, hub_path, expected, "hub")
    return _from_release(entry, expected, progress)


def _cached_and_verified(entry: ModelEntry) -> Path | None:
    path = _locate(entry)
    expected = _expected_sha(entry)
    if path is None or expected is None:
        return None
    record = _read_records().get(entry.name)
    if _vouched_for(record, path, expected):
        return path
    return _check(entry, path, expected, (record or {}).get("source", "cache"))


def _offline_error(entry: ModelEntry) -> ZooError:
    return ZooError(
        f"{entry.name} is not in the cache (or not verified) and offline mode is on; download {entry.url} "
        f"on a connected machine, then run `restore models import {entry.filename}` here"
    )


def resolve(name: str, *, offline: bool | None = None, progress: bool = True) -> Path:
    """A verified local checkpoint for ``name``, downloading it first if needed.

    ``offline=None`` follows ``HF_HUB_OFFLINE``; offline, only the cache is used.
    """
    entry = get_entry(name)
    offline = _offline_from_env() if offline is None else offline
    with _lock(entry.name):
        cached = _cached_and_verified(entry)
        if cached is not None:
            return cached
        if offline:
            raise _offline_error(entry)
        return _download(entry, progress)


# --------------------------------------------------------------------------- verify and import


def verify(names: list[str] | None = None) -> Iterator[Verification]:
    """Re-hash cached checkpoints (all models by default), deleting any that do not match."""
    for name in names or model_names():
        entry = get_entry(name)
        with _lock(entry.name):
            outcome = _verify_one(entry)
        yield outcome


def _verify_one(entry: ModelEntry) -> Verification:
    path = _locate(entry)
    if path is None:
        return Verification(entry.name, "missing", None, "not cached")
    expected = _expected_sha(entry)
    if expected is None:
        return Verification(entry.name, "unverifiable", path, "unpinned, and no SHA-256 recorded from the Hub")
    source = _read_records().get(entry.name, {}).get("source", "cache")
    try:
        _check(entry, path, expected, source)
    except ZooError as err:
        return Verification(entry.name, "mismatch", path, str(err))
    state = "ok" if entry.sha256_known else "unpinned"
    return Verification(entry.name, state, path, f"matches {HASH_ORIGINS[expected.origin]}")


def _identify(source: Path, sha256: str) -> ModelEntry:
    """Which model a file is: by its file name, else by a pinned checksum."""
    manifest = load_manifest()
    for entry in manifest.values():
        if source.name == entry.filename or source.stem == entry.name:
            return entry
    for entry in manifest.values():
        if entry.sha256_known and entry.sha256 == sha256:
            return entry
    raise ZooError(
        f"cannot tell which model {source} is (neither its name nor its checksum matches one); "
        "pass --name NAME"
    )


def import_file(source: Path, *, name: str | None = None, sha256: str | None = None) -> tuple[str, Path]:
    """Install a checkpoint fetched by hand into the cache, after checking its SHA-256 and
    that it loads as a Restormer.

    For unpinned models the expected value is ``sha256`` (e.g. read off the Hub's file page)
    or the one recorded from an earlier Hub lookup; without either the file is refused. The
    record keeps where the value came from, so `verify` never credits the Hub with a user's
    hash. The copy is checked, not the source, so what is installed is exactly what was checked.
    """
    given = None if sha256 is None else check_sha256(sha256)
    if not source.is_file():
        raise ZooError(f"cannot import {source}: no such file")
    models_dir = zoo_dir() / "models"
    models_dir.mkdir(parents=True, exist_ok=True)
    with source.open("rb") as src, _temp_beside(models_dir / source.name) as (tmp, sink):
        actual = _stream(src, sink, None, source.name, progress=False)
    try:
        entry = get_entry(name) if name else _identify(source, actual)
        expected = _import_expectation(entry, source, given)
        if actual != expected.sha256:
            raise ZooError(
                f"{source} is not {entry.name}: its sha256 is {actual[:16]}…, expected {expected.sha256[:16]}…; "
                "nothing was installed"
            )
        _check_loadable(tmp, source)
    except ZooError:
        tmp.unlink()
        raise
    with _lock(entry.name):
        target = _own_path(entry)
        os.replace(tmp, target)
        _remember(entry.name, target, expected, "import")
    return entry.name, target


def _import_expectation(entry: ModelEntry, source: Path, given: str | None) -> _Expected:
    if entry.sha256_known:
        if given is not None and given != entry.sha256:
            raise ZooUsageError(
                f"--sha256 {given[:16]}… is not the pinned SHA-256 of {entry.name} ({entry.sha256[:16]}…); "
                "drop --sha256, the pinned value is used"
            )
        return _Expected(entry.sha256, "manifest")
    expected = _Expected(given, "import") if given is not None else _expected_sha(entry)
    if expected is None:
        raise ZooError(
            f"{entry.name} has no pinned SHA-256, so {source} cannot be verified; pass --sha256 HEX "
            "with the value shown on the Hub's file page"
        )
    return expected


def _check_loadable(copy: Path, source: Path) -> None:
    """A matching hash only proves the file is what its giver hashed: a text file with its own
    --sha256 passes that. Loading it as a Restormer is what makes it a model."""
    from restore_cli.checkpoints import build_model, read_state_dict

    try:
        build_model(read_state_dict(copy), source=str(source))
    except CheckpointError as error:
        reason = str(error).replace(str(copy), str(source))
        raise ZooError(f"cannot import {source}: {reason}; nothing was installed") from None
