"""The stores behind URLs: fsspec filesystems, their extras, options, retries and error lines.

Every store is reached through fsspec and the store's own implementation (s3fs, gcsfs, adlfs,
or any other fsspec knows), imported only when a URL needs it, so a local batch never loads
them. Credentials and endpoints are each store's own business: its library reads its standard
configuration (``AWS_ACCESS_KEY_ID``, ``AWS_ENDPOINT_URL``, ``~/.aws/config``, instance roles,
``GOOGLE_APPLICATION_CREDENTIALS``, ``AZURE_STORAGE_ACCOUNT_NAME``...); restore only passes on
the options a user gives explicitly (`use_options`) and never prints any of them.

Stores fail in two ways that must be told apart: a transient failure (throttling, a 5xx, a
dropped or refused connection while a server restarts) is retried with backoff, while a
permanent one (no such object or bucket, access denied) becomes that file's one-line result at
once, as a missing local file does.
"""

from __future__ import annotations

import errno
import json
import logging
import mimetypes
import os
import random
import re
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from typing import Any, TypeVar

from restore_cli.errors import StorageError, StorageSetupError, one_line, setting
from restore_cli.io.urls import protocol_of

logger = logging.getLogger(__name__)

EXTRAS = {"s3": "s3", "s3a": "s3", "gs": "gcs", "gcs": "gcs", "az": "azure", "abfs": "azure", "abfss": "azure", "adl": "azure"}
"""The optional extra (``pip install "restore-cli[EXTRA]"``) that brings each protocol's package."""
OBJECT_STORES = frozenset(EXTRAS)
"""Protocols whose "folders" are only key prefixes: nothing needs creating before a write, and
an object appears whole, when its upload completes, or not at all."""
_UPLOAD_OPTIONS: dict[str, Callable[[str], dict[str, Any]]] = {
    "s3": lambda mime: {"chunksize": 2**32, "ContentType": mime},
    "s3a": lambda mime: {"chunksize": 2**32, "ContentType": mime},
    "gs": lambda mime: {"content_type": mime},
    "gcs": lambda mime: {"content_type": mime},
}
"""What each store's upload is told: the object's Content-Type (so a browser or a CDN serves it
as an image), and for s3fs a chunk size that keeps every object below S3's 5 GiB limit for one
PUT in one request, with no multipart upload that a killed worker could leave behind."""

RETRY_SECONDS = 60.0
"""How long a transient failure is retried, with backoff, before the file fails."""
_FIRST_DELAY, _MAX_DELAY = 0.5, 8.0
_PERMANENT_ERRNOS = {
    errno.EINVAL, errno.EPERM, errno.EACCES, errno.ENAMETOOLONG, errno.EMSGSIZE, errno.ENOSYS,
    errno.ENOTEMPTY, errno.EREMCHG, errno.EEXIST, errno.EISDIR, errno.ENOTDIR, errno.ENOENT,
}  # fmt: skip
_TRANSIENT_WORDS = (
    "connection", "timeout", "throttl", "slowdown", "serviceunavailable", "servicerequest",
    "serviceresponse", "transport", "incompleteread", "payload", "disconnect", "responseparser",
)  # fmt: skip
_SECRET_OPTION = re.compile(r"secret|token|password|credential|sas|key|connection_string", re.IGNORECASE)
_SECRET_VARIABLES = (
    "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AZURE_STORAGE_KEY", "AZURE_STORAGE_ACCOUNT_KEY",
    "AZURE_STORAGE_SAS_TOKEN", "AZURE_STORAGE_CONNECTION_STRING", "AZURE_STORAGE_CLIENT_SECRET", "AZURE_CLIENT_SECRET",
)  # fmt: skip

_options: dict[str, Any] = {}
_T = TypeVar("_T")


# ---------------------------------------------------------------- options


def parse_options(pairs: Iterable[str]) -> dict[str, Any]:
    """``KEY=VALUE`` pairs as keyword arguments of the store's filesystem. A VALUE that reads
    as JSON (true, 8, {"region_name": "eu-west-1"}) is taken as such, anything else as text;
    a value is never repeated in a message, as it may be a secret."""
    options: dict[str, Any] = {}
    for pair in pairs:
        key, equals, value = pair.partition("=")
        key = key.strip()
        if not equals or not key:
            shown = key if equals else "(a pair without =)"
            raise StorageSetupError(f"{setting('storage_option')} {shown}: give KEY=VALUE, such as endpoint_url=http://127.0.0.1:9000")
        options[key] = _option_value(value)
    return options


def _option_value(text: str) -> Any:
    try:
        value = json.loads(text)
    except ValueError:
        return text
    return value if isinstance(value, (bool, int, float, dict, list)) or value is None else text


def use_options(options: Mapping[str, Any]) -> None:
    """Pass ``options`` to every store this process opens from now on (a worker serving one
    command's batch calls this with the driver's)."""
    global _options
    _options = dict(options)


