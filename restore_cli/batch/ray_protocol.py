"""What the `restore` process and its Ray driver process say to each other, and the pipe they say it on.

`--engine ray` runs Ray's driver in a child process (`ray_driver`), never in the process the
user started: Ray's C++ core ends its driver outright when the local node or the connection to
the cluster goes (no Python code runs after that), and prints its own log lines on the driver's
stdout and stderr. In a child, both are contained: the child's output goes where `restore`
decides (nowhere unless --debug), and its death is one more event the parent reports in its own
words, with a result for every input. Nothing here imports Ray, so the parent never does.

Messages are pickled dataclasses, each framed by its length, over a pipe in each direction.
"""

from __future__ import annotations

import os
import pickle
import select
import struct
from dataclasses import dataclass, field
from typing import Any

from restore_cli.batch.models import EngineSettings, ModelChoice, ModelSpec
from restore_cli.batch.pipeline import FileOptions, Result
from restore_cli.batch.planning import Job
from restore_cli.errors import current_spelling
from restore_cli.io import stores
from restore_cli.io.files import remove_leftover_temp_files


@dataclass(frozen=True)
class RayOptions:
    """Where and how wide to run on the cluster, and how much each worker reserves."""

    address: str | None = None
    """None: RAY_ADDRESS if set, else a new local Ray instance on this machine's cores."""
    workers: int | None = None
    """None: as many as the cluster's CPUs (and GPUs, when workers take some) allow."""
    cpus_per_worker: float = 1.0
    gpus_per_worker: float = 0.0
    threads: int | None = None
    """Torch threads in each worker; None: one per CPU it reserves."""
    debug: bool = False
    """Let Ray's own logs and the workers' output through to stderr."""


@dataclass(frozen=True)
class Weights:
    """A checkpoint the `restore` process resolved, verified and built once, as `torch.save`
    bytes: the driver process ships them without needing torch, every worker builds its model
    from them, and no node needs the model cache."""

    data: Any
    """The bytes; an ObjectRef to them once shipped."""
    source: str
    """The file they came from, for error messages."""


@dataclass(frozen=True)
class Recipe:
    """Everything a worker needs to build its pipeline; sent with each actor's creation."""

    settings: EngineSettings
    choice: ModelChoice
    weights: dict[ModelSpec, Weights]
    format: str | None
    quality: int
    max_pixels: int | None
    cpus: float
    gpus: float
    threads: int | None = None
    """Torch threads in each worker (`RayOptions.threads`)."""
    workers: int = 1
    """How many workers the batch has, so a worker can tell how many may share its node."""
    spelling: dict[str, str] = field(default_factory=current_spelling)
    """How the driver's messages name settings, so a worker's say the same."""
    files: FileOptions = field(default_factory=FileOptions)
    """Output depth, RAW development and before/after views, as the local engine has them."""
    storage_options: dict[str, Any] = field(default_factory=stores.current_options)
    """The command's explicit options for object stores; credentials otherwise come from
    each node's own configuration of its store (environment, config files, instance role)."""
    killed_for_memory_once: frozenset[str] = frozenset()
    """Test hook: inputs whose first attempt raises Ray's OutOfMemoryError, as if the memory
    monitor had killed the worker (from RESTORE_TEST_KILLED_FOR_MEMORY, os.pathsep-separated)."""


# ---------------------------------------------------------------- restore -> driver


@dataclass(frozen=True)
class Start:
    """Join the cluster (or start a local Ray) and check that one worker fits."""

    options: RayOptions
    spelling: dict[str, str]


@dataclass(frozen=True)
class Batch:
    """The jobs still to run, each with its place in the batch, and how to run them."""

    recipe: Recipe
    jobs: list[tuple[int, Job]]


@dataclass(frozen=True)
class Cancel:
    """Ctrl-C or SIGTERM: drop the queue, stop running images at their next tile, report what finishes."""


# ---------------------------------------------------------------- driver -> restore


@dataclass(frozen=True)
class Connected:
    """The cluster is there and holds at least one worker."""


@dataclass(frozen=True)
class Unreachable:
    """Ray could not join the cluster (or start a local one): why, in our words."""

    why: str


@dataclass(frozen=True)
class Refused:
    """The cluster cannot run this batch (no worker fits, or none can build the model): one line."""

    message: str


@dataclass(frozen=True)
class Finished:
    """The result of the job at ``index``."""

    index: int
    result: Result


@dataclass(frozen=True)
class Notice:
    """A run-level warning from the workers (metadata an output format could not hold)."""

    line: str


@dataclass(frozen=True)
class Lost:
    """Nothing more will finish: the cluster went away, or no worker can be kept alive on it;
    ``why`` in our words. Every job not reported fails as not restored, for that reason."""

    why: str


@dataclass(frozen=True)
class Done:
    """Every job the driver will ever report has been reported."""


def remove_leftovers(job: Job) -> None:
    """Remove the temp files of a job's output whose writer is known to be dead (its worker
    was killed, or the driver and its workers are gone): outputs stay whole or absent."""
    if job.output is not None:
        remove_leftover_temp_files([job.output])


_LENGTH = struct.Struct("!Q")


class ChannelClosed(EOFError):
    """The other process has gone (exited or was killed)."""


class Channel:
    """Length-framed pickled messages over a pipe's two file descriptors (either may be None)."""

    def __init__(self, read_fd: int | None, write_fd: int | None) -> None:
        self.read_fd = read_fd
        self.write_fd = write_fd
        self._buffer = bytearray()

    def send(self, message: object) -> None:
        assert self.write_fd is not None
        data = pickle.dumps(message, protocol=pickle.HIGHEST_PROTOCOL)
        view = memoryview(_LENGTH.pack(len(data)) + data)
        try:
            while view:
                view = view[os.write(self.write_fd, view) :]
        except (BrokenPipeError, OSError) as error:
            raise ChannelClosed(str(error)) from None

    def receive(self, timeout: float | None = None) -> object | None:
        """The next message; None if none came within ``timeout`` seconds (None: wait)."""
        assert self.read_fd is not None
        while True:
            message = self._take()
            if message is not None:
                return message
            ready, _, _ = select.select([self.read_fd], [], [], timeout)
            if not ready:
                return None
            chunk = os.read(self.read_fd, 1 << 20)
            if not chunk:
                raise ChannelClosed("the other process closed the pipe")
            self._buffer += chunk

    def _take(self) -> object | None:
        if len(self._buffer) < _LENGTH.size:
            return None
        (length,) = _LENGTH.unpack_from(self._buffer)
        end = _LENGTH.size + length
        if len(self._buffer) < end:
            return None
        data = bytes(self._buffer[_LENGTH.size : end])
        del self._buffer[:end]
        return pickle.loads(data)

    def close(self) -> None:
        for fd in {self.read_fd, self.write_fd} - {None}:
            try:
                os.close(fd)  # type: ignore[arg-type]
            except OSError:
                pass
