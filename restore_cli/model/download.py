"""Fetching a checkpoint: from the Hugging Face Hub at its pinned revision, or, when the Hub
lacks the file or cannot be reached, from the authors' GitHub release, hashed while it streams.

Which SHA-256 the file must have is decided before a byte is fetched (the manifest's, else the
one the Hub reports for its LFS file); a release download is written beside its final name
and renamed into place only on a match, so no reader ever sees a partial or unverified file.
"""

from __future__ import annotations

import hashlib
import logging
import os
import urllib.request
from pathlib import Path
from typing import IO, Any, Union

from tqdm.std import tqdm

from restore_cli.errors import ZooError
from restore_cli.model import cache
from restore_cli.model.manifest import ModelEntry

logger = logging.getLogger(__name__)


class SilentBar(tqdm):
    """tqdm's interface with nothing drawn: huggingface_hub must not draw its own bar either."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.pop("name", None)
        super().__init__(*args, **{**kwargs, "disable": True})

    def update(self, n: float | None = 1) -> bool | None:
        self.n += n or 0  # a disabled tqdm stops counting; huggingface_hub's Xet path reads n
        return None


DownloadBar = type[tqdm]
"""A tqdm class that draws a download, as huggingface_hub takes one."""
Progress = Union[bool, DownloadBar]
"""How a download is shown: True for huggingface_hub's own bar, False for nothing, or a bar
class of the caller's (the command line draws its own)."""


def _bar_class(progress: Progress) -> DownloadBar:
    if progress is True:
        from huggingface_hub.utils import tqdm as hub_bar

        return hub_bar
    return progress or SilentBar


def _ask_hub(entry: ModelEntry) -> tuple[bool, str | None]:
    """Whether the Hub serves this file, and the SHA-256 it reports for it (its LFS etag)."""
    if entry.hub is None:
        return False, None
    from huggingface_hub import get_hf_file_metadata, hf_hub_url

    endpoint = cache.hub_endpoint()
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
    return True, etag if cache.SHA256.fullmatch(etag) else None


def _why(err: BaseException) -> str:
    return f"{type(err).__name__}: {str(err).splitlines()[0] if str(err) else 'no detail'}"


def _from_hub(entry: ModelEntry, progress: Progress) -> Path | None:
    from huggingface_hub import hf_hub_download

    assert entry.hub is not None
    try:
        return Path(
            hf_hub_download(
                entry.hub.repo,
                entry.hub.filename,
                revision=entry.hub.revision,
                cache_dir=cache.hub_cache(),
                endpoint=cache.hub_endpoint(),
                tqdm_class=_bar_class(progress),
            )
        )
    except Exception as err:  # the Hub failed mid-way: the release URL is the documented fallback
        logger.warning("%s: download from the Hub failed (%s); using %s", entry.name, _why(err), entry.url)
        return None


def stream(source: IO[bytes], sink: IO[bytes], total: int | None, label: str, progress: Progress) -> str:
    """Copy while hashing, so the file is verified before it ever gets its final name."""
    digest = hashlib.sha256()
    with _bar_class(progress)(total=total, desc=label) as bar:
        for block in iter(lambda: source.read(cache.CHUNK), b""):
            digest.update(block)
            sink.write(block)
            bar.update(len(block))
    return digest.hexdigest()


def _from_release(entry: ModelEntry, expected: cache.Expected, progress: Progress) -> Path:
    target = cache.own_path(entry)
    target.parent.mkdir(parents=True, exist_ok=True)
    try:
        with urllib.request.urlopen(entry.url, timeout=60) as response, cache.TempBeside(target) as (tmp, sink):
            length = response.headers.get("Content-Length")
            actual = stream(response, sink, int(length) if length else None, entry.filename, progress)
    except OSError as err:  # urllib's URLError and HTTPError are OSErrors
        raise ZooError(
            f"{entry.name}: could not download {entry.url} ({_why(err)}); check the connection, or fetch "
            f"the file elsewhere and run `restore models import FILE`"
        ) from None
    if actual != expected.sha256:
        tmp.unlink()
        raise cache.mismatch(entry, entry.url, expected.sha256, actual)
    os.replace(tmp, target)
    cache.remember(entry.name, target, expected, "release")
    return target


def download(entry: ModelEntry, progress: Progress) -> Path:
    """Fetch and verify ``entry``'s checkpoint (the caller holds its lock)."""
    on_hub, hub_sha = _ask_hub(entry)
    expected = cache.Expected(entry.sha256, "manifest") if entry.sha256_known else hub_sha and cache.Expected(hub_sha, "hub")
    if not expected:
        raise ZooError(
            f"{entry.name} has no pinned SHA-256 and the Hub did not report one, so {entry.url} cannot be "
            f"verified; retry when {cache.hub_endpoint()} is reachable, or run `restore models import FILE "
            f"--name {entry.name} --sha256 HEX` with the SHA-256 shown on the Hub's file page"
        )
    hub_path = _from_hub(entry, progress) if on_hub else None
    if hub_path is not None:
        return cache.check(entry, hub_path, expected, "hub")
    return _from_release(entry, expected, progress)