def current_options() -> dict[str, Any]:
    """The options in force, for work handed to another process (a Ray worker)."""
    return dict(_options)


@contextmanager
def options_in_force(options: Mapping[str, Any]) -> Iterator[None]:
    """``options`` for the stores opened while the block runs (a command's whole run)."""
    previous = current_options()
    use_options(options)
    try:
        yield
    finally:
        use_options(previous)


# ---------------------------------------------------------------- filesystems


def filesystem(url: str) -> tuple[Any, str]:
    """The fsspec filesystem for ``url`` (one per protocol and options, reused), and the path
    it knows the object by; StorageSetupError if the store's package is missing."""
    protocol = protocol_of(url)
    extra = EXTRAS.get(protocol)
    install = f'pip install "restore-cli[{extra}]"' if extra else "install fsspec and the package fsspec names for it"
    try:
        import fsspec
    except ImportError:
        raise StorageSetupError(f"{url}: {protocol}:// URLs need fsspec: {install}") from None
    try:
        kind = fsspec.get_filesystem_class(protocol)
    except ValueError:
        raise StorageSetupError(f"{url}: {protocol}:// is not a storage protocol fsspec knows; check the URL") from None
    except ImportError as error:
        raise StorageSetupError(f"{url}: {protocol}:// URLs need {'its package' if extra else one_line(error)}: {install}") from None
    try:
        return fsspec.filesystem(protocol, **_options), kind._strip_protocol(url)
    except Exception as error:
        raise StorageSetupError(
            f"{url}: cannot open the {protocol}:// store ({redact(one_line(error))}); check {setting('storage_option')}"
        ) from None


def upload_options(url: str) -> dict[str, Any]:
    options = _UPLOAD_OPTIONS.get(protocol_of(url))
    return {} if options is None else options(mimetypes.guess_type(url)[0] or "application/octet-stream")


# ---------------------------------------------------------------- retries and errors


def call(url: str, action: str, work: Callable[[], _T]) -> _T:
    """``work()``, retried with exponential backoff and jitter while it fails transiently, for
    up to RETRY_SECONDS; any failure ends as a StorageError whose text is one line naming
    ``url`` and what to do. ``action`` says what was being done ("read", "write", "list")."""
    deadline = time.monotonic() + RETRY_SECONDS
    delay = _FIRST_DELAY
    while True:
        try:
            return work()
        except Exception as error:
            retry = is_transient(error)
            if not retry or time.monotonic() + delay > deadline:
                raise explain(url, action, error, gave_up=retry) from error
            logger.debug("%s: %s failed (%s); retrying in %.1f s", url, action, redact(one_line(error)), delay)
            time.sleep(delay * random.uniform(0.5, 1.0))
            delay = min(delay * 2, _MAX_DELAY)


def is_transient(error: BaseException) -> bool:
    """Whether trying again may succeed. Stores' libraries raise their own types (s3fs turns
    S3's error codes into OSErrors with an errno; transport errors keep their library's
    class), so the decision reads the errno, or else the class names: connection, timeout,
    throttling and the like are transient; a missing object or a refusal never is."""
    if isinstance(error, (FileNotFoundError, PermissionError, IsADirectoryError, NotADirectoryError, FileExistsError)):
        return False
    if isinstance(error, (TimeoutError, ConnectionError)):
        return True
    if isinstance(error, OSError):
        return error.errno not in _PERMANENT_ERRNOS
    names = " ".join(kind.__name__.lower() for kind in type(error).__mro__)
    return any(word in names for word in _TRANSIENT_WORDS)


def explain(url: str, action: str, error: BaseException, *, gave_up: bool = False) -> StorageError:
    """One line for a failed store operation, with no secret in it."""
    detail = redact(one_line(error))
    names = " ".join(kind.__name__ for kind in type(error).__mro__)
    if isinstance(error, FileNotFoundError):
        said = "" if detail in url else f" ({detail})"
        return StorageError(f"{url}: no such object or bucket{said}; check the URL", missing=True)
    if isinstance(error, PermissionError) or "Credentials" in names:
        return StorageError(
            f"{url}: access denied ({detail}); check that the credentials this machine has for "
            f"{protocol_of(url)}:// may {action} it (see docs/storage.md)"
        )
    if gave_up:
        return StorageError(
            f"{url}: cannot {action}: the store kept failing for {RETRY_SECONDS:g} s ({detail}); "
            f"check the endpoint and the network, then rerun with {setting('skip_existing')}"
        )
    return StorageError(f"{url}: cannot {action} ({detail})")


def redact(text: str) -> str:
    """``text`` with every secret restore could know of hidden: the values of secret-looking
    storage options and of the stores' standard secret variables."""
    secrets = [str(value) for key, value in _options.items() if _SECRET_OPTION.search(key) and value]
    secrets += [os.environ[name] for name in _SECRET_VARIABLES if os.environ.get(name)]
    for secret in sorted(secrets, key=len, reverse=True):
        if len(secret) >= 4:
            text = text.replace(secret, "***")
    return text
