"""The model zoo: a name becomes a local, checksum-verified checkpoint, and a network.

``resolve`` looks in the cache, else downloads (``download``), and hands out a file only after
its SHA-256 matched (``cache``); ``import_file`` installs a checkpoint fetched by hand, for
offline machines; ``verify`` re-hashes what is cached; ``load_model`` takes a zoo name or a
checkpoint file and returns the built network. docs/models.md describes the whole layout.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Iterator

from restore_cli.errors import CheckpointError, ZooError, ZooUsageError, setting
from restore_cli.model import cache, manifest, onnx_zoo
from restore_cli.model.download import Progress, download, stream
from restore_cli.model.manifest import ModelEntry
from restore_cli.model.onnx_format import is_onnx

if TYPE_CHECKING:
    import torch

    from restore_cli.model.restormer import Restormer


@dataclass(frozen=True)
class Verification:
    """Outcome of re-hashing one cached checkpoint (``restore models verify``)."""

    name: str
    state: str  # "ok", "unpinned", "missing", "unverifiable" or "mismatch"
    path: Path | None
    message: str = ""


def cached_path(name: str) -> Path | None:
    """Where a model's file is cached, without checking or fetching it (for listings)."""
    return cache.locate(manifest.get_entry(name))


def hash_origin(name: str) -> str | None:
    """Where the SHA-256 a cached model is checked against came from, in words (None: no value)."""
    if is_onnx(name):
        return cache.HASH_ORIGINS[onnx_zoo.ORIGIN]
    expected = cache.expected_sha(manifest.get_entry(name))
    return None if expected is None else cache.HASH_ORIGINS[expected.origin]


def _cached_and_verified(entry: ModelEntry) -> Path | None:
    path = cache.locate(entry)
    expected = cache.expected_sha(entry)
    if path is None or expected is None:
        return None
    record = cache.read_records().get(entry.name)
    if cache.vouched_for(record, path, expected):
        return path
    return cache.check(entry, path, expected, (record or {}).get("source", "cache"))


def _offline_error(entry: ModelEntry) -> ZooError:
    return ZooError(
        f"{entry.name} is not in the cache (or not verified) and offline mode is on; download {entry.url} "
        f"on a connected machine, then run `restore models import {entry.filename}` here"
    )


def resolve(name: str, *, offline: bool | None = None, progress: Progress = True) -> Path:
    """A verified local checkpoint for ``name``, downloading it first if needed.

    ``offline=None`` follows ``HF_HUB_OFFLINE``; offline, only the cache is used. A download
    is shown as ``progress`` says (huggingface_hub's bar by default). A name ending in .onnx is
    an ONNX model imported into the cache (``onnx_zoo``), which is never downloaded.
    """
    if is_onnx(name):
        return onnx_zoo.resolve_onnx(name)
    entry = manifest.get_entry(name)
    offline = cache.offline_from_env() if offline is None else offline
    with cache.lock(entry.name):
        cached = _cached_and_verified(entry)
        if cached is not None:
            return cached
        if offline:
            raise _offline_error(entry)
        return download(entry, progress)


def load_model(path_or_name: str | os.PathLike, device: str | torch.device = "cpu", progress: Progress = True) -> Restormer:
    """Build a ready-to-run model (eval mode, fp32, `.config` set) from a checkpoint file
    or a zoo model name such as "real_denoising" (downloaded and verified if needed, the
    download shown as ``progress`` says)."""
    path = Path(path_or_name)
    if path.is_dir():
        raise CheckpointError(f"{path} is a folder, not a checkpoint; give the .pth/.safetensors file itself{_listing(path)}")
    if not path.is_file():
        name = str(path_or_name)
        if name not in manifest.load_manifest():
            raise CheckpointError(
                f"no checkpoint file or zoo model named {name!r}: give a path to a .pth/.safetensors "
                "file, or a name from `restore models list`"
            )
        path = resolve(name, progress=progress)
    from restore_cli.model import checkpoints  # torch loads here, not with the zoo

    return checkpoints.load_checkpoint(path, device)


def _listing(folder: Path) -> str:
    """The checkpoint files a folder holds, as a hint: the user may have meant one of them."""
    files = sorted(path.name for path in folder.iterdir() if path.suffix in (".pth", ".pt", ".safetensors"))
    if not files:
        return ""
    return f" (it holds {', '.join(files[:3])}{', ...' if len(files) > 3 else ''})"


# --------------------------------------------------------------------------- verify and import


