"""`restore export (--model NAME | --weights CKPT) -o model.onnx`: a model as a verified ONNX graph.

Thin: checks the command line, resolves the checkpoint, calls
``restore_cli.model.export.export_onnx`` (which verifies the graph on ONNX Runtime), writes
the verified graph atomically, and reports the differences it measured.
"""

from __future__ import annotations

import hashlib
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Optional

import typer

from restore_cli import __version__
from restore_cli.cli.console import EXIT_FAILED, EXIT_USAGE, fail
from restore_cli.cli.progress import RichDownloadBar
from restore_cli.cli.tasks import check_zoo_name
from restore_cli.errors import CheckpointError, ExportError, UsageError, ZooError, one_line
from restore_cli.io.files import atomic_write, check_can_write

if TYPE_CHECKING:
    from restore_cli.model.export import VerifiedExport

EPILOG = (
    "Examples:\n\n\b\n"
    "restore export --model deraining -o deraining.onnx\n"
    "restore export --weights mine.pth -o mine.onnx --precision fp16 --licence MIT\n"
    "restore derain photo.jpg --weights deraining.onnx      # run it on ONNX Runtime"
)
TASK_CHOICES = ("denoise", "derain", "deblur", "defocus")


def export_command(
    model: Optional[str] = typer.Option(None, "--model", metavar="NAME", help="Zoo model to export (see `restore models list`)."),
    weights: Optional[Path] = typer.Option(None, "--weights", metavar="CKPT", help="Any Restormer checkpoint (.pth/.safetensors) to export instead."),
    output: Optional[Path] = typer.Option(None, "-o", "--output", metavar="FILE.onnx", help="Where to write the graph. Default: <model>.onnx here, or the checkpoint's name with .onnx next to it."),
    precision: str = typer.Option("fp32", "--precision", metavar="fp32|fp16", help="fp32, or fp16 (half the size; for GPUs). Input and output stay float32 either way."),
    tlc_window: Optional[int] = typer.Option(None, "--tlc-window", metavar="N", help="Export TLC's windowed statistics (refused: an ONNX graph cannot hold them; see docs/onnx.md)."),
    task: Optional[str] = typer.Option(None, "--task", metavar="denoise|derain|deblur|defocus", help="Task recorded in the metadata (default: the zoo model's, else unknown)."),
    licence: Optional[str] = typer.Option(None, "--licence", metavar="TEXT", help="Licence of the weights, recorded in the metadata (default: the zoo model's, else 'not stated')."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace FILE.onnx if it exists."),
    offline: bool = typer.Option(False, "--offline", help="Use only models already in the cache."),
) -> None:
    """Export a model as an ONNX graph (any batch, height and width; padding inside), verified
    against PyTorch with ONNX Runtime before it is written."""
    try:
        destination = _destination(model, weights, output)
        _check_options(destination, precision, task, overwrite)
        report = _export(_checkpoint(model, weights, offline), model, precision, tlc_window, task, licence)
        atomic_write(destination, report.data)
    except UsageError as error:
        fail(str(error), EXIT_USAGE)
    except (ExportError, CheckpointError, ZooError, OSError) as error:
        fail(one_line(error), EXIT_FAILED)
    checks = ", ".join(f"{check.max_abs_diff:.2g} on {'x'.join(map(str, check.shape))}" for check in report.checks)
    typer.echo(f"verified with ONNX Runtime: max |ONNX - PyTorch| {checks} (tolerance {report.tolerance:g})", err=True)
    digest = hashlib.sha256(report.data).hexdigest()
    typer.echo(f"wrote {destination} ({len(report.data) / 1e6:.1f} MB, {report.precision}); sha256 {digest}", err=True)


def _destination(model: str | None, weights: Path | None, output: Path | None) -> Path:
    if (model is None) == (weights is None):
        raise UsageError("give --model NAME or --weights CKPT (one of them)")
    if weights is not None:
        if weights.suffix.lower() == ".onnx":
            raise UsageError(f"{weights} is already an ONNX model; --weights takes a .pth or .safetensors checkpoint here")
        return output or weights.with_suffix(".onnx")
    assert model is not None
    check_zoo_name(model)
    return output or Path(f"{model}.onnx")


def _checkpoint(model: str | None, weights: Path | None, offline: bool) -> Path:
    """The checkpoint to export: downloaded (for a zoo model) only once the command line and
    the destination have been checked."""
    if weights is not None:
        return weights
    from restore_cli.model import zoo

    assert model is not None
    return zoo.resolve(model, offline=offline or None, progress=RichDownloadBar)


def _check_options(destination: Path, precision: str, task: str | None, overwrite: bool) -> None:
    if destination.suffix.lower() != ".onnx":
        raise UsageError(f"-o {destination}: the name must end in .onnx, which is how restore recognises ONNX models")
    if destination.exists() and not overwrite:
        raise UsageError(f"{destination} exists; add --overwrite to replace it")
    if not destination.parent.is_dir():
        raise UsageError(f"-o {destination}: no folder {destination.parent}")
    check_can_write(destination, "output")  # a read-only folder is told before minutes of exporting
    if precision not in ("fp32", "fp16"):
        raise UsageError(f"--precision {precision}: an export is fp32 or fp16")
    if task is not None and task not in TASK_CHOICES:
        raise UsageError(f"--task {task}: use one of {', '.join(TASK_CHOICES)}")


def _export(checkpoint: Path, model: str | None, precision: str, tlc_window: int | None,
            task: str | None, licence: str | None) -> VerifiedExport:
    from restore_cli.model.export import export_onnx, provenance
    from restore_cli.model.onnx_format import onnxruntime
    from restore_cli.model.zoo import load_model

    onnxruntime()  # a missing runtime is told before minutes of exporting
    network = load_model(checkpoint)
    if sys.stderr.isatty():  # a minute for a full-size model: say what is happening to someone watching
        typer.echo(f"exporting {model or checkpoint} ({precision}) ...", err=True)
    origin = provenance(checkpoint, model, task, licence)
    return export_onnx(network, origin, precision=precision, tlc_window=tlc_window, version=__version__)
