"""What the command line says besides results: one-line errors and their exit codes, the
flags that library messages name, and ``--debug``'s log.

Library messages name the user's settings by parameter (``max_memory``); every command runs
inside :func:`flag_spelling`, which makes them name the flag the user typed (``--max-memory``).
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from typing import Any, NoReturn

import typer

from restore_cli.errors import spelled

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_INTERRUPTED = 0, 1, 2, 130
SHORT_FLAGS = {"output": "-o"}
"""Settings that messages name by their short flag, as the examples do (``-o FOLDER``)."""


def fail(message: str, code: int) -> NoReturn:
    """End the command with one line on stderr and ``code``."""
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(code)


def flags_of(commands: Iterable[Any]) -> dict[str, str]:
    """Each option's parameter name and the flag it is typed as, over every (Click) command
    given, groups' subcommands included: the long flag, or the short one where messages use it."""
    spelling: dict[str, str] = {}
    for command in commands:
        spelling.update(flags_of(getattr(command, "commands", {}).values()))
        for param in command.params:
            if param.param_type_name == "option" and param.name:
                flags = [flag for flag in param.opts if flag.startswith("--")] or param.opts
                spelling.setdefault(param.name, SHORT_FLAGS.get(param.name, max(flags, key=len)))
    return spelling


@contextmanager
def flag_spelling(root: Any) -> Iterator[None]:
    """Run a command with library messages naming settings as flags of ``root``'s commands."""
    with spelled(flags_of([root])):
        yield


class _CurrentStderr(logging.StreamHandler):
    """--debug's handler: writes to whatever sys.stderr is at the time of each record (a
    command run in-process by a test or a script gets its own), and a record that cannot be
    written is dropped: a debug log must never print a traceback of its own ("--- Logging
    error ---")."""

    def __init__(self) -> None:
        super().__init__()
        self.set_name("restore-debug")
        self.setFormatter(logging.Formatter("%(name)s: %(message)s"))

    @property  # type: ignore[override]
    def stream(self) -> Any:
        return sys.stderr

    @stream.setter
    def stream(self, value: Any) -> None:
        pass  # always the current sys.stderr

    def handleError(self, record: logging.LogRecord) -> None:
        pass


def debug_logging(enabled: bool = True) -> None:
    """--debug shows this package's own log and the tracebacks of unexpected errors; the
    libraries' debug chatter (Pillow's chunk-by-chunk PNG log, say) stays off. One handler,
    however many commands run in this process; a command without --debug removes it, so an
    earlier command's --debug does not leak into the next one."""
    package = logging.getLogger("restore_cli")
    for earlier in [handler for handler in package.handlers if handler.get_name() == "restore-debug"]:
        package.removeHandler(earlier)
    package.setLevel(logging.DEBUG if enabled else logging.NOTSET)
    if enabled:
        package.addHandler(_CurrentStderr())
