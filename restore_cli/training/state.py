"""What a training run writes: the checkpoint, in the authors' layout, and the state file
that lets an interrupted run continue exactly where it stopped.

Both are serialised in memory and written atomically (temporary file, fsync, rename), so
Ctrl-C, a full disk or a crash mid-write leaves the previous file whole. Both load with
`torch.load(weights_only=True)`: plain tensors, numbers and strings, never pickled code.
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import torch
from torch import nn

from restore_cli.errors import StateError, one_line
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
