"""Training data: images read and checked before training starts, then random crops.

Every image is decoded once, up front, so a bad file (unreadable, a pair of different
sizes, smaller than the training patch, a colour image for a gray model) is one clear line
before any time is spent training, never a crash an hour in. Images are kept as their
integer levels (8 or 16 bits), a quarter or half of what float pixels would take.

Crops, flips, 90-degree rotations and the synthetic noise all draw from one
`torch.Generator`, whose state the training state file saves, so a resumed run draws
exactly the batches an uninterrupted one would.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from restore_cli.errors import DataError, ImageError, setting
from restore_cli.io.decode import read_image
from restore_cli.io.image import to_integer_levels
from restore_cli.io.pairing import list_images, pair_folders
from restore_cli.quality import metrics

DIHEDRAL = 8
"""Flips times 90-degree rotations: the eight ways to lay a square crop down."""



@dataclass(frozen=True)
class Noise:
    """Additive white Gaussian noise with a level drawn per crop from [low, high] (0-255 scale)."""

    low: float
    high: float

    @property
    def validation_sigma(self) -> float:
        """The level validation images get: a fixed range's middle, so scores are comparable."""
        return (self.low + self.high) / 2


def parse_sigma(text: str | float) -> Noise:
    """`25` (one level) or `0-50` (a blind denoiser: a level per crop), on the 0-255 scale."""
    match = re.fullmatch(r"\s*(\d+(?:\.\d*)?)\s*(?:-\s*(\d+(?:\.\d*)?)\s*)?", str(text))
    if not match:
        raise ValueError(f"cannot read {setting('sigma')} {text!r}; give a level like 25 or a range like 0-50")
    low = float(match.group(1))
    high = float(match.group(2)) if match.group(2) is not None else low
    if high < low:
        raise ValueError(f"{setting('sigma')} {text}: the range must go from low to high, like 0-50")
    return Noise(low, high)


@dataclass(frozen=True)
class Example:
    """One training image as integer levels (HxWxC), and its degraded partner for pairs."""

    name: str
    path: Path
    target: np.ndarray
    bit_depth: int
    source: np.ndarray | None = None

    @property
    def height(self) -> int:
        return int(self.target.shape[0])

    @property
    def width(self) -> int:
        return int(self.target.shape[1])

    @property
    def channels(self) -> int:
        return int(self.target.shape[2])


def load_folder(folder: Path) -> list[Example]:
    """Every image in a folder of clean images (noise is added on the fly)."""
    images, problems = list_images(_existing_folder(folder))
    if problems:
        raise DataError(problems[0].message)
    if not images:
        raise DataError(f"{folder}: no images (PNG, JPEG, TIFF, WebP or BMP) in this folder")
    return [_example(name, path) for name, path in images.items()]


def load_pairs(inputs: Path, targets: Path) -> list[Example]:
    """Degraded images and their clean targets, paired by file stem as `restore eval` pairs them."""
    pairs, problems = pair_folders(_existing_folder(inputs), _existing_folder(targets))
    if problems:
        more = f" (and {len(problems) - 1} more problems)" if len(problems) > 1 else ""
        raise DataError(f"{problems[0].message}{more}; every input needs a target with the same name")
    if not pairs:
        raise DataError(f"{inputs}: no images (PNG, JPEG, TIFF, WebP or BMP) in this folder")
    return [_paired_example(pair.name, pair.source, pair.reference) for pair in pairs]


def _existing_folder(folder: Path) -> Path:
    if not folder.is_dir():
        raise DataError(f"{folder}: not a folder; give a folder of training images")
    return folder


def _decode(path: Path) -> tuple[np.ndarray, int]:
    try:
        image = read_image(path)
    except ImageError as error:
        raise DataError(f"{error}; or move it out of the training folder") from None
    return to_integer_levels(image.pixels, image.levels_depth), image.levels_depth


def _example(name: str, path: Path) -> Example:
    levels, bit_depth = _decode(path)
    return Example(name, path, levels, bit_depth)


def _paired_example(name: str, source_path: Path, target_path: Path) -> Example:
    source, source_depth = _decode(source_path)
    target, bit_depth = _decode(target_path)
    if source.shape[:2] != target.shape[:2]:
        raise DataError(
            f"{source_path}: {_size(source)} but its target {target_path} is {_size(target)}; "
            "pairs must be the same size"
        )
    if source.shape[2] != target.shape[2]:
        raise DataError(f"{source_path}: {source.shape[2]} channel(s) but its target has {target.shape[2]}")
    if source_depth != bit_depth:
        source = to_integer_levels(source / (2.0**source_depth - 1), bit_depth)
    return Example(name, source_path, target, bit_depth, source)


