"""`restore models ...`: list, download, locate, verify and import zoo checkpoints."""

import typer

models_app = typer.Typer(help="Manage the pretrained Restormer checkpoints.", no_args_is_help=True)
