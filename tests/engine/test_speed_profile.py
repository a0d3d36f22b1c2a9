"""The speed profile: stored in the cache directory under this machine's key, found again by
the same CPU, thread count and torch, and never used by another."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pytest

from restore_cli.engine import profile
from restore_cli.engine.hardware import CpuInfo
from restore_cli.engine.profile import BUILTIN_CPU_SPEEDS, ProfileKey, builtin_speed, cpu_speed, measured_speed, save_curve
from restore_cli.engine.restorer import Restorer
from restore_cli.model.restormer import Restormer, RestormerConfig

HERE = ProfileKey(cpu="Test CPU (AVX2, bf16 emulated)", threads=2, torch="2.13.0+cpu")
POINTS = [(256, 50.0), (512, 40.0), (1024, 45.0)]


def test_a_saved_curve_is_found_under_the_same_key_width_and_precision(hf_home: Path) -> None:
    path = save_curve(HERE, 48, "fp32", POINTS, {"command": "test"})

    found = measured_speed(HERE, 48, "fp32")

    assert path.parent == hf_home / "restore" / "speed-profiles"
    assert found is not None and found.points == tuple(POINTS)
    assert str(path) in found.source and "measured" in found.source
    assert cpu_speed(48, "fp32", HERE) == found


@pytest.mark.parametrize("other", [
    replace(HERE, cpu="Test CPU (AVX-512, native bf16)"),
    replace(HERE, threads=1),
    replace(HERE, torch="2.14.0+cpu"),
])
def test_a_profile_measured_under_another_key_is_not_used(hf_home: Path, other: ProfileKey) -> None:
    save_curve(HERE, 48, "fp32", POINTS, {})

    assert measured_speed(other, 48, "fp32") is None
    assert cpu_speed(48, "fp32", other) == builtin_speed()


def test_a_profile_file_copied_from_another_machine_is_not_trusted(hf_home: Path) -> None:
    """The file name is only a convenience: the key stored inside is what must match."""
    elsewhere = replace(HERE, cpu="Another CPU (AVX2, bf16 emulated)")
    written = save_curve(elsewhere, 48, "fp32", POINTS, {})
    written.rename(written.parent / HERE.file_name())

    assert measured_speed(HERE, 48, "fp32") is None


def test_other_widths_and_precisions_fall_back_to_the_builtin_curve(hf_home: Path) -> None:
    save_curve(HERE, 48, "fp32", POINTS, {})

    assert cpu_speed(8, "fp32", HERE) == builtin_speed()
    assert cpu_speed(48, "bf16", HERE) == builtin_speed()


def test_curves_of_one_key_are_kept_side_by_side_and_a_new_one_replaces_its_own(hf_home: Path) -> None:
    save_curve(HERE, 48, "fp32", POINTS, {})
    save_curve(HERE, 48, "bf16", [(512, 20.0)], {})
    save_curve(HERE, 48, "fp32", [(512, 30.0)], {})

    assert measured_speed(HERE, 48, "fp32").points == ((512, 30.0),)
    assert measured_speed(HERE, 48, "bf16").points == ((512, 20.0),)


@pytest.mark.parametrize("content", ["{not json", json.dumps([1, 2]), json.dumps({"format": 99})])
def test_an_unreadable_profile_means_the_builtin_curve(hf_home: Path, content: str) -> None:
    path = profile.profile_dir() / HERE.file_name()
    path.parent.mkdir(parents=True)
    path.write_text(content, encoding="utf-8")

    assert cpu_speed(48, "fp32", HERE) == builtin_speed()
    save_curve(HERE, 48, "fp32", POINTS, {})  # and a calibration replaces it
    assert measured_speed(HERE, 48, "fp32").points == tuple(POINTS)


def test_the_engine_plans_with_this_machines_profile_once_there_is_one(hf_home: Path) -> None:
    """A curve on which only small passes are cheap makes the engine tile an image it would
    otherwise run whole."""
    model = Restormer(RestormerConfig(dim=8, num_blocks=(1, 1, 1, 1), num_refinement_blocks=1))
    restorer = Restorer(model, device="cpu", max_memory="1TB")
    assert restorer.speed_profile() == builtin_speed()
    assert len(restorer.plan(512, 512)[0]) == 1

    save_curve(ProfileKey.this_process(), 8, "fp32", [(128, 10.0), (256, 10.0), (512, 100.0)], {})

    assert restorer.speed_profile() == measured_speed(ProfileKey.this_process(), 8, "fp32")
    assert len(restorer.plan(512, 512)[0]) > 1


@pytest.mark.parametrize(("flags", "kind"), [
    ({"avx2", "avx512f"}, "AVX-512"),
    ({"avx2"}, "AVX2"),
    ({"sse4_2"}, "AVX2"),
])
def test_without_a_profile_the_builtin_curve_of_this_cpu_kind_is_used(flags: set[str], kind: str) -> None:
    """Each shipped curve was measured on one vector unit; a CPU without AVX2 gets the
    slower AVX2 one rather than the AVX-512 one."""
    speed = builtin_speed(CpuInfo(model="Test CPU", flags=frozenset(flags)))

    assert speed is BUILTIN_CPU_SPEEDS[kind]
    assert kind in speed.source
