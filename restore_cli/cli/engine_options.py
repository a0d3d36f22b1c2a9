"""The engine and cluster options as the command line takes them: parsed, checked and worded.

Everything here is about flags: a value that cannot work is refused before any model is
loaded, in one line naming the flag, with exit code 2. What the options mean is the library's
(``restore_cli.batch.models.EngineSettings``, ``restore_cli.batch.ray_executor.RayOptions``).
"""

from __future__ import annotations

import re
import sys
from dataclasses import replace
from typing import TYPE_CHECKING, Any, Optional

from restore_cli.batch.models import EngineSettings
from restore_cli.cli.options import TaskOptions
from restore_cli.cli.progress import RichDownloadBar
from restore_cli.errors import UsageError

if TYPE_CHECKING:
    import torch

    from restore_cli.batch.ray_executor import RayOptions

_DEVICE = re.compile(r"auto|cpu|mps|cuda(:\d+)?")
_RAY_FLAGS = {"ray_address": "--ray-address", "workers": "--workers", "cpus_per_worker": "--cpus-per-worker", "gpus_per_worker": "--gpus-per-worker"}


def parse_tile(value: str) -> int | str:
    """`--tile` as the engine takes it: "auto", or a whole number of pixels."""
    if value == "auto":
        return value
    if value.isdigit() and (int(value) == 0 or int(value) >= 8):
        return int(value)
    raise UsageError(f"--tile must be auto, 0 (whole image) or at least 8 pixels, got {value!r}")


def parse_tlc(enabled: bool, window: int | None) -> int | None:
    """`--tlc` / `--tlc-window N` as the engine takes them: the window, or None for global
    attention. A window alone switches TLC on: it has no other meaning."""
    from restore_cli.model.tlc import DEFAULT_WINDOW

    if window is None:
        return DEFAULT_WINDOW if enabled else None
    if window < 8:
        raise UsageError(f"--tlc-window must be at least 8 pixels (one pixel at the deepest level), got {window}")
    return window


def check_engine_settings(settings: EngineSettings, onnx: bool = False) -> None:
    """Reject bad values before any work, as usage errors, rather than once per image. ``onnx``:
    the model is an ONNX graph, whose devices are ONNX Runtime's providers."""
    from restore_cli.engine.device import resolve_device, resolve_precision

    if settings.overlap < 0:
        raise UsageError("--overlap must be 0 or more")
    if isinstance(settings.tile, int) and settings.tile and settings.overlap >= settings.tile:
        raise UsageError(
            f"--overlap {settings.overlap} must be smaller than --tile {settings.tile}, or tiles never advance; "
            f"try --overlap {settings.tile // 4}"
        )
    if onnx:
        _check_onnx_settings(settings)
        return
    if not _DEVICE.fullmatch(settings.device):
        raise UsageError(f"--device {settings.device}: use auto, cpu, cuda, cuda:N or mps (ONNX Runtime's providers take ONNX models only)")
    try:
        device = resolve_device(settings.device)
        resolve_precision(settings.precision, device, settings.allow_slow_precision)  # type: ignore[arg-type]
        if settings.max_memory is not None:
            _check_budget(settings.max_memory, device)
    except (ValueError, RuntimeError) as error:
        raise UsageError(str(error)) from None


def _check_onnx_settings(settings: EngineSettings) -> None:
    """An ONNX model runs on the provider --device names, in the precision it was exported in."""
    import torch

    from restore_cli.engine.onnx_runtime import providers

    providers(settings.device)
    if settings.precision not in ("auto", "fp32", "fp16"):
        raise UsageError(f"--precision {settings.precision}: an ONNX model computes in the precision it was exported in (fp32 or fp16); drop --precision")
    if settings.tlc_window is not None:
        raise UsageError("--tlc cannot run an ONNX model: TLC is not part of an exported graph; run TLC with the .pth checkpoint")
    if settings.max_memory is not None:
        _check_budget(settings.max_memory, torch.device("cpu"))


def _check_budget(max_memory: str, device: torch.device) -> None:
    from restore_cli.engine.budget import parse_memory_size, smallest_budget

    budget, needed = parse_memory_size(max_memory), smallest_budget(device)
    if budget < needed:
        raise UsageError(
            f"--max-memory {max_memory} is less than restore needs before the first pixel "
            f"({needed / 2**20:,.0f} MiB on {device.type}); raise it or leave it out"
        )


def engine_settings(options: TaskOptions) -> EngineSettings:
    """The task command's engine and zoo options, parsed (not yet checked)."""
    return EngineSettings(
        device=options.device,
        precision=options.precision,
        tile=parse_tile(options.tile),
        overlap=options.overlap,
        max_memory=options.max_memory,
        tlc_window=parse_tlc(options.tlc, options.tlc_window),
        allow_slow_precision=options.allow_slow_precision,
        offline=True if options.offline else None,
        download_progress=RichDownloadBar if watched(options) else False,
        strength=options.strength,
    )


def watched(options: TaskOptions) -> bool:
    """A person is watching stderr, so progress is drawn."""
    return not options.quiet and sys.stderr.isatty()


def ray_options(options: TaskOptions, settings: EngineSettings, onnx: bool = False) -> Optional[RayOptions]:
    """`ray_executor.RayOptions` for --engine ray (checked, with Ray imported), else None."""
    given = [flag for name, flag in _RAY_FLAGS.items() if getattr(options, name) is not None]
    if options.engine == "local":
        if given:
            raise UsageError(f"{given[0]} applies to --engine ray only; add --engine ray or drop it")
        return None
    ray_executor = import_ray_executor()
    chosen = ray_executor.RayOptions(
        address=options.ray_address,
        workers=options.workers,
        cpus_per_worker=1.0 if options.cpus_per_worker is None else options.cpus_per_worker,
        gpus_per_worker=options.gpus_per_worker or 0.0,
        threads=options.threads,
        debug=options.debug,
    )
    _check_ray(chosen, settings, onnx)
    return chosen


def _check_ray(chosen: RayOptions, settings: EngineSettings, onnx: bool) -> None:
    """Refuse contradictions before Ray starts. The engine options are checked as for a CPU:
    the GPUs are the workers', and the driver may have none."""
    if chosen.cpus_per_worker <= 0:
        raise UsageError("--cpus-per-worker must be more than 0")
    if chosen.gpus_per_worker < 0:
        raise UsageError("--gpus-per-worker must be 0 or more")
    if settings.device.startswith("cuda") and chosen.gpus_per_worker == 0:
        raise UsageError(f"--device {settings.device} on Ray needs GPUs for the workers: add --gpus-per-worker (e.g. 1 or 0.5)")
    if settings.device in ("cpu", "mps") and chosen.gpus_per_worker > 0:
        raise UsageError(f"--gpus-per-worker reserves GPUs that --device {settings.device} would not use; drop one")
    if settings.precision == "fp16" and chosen.gpus_per_worker == 0 and not onnx:
        raise UsageError("--precision fp16 needs GPUs for the workers: add --gpus-per-worker, or use bf16/fp32")
    on_cpu = "fp32" if settings.precision == "fp16" and not onnx else settings.precision
    check_engine_settings(replace(settings, device="cpu", precision=on_cpu), onnx)


def import_ray_executor() -> Any:
    """The Ray executor module, or a usage error naming the extra to install."""
    try:
        from restore_cli.batch import ray_executor
    except ModuleNotFoundError as error:
        if error.name != "ray" and not str(error.name).startswith("ray."):
            raise
        raise UsageError('--engine ray needs Ray, which is not installed: pip install "restore-cli[ray]"') from None
    return ray_executor
