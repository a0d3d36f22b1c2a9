"""What the command line says besides results: one-line errors and their exit codes, the
flags that library messages name, and ``--debug``'s log.

Library messages name the user's settings by parameter (``max_memory``); every command runs
inside :func:`flag_spelling`, which makes them name the flag the user typed (``--max-memory``).
"""

from __future__ import annotations

import logging
import re
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


_RULES = {
    "greater_than_equal": "must be at least {ge}",
    "greater_than": "must be more than {gt}",
    "less_than_equal": "must be at most {le}",
    "less_than": "must be less than {lt}",
    "int_parsing": "must be a whole number",
    "int_from_float": "must be a whole number",
    "float_parsing": "must be a number",
    "bool_parsing": "must be true or false",
}
"""The checks Typer delegates to its validation library, in our words rather than its own."""
_CHOICES = re.compile(r"is not one of (.*?)\.?$")


def usage_message(error: Any) -> str:
    """A usage error's message. Typer checks values (ranges, choices, numbers) with a
    validation library whose wording ("Input should be greater than or equal to 1", "Value
    error, 'gif' is not one of ...") would be the only such text restore prints; those are
    put as the rest are: the flag, the value given, and what it must be."""
    problems = getattr(error.__cause__, "errors", None)
    param = getattr(error, "param", None)
    if not callable(problems) or param is None:
        return str(error.format_message())
    problem = problems()[0]
    context = problem.get("ctx") or {}
    cause = str(context.get("error", problem.get("msg", "")))
    choices = _CHOICES.search(cause)
    if choices:
        rule = "must be one of " + ", ".join(re.findall(r"'([^']*)'", choices.group(1)))
    else:
        rule = _RULES.get(problem.get("type"), cause).format(**context)
    flags = [flag for flag in param.opts if flag.startswith("--")] or [param.metavar or str(param.name).upper()]
    return f"{max(flags, key=len)} {problem.get('input')}: {rule}"


@contextmanager
def flag_spelling(root: Any) -> Iterator[None]:
    """Run a command with library messages naming settings as flags of ``root``'s commands."""
    with spelled(flags_of([root])):
        yield


class _Stderr(logging.StreamHandler):  # type: ignore[type-arg]
    """Writes to whatever sys.stderr is when a record comes: a progress display's proxy while
    one is drawn (so a warning appears above it), a test runner's capture in tests. A record
    that cannot be written is dropped: a log must never print a traceback of its own
    ("--- Logging error ---")."""

    @property  # type: ignore[override]
    def stream(self) -> Any:
        return sys.stderr

    @stream.setter
    def stream(self, value: Any) -> None:
        pass

    def handleError(self, record: logging.LogRecord) -> None:
        pass


class _Worded(logging.Formatter):
    """Warnings as every other warning the CLI prints (`warning: ...`); debug lines by module."""

    def format(self, record: logging.LogRecord) -> str:
        text = record.getMessage()
        if record.exc_info:
            text += "\n" + self.formatException(record.exc_info)
        if record.levelno >= logging.ERROR:
            return f"error: {text}"
        return f"warning: {text}" if record.levelno >= logging.WARNING else f"{record.name}: {text}"


def show_log() -> None:
    """The library's warnings (a Hub fallback, TLC's note on narrow tiles) on stderr, worded
    as the CLI's own lines. One handler, however many commands run in this process."""
    package = logging.getLogger("restore_cli")
    for earlier in [handler for handler in package.handlers if handler.get_name() == "restore-cli"]:
        package.removeHandler(earlier)
    handler = _Stderr()
    handler.set_name("restore-cli")
    handler.setFormatter(_Worded())
    package.addHandler(handler)
    package.setLevel(logging.WARNING)


def debug_logging(enabled: bool = True) -> None:
    """--debug shows this package's own log and the tracebacks of unexpected errors; the
    libraries' debug chatter (Pillow's chunk-by-chunk PNG log, say) stays off. `show_log`
    sets warnings-only again for each command, so an earlier command's --debug does not leak
    into the next one run in the same process."""
    if enabled:
        logging.getLogger("restore_cli").setLevel(logging.DEBUG)
