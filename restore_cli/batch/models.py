"""The models of a run: which one each image gets, loaded once, wrapped in the engine.

Colour and gray photos can want different models (denoising), so a run holds a choice of
two specifications, loads each the first time an image needs it, and reuses it for every
image after; a failed load is remembered too, so a batch does not retry a missing download
per image. ``EngineSettings`` carries the engine and zoo options every command shares.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Union

from restore_cli.errors import UsageError
from restore_cli.io.image import DecodedImage

if TYPE_CHECKING:
    import torch

    from restore_cli.model.restormer import Restormer

ModelSpec = Union[str, Path]
"""A zoo model name (str) or a checkpoint file (Path)."""
TileProgress = Callable[[int, int], None]


@dataclass(frozen=True)
class Model:
    """A loaded model as the pipeline needs it: a name to report, what it takes, how to run it."""

    name: str
    in_channels: int
    restore: Callable[[torch.Tensor, TileProgress | None], torch.Tensor]


@dataclass(frozen=True)
class ModelChoice:
    """Which model restores an image. Colour and grayscale photos can want different models
    (denoise: real-noise RGB vs grayscale Gaussian); every other task uses one for both."""

    color: ModelSpec
    gray: ModelSpec

    @classmethod
    def single(cls, spec: ModelSpec) -> ModelChoice:
        return cls(spec, spec)

    def for_image(self, image: DecodedImage) -> ModelSpec:
        return self.gray if image.channels == 1 else self.color


class Models:
    """Loads each model the first time an image needs it, then reuses it for the whole run.

    A failed load is remembered too, so a batch does not retry a missing download per image.
    """

    def __init__(self, choice: ModelChoice, load: Callable[[ModelSpec], Model]) -> None:
        self.choice = choice
        self._load = load
        self._loaded: dict[ModelSpec, Model | Exception] = {}

    def get(self, spec: ModelSpec) -> Model:
        if spec not in self._loaded:
            try:
                self._loaded[spec] = self._load(spec)
            except Exception as error:
                self._loaded[spec] = error
        loaded = self._loaded[spec]
        if isinstance(loaded, Exception):
            raise loaded
        return loaded

    def for_image(self, image: DecodedImage) -> Model:
        return self.get(self.choice.for_image(image))


def parse_tile(value: str) -> int | str:
    """`--tile` as the engine takes it: "auto", or a whole number of pixels."""
    if value == "auto":
        return value
    if value.isdigit() and (int(value) == 0 or int(value) >= 8):
        return int(value)
    raise UsageError(f"--tile must be auto, 0 (whole image) or at least 8 pixels, got {value!r}")


_DEVICE = re.compile(r"auto|cpu|mps|cuda(:\d+)?")


def _check_budget(max_memory: str, device: torch.device) -> None:
    from restore_cli.engine.budget import parse_memory_size, smallest_budget

    budget, needed = parse_memory_size(max_memory), smallest_budget(device)
    if budget < needed:
        raise UsageError(
            f"--max-memory {max_memory} is less than restore needs before the first pixel "
            f"({needed / 2**20:,.0f} MiB on {device.type}); raise it or leave it out"
        )


def parse_tlc(enabled: bool, window: int | None) -> int | None:
    """`--tlc` / `--tlc-window N` as the engine takes them: the window, or None for global
    attention. A window alone switches TLC on: it has no other meaning."""
    from restore_cli.model.tlc import DEFAULT_WINDOW

    if window is None:
        return DEFAULT_WINDOW if enabled else None
    if window < 8:
        raise UsageError(f"--tlc-window must be at least 8 pixels (one pixel at the deepest level), got {window}")
    return window


@dataclass(frozen=True)
class EngineSettings:
    """The engine and zoo options shared by every command."""

    device: str = "auto"
    precision: str = "auto"
    tile: int | str = "auto"
    overlap: int = 32
    max_memory: str | None = None
    offline: bool | None = None
    download_progress: bool = False
    tlc_window: int | None = None
    allow_slow_precision: bool = False

    def check(self) -> None:
        """Reject bad values before any work, as usage errors, rather than once per image."""
        from restore_cli.engine.device import resolve_device, resolve_precision

        if self.overlap < 0:
            raise UsageError("--overlap must be 0 or more")
        if isinstance(self.tile, int) and self.tile and self.overlap >= self.tile:
            raise UsageError(
                f"--overlap {self.overlap} must be smaller than --tile {self.tile}, or tiles never advance; "
                f"try --overlap {self.tile // 4}"
            )
        if not _DEVICE.fullmatch(self.device):
            raise UsageError(f"--device {self.device}: use auto, cpu, cuda, cuda:N or mps")
        try:
            device = resolve_device(self.device)
            resolve_precision(self.precision, device, self.allow_slow_precision)  # type: ignore[arg-type]
            if self.max_memory is not None:
                _check_budget(self.max_memory, device)
        except (ValueError, RuntimeError) as error:
            raise UsageError(str(error)) from None

    def load(self, spec: ModelSpec) -> Model:
        """Resolve a zoo name or file to a checkpoint, build the network and wrap it in the engine."""
        from restore_cli.model.zoo import load_model

        return self.wrap(spec, load_model(self.checkpoint(spec)))

    def checkpoint(self, spec: ModelSpec) -> Path:
        """The verified local file behind a zoo name (downloaded if needed) or a checkpoint path."""
        from restore_cli.model import zoo

        return spec if isinstance(spec, Path) else zoo.resolve(spec, offline=self.offline, progress=self.download_progress)

    def wrap(self, spec: ModelSpec, network: Restormer) -> Model:
        """The engine around a built network; also how a Ray worker runs the weights the driver
        read and shipped, without touching the model cache itself."""
        from restore_cli.engine.restorer import Restorer

        restorer = Restorer(
            network,
            device=self.device,
            precision=self.precision,  # type: ignore[arg-type]
            tile=self.tile,
            overlap=self.overlap,
            max_memory=self.max_memory,
            tlc_window=self.tlc_window,
            allow_slow_precision=self.allow_slow_precision,
        )
        return Model(str(spec), network.config.in_channels, restorer.restore)  # type: ignore[arg-type]
