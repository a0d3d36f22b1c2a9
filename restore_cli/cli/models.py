"""`restore models ...`: list, download, locate, verify and import zoo checkpoints."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any, List, NoReturn, Optional

import typer

from restore_cli.batch import jsonl
from restore_cli.cli.console import EXIT_FAILED, EXIT_USAGE, fail
from restore_cli.cli.help import ManPageCommand
from restore_cli.cli.progress import RichDownloadBar
from restore_cli.errors import ZooError, ZooUsageError
from restore_cli.model import manifest, zoo

models_app = typer.Typer(help="Manage the pretrained Restormer checkpoints.", no_args_is_help=True, rich_markup_mode=None)

LICENCE_NOTICE = (
    "The official Restormer weights are under the authors' Academic Public License: "
    "non-commercial use only."
)


def _fail(err: ZooError) -> NoReturn:
    """One line on stderr; an unknown model name is a usage error (2), the rest exit 1."""
    fail(str(err), EXIT_USAGE if isinstance(err, ZooUsageError) else EXIT_FAILED)


def _describe(entry: manifest.ModelEntry) -> dict[str, Any]:
    cached = zoo.cached_path(entry.name)
    return {
        "name": entry.name,
        "task": entry.task,
        "description": entry.description,
        "variant": entry.variant,
        "size": entry.size or None,
        "cached": cached is not None,
        "path": str(cached) if cached else None,
        "pinned": entry.sha256_known,
        "licence": entry.licence,
        "paper": [dataclasses.asdict(result) for result in entry.paper],
    }


def _psnr_text(row: dict[str, Any]) -> str:
    """The paper's first (headline) score; the full list is in `--json`."""
    if not row["paper"]:
        return "-"
    headline = row["paper"][0]
    sigma = f" σ={headline['sigma']}" if headline["sigma"] else ""
    return f"{headline['psnr']:.2f} dB ({headline['benchmark']}{sigma})"


def _table(rows: list[dict[str, Any]]) -> list[str]:
    """Plain aligned columns: nothing truncated, and each model stays on one greppable line."""
    header = ("name", "task", "size", "cached", "paper PSNR", "licence")
    cells = [header] + [
        (
            row["name"],
            row["task"],
            f"{row['size'] / 1e6:.1f} MB" if row["size"] else "?",
            "yes" if row["cached"] else "no",
            _psnr_text(row),
            row["licence"],
        )
        for row in rows
    ]
    widths = [max(len(line[i]) for line in cells) for i in range(len(header))]
    return ["  ".join(cell.ljust(width) for cell, width in zip(line, widths)).rstrip() for line in cells]


@models_app.command("list", cls=ManPageCommand)
def list_models(as_json: bool = typer.Option(False, "--json", help="One JSON line per model and a summary, on stdout.")) -> None:
    """List the zoo: task, size, whether cached, paper PSNR and licence."""
    rows = [_describe(entry) for entry in manifest.load_manifest().values()]
    if as_json:
        for row in rows:
            typer.echo(jsonl.line("model", **row))
        typer.echo(jsonl.summary("models list", "done", 0, total=len(rows), licence_notice=LICENCE_NOTICE))
        return
    for line in _table(rows):
        typer.echo(line)
    typer.echo(LICENCE_NOTICE)


@models_app.command("download", cls=ManPageCommand)
def download(
    names: Optional[List[str]] = typer.Argument(None, metavar="[NAME]...", help="Models to fetch.", show_default=False),
    every: bool = typer.Option(False, "--all", help="Fetch every model in the zoo."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress bar."),
) -> None:
    """Download and verify checkpoints into the cache (keeps going if one fails)."""
    if bool(names) == every:
        fail("give model names or --all (not both)", EXIT_USAGE)
    failed = False
    for name in manifest.model_names() if every else names or []:
        try:
            path = zoo.resolve(name, offline=False, progress=RichDownloadBar if not quiet else False)
        except ZooUsageError as err:
            _fail(err)
        except ZooError as err:
            typer.echo(f"error: {err}", err=True)
            failed = True
            continue
        typer.echo(f"{name}: {path}", err=True)
    if failed:
        raise typer.Exit(EXIT_FAILED)


@models_app.command("path", cls=ManPageCommand)
def show_path(
    name: str = typer.Argument(..., metavar="NAME", help="Model name."),
    offline: bool = typer.Option(False, "--offline", help="Use only the cache."),
) -> None:
    """Print the local path of a verified checkpoint, fetching it first if needed."""
    try:
        typer.echo(zoo.resolve(name, offline=offline or None, progress=RichDownloadBar))
    except ZooError as err:
        _fail(err)


@models_app.command("verify", cls=ManPageCommand)
def verify_models(names: Optional[List[str]] = typer.Argument(None, metavar="[NAME]...", help="Models to check (default: all).", show_default=False)) -> None:
    """Re-hash cached checkpoints; a mismatching file is deleted. Exit 1 on any mismatch."""
    bad = False
    try:
        for outcome in zoo.verify(names or None):
            typer.echo(f"{outcome.name}: {outcome.state} — {outcome.message}")
            bad = bad or outcome.state == "mismatch"
    except ZooError as err:
        _fail(err)
    if bad:
        raise typer.Exit(EXIT_FAILED)


@models_app.command("import", cls=ManPageCommand)
def import_(
    file: Path = typer.Argument(..., metavar="FILE", help="A checkpoint fetched by other means, or an .onnx graph from `restore export` (then --sha256 is required)."),
    name: Optional[str] = typer.Option(None, "--name", metavar="NAME", help="Model it is (default: from file name or checksum)."),
    sha256: Optional[str] = typer.Option(None, "--sha256", metavar="HEX", help="Expected SHA-256 (64 hex digits), for the unpinned models."),
) -> None:
    """Check a checkpoint (its SHA-256, and that it loads as a Restormer) or an exported ONNX
    graph (its SHA-256, and that ONNX Runtime opens it) and install it into the cache, e.g. for
    offline machines."""
    try:
        model, target = zoo.import_file(file, name=name, sha256=sha256)
    except ZooError as err:
        _fail(err)
    typer.echo(f"{model}: installed {target}; it matches {zoo.hash_origin(model)}", err=True)
