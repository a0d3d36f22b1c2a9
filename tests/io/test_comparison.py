"""The before/after view: layout, size, and the 100 % crop where the picture changed most."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from restore_cli.io.comparison import Screen, busiest_window, compare_view
from restore_cli.io.image import DecodedImage
from tests.photo_files import scene


def image(levels: np.ndarray) -> DecodedImage:
    return DecodedImage(levels.astype(np.float32) / 255, None, 8, b"profile", None, "PNG")


def test_the_busiest_window_is_where_the_model_changed_most() -> None:
    before = scene(120, 200).astype(np.float32) / 255
    after = before.copy()
    after[70:90, 150:180] += 0.2

    left, top = busiest_window(before, after, 30, 20)

    assert abs(left - 150) <= 4 and abs(top - 70) <= 4  # the search runs on 4 x 4 blocks
    assert busiest_window(before, before, 200, 120) == (0, 0)  # nothing changed, window as big as the picture


def test_a_panorama_is_split_and_its_most_changed_region_shown_at_100_percent() -> None:
    before = scene(100, 3000, seed=4)
    after = before.copy()
    after[20:80, 2000:2100] = 255 - after[20:80, 2000:2100]

    view = compare_view(image(before), image(after))

    levels = np.rint(view.pixels * 255).astype(np.int64)
    screen = Screen()
    assert levels.shape[1] == screen.width and levels.shape[0] <= screen.height
    top_height = round(100 * screen.width / 3000)  # one split picture, scaled to the screen's width
    crop_width = screen.crop[0]
    before_crop, after_crop = levels[-100:, :crop_width], levels[-100:, crop_width + 8 : 2 * crop_width + 8]
    left = next(x for x in range(0, 3000 - crop_width + 1) if np.array_equal(before_crop[40:], before[40:, x : x + crop_width]))
    assert left <= 2000 and left + crop_width >= 2100  # the changed block is inside the crop
    assert np.array_equal(after_crop[40:], after[40:, left : left + crop_width])
    assert levels.shape[0] == top_height + 8 + 100 and view.icc_profile == b"profile"


@pytest.mark.parametrize("layout", ["side", "split"])
def test_gray_pictures_and_both_layouts(layout: str) -> None:
    gray = image(scene(30, 40)[..., :1])

    view = compare_view(gray, replace(gray, pixels=1 - gray.pixels), layout)  # type: ignore[arg-type]

    assert view.channels == 3 and view.height == 30 and view.width == (88 if layout == "side" else 40)
