"""Where a network runs and in what precision: ``--device`` and ``--precision`` made concrete.

Half precision is not a speed-up everywhere: the engine asks ``hardware`` whether the chosen
dtype is native before accepting it, and computes it through autocast so the weights stay fp32.
"""

from __future__ import annotations

import contextlib
from typing import ContextManager, Literal

import torch

from restore_cli.engine.hardware import CpuInfo, slow_precision_reason
from restore_cli.errors import SlowPrecisionError, setting

Precision = Literal["auto", "fp32", "bf16", "fp16"]

PRECISIONS = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}


def resolve_device(device: str | torch.device = "auto") -> torch.device:
    """``auto`` prefers CUDA, then Apple's MPS, then the CPU."""
    if str(device) != "auto":
        resolved = torch.device(device)
        if resolved.type == "cuda" and not torch.cuda.is_available():
            raise ValueError(f"device {device!r} requested but CUDA is not available; use {setting('device')} cpu")
        return resolved
    if torch.cuda.is_available():
        return torch.device("cuda")
    if torch.backends.mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")


def resolve_precision(
    precision: Precision, device: torch.device, allow_slow: bool = False, cpu: CpuInfo | None = None
) -> torch.dtype:
    """The dtype to compute in; a half precision this hardware would emulate is refused
    (:class:`SlowPrecisionError`) unless ``allow_slow``. ``cpu`` replaces this machine's CPU
    (for tests).

    ``auto`` is fp32 everywhere. On the CPU the default fp32 path already runs the official
    procedure's work about 2.3x faster at 512x512 while matching it to float rounding (at
    most 1 level in 8-bit); bf16 roughly doubles that again where it is native but moves
    outputs by a few levels (about 52 dB with random weights), and on CPUs without native
    bf16 it is 15-90x slower. fp16/bf16 speed on GPUs is unmeasured. See benchmarks/README.md."""
    if precision == "auto":
        return torch.float32
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of auto, {', '.join(PRECISIONS)}; got {precision!r}")
    if precision == "fp16" and device.type != "cuda":
        raise ValueError(f"fp16 needs a CUDA device; use {setting('precision')} fp32 on the CPU")
    reason = slow_precision_reason(PRECISIONS[precision], device, cpu)
    if reason is not None and not allow_slow:
        raise SlowPrecisionError(
            f"{setting('precision')} {precision}: {reason}; use {setting('precision')} fp32 (or auto), "
            f"or add {setting('allow_slow_precision')} to run it anyway"
        )
    return PRECISIONS[precision]


def autocast_context(device: torch.device, dtype: torch.dtype) -> ContextManager:
    """Half precision through autocast: weights stay fp32 (so the NaN fallback needs no
    second copy) and autocast keeps reductions such as normalisation in fp32."""
    if dtype == torch.float32:
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.type, dtype=dtype)
