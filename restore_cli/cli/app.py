"""The ``restore`` command line. Thin by design: parse options, call the library, print."""

from __future__ import annotations

import sys
from typing import Optional

import typer

from restore_cli import __version__
from restore_cli.cli import threads
from restore_cli.cli.bench import EPILOG as BENCH_EPILOG
from restore_cli.cli.bench import bench_command
from restore_cli.cli.console import flag_spelling, show_log, usage_message
from restore_cli.cli.eval import eval_command
from restore_cli.cli.export import EPILOG as EXPORT_EPILOG
from restore_cli.cli.export import export_command
from restore_cli.cli.help import ManPageCommand
from restore_cli.cli.models import models_app
from restore_cli.cli.run import RUN, run_command
from restore_cli.cli.tasks import TASKS, deblur, defocus, denoise, derain, epilog
from restore_cli.cli.train import EPILOG as TRAIN_EPILOG
from restore_cli.cli.train import train_command

app = typer.Typer(
    name="restore",
    help="Clean photographs with Restormer: denoise, derain, deblur, defocus.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
)
app.add_typer(models_app, name="models")
app.command("denoise", epilog=epilog(TASKS["denoise"]), cls=ManPageCommand)(denoise)
app.command("derain", epilog=epilog(TASKS["derain"]), cls=ManPageCommand)(derain)
app.command("deblur", epilog=epilog(TASKS["deblur"]), cls=ManPageCommand)(deblur)
app.command("defocus", epilog=epilog(TASKS["defocus"]), cls=ManPageCommand)(defocus)
app.command("eval", cls=ManPageCommand)(eval_command)
app.command("run", epilog=epilog(RUN), cls=ManPageCommand)(run_command)
app.command("bench", epilog=BENCH_EPILOG, cls=ManPageCommand)(bench_command)
app.command("train", epilog=TRAIN_EPILOG, cls=ManPageCommand)(train_command)
app.command("export", epilog=EXPORT_EPILOG, cls=ManPageCommand)(export_command)


def _print_version(value: bool) -> None:
    if value:
        typer.echo(f"restore {__version__}")
        raise typer.Exit()


@app.callback()
def main(
    context: typer.Context,
    version: Optional[bool] = typer.Option(
        None, "--version", callback=_print_version, is_eager=True, help="Show the version and exit."
    ),
) -> None:
    """Clean photographs with Restormer: denoise, derain, deblur, defocus."""
    threads.command_started()
    show_log()
    context.with_resource(flag_spelling(context.command))  # for the whole of the command's run


def entry_point() -> None:
    """Console script and ``python -m restore_cli``: a usage error is one line on stderr with
    exit code 2, like every other error, instead of Click's multi-line panel."""
    try:
        code = app(prog_name="restore", standalone_mode=False)
    except typer.TyperException as error:  # Click's usage errors, as Typer re-exports them
        context = getattr(error, "ctx", None)
        if type(error).__name__ == "NoArgsIsHelpError":  # `restore`, `restore models`: show what there is
            typer.echo(context.get_help())
            sys.exit(0)
        hint = f" (see `{context.command_path} --help`)" if context is not None else ""
        typer.echo(f"error: {usage_message(error)}{hint}", err=True)
        code = error.exit_code
    except typer.Abort:
        code = 130
    sys.exit(code if isinstance(code, int) else 0)
