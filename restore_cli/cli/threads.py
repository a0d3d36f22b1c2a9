"""`--threads N`, the same on every command: how many threads torch computes with.

Without it, the count follows ``restore_cli.engine.threads.default_threads``: one per core,
less the cores other work keeps busy, measured over the command's own start-up. So the
counters are sampled when a command starts (:func:`command_started`, from the app's
callback), before torch is imported.
"""

from __future__ import annotations

from typing import Any, Optional

import typer

from restore_cli.engine import threads

HELP = "Threads to compute with (default: one per core, less the cores other work keeps busy; OMP_NUM_THREADS if set)."

_started: list[threads.CpuSample] = []


def option() -> Any:
    """The --threads option, for a command's signature."""
    return typer.Option(None, "--threads", min=1, metavar="N", help=HELP)


THREADS_TYPE = Optional[int]


def command_started() -> None:
    """Note the CPU counters as a command starts, to tell later how busy the machine is."""
    _started[:] = [threads.sample()]


def chosen(given: Optional[int]) -> int:
    """The thread count for this run: ``--threads`` as given, else the measured default."""
    if given is not None:
        return given
    return threads.default_threads(_started[0] if _started else threads.sample())


def use(given: Optional[int]) -> int:
    """Compute with ``--threads`` (or the default) threads in this process; returns the count."""
    count = chosen(given)
    threads.use_threads(count)
    return count