def verify(names: list[str] | None = None) -> Iterator[Verification]:
    """Re-hash cached checkpoints (all models and imported ONNX models by default), deleting
    any that do not match."""
    for name in names or manifest.model_names() + onnx_zoo.imported_names():
        if is_onnx(name):
            yield _verify_onnx(name)
            continue
        entry = manifest.get_entry(name)
        with cache.lock(entry.name):
            outcome = _verify_one(entry)
        yield outcome


def _verify_onnx(name: str) -> Verification:
    record = cache.read_records().get(name)
    if record is None or not Path(record["path"]).is_file():
        return Verification(name, "missing", None, "not imported")
    try:
        path = onnx_zoo.resolve_onnx(name, rehash=True)
    except ZooError as err:
        return Verification(name, "mismatch", Path(record["path"]), str(err))
    return Verification(name, "unpinned", path, f"matches {cache.HASH_ORIGINS[onnx_zoo.ORIGIN]}")


def _verify_one(entry: ModelEntry) -> Verification:
    path = cache.locate(entry)
    if path is None:
        return Verification(entry.name, "missing", None, "not cached")
    expected = cache.expected_sha(entry)
    if expected is None:
        return Verification(entry.name, "unverifiable", path, "unpinned, and no SHA-256 recorded from the Hub")
    source = cache.read_records().get(entry.name, {}).get("source", "cache")
    try:
        cache.check(entry, path, expected, source)
    except ZooError as err:
        return Verification(entry.name, "mismatch", path, str(err))
    state = "ok" if entry.sha256_known else "unpinned"
    return Verification(entry.name, state, path, f"matches {cache.HASH_ORIGINS[expected.origin]}")


def _identify(source: Path, sha256: str) -> ModelEntry:
    """Which model a file is: by its file name, else by a pinned checksum."""
    entries = manifest.load_manifest()
    for entry in entries.values():
        if source.name == entry.filename or source.stem == entry.name:
            return entry
    for entry in entries.values():
        if entry.sha256_known and entry.sha256 == sha256:
            return entry
    raise ZooError(
        f"cannot tell which model {source} is (neither its name nor its checksum matches one); "
        f"pass {setting('name')} NAME"
    )


def import_file(source: Path, *, name: str | None = None, sha256: str | None = None) -> tuple[str, Path]:
    """Install a checkpoint fetched by hand into the cache, after checking its SHA-256 and
    that it loads as a Restormer.

    For unpinned models the expected value is ``sha256`` (e.g. read off the Hub's file page)
    or the one recorded from an earlier Hub lookup; without either the file is refused. The
    record keeps where the value came from, so `verify` never credits the Hub with a user's
    hash. The copy is checked, not the source, so what is installed is exactly what was checked.
    An exported ``.onnx`` file is imported as an ONNX model (``onnx_zoo``).
    """
    if is_onnx(source):
        return onnx_zoo.import_onnx(source, name=name, sha256=sha256)
    given = None if sha256 is None else cache.check_sha256(sha256)
    if not source.is_file():
        raise ZooError(f"cannot import {source}: no such file")
    models_dir = cache.zoo_dir() / "models"
    models_dir.mkdir(parents=True, exist_ok=True)
    with source.open("rb") as src, cache.TempBeside(models_dir / source.name) as (tmp, sink):
        actual = stream(src, sink, None, source.name, progress=False)
    try:
        entry = manifest.get_entry(name) if name else _identify(source, actual)
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
    with cache.lock(entry.name):
        target = cache.own_path(entry)
        os.replace(tmp, target)
        cache.remember(entry.name, target, expected, "import")
    return entry.name, target


def _import_expectation(entry: ModelEntry, source: Path, given: str | None) -> cache.Expected:
    if entry.sha256_known:
        if given is not None and given != entry.sha256:
            raise ZooUsageError(
                f"{setting('sha256')} {given[:16]}… is not the pinned SHA-256 of {entry.name} ({entry.sha256[:16]}…); "
                f"drop {setting('sha256')}, the pinned value is used"
            )
        return cache.Expected(entry.sha256, "manifest")
    expected = cache.Expected(given, "import") if given is not None else cache.expected_sha(entry)
    if expected is None:
        raise ZooError(
            f"{entry.name} has no pinned SHA-256, so {source} cannot be verified; pass {setting('sha256')} HEX "
            "with the value shown on the Hub's file page"
        )
    return expected


def _check_loadable(copy: Path, source: Path) -> None:
    """A matching hash only proves the file is what its giver hashed: a text file with its own
    --sha256 passes that. Loading it as a Restormer is what makes it a model."""
    from restore_cli.model import checkpoints

    try:
        checkpoints.build_model(checkpoints.read_state_dict(copy), source=str(source))
    except CheckpointError as error:
        reason = str(error).replace(str(copy), str(source))
        raise ZooError(f"cannot import {source}: {reason}; nothing was installed") from None