def _size(levels: np.ndarray) -> str:
    return f"{levels.shape[1]}x{levels.shape[0]}"


def check_images(examples: list[Example], channels: int, patch: int) -> None:
    """Refuse, before training, images the model cannot take or that cannot give a patch."""
    for example in examples:
        if example.channels not in (1, channels):
            raise DataError(
                f"{example.path}: has {example.channels} channels but the model takes {channels}-channel "
                "images; train on one kind, or start from a model of that kind"
            )
        if min(example.height, example.width) < patch:
            raise DataError(
                f"{example.path}: {example.width}x{example.height} is smaller than the {patch}-pixel "
                f"training patch; lower {setting('patch')} or remove the image"
            )


def split(examples: list[Example], share: float, seed: int) -> tuple[list[Example], list[Example]]:
    """Hold out a seeded random `share` of the images for validation (at least one, and
    none from fewer than four images, where every image is needed for training)."""
    if share <= 0 or len(examples) < 4:
        return examples, []
    count = max(1, round(len(examples) * share))
    order = torch.randperm(len(examples), generator=torch.Generator().manual_seed(seed)).tolist()
    held = set(order[:count])
    return [e for i, e in enumerate(examples) if i not in held], [e for i, e in enumerate(examples) if i in held]


def _float(levels: np.ndarray, bit_depth: int, channels: int) -> np.ndarray:
    pixels = levels.astype(np.float32) / np.float32(2**bit_depth - 1)
    return np.repeat(pixels, channels, axis=2) if pixels.shape[2] != channels else pixels


class Sampler:
    """Random augmented crops as (degraded, clean) NCHW float32 batches in [0, 1] (the
    noisy input is not clipped, as in the paper's protocol)."""

    def __init__(self, examples: list[Example], channels: int, noise: Noise | None, generator: torch.Generator) -> None:
        self.examples = examples
        self.channels = channels
        self.noise = noise
        self.generator = generator

    def batch(self, size: int, patch: int) -> tuple[torch.Tensor, torch.Tensor]:
        crops = [self._crop(patch) for _ in range(size)]
        degraded = torch.stack([crop[0] for crop in crops])
        clean = torch.stack([crop[1] for crop in crops])
        if self.noise is not None:
            degraded = degraded + torch.randn(degraded.shape, generator=self.generator) * self._sigmas(size)
        return degraded, clean

    def _draw(self, high: int) -> int:
        return int(torch.randint(high, (1,), generator=self.generator))

    def _crop(self, patch: int) -> tuple[torch.Tensor, torch.Tensor]:
        example = self.examples[self._draw(len(self.examples))]
        top, left = self._draw(example.height - patch + 1), self._draw(example.width - patch + 1)
        layout = self._draw(DIHEDRAL)
        window = (slice(top, top + patch), slice(left, left + patch))
        clean = self._tensor(example.target[window], example.bit_depth, layout)
        if example.source is None:
            return clean, clean
        return self._tensor(example.source[window], example.bit_depth, layout), clean

    def _tensor(self, levels: np.ndarray, bit_depth: int, layout: int) -> torch.Tensor:
        chw = torch.from_numpy(_float(levels, bit_depth, self.channels).transpose(2, 0, 1).copy())
        if layout >= DIHEDRAL // 2:
            chw = chw.flip(-1)
        return torch.rot90(chw, layout % 4, dims=(-2, -1))

    def _sigmas(self, size: int) -> torch.Tensor:
        assert self.noise is not None
        spread = torch.rand(size, generator=self.generator) * (self.noise.high - self.noise.low)
        return ((self.noise.low + spread) / 255.0).view(size, 1, 1, 1)


@dataclass(frozen=True)
class ValidationImage:
    """A whole image the model restores at validation, and the reference it is scored against."""

    name: str
    degraded: np.ndarray
    target: np.ndarray
    bit_depth: int


def validation_images(examples: list[Example], channels: int, noise: Noise | None) -> list[ValidationImage]:
    """Whole images; synthetic noise is the official seeded test noise, so every validation
    sees the same input and scores compare across iterations and runs."""
    images = []
    for example in examples:
        target = _float(example.target, example.bit_depth, channels)
        if example.source is not None:
            degraded = _float(example.source, example.bit_depth, channels)
        else:
            assert noise is not None
            degraded = metrics.gaussian_noise_input(target, example.bit_depth, noise.validation_sigma)
        images.append(ValidationImage(example.name, degraded, target, example.bit_depth))
    return images
