"""What a training run writes: the checkpoint, in the authors' layout, and the state file
that lets an interrupted run continue exactly where it stopped.

Both are serialised in memory and written atomically (temporary file, fsync, rename), so
Ctrl-C, a full disk or a crash mid-write leaves the previous file whole. Both load with
`torch.load(weights_only=True)`: plain tensors, numbers and strings, never pickled code.
Where a write fails after all (the disk filled, the folder became read-only mid-run), the
weights are not lost with it: `keep` writes them to a fallback folder and says where.
"""

from __future__ import annotations

import io
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from torch import nn

from restore_cli.errors import SaveError, StateError, one_line, setting
from restore_cli.io.files import atomic_write

STATE_FORMAT = "restore-train-state/1"



def state_path(output: Path) -> Path:
    """Where the state of a run writing `output` lives: ft.pth -> ft.state."""
    return output.with_suffix(".state")


def _cpu_copy(module: nn.Module) -> dict[str, torch.Tensor]:
    return {key: value.detach().to("cpu", torch.float32).clone() for key, value in module.state_dict().items()}


def write_checkpoint(path: Path, model: nn.Module, ema: nn.Module | None) -> None:
    """`{"params": state_dict}` as the official checkpoints are, plus `params_ema` when an
    average is kept (which loaders, ours included, prefer for inference)."""
    checkpoint = {"params": _cpu_copy(model)}
    if ema is not None:
        checkpoint["params_ema"] = _cpu_copy(ema)
    _save(path, checkpoint)


def write_state(path: Path, state: dict[str, Any]) -> None:
    _save(path, {"format": STATE_FORMAT, **state})


def read_state(path: Path) -> dict[str, Any]:
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise StateError(f"{path}: no such state file; it is written next to the output (-o) as NAME.state") from None
    except Exception as error:  # the unpickler meets arbitrary bytes and may raise anything
        raise StateError(f"{path}: not a readable training state ({one_line(error)})") from None
    if not isinstance(state, dict) or state.get("format") != STATE_FORMAT:
        raise StateError(f"{path}: not a `restore train` state file")
    return state


def _save(path: Path, payload: dict[str, Any]) -> None:
    buffer = io.BytesIO()
    torch.save(payload, buffer)
    atomic_write(path, buffer.getvalue())


def fallback_folders() -> list[Path]:
    """Where weights go when their own folder refuses them: the system's temp folder, then home."""
    return [Path(tempfile.gettempdir()), Path.home()]


def _free_name(folder: Path, name: Path) -> Path:
    """``name`` in ``folder``, numbered (t-1.pth, t-2.pth, ...) rather than replacing a file."""
    candidate, number = folder / name.name, 0
    while candidate.exists():
        number += 1
        candidate = folder / f"{name.stem}-{number}{name.suffix}"
    return candidate


def keep(path: Path, write: Callable[[Path], None], what: str, resumable: bool = False) -> None:
    """``write(path)``; if the file system refuses it, ``write`` to a fallback folder instead
    and raise SaveError naming both, so that a failed write never costs the weights: ``what``
    they are, and (``resumable``) how to continue from the fallback."""
    try:
        write(path)
        return
    except OSError as error:
        reason = f"cannot write {path} ({error.strerror or one_line(error)})"
    for folder in fallback_folders():
        fallback = _free_name(folder, path)
        try:
            write(fallback)
        except OSError:
            continue
        advice = f"; continue with {setting('resume')} {fallback}" if resumable else ""
        raise SaveError(f"{reason}; {what} went to {fallback} instead{advice}")
    folders = " or ".join(str(folder) for folder in fallback_folders())
    raise SaveError(f"{reason}, nor to {folders}: {what} could not be kept; free some space and rerun")
