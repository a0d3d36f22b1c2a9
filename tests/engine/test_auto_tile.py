"""`tile="auto"` on the CPU: tiles fitted to the image, the fastest plan by a speed curve,
within the budget.

``choose_tile`` is pure: (free memory, image size, speed curve) in, a tile (or ``None``, the
whole image) out. The curves here are made up or the shipped ones, so the expected choices
follow from arithmetic on them, and the brute-force oracles below lay every possible tile
length with ``plan_tiles`` itself rather than trusting the rule's own fitting.
"""

from __future__ import annotations

import functools
import math
from types import SimpleNamespace

import pytest
import torch

from restore_cli.engine import budget
from restore_cli.engine.budget import MEMORY_MODELS, PLAN_TOLERANCE, MemoryModel, choose_tile
from restore_cli.engine.profile import BUILTIN_CPU_SPEEDS, TileSpeed, builtin_speed
from restore_cli.engine.restorer import Restorer
from restore_cli.engine.tiling import padded_length, plan_tiles
from restore_cli.model.restormer import Restormer, RestormerConfig

MEMORY = MemoryModel(fixed=0, per_pixel_per_dim=1.0)
DIM = 1
PLENTY = 10**12
OVERLAP = 32
FLAT = TileSpeed(((128, 100.0), (256, 100.0), (512, 100.0), (1024, 100.0)))
"""Every pass costs the same per pixel: only the pixels computed twice differ."""
STEEP = TileSpeed(((128, 100.0), (256, 100.0), (512, 100.0), (1024, 200.0)))
"""1024-pixel passes cost twice as much per pixel, as page faults make them on some CPUs."""
FULL = MEMORY_MODELS[torch.float32]
FULL_DIM = RestormerConfig().dim

SIZES = [(512, 512), (512, 768), (1024, 1024), (1080, 1920), (1072, 2000), (2048, 2048), (2160, 3840),
         (3000, 4000), (3456, 5184), (4000, 6000), (1001, 1333), (600, 4000)]
"""(height, width) from 512 x 512 to 24 Mpix: squares, photos, video frames, a panorama."""


def _computed(height: int, width: int, tile: tuple[int, int] | None) -> int:
    return plan_tiles(height, width, tile, OVERLAP).computed_pixels


@functools.lru_cache(maxsize=None)
def _axis_lengths(length: int) -> dict[int, int]:
    """Every tile length (multiple of 8, at least 64 or the whole axis) -> tiles along a
    padded ``length``, as plan_tiles lays them."""
    return {size: len(plan_tiles(length, 8, size, OVERLAP).rows.starts)
            for size in range(8, length + 1, 8) if size >= 64 or size == length}


def _every_tiling(height: int, width: int, max_pixels: int) -> list[tuple[int, int]]:
    """(computed pixels, tile pixels) of every tiling whose tile holds at most
    ``max_pixels``: the brute-force oracle's search space."""
    rows, cols = _axis_lengths(padded_length(height)), _axis_lengths(padded_length(width))
    return [(rows[tile_height] * tile_height * cols[tile_width] * tile_width, tile_height * tile_width)
            for tile_height in rows for tile_width in cols if tile_height * tile_width <= max_pixels]


def _fewest_pixels(height: int, width: int, max_pixels: int, max_side: float) -> int:
    """The least any tiling computes whose tile is within ``max_pixels`` and ``max_side``."""
    return min(computed for computed, tile in _every_tiling(height, width, min(max_pixels, int(max_side**2))))


def _least_time(height: int, width: int, max_pixels: int, speed: TileSpeed) -> float:
    """The least estimated time of any tiling within ``max_pixels`` and the curve."""
    timed = [computed * speed.seconds_per_mpix(tile) for computed, tile in _every_tiling(height, width, max_pixels)
             if speed.seconds_per_mpix(tile) is not None]
    return min(timed) / 1e6


def test_the_curve_is_interpolated_in_the_side_and_unknown_beyond_it() -> None:
    assert STEEP.seconds_per_mpix(768 * 768) == pytest.approx(150.0)
    assert STEEP.seconds_per_mpix(64 * 64) == 100.0
    assert STEEP.seconds_per_mpix(1032 * 1032) is None


@pytest.mark.parametrize(("height", "width"), [(1024, 1024), (1072, 2000), (1500, 2000), (1001, 1333)])
def test_with_a_flat_curve_the_plan_computes_the_fewest_pixels_any_tiling_could(height: int, width: int) -> None:
    tile = choose_tile(PLENTY, MEMORY, DIM, height, width, speed=FLAT, overlap=OVERLAP)

    assert _computed(height, width, tile) == _fewest_pixels(height, width, PLENTY, 1024)


@pytest.mark.parametrize("room", [300 * 300, 200 * 500, 700 * 700])
def test_within_a_tight_budget_too(room: int) -> None:
    tile = choose_tile(room, MEMORY, DIM, 1500, 2000, speed=FLAT, overlap=OVERLAP)

    assert tile[0] * tile[1] <= room
    assert _computed(1500, 2000, tile) == _fewest_pixels(1500, 2000, room, 1024)


@pytest.mark.parametrize("kind", sorted(BUILTIN_CPU_SPEEDS))
@pytest.mark.parametrize(("height", "width"), [(1024, 1024), (1072, 2000), (1500, 2000), (3000, 4000)])
def test_with_a_rising_curve_the_plan_is_as_fast_as_any_tiling_within_the_tolerance(
    kind: str, height: int, width: int,
) -> None:
    """The built-in curves cost more per pixel for larger passes. No tile length at all is
    estimated faster by more than the tolerance, and none within it computes fewer pixels."""
    speed = BUILTIN_CPU_SPEEDS[kind]
    tile = choose_tile(PLENTY, MEMORY, DIM, height, width, speed=speed, overlap=OVERLAP)

    plan = plan_tiles(height, width, tile, OVERLAP)
    least = _least_time(height, width, PLENTY, speed)
    assert speed.plan_seconds(plan) <= least * (1 + PLAN_TOLERANCE)
    close = [computed for computed, pixels in _every_tiling(height, width, PLENTY)
             if speed.seconds_per_mpix(pixels) is not None
             and computed * speed.seconds_per_mpix(pixels) / 1e6 <= least * (1 + PLAN_TOLERANCE)]
    assert plan.computed_pixels == min(close)


