"""Help that reads like a hand-written man page.

Typer's help lists every parameter with its Python type (`--json <bool>`, `<list[str]>`) and
writes required arguments as `{INPUT...}...`; ours names each value the way the rest of the
text does (`--tile auto|0|N`, `INPUT...`), lists the arguments before the options, and keeps
Click's plain layout (usage, description, arguments, options, examples), so it also reads
well in a pipe or a terminal without colours. Parsing stays Typer's.
"""

from __future__ import annotations

from typing import Any

import typer
from typer.core import TyperArgument, TyperCommand


def _arguments(command: TyperCommand, ctx: typer.Context) -> list[TyperArgument]:
    return [param for param in command.get_params(ctx) if isinstance(param, TyperArgument)]


def _argument_name(argument: TyperArgument) -> str:
    """The argument as usage and the Arguments section show it: its metavar as written."""
    if argument.metavar is not None:
        return argument.metavar
    name = (argument.name or "").upper()
    return name if argument.nargs == 1 else f"[{name}]..."


class ManPageCommand(TyperCommand):
    """A Typer command with plain, man-page help."""

    def collect_usage_pieces(self, ctx: typer.Context) -> list[str]:
        pieces = [self.options_metavar] if self.options_metavar else []
        return pieces + [_argument_name(argument) for argument in _arguments(self, ctx)]

    def format_help(self, ctx: typer.Context, formatter: Any) -> None:
        super(TyperCommand, self).format_help(ctx, formatter)  # Click's plain layout, not Typer's panels

    def format_options(self, ctx: typer.Context, formatter: Any) -> None:
        arguments = [(_argument_name(argument), argument.help or "") for argument in _arguments(self, ctx)]
        if arguments:
            with formatter.section("Arguments"):
                formatter.write_dl(arguments)
        options = [param.get_help_record(ctx) for param in self.get_params(ctx) if not isinstance(param, TyperArgument)]
        with formatter.section("Options"):
            formatter.write_dl([record for record in options if record is not None])
