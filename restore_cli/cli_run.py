"""`restore run --weights CKPT INPUT -o OUTPUT`: one image through any Restormer checkpoint.

The direct path from a file to the engine and back, so the engine can be used and measured
end to end with any weights; folders, naming and task defaults belong to the task commands.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import NoReturn, Optional

import typer

STDIO = "-"


def run_command(
    input: str = typer.Argument(..., metavar="INPUT", help="Image file, or - for stdin."),
    output: str = typer.Option(..., "-o", "--output", help="Output file (format from its extension), or - for PNG on stdout."),
    weights: Path = typer.Option(..., "--weights", help="Restormer checkpoint (.pth or .safetensors)."),
    tile: str = typer.Option("auto", "--tile", help="auto (fit --max-memory), 0 (whole image) or a tile side in pixels."),
    overlap: int = typer.Option(32, "--overlap", min=0, help="Pixels neighbouring tiles share, blended smoothly."),
    max_memory: Optional[str] = typer.Option(None, "--max-memory", help="Memory budget, e.g. 2GB (default: a safe share of free memory)."),
    device: str = typer.Option("auto", "--device", help="auto, cpu, cuda, cuda:N or mps."),
    precision: str = typer.Option("auto", "--precision", help="auto (fp32), fp32, bf16, or fp16 (CUDA only)."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress on stderr."),
) -> None:
    """Restore one image with the checkpoint given by --weights."""
    from restore_cli.engine import Restorer

    options = dict(device=device, precision=precision, tile=_parse_tile(tile), overlap=overlap, max_memory=max_memory)
    _check_options(**options)
    image = _read(input)
    restorer = Restorer(_load(weights), **options)
    _write(image, _restore(restorer, image, input, quiet), output)


def _check_options(device: str, precision: str, max_memory: str | None, **_: object) -> None:
    """Bad option values are usage errors, reported before any file is read."""
    from restore_cli.engine import parse_memory_size, resolve_device, resolve_precision

    try:
        resolve_precision(precision, resolve_device(device))  # type: ignore[arg-type]
        if max_memory is not None:
            parse_memory_size(max_memory)
    except (ValueError, RuntimeError) as error:
        _usage_error(_first_line(error))


def _parse_tile(tile: str) -> int | str:
    if tile == "auto":
        return tile
    if not tile.isdigit() or 0 < int(tile) < 8:
        _usage_error(f"--tile must be auto, 0 (whole image) or at least 8 pixels, got {tile!r}")
    return int(tile)


def _load(weights: Path):
    from restore_cli.checkpoints import CheckpointError, load_model

    try:
        return load_model(weights)
    except CheckpointError as error:
        _fail(str(error))


def _read(source: str):
    from restore_cli.images import ImageError, read_image

    try:
        return read_image(sys.stdin.buffer if source == STDIO else source)
    except ImageError as error:
        _fail(str(error))


def _restore(restorer, image, name: str, quiet: bool):
    from restore_cli.engine import MemoryBudgetError
    from restore_cli.images import to_tensor

    try:
        tensor = to_tensor(image, channels=restorer.config.in_channels)
        progress = None if quiet else _print_progress
        return restorer.restore(tensor, progress)
    except (ValueError, MemoryBudgetError) as error:
        _fail(f"{'<stdin>' if name == STDIO else name}: {_first_line(error)}")


def _write(image, restored, destination: str) -> None:
    from restore_cli.images import ImageError, with_pixels, write_image

    try:
        write_image(with_pixels(image, restored), sys.stdout.buffer if destination == STDIO else destination)
    except ImageError as error:
        _fail(str(error))


def _print_progress(done: int, total: int) -> None:
    if total > 1:
        typer.echo(f"\rtiles {done}/{total}", err=True, nl=done == total)


def _first_line(error: Exception) -> str:
    lines = str(error).strip().splitlines()
    return lines[0] if lines else type(error).__name__


def _fail(message: str) -> NoReturn:
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(1)


def _usage_error(message: str) -> NoReturn:
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(2)