def test_between_plans_the_curve_cannot_tell_apart_the_one_computing_fewer_pixels_wins() -> None:
    """480 x 640 whole: 0.31 Mpix at ~108 s/Mpix = 33.2 s; two 480 x 336 tiles: 0.32 Mpix
    at 100 s/Mpix = 32.3 s, 3% faster by the curve: within its tolerance."""
    assert 0 < 1 - 32.3 / 33.2 < PLAN_TOLERANCE
    assert choose_tile(PLENTY, MEMORY, DIM, 480, 640, speed=STEEP, overlap=OVERLAP) is None


def test_small_images_run_whole() -> None:
    assert choose_tile(PLENTY, MEMORY, DIM, 480, 640, speed=FLAT, overlap=OVERLAP) is None
    assert choose_tile(PLENTY, MEMORY, DIM, 512, 512, speed=STEEP, overlap=OVERLAP) is None


def test_a_1024_image_runs_as_2x2_fitted_tiles_when_large_passes_cost_more() -> None:
    """Whole: 1.05 Mpix at 200 s/Mpix = 210 s. 2 x 2 tiles of (1024 + 32) / 2 = 528: 1.12
    Mpix at ~103 s/Mpix = 115 s. 3 x 3 of 384, a measured side: 1.33 Mpix, 133 s."""
    assert choose_tile(PLENTY, MEMORY, DIM, 1024, 1024, speed=STEEP, overlap=OVERLAP) == (528, 528)


def test_passes_larger_than_the_curve_are_never_planned() -> None:
    tile = choose_tile(PLENTY, MEMORY, DIM, 3000, 4000, speed=FLAT, overlap=OVERLAP)

    assert math.sqrt(tile[0] * tile[1]) <= FLAT.sides[-1]


@pytest.mark.parametrize("speed", [FLAT, *BUILTIN_CPU_SPEEDS.values()], ids=["flat", *BUILTIN_CPU_SPEEDS])
@pytest.mark.parametrize("gib", [6, 8, 16])
def test_overlaps_waste_at_most_10_percent_from_512_squared_to_24_mpix(speed: TileSpeed, gib: int) -> None:
    """With the full model's memory model and a budget of 6 GiB or more, every size, with
    a flat curve (the geometry of fitted tiles) and with each shipped one."""
    wasted = {}
    for height, width in SIZES:
        tile = choose_tile(gib * 2**30, FULL, FULL_DIM, height, width, speed=speed, overlap=OVERLAP)
        wasted[(height, width)] = round(_computed(height, width, tile) / (height * width) - 1, 3)

    assert max(wasted.values()) <= 0.10, wasted


@pytest.mark.parametrize("gib", [1, 2, 4, 16])
def test_the_plan_never_needs_more_than_the_budget(gib: int) -> None:
    for height, width in SIZES:
        tile = choose_tile(gib * 2**30, FULL, FULL_DIM, height, width, speed=builtin_speed(), overlap=OVERLAP)
        plan = plan_tiles(height, width, tile, OVERLAP)

        assert FULL.forward_bytes(FULL_DIM, plan.tile_height * plan.tile_width) <= gib * 2**30


def test_tlc_windows_fit_inside_tiles_along_axes_longer_than_the_window() -> None:
    tile = choose_tile(PLENTY, MEMORY, DIM, 600, 4000, speed=FLAT, overlap=OVERLAP, min_tile=384)

    assert tile is not None and min(tile) >= 384


def test_without_a_curve_the_largest_square_tile_that_fits_is_taken() -> None:
    """On GPUs there is no measured curve: the whole image whenever it fits."""
    assert choose_tile(PLENTY, MEMORY, DIM, 3000, 4000) is None
    assert choose_tile(300 * 300, MEMORY, DIM, 3000, 4000) == (296, 296)


def test_the_engine_tiles_a_big_photo_on_the_cpu_even_with_memory_to_spare(hf_home) -> None:
    model = Restormer(RestormerConfig(dim=8, num_blocks=(1, 1, 1, 1), num_refinement_blocks=1))
    restorer = Restorer(model, device="cpu", max_memory="1TB")

    plan, _ = restorer.plan(3000, 4000)

    expected = choose_tile(PLENTY, MEMORY, DIM, 3000, 4000, speed=builtin_speed(), overlap=OVERLAP)
    assert (plan.tile_height, plan.tile_width) == expected
    assert len(plan) > 1
    assert len(restorer.plan(200, 300)[0]) == 1
    assert len(Restorer(model, device="cpu", tile=0).plan(3000, 4000)[0]) == 1  # --tile 0: whole, always
    assert (Restorer(model, device="cpu", tile=512).plan(3000, 4000)[0].tile_width) == 512  # --tile N: N


def test_the_default_cpu_budget_leaves_half_of_the_free_memory_to_other_programs(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(budget.psutil, "virtual_memory", lambda: SimpleNamespace(available=8 * 2**30))
    monkeypatch.setattr(budget.psutil, "Process", lambda: SimpleNamespace(memory_info=lambda: SimpleNamespace(rss=2**30)))

    assert budget.default_memory_budget(torch.device("cpu")) == 2**30 + 4 * 2**30
