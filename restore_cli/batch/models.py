"""The models of a run: which one each image gets, loaded once, wrapped in the engine.

Colour and gray photos can want different models (denoising), so a run holds a choice of
two specifications, loads each the first time an image needs it, and reuses it for every
image after; a failed load is remembered too, so a batch does not retry a missing download
per image. ``EngineSettings`` carries the engine and zoo options every command shares.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Union

from restore_cli.io.decode import peek_channels
from restore_cli.io.image import DecodedImage

if TYPE_CHECKING:
    import torch

    from restore_cli.engine.onnx_runtime import Network
    from restore_cli.model.download import Progress

ModelSpec = Union[str, Path]
"""A zoo model name (str) or a checkpoint file (Path); either may be an ONNX model."""
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

    def load_for(self, sources: Iterable[str]) -> None:
        """Load, before the first image, every model these inputs will use, so that one that
        cannot be loaded ends the batch in one line before any work. Where colour and gray
        photos get different models, the files' headers say which are used: a folder of gray
        scans must not download (or, offline, fail for) the colour model it never needs. An
        input whose header cannot be read here (stdin, a damaged file) loads its model when
        it reaches it, if it does."""
        specs = dict.fromkeys((self.choice.color, self.choice.gray))
        if len(specs) > 1:
            specs = dict.fromkeys(self._used_by(sources))
        for spec in specs:
            self.get(spec)

    def _used_by(self, sources: Iterable[str]) -> list[ModelSpec]:
        used: dict[ModelSpec, None] = {}
        for source in sources:
            channels = peek_channels(source)
            if channels is not None:
                used[self.choice.gray if channels == 1 else self.choice.color] = None
            if len(used) == 2:
                break
        return list(used)


@dataclass(frozen=True)
class EngineSettings:
    """The engine and zoo options shared by every command, as the engine and zoo take them;
    the command line checks and words them (``restore_cli.cli.options``)."""

    device: str = "auto"
    precision: str = "auto"
    tile: int | str = "auto"
    overlap: int = 32
    max_memory: str | None = None
    offline: bool | None = None
    download_progress: Progress = False
    """How a model download is shown (see ``restore_cli.model.download.Progress``)."""
    tlc_window: int | None = None
    allow_slow_precision: bool = False
    strength: float = 1.0
    """How much of the restoration is kept (`with_strength`): 1 all of it, 0 none."""

    def load(self, spec: ModelSpec) -> Model:
        """Resolve a zoo name or file to a checkpoint, build the network (on ONNX Runtime for an
        ONNX model) and wrap it in the engine."""
        from restore_cli.engine.onnx_runtime import load_network

        return self.wrap(spec, load_network(self.checkpoint(spec), self.device))

    def checkpoint(self, spec: ModelSpec) -> Path:
        """The verified local file behind a zoo name (downloaded if needed) or a checkpoint path."""
        from restore_cli.model import zoo

        return spec if isinstance(spec, Path) else zoo.resolve(spec, offline=self.offline, progress=self.download_progress)

    def wrap(self, spec: ModelSpec, network: Network) -> Model:
        """The engine around a built network; also how a Ray worker runs the weights the driver
        read and shipped, without touching the model cache itself."""
        from restore_cli.engine.onnx_runtime import restorer_for

        restorer = restorer_for(
            network,
            device=self.device,
            precision=self.precision,
            tile=self.tile,
            overlap=self.overlap,
            max_memory=self.max_memory,
            tlc_window=self.tlc_window,
            allow_slow_precision=self.allow_slow_precision,
        )
        restore = restorer.restore if self.strength == 1 else partial(with_strength, restorer.restore, self.strength)
        return Model(str(spec), network.config.in_channels, restore)  # type: ignore[arg-type]


def with_strength(
    restore: Callable[[torch.Tensor, TileProgress | None], torch.Tensor], strength: float, tensor: torch.Tensor, progress: TileProgress | None
) -> torch.Tensor:
    """The input plus `strength` times what the model changed, per pixel, before anything is
    clipped or quantised: 0 gives the input's own values back, 1 the model's output. Every image
    and frame a `Model` restores goes through here. A dual-pixel model's input is its two views,
    so what it changed is measured from their mean (the picture both halves of the pixels see)."""
    import torch

    restored = restore(tensor, progress)
    original = tensor if tensor.shape[1] == restored.shape[1] else (tensor[:, :3] + tensor[:, 3:6]) / 2
    return torch.lerp(original.to(restored), restored, strength)
