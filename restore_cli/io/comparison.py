"""A before/after view: what the restoration did, in one picture a screen shows whole.

On top, the input and the output side by side (or one picture split down the middle, left
half before, right half after, when side by side would leave them too small, as for a
panorama), scaled to fit; beneath, the region the restoration changed most, at 100 %, before
and after side by side, and outlined on top (a picture small enough to be shown whole at
100 % needs no crop). Pure composition: the pixels in, an 8-bit
``DecodedImage`` out, carrying the input's ICC profile so its colours display as the photo's.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from restore_cli.io.image import DecodedImage, to_integer_levels

Layout = Literal["auto", "side", "split"]
_GAP = 8
_BACKGROUND = (38, 38, 38)
_OUTLINE = (255, 210, 0)
_POOL = 4
"""The change map is averaged over 4x4 blocks before the busiest window is searched for."""


@dataclass(frozen=True)
class Screen:
    """The view's largest size; the top row takes two thirds of the height, the crops the rest."""

    width: int = 1920
    height: int = 1080

    @property
    def top(self) -> int:
        return self.height * 2 // 3

    @property
    def crop(self) -> tuple[int, int]:
        return (self.width - _GAP) // 2, self.height - self.top - _GAP


def compare_view(before: DecodedImage, after: DecodedImage, layout: Layout = "auto", screen: Screen = Screen()) -> DecodedImage:
    """The view of `after` (the restored picture) against `before` (the input), same size."""
    old, new = _rgb8(before.pixels), _rgb8(after.pixels)
    height, width = old.shape[:2]
    crop_width, crop_height = min(width, screen.crop[0]), min(height, screen.crop[1])
    left, top = busiest_window(before.pixels, after.pixels, crop_width, crop_height)
    window = (left, top, left + crop_width, top + crop_height)
    chosen = _layout(width, height, screen) if layout == "auto" else layout
    upper, scale = _side_by_side(old, new, screen, window) if chosen == "side" else _split(old, new, screen, window)
    if scale == 1:  # shown whole at 100 % already
        return _decoded(upper, before)
    lower = _pair(Image.fromarray(old).crop(window), Image.fromarray(new).crop(window), "before, 100 %", "after, 100 %")
    canvas = Image.new("RGB", (max(upper.width, lower.width), upper.height + _GAP + lower.height), _BACKGROUND)
    canvas.paste(upper, ((canvas.width - upper.width) // 2, 0))
    canvas.paste(lower, ((canvas.width - lower.width) // 2, upper.height + _GAP))
    return _decoded(canvas, before)


def _decoded(view: Image.Image, before: DecodedImage) -> DecodedImage:
    return DecodedImage(np.asarray(view, dtype=np.float32) / 255, None, 8, before.icc_profile, None, "PNG")


def busiest_window(before: np.ndarray, after: np.ndarray, width: int, height: int) -> tuple[int, int]:
    """The top-left corner of the width x height window where the pictures differ most (where
    the model did most); where they do not differ at all, the one with the most detail."""
    change = np.abs(after.astype(np.float32) - before.astype(np.float32)).mean(axis=2)
    if not change.any():
        rows, columns = np.gradient(before.astype(np.float32).mean(axis=2))
        change = np.hypot(rows, columns)
    factor = _POOL if min(change.shape) >= 2 * _POOL else 1
    pooled = _pool(change, factor)
    window_rows, window_columns = max(1, height // factor), max(1, width // factor)
    sums = np.pad(pooled.cumsum(0).cumsum(1), ((1, 0), (1, 0)))
    totals = (
        sums[window_rows:, window_columns:]
        - sums[:-window_rows, window_columns:]
        - sums[window_rows:, :-window_columns]
        + sums[:-window_rows, :-window_columns]
    )
    row, column = np.unravel_index(int(np.argmax(totals)), totals.shape)
    return min(int(column) * factor, before.shape[1] - width), min(int(row) * factor, before.shape[0] - height)


def _pool(change: np.ndarray, factor: int) -> np.ndarray:
    rows, columns = change.shape[0] // factor, change.shape[1] // factor
    blocks = change[: rows * factor, : columns * factor].reshape(rows, factor, columns, factor)
    return blocks.mean(axis=(1, 3), dtype=np.float64)


def _rgb8(pixels: np.ndarray) -> np.ndarray:
    levels = to_integer_levels(pixels, 8)
    return np.repeat(levels, 3, axis=2) if levels.shape[2] == 1 else levels


def _layout(width: int, height: int, screen: Screen) -> Literal["side", "split"]:
    """Side by side unless that shows the pictures at under 70 % of the split view's size."""
    side = min((screen.width - _GAP) / (2 * width), screen.top / height)
    split = min(screen.width / width, screen.top / height)
    return "side" if side >= 0.7 * split else "split"


def _fitted(picture: Image.Image, width: int, height: int) -> tuple[Image.Image, float]:
    scale = min(1.0, width / picture.width, height / picture.height)
    size = (max(1, round(picture.width * scale)), max(1, round(picture.height * scale)))
    return picture.resize(size, Image.Resampling.LANCZOS) if scale < 1 else picture, scale


def _side_by_side(old: np.ndarray, new: np.ndarray, screen: Screen, window: tuple[int, int, int, int]) -> tuple[Image.Image, float]:
    shown = [_fitted(Image.fromarray(pixels), (screen.width - _GAP) // 2, screen.top) for pixels in (old, new)]
    scale = shown[0][1]
    if scale < 1:
        for picture, _ in shown:
            _outline(picture, window, scale)
    return _pair(shown[0][0], shown[1][0], "before", "after"), scale


def _split(old: np.ndarray, new: np.ndarray, screen: Screen, window: tuple[int, int, int, int]) -> tuple[Image.Image, float]:
    middle = old.shape[1] // 2
    joined = np.concatenate([old[:, :middle], new[:, middle:]], axis=1)
    picture, scale = _fitted(Image.fromarray(joined), screen.width, screen.top)
    draw = ImageDraw.Draw(picture)
    line = round(middle * scale)
    draw.line([(line, 0), (line, picture.height)], fill=(255, 255, 255), width=2)
    if scale < 1:
        _outline(picture, window, scale)
    _label(picture, "before", right=False)
    _label(picture, "after", right=True)
    return picture, scale


def _pair(first: Image.Image, second: Image.Image, first_label: str, second_label: str) -> Image.Image:
    row = Image.new("RGB", (first.width + _GAP + second.width, max(first.height, second.height)), _BACKGROUND)
    row.paste(first, (0, 0))
    row.paste(second, (first.width + _GAP, 0))
    _label(row, first_label, right=False, at=0)
    _label(row, second_label, right=False, at=first.width + _GAP)
    return row


def _outline(picture: Image.Image, window: tuple[int, int, int, int], scale: float) -> None:
    left, top, right, bottom = (round(value * scale) for value in window)
    ImageDraw.Draw(picture).rectangle([left, top, max(left, right - 1), max(top, bottom - 1)], outline=_OUTLINE, width=2)


def _label(picture: Image.Image, text: str, right: bool, at: int = 0) -> None:
    draw = ImageDraw.Draw(picture)
    font = ImageFont.load_default(size=max(12, min(28, picture.height // 24)))
    left, top, end, bottom = draw.textbbox((0, 0), text, font=font)
    width, height = end - left + 12, bottom - top + 8
    x = picture.width - width if right else at
    draw.rectangle([x, 0, x + width, height], fill=(0, 0, 0))
    draw.text((x + 6 - left, 4 - top), text, fill=(255, 255, 255), font=font)
