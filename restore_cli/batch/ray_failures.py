"""Every error Ray can raise at the driver, sorted in one place into what the dispatcher does about it.

A worker's death, whatever killed it (a SIGKILL, Ray's memory monitor, its node gone, an actor
that cannot be restarted or placed), is a `Death`: counted against the images it held, which
go back to the queue. A failure of the image itself is already a `Result` (the pipeline never
raises). What is left of our own code raising inside a worker is a `Bug`, reported as that
image's failure. Nothing Ray raises reaches the user as "unexpected", and no message built here
carries Ray's text (node IDs, IP addresses): only our own words.
"""

from __future__ import annotations

from dataclasses import dataclass

from ray.exceptions import OutOfMemoryError, RayActorError, RayError, RayTaskError


@dataclass(frozen=True)
class Death:
    """The worker is gone (or must be treated as gone)."""

    for_memory: bool
    """Killed by the node's memory monitor (or the kernel's OOM killer as Ray reports it)."""


@dataclass(frozen=True)
class Bug:
    """Our code raised inside the worker where it never should: the image fails, the worker lives."""

    error: BaseException


Verdict = Death | Bug


def classify(error: BaseException) -> Verdict:
    """What an error from `ray.get` on a worker's call means for the batch."""
    if isinstance(error, OutOfMemoryError) or (isinstance(error, RayActorError) and _mentions_memory(error)):
        return Death(for_memory=True)
    if isinstance(error, RayTaskError) and not isinstance(error, RayActorError):
        cause = error.cause if isinstance(error.cause, BaseException) else error
        return Bug(cause) if not isinstance(cause, RayError) else Death(for_memory=False)
    return Death(for_memory=False)


def _mentions_memory(error: RayActorError) -> bool:
    """An actor killed for memory is reported as a death whose context says so (Ray has no
    separate type for it); the check is on Ray's message, kept here alone."""
    text = str(getattr(error, "error_msg", "") or error).lower()
    return "out of memory" in text or "running low on memory" in text or "oom" in text.split()
