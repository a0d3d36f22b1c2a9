"""Every error restore raises for a user to act on, and how its text is kept to one line.

One module, importing nothing heavy, so that any layer can raise these and the CLI can turn
each kind into a message and an exit code without importing torch or the codecs to recognise
them. Every class derives from :class:`RestoreError`: an error of that family already says
what went wrong and what to do, while anything else reaching the top is a bug.
"""

from __future__ import annotations


class RestoreError(Exception):
    """A problem the user can fix; ``str()`` is one line naming the file or setting and the fix."""


class UsageError(RestoreError):
    """A command that cannot run as given; nothing has been read or written yet (exit 2)."""


class ImageError(RestoreError):
    """A problem with an image file that the user can fix; str() is one line naming the file."""


class InputError(RestoreError):
    """An input the chosen model cannot take (wrong number of views, mismatched sizes)."""


class CheckpointError(RestoreError):
    """A checkpoint that cannot be used. The message is one line a user can act on."""


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


class StateError(RestoreError):
    """A training state file that cannot be resumed from; str() is one line naming it and the fix."""


class WorkerError(RestoreError):
    """No Ray worker can build the model (e.g. a CUDA device where the workers have no GPU)."""


def one_line(error: BaseException) -> str:
    """The first non-empty line of an error's text, or its type's name when it has none.
    Library errors (torch's especially) can span many lines; a report keeps one per file."""
    lines = str(error).strip().splitlines()
    return (lines[0].strip() if lines else "") or type(error).__name__
