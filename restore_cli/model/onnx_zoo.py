"""Exported ONNX models in the zoo's cache, so an offline site can keep a verified ONNX zoo.

``restore models import deraining.onnx --sha256 HEX`` installs a graph under its name
(``deraining.onnx``) beside the imported checkpoints; from then on ``--model deraining.onnx``
runs it, after checking it against that SHA-256 exactly as a checkpoint is checked (the match
remembered by path, size and mtime). No manifest pins an export's checksum, since every export
is made locally, so the value must be given: ``restore export`` prints it. An imported file
must also open in ONNX Runtime as an image restoration graph, so a wrong file with its own
checksum is still refused.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from restore_cli.errors import CheckpointError, ZooError, ZooUsageError, setting
from restore_cli.model import cache
from restore_cli.model.download import stream
from restore_cli.model.onnx_format import ONNX_SUFFIX, check_interface, onnxruntime, runtime_reason

NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*\.onnx")
ORIGIN = "import"


def model_name(source: Path, name: str | None) -> str:
    """The zoo name of an imported graph: ``name`` (or the file's stem), ending in .onnx."""
    chosen = name or source.stem
    chosen = chosen if chosen.lower().endswith(ONNX_SUFFIX) else chosen + ONNX_SUFFIX
    if not NAME.fullmatch(chosen):
        raise ZooUsageError(f"{chosen!r} cannot name an ONNX model: use letters, digits, '_', '-' and '.'")
    return chosen


def import_onnx(source: Path, *, name: str | None = None, sha256: str | None = None) -> tuple[str, Path]:
    """Install an exported graph into the cache after checking its SHA-256 and that ONNX
    Runtime opens it as an image restoration network; nothing is installed otherwise."""
    chosen = model_name(source, name)
    if sha256 is None:
        raise ZooUsageError(
            f"{source}: an ONNX export has no pinned SHA-256; pass {setting('sha256')} HEX, the value "
            "`restore export` printed when it wrote the file"
        )
    expected = cache.check_sha256(sha256)
    if not source.is_file():
        raise ZooError(f"cannot import {source}: no such file")
    models_dir = cache.zoo_dir() / "models"
    models_dir.mkdir(parents=True, exist_ok=True)
    with source.open("rb") as src, cache.TempBeside(models_dir / chosen) as (tmp, sink):
        actual = stream(src, sink, None, source.name, progress=False)
    try:
        if actual != expected:
            raise ZooError(f"{source}: its sha256 is {actual[:16]}…, expected {expected[:16]}…; nothing was installed")
        _check_loadable(tmp, source)
    except ZooError:
        tmp.unlink()
        raise
    with cache.lock(chosen):
        target = models_dir / chosen
        os.replace(tmp, target)
        cache.remember(chosen, target, cache.Expected(expected, ORIGIN), ORIGIN)
    return chosen, target


def resolve_onnx(name: str, rehash: bool = False) -> Path:
    """The verified file of an imported graph; a file that no longer matches is deleted.
    ``rehash`` hashes it even when this very file matched before (`restore models verify`)."""
    with cache.lock(name):
        record = cache.read_records().get(name)
        path = Path(record["path"]) if record else None
        if record is None or path is None or not path.is_file():
            raise ZooError(
                f"no ONNX model {name} in the cache; export one with `restore export`, then "
                f"`restore models import FILE.onnx --sha256 HEX`"
            )
        expected = cache.Expected(record["sha256"], ORIGIN)
        if rehash or not cache.vouched_for(record, path, expected):
            _check(name, path, expected)
        return path


def imported_names() -> list[str]:
    """Every ONNX model imported into the cache, by name."""
    return sorted(name for name in cache.read_records() if name.endswith(ONNX_SUFFIX))


def _check(name: str, path: Path, expected: cache.Expected) -> None:
    actual = cache.sha256_of(path)
    if actual != expected.sha256:
        path.unlink(missing_ok=True)
        cache.forget(name)
        raise ZooError(
            f"{name}: checksum mismatch for {path} (expected sha256 {expected.sha256[:16]}…, got {actual[:16]}…); "
            "the file was deleted — import it again"
        )
    cache.remember(name, path, expected, ORIGIN)


def _check_loadable(copy: Path, source: Path) -> None:
    ort = onnxruntime()
    try:
        session = ort.InferenceSession(str(copy), providers=["CPUExecutionProvider"])
        check_interface(session, str(source))
    except CheckpointError as error:
        raise ZooError(f"cannot import {source}: {error}; nothing was installed") from None
    except Exception as error:  # ONNX Runtime's own types for damaged protobufs and bad graphs
        raise ZooError(f"cannot import {source}: not a usable ONNX model ({runtime_reason(error)}); nothing was installed") from None
