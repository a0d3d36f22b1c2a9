"""Tile plans: every pixel covered, weights normalise to 1, tiles the network can take."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from restore_cli.engine.tiling import fitted_length, padded_length, plan_tiles

sides = st.integers(min_value=1, max_value=700)
tiles = st.integers(min_value=8, max_value=600)
overlaps = st.integers(min_value=0, max_value=300)


def brute_force_weight_sum(plan) -> tuple[np.ndarray, np.ndarray]:
    """Per-pixel sum of all 2-D windows and number of tiles covering each pixel."""
    weight = np.zeros((plan.padded_height, plan.padded_width))
    cover = np.zeros_like(weight)
    for i, j in plan.tiles():
        top, left = plan.rows.starts[i], plan.cols.starts[j]
        weight[top : top + plan.tile_height, left : left + plan.tile_width] += plan.window(i, j)
        cover[top : top + plan.tile_height, left : left + plan.tile_width] += 1
    return weight, cover


@settings(max_examples=150, deadline=None)
@given(height=sides, width=sides, tile=tiles, overlap=overlaps, blend=st.sampled_from(["smooth", "uniform"]))
def test_every_pixel_covered_and_normalised_weights_sum_to_one(height, width, tile, overlap, blend):
    plan = plan_tiles(height, width, tile, overlap, blend=blend)
    weight, cover = brute_force_weight_sum(plan)

    assert cover.min() >= 1
    normaliser = np.outer(plan.rows.total, plan.cols.total)
    np.testing.assert_allclose(weight / normaliser, 1.0, rtol=1e-5)
    assert all(plan.window(i, j).min() > 0 for i, j in plan.tiles())


@settings(max_examples=150, deadline=None)
@given(length=sides, tile=tiles, overlap=overlaps)
def test_tiles_are_grid_aligned_multiples_of_8_and_reach_the_edge(length, tile, overlap):
    axis = plan_tiles(length, 8, tile, overlap).rows
    padded = -(-length // 8) * 8

    assert axis.length == padded
    assert axis.size % 8 == 0 and 8 <= axis.size <= padded
    assert axis.size == min(padded, tile // 8 * 8), "never a sliver: every tile has the full size"
    assert all(start % 8 == 0 for start in axis.starts)
    assert axis.starts[0] == 0
    assert axis.starts[-1] + axis.size == padded
    assert list(axis.starts) == sorted(set(axis.starts))


@settings(max_examples=150, deadline=None)
@given(length=st.integers(min_value=9, max_value=2000), tile=tiles, overlap=overlaps)
def test_neighbours_share_at_least_the_requested_overlap(length, tile, overlap):
    axis = plan_tiles(length, 8, tile, overlap).rows
    effective = min(overlap, axis.size // 2, axis.size - 8)

    shared = [previous + axis.size - start for previous, start in zip(axis.starts, axis.starts[1:])]
    assert all(amount >= effective for amount in shared)


@settings(max_examples=60, deadline=None)
@given(length=st.integers(min_value=1, max_value=1500), count=st.integers(min_value=1, max_value=12),
       overlap=st.integers(min_value=0, max_value=96))
def test_a_fitted_length_is_the_smallest_that_covers_the_axis_in_that_many_tiles(length, count, overlap):
    padded = padded_length(length)
    size = fitted_length(padded, count, overlap)

    def tiles(candidate: int) -> int:
        return len(plan_tiles(padded, 8, candidate, overlap).rows.starts)

    assert size % 8 == 0 and 8 <= size <= padded
    assert tiles(size) <= count
    assert all(tiles(smaller) > count for smaller in range(8, size, 8))


def test_rectangular_tiles_keep_each_axis_its_own_length():
    plan = plan_tiles(1024, 2000, (528, 688), 32)

    assert (plan.tile_height, plan.tile_width) == (528, 688)
    assert (len(plan.rows.starts), len(plan.cols.starts)) == (2, 3)
    assert plan.computed_pixels == 6 * 528 * 688


def test_tile_at_least_the_image_is_one_whole_tile_with_unit_weight():
    plan = plan_tiles(321, 481, 488, 32)

    assert len(plan) == 1
    assert (plan.tile_height, plan.tile_width) == (328, 488)
    np.testing.assert_array_equal(plan.window(0, 0), 1.0)


def test_no_tile_means_whole_image():
    plan = plan_tiles(3000, 4000, None, 32)

    assert len(plan) == 1 and (plan.tile_height, plan.tile_width) == (3000, 4000)


def test_smooth_window_falls_off_towards_shared_borders_only():
    plan = plan_tiles(8, 200, 64, 16)
    first, middle = plan.cols.windows[0], plan.cols.windows[1]

    assert first[0] == 1.0, "the image edge has nothing to blend with"
    assert first[-1] < 0.01 and middle[0] < 0.01 and middle[-1] < 0.01
    assert middle[len(middle) // 2] == 1.0
    assert np.all(np.diff(middle[:16]) > 0), "rises monotonically across the overlap"


def test_uniform_window_is_flat():
    plan = plan_tiles(8, 200, 64, 16, blend="uniform")

    assert all(np.all(window == 1.0) for window in plan.cols.windows)


@pytest.mark.parametrize(("length", "padded"), [(1, 8), (5, 8), (8, 8), (9, 16), (777, 784), (20000, 20000)])
def test_padded_length(length, padded):
    assert padded_length(length) == padded


@pytest.mark.parametrize(("tile", "overlap"), [(4, 0), (64, -1)])
def test_rejects_impossible_parameters(tile, overlap):
    with pytest.raises(ValueError):
        plan_tiles(100, 100, tile, overlap)
