"""`tile="auto"` on the CPU: the fastest plan by a measured speed curve, within the budget.

``choose_tile`` is pure: (free memory, image size, measured curve) in, a tile side (or
``None``, the whole image) out. The curves here are made up, so the expected choices follow
from arithmetic on them, not from the curve the engine ships.
"""

from __future__ import annotations

from types import SimpleNamespace

import pytest
import torch

from restore_cli.engine import budget
from restore_cli.engine.budget import CPU_TILE_SPEED, MemoryModel, TileSpeed, choose_tile
from restore_cli.engine.restorer import Restorer
from restore_cli.model.restormer import Restormer, RestormerConfig

MEMORY = MemoryModel(fixed=0, per_pixel_per_dim=1.0)
DIM = 1
PLENTY = 10**12
FLAT = TileSpeed(((128, 100.0), (256, 100.0), (512, 100.0), (1024, 100.0)))
"""Every pass costs the same per pixel: only the overlaps computed twice differ."""
STEEP = TileSpeed(((128, 100.0), (256, 100.0), (512, 100.0), (1024, 200.0)))
"""1024-pixel passes cost twice as much per pixel, as page faults make them on some CPUs."""


def test_the_curve_is_interpolated_in_the_side_and_unknown_beyond_it() -> None:
    assert STEEP.seconds_per_mpix(768 * 768) == pytest.approx(150.0)
    assert STEEP.seconds_per_mpix(64 * 64) == 100.0
    assert STEEP.seconds_per_mpix(1032 * 1032) is None


def test_with_a_flat_curve_the_largest_measured_tile_wastes_least_on_overlaps() -> None:
    assert choose_tile(PLENTY, MEMORY, DIM, 3000, 4000, speed=FLAT, overlap=32) == 1024


def test_a_tile_whose_passes_cost_more_per_pixel_loses() -> None:
    assert choose_tile(PLENTY, MEMORY, DIM, 3000, 4000, speed=STEEP, overlap=32) == 512


def test_small_images_run_whole_and_large_ones_never_do_beyond_the_measured_sides() -> None:
    assert choose_tile(PLENTY, MEMORY, DIM, 480, 640, speed=STEEP, overlap=32) is None
    assert choose_tile(PLENTY, MEMORY, DIM, 520, 520, speed=STEEP, overlap=32) is None  # 4 tiles of 512 cost more
    assert choose_tile(PLENTY, MEMORY, DIM, 2000, 2000, speed=FLAT, overlap=32) == 1024


def test_the_memory_budget_caps_the_choice() -> None:
    room_for_300_squared = 300 * 300
    assert choose_tile(room_for_300_squared, MEMORY, DIM, 3000, 4000, speed=FLAT, overlap=32) == 256
    room_for_100_squared = 100 * 100  # below every measured side: the largest tile that fits
    assert choose_tile(room_for_100_squared, MEMORY, DIM, 3000, 4000, speed=FLAT, overlap=32) == 96


def test_without_a_curve_the_largest_tile_that_fits_is_taken() -> None:
    """On GPUs there is no measured curve: the whole image whenever it fits."""
    assert choose_tile(PLENTY, MEMORY, DIM, 3000, 4000) is None


def test_the_engine_tiles_a_big_photo_on_the_cpu_even_with_memory_to_spare() -> None:
    model = Restormer(RestormerConfig(dim=8, num_blocks=(1, 1, 1, 1), num_refinement_blocks=1))
    restorer = Restorer(model, device="cpu", max_memory="1TB")

    plan, _ = restorer.plan(3000, 4000)

    expected = choose_tile(PLENTY, MEMORY, DIM, 3000, 4000, speed=CPU_TILE_SPEED, overlap=32)
    assert plan.tile_height == plan.tile_width == expected < 3000
    assert len(restorer.plan(200, 300)[0]) == 1
    assert len(Restorer(model, device="cpu", tile=0).plan(3000, 4000)[0]) == 1  # --tile 0: whole, always


def test_the_default_cpu_budget_leaves_half_of_the_free_memory_to_other_programs(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(budget.psutil, "virtual_memory", lambda: SimpleNamespace(available=8 * 2**30))
    monkeypatch.setattr(budget.psutil, "Process", lambda: SimpleNamespace(memory_info=lambda: SimpleNamespace(rss=2**30)))

    assert budget.default_memory_budget(torch.device("cpu")) == 2**30 + 4 * 2**30
