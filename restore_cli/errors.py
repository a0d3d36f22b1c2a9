"""Every error restore raises for a user to act on, and how its text is worded.

One module, importing nothing heavy, so that any layer can raise these and the CLI can turn
each kind into a message and an exit code without importing torch or the codecs to recognise
them. Every class derives from :class:`RestoreError`: an error of that family already says
what went wrong and what to do, while anything else reaching the top is a bug. Messages name
the user's settings through :func:`setting`, so the library never spells a command-line flag:
the CLI installs its own spellings (:func:`spelled`).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager


class RestoreError(Exception):
    """A problem the user can fix; ``str()`` is one line naming the file or setting and the fix."""


class UsageError(RestoreError):
    """A command that cannot run as given; nothing has been read or written yet (exit 2)."""


class DestinationError(UsageError):
    """A file restore would write cannot be created there (a read-only folder, a mount that
    refuses files); found before any work, so nothing computed is lost to it (exit 2)."""


class ImageError(RestoreError):
    """A problem with an image file that the user can fix; str() is one line naming the file."""


class StorageError(ImageError):
    """An object in a store that cannot be read, listed or written (no such object, access
    denied, a store that keeps failing); str() is one line naming the URL and the fix."""

    def __init__(self, message: str, *, missing: bool = False) -> None:
        super().__init__(message)
        self.missing = missing
        """The object (or its bucket) does not exist, as opposed to being unreachable."""


class StorageSetupError(UsageError):
    """URLs that cannot be used at all as given: the store's package is not installed, an
    unknown protocol, a malformed storage option, credentials inside a URL (exit 2)."""
class VideoError(RestoreError):
    """A problem with a video file the user can fix (damaged, no video stream, a codec or
    container that cannot be used); str() is one line naming the file and the fix."""


class InputError(RestoreError):
    """An input the chosen model cannot take (wrong number of views, mismatched sizes)."""


class CheckpointError(RestoreError):
    """A checkpoint that cannot be used. The message is one line a user can act on."""


class ExportError(RestoreError):
    """An exported graph that failed its check against PyTorch; nothing was written."""


class ZooError(RestoreError):
    """A model-zoo problem the user can act on; ``str()`` is one line naming the model and the fix."""


class ZooUsageError(ZooError):
    """A zoo request that cannot be right as given (exit 2), rather than a failed download."""


class UnknownModelError(ZooUsageError):
    """The name is not in the manifest."""


class SlowPrecisionError(RestoreError, ValueError):
    """The precision asked for would be emulated (or crawl) on this hardware."""


class MemoryBudgetError(RestoreError):
    """The budget cannot hold even the smallest tile. The message says what would."""


class MetricError(RestoreError, ValueError):
    """Two images that cannot be compared; the message says why in words a user can act on."""


class DataError(RestoreError):
    """Training data that cannot be used; str() is one line naming the file and the fix."""


class SaveError(RestoreError):
    """Training could not write its checkpoint or state file after all; the message names
    where the weights went instead (or that they could not be kept anywhere)."""


class StateError(RestoreError):
    """A training state file that cannot be resumed from; str() is one line naming it and the fix."""


class WorkerError(RestoreError):
    """No Ray worker can build the model (e.g. a CUDA device where the workers have no GPU)."""


def one_line(error: BaseException) -> str:
    """The first non-empty line of an error's text, or its type's name when it has none.
    Library errors (torch's especially) can span many lines; a report keeps one per file."""
    lines = str(error).strip().splitlines()
    return (lines[0].strip() if lines else "") or type(error).__name__


_spelling: dict[str, str] = {}


def setting(name: str) -> str:
    """How a message names the user's setting ``name`` (a parameter such as ``max_memory``).

    The library words its advice in terms of its own parameters; whoever drives it can
    install other spellings, as the command line does with its flags, so that the same
    message says ``--max-memory`` there and ``max_memory`` to a Python caller.
    """
    return _spelling.get(name, name)


def install_spelling(spelling: Mapping[str, str]) -> None:
    """Name settings as ``spelling`` says from now on, in this process (a worker process that
    serves one command's run)."""
    global _spelling
    _spelling = dict(spelling)


def current_spelling() -> dict[str, str]:
    """The spellings in force, for work handed to another process (a Ray worker)."""
    return dict(_spelling)


@contextmanager
def spelled(spelling: Mapping[str, str]) -> Iterator[None]:
    """Name settings as ``spelling`` says in every message made while the block runs, in
    every thread (the block is the whole of a command's run)."""
    previous = current_spelling()
    install_spelling(spelling)
    try:
        yield
    finally:
        install_spelling(previous)
