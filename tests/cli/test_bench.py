"""`restore bench`: sizes, FLOP count, derived figures, 8-bit comparison, and one real run."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from restore_cli import bench
from restore_cli.cli.app import app
from restore_cli.engine.hardware import cpu_info
from restore_cli.engine.profile import ProfileKey, builtin_speed, measured_speed
from restore_cli.model.restormer import RestormerConfig

runner = CliRunner()


def test_sizes_are_square_or_width_by_height() -> None:
    assert bench.parse_size("512") == bench.Size("512", 512, 512)
    assert bench.parse_size("4000x3000") == bench.Size("4000x3000", height=3000, width=4000)


@pytest.mark.parametrize("text", ["", "big", "0", "4", "512x", "1x2x3", "-8"])
def test_unreadable_sizes_are_refused(text: str) -> None:
    with pytest.raises(ValueError, match="size"):
        bench.parse_size(text)


def test_flops_per_pixel_is_the_papers_figure() -> None:
    """The paper reports 140 GFLOPs (multiply-adds) at 256 x 256: 2.1 M MAC, 4.3 MFLOP per
    pixel; counting the attention products and all convs gives a little more."""
    assert 4.5e6 < bench.flops_per_pixel() < 4.9e6


def _row(official: list[float], ours: list[float]) -> bench.Row:
    size = bench.parse_size("1000x500")
    row = bench.Row(size, flops=1e12)
    row.official = [bench.Pass(seconds, 2**30, None, 1) for seconds in official]
    row.ours = [bench.Pass(seconds, 2**29, None, 1) for seconds in ours]
    return row


def test_figures_use_the_median_pass_of_each_procedure() -> None:
    figures = _row(official=[10.0, 30.0, 12.0], ours=[4.0, 5.0, 100.0]).summary()

    assert figures["official"]["median_seconds"] == 12.0
    assert figures["ours"]["median_seconds"] == 5.0
    assert figures["ours"]["seconds_per_mpix"] == 10.0
    assert figures["ours"]["gflops"] == 200.0
    assert figures["official"]["peak_rss_mib"] == 1024
    assert figures["speedup"] == 2.4


def test_8bit_comparison_counts_levels_and_peak_255() -> None:
    image = np.full((4, 4, 3), 100, dtype=np.uint8)

    assert bench.compare_8bit(image, image) == (0, math.inf)
    diff, psnr_db = bench.compare_8bit(image + 1, image)
    assert diff == 1 and psnr_db == pytest.approx(20 * math.log10(255))


def test_8bit_conversion_rounds_and_clips() -> None:
    pixels = np.array([-0.1, 0.0, 0.5 / 255, 0.4 / 255, 1.0, 1.2])

    assert bench.to_8bit(pixels).tolist() == [0, 0, 0, 0, 255, 255]
    assert bench.to_8bit(np.array([0.6 / 255])).tolist() == [1]


def test_bad_size_is_a_usage_error() -> None:
    result = runner.invoke(app, ["bench", "--sizes", "huge"])

    assert result.exit_code == 2
    assert "size 'huge'" in result.output


def test_a_tiny_benchmark_runs_both_procedures_in_fresh_processes(hf_home: Path) -> None:
    """The full-size model on 16 x 16 pixels: seconds, not minutes."""
    result = runner.invoke(app, ["bench", "--sizes", "16", "--repeat", "1", "--threads", "1", "--no-fidelity", "--json"])

    assert result.exit_code == 0, result.output
    (line,) = result.stdout.strip().splitlines()
    report = json.loads(line)
    assert (report["schema"], report["type"], report["command"], report["status"]) == (1, "summary", "bench", "done")
    (row,) = report["sizes"]
    assert (row["height"], row["width"]) == (16, 16)
    for mode in ("official", "ours"):
        assert row[mode]["median_seconds"] > 0 and row[mode]["peak_rss_mib"] > 0 and row[mode]["tiles"] == 1
    # The report rounds seconds to 1 ms and the speed-up to 0.01: compare within that rounding.
    official, ours = row["official"]["median_seconds"], row["ours"]["median_seconds"]
    lowest, highest = (official - 5e-4) / (ours + 5e-4), (official + 5e-4) / (ours - 5e-4)
    assert lowest - 0.005 <= row["speedup"] <= highest + 0.005
    assert report["flops_per_pixel"] == pytest.approx(bench.flops_per_pixel())
    assert report["machine"].startswith(cpu_info().describe()) and report["auto_precision"] == "fp32"
    assert report["speed_profile"] == builtin_speed().source


def test_calibration_stores_this_machines_profile_where_restore_finds_it(hf_home: Path) -> None:
    result = runner.invoke(app, ["bench", "--calibrate", "--sizes", "96", "--sizes", "64", "--threads", "1", "--json"])

    assert result.exit_code == 0, result.output
    found = json.loads(result.stdout.strip().splitlines()[-1])["calibration"]
    assert [point["side"] for point in found["points"]] == [64, 96]
    assert all(point["cpu_seconds_per_mpix"] > 0 and len(point["warm_cpu_seconds"]) == 1 for point in found["points"])
    key = ProfileKey(**found["key"])
    assert (key.cpu, key.threads) == (cpu_info().describe(), 1)
    assert Path(found["path"]).parent == hf_home / "restore" / "speed-profiles"
    stored = measured_speed(key, RestormerConfig().dim, "fp32")
    assert stored.points == tuple((point["side"], point["cpu_seconds_per_mpix"]) for point in found["points"])
    assert bench.speed_profile("auto", "cpu") == stored.source  # what `restore bench` now reports


@pytest.mark.parametrize("sizes", [["16"], ["128x96"]])
def test_calibration_passes_are_squares_the_auto_rule_could_plan(sizes: list[str]) -> None:
    result = runner.invoke(app, ["bench", "--calibrate", *(arg for size in sizes for arg in ("--sizes", size))])

    assert result.exit_code == 2
    assert "at least 64 pixels" in result.output
