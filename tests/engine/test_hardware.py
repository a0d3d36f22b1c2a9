"""Precision that knows the hardware: bf16/fp16 only where native, unless the user insists.

The CPU is simulated (parsed from /proc/cpuinfo text, or swapped in), so these tests mean
the same on an AVX2 laptop and on an AMX server.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from typer.testing import CliRunner

from restore_cli import bench
from restore_cli.cli.app import app
from restore_cli.engine import hardware
from restore_cli.engine.device import resolve_precision
from restore_cli.engine.restorer import Restorer
from restore_cli.errors import SlowPrecisionError
from restore_cli.model.restormer import Restormer, RestormerConfig
from tests.cli_assertions import assert_one_line_error

WEIGHTS = Path(__file__).parents[1] / "data" / "golden" / "tiny_rgb_withbias.pth"
CPU = torch.device("cpu")


def _cpuinfo(model: str, flags: str) -> str:
    processor = f"processor\t: 0\nvendor_id\t: x\nmodel name\t: {model}\nflags\t\t: {flags}\n"
    return processor + "\n" + processor.replace(": 0", ": 1")


AVX2_ONLY = hardware.parse_cpuinfo(_cpuinfo("AMD EPYC 7B12", "fpu sse2 avx avx2 fma f16c"))
SAPPHIRE_RAPIDS = hardware.parse_cpuinfo(
    _cpuinfo("Intel(R) Xeon(R) Platinum 8481C", "avx2 avx512f avx512_bf16 amx_bf16 amx_tile")
)
ZEN4 = hardware.parse_cpuinfo(_cpuinfo("AMD EPYC 9654", "avx2 avx512f avx512_bf16"))


def test_cpuinfo_gives_the_model_name_and_whether_bf16_is_native() -> None:
    assert AVX2_ONLY.model == "AMD EPYC 7B12"
    assert not AVX2_ONLY.native_bf16
    assert SAPPHIRE_RAPIDS.native_bf16 and ZEN4.native_bf16
    assert AVX2_ONLY.describe() == "AMD EPYC 7B12 (AVX2, bf16 emulated)"
    assert SAPPHIRE_RAPIDS.describe() == "Intel(R) Xeon(R) Platinum 8481C (AVX-512, AMX, native bf16)"


@pytest.mark.usefixtures("flag_words")
def test_bf16_where_emulated_is_refused_with_the_reason_and_the_way_out() -> None:
    with pytest.raises(SlowPrecisionError) as refused:
        resolve_precision("bf16", CPU, cpu=AVX2_ONLY)

    message = str(refused.value)
    assert "AMD EPYC 7B12" in message and "emulated" in message
    assert "--precision fp32" in message and "--allow-slow-precision" in message
    assert "\n" not in message


def test_bf16_is_taken_where_native_or_when_the_user_insists() -> None:
    assert resolve_precision("bf16", CPU, cpu=SAPPHIRE_RAPIDS) == torch.bfloat16
    assert resolve_precision("bf16", CPU, cpu=ZEN4) == torch.bfloat16
    assert resolve_precision("bf16", CPU, allow_slow=True, cpu=AVX2_ONLY) == torch.bfloat16


@pytest.mark.parametrize("cpu", [AVX2_ONLY, SAPPHIRE_RAPIDS])
def test_auto_is_fp32_on_every_cpu(cpu: hardware.CpuInfo) -> None:
    assert resolve_precision("auto", CPU, cpu=cpu) == torch.float32
    assert resolve_precision("fp32", CPU, cpu=cpu) == torch.float32


@pytest.mark.parametrize(
    ("name", "capability", "native"),
    [
        ("bf16", (7, 5), False),  # Turing: no bf16
        ("bf16", (8, 0), True),
        ("bf16", (9, 0), True),
        ("fp16", (6, 1), False),  # consumer Pascal: fp16 at 1/64 rate
        ("fp16", (6, 0), True),  # P100: full-rate fp16
        ("fp16", (7, 0), True),
    ],
)
def test_gpu_half_precision_needs_the_right_compute_capability(name: str, capability: tuple[int, int], native: bool) -> None:
    reason = hardware._cuda_reason(name, capability, "GPU X")
    assert (reason is None) == native
    if reason is not None:
        assert "GPU X" in reason and f"{capability[0]}.{capability[1]}" in reason


def test_the_engine_refuses_emulated_bf16_before_any_work(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(hardware, "cpu_info", lambda: AVX2_ONLY)
    model = Restormer(RestormerConfig(dim=8, num_blocks=(1, 1, 1, 1), num_refinement_blocks=1))

    with pytest.raises(SlowPrecisionError):
        Restorer(model, device="cpu", precision="bf16")
    assert Restorer(model, device="cpu", precision="bf16", allow_slow_precision=True).dtype == torch.bfloat16


@pytest.fixture
def small_png(tmp_path: Path) -> Path:
    path = tmp_path / "in.png"
    Image.fromarray(np.random.default_rng(0).integers(0, 256, (16, 16, 3), dtype=np.uint8)).save(path)
    return path


def test_the_cli_refuses_emulated_bf16_in_one_line_with_exit_2(
    monkeypatch: pytest.MonkeyPatch, small_png: Path
) -> None:
    monkeypatch.setattr(hardware, "cpu_info", lambda: AVX2_ONLY)
    out = small_png.with_name("out.png")

    result = CliRunner().invoke(app, ["run", "--weights", str(WEIGHTS), str(small_png), "-o", str(out),
                                      "--device", "cpu", "--precision", "bf16"])

    assert_one_line_error(result, 2)
    assert "no native bf16" in result.stderr and "--allow-slow-precision" in result.stderr
    assert not out.exists()


def test_the_cli_runs_emulated_bf16_when_asked_explicitly(monkeypatch: pytest.MonkeyPatch, small_png: Path) -> None:
    monkeypatch.setattr(hardware, "cpu_info", lambda: AVX2_ONLY)
    out = small_png.with_name("out.png")

    result = CliRunner().invoke(app, ["run", "--weights", str(WEIGHTS), str(small_png), "-o", str(out), "--quiet",
                                      "--device", "cpu", "--precision", "bf16", "--allow-slow-precision"])

    assert result.exit_code == 0, result.output
    assert Image.open(out).size == (16, 16)


@pytest.mark.parametrize(("cpu", "measured"), [(AVX2_ONLY, ("fp32",)), (SAPPHIRE_RAPIDS, ("fp32", "bf16"))])
def test_bench_measures_only_the_precisions_native_here(
    monkeypatch: pytest.MonkeyPatch, cpu: hardware.CpuInfo, measured: tuple[str, ...]
) -> None:
    monkeypatch.setattr(hardware, "cpu_info", lambda: cpu)
    assert bench.native_precisions("cpu") == measured
    assert bench.auto_precision("cpu") == "fp32"
    assert bench.describe_machine().startswith(cpu.describe())


def test_bench_refuses_to_measure_emulated_bf16_unless_asked(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(hardware, "cpu_info", lambda: AVX2_ONLY)

    result = CliRunner().invoke(app, ["bench", "--sizes", "16", "--precision", "bf16"])

    assert result.exit_code == 2
    assert "no native bf16" in result.output and "--allow-slow-precision" in result.output
