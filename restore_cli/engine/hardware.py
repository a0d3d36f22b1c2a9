"""What this machine computes natively: the CPU's kind and which half precisions are fast.

bf16 is not a speed-up everywhere. Where the CPU lacks native bf16 dot products
(``avx512_bf16`` or AMX), torch emulates them: on an AVX2-only AMD EPYC a bf16 matrix product
runs about 90x slower than fp32, and the full model 17x slower end to end (docs/performance.md). GPUs have the same split: bf16 needs compute capability 8.0 (Ampere),
and fp16 is only fast with tensor cores (7.0) or on the few older chips with fast fp16.
The engine asks here before it accepts ``--precision bf16|fp16``.
"""

from __future__ import annotations

import functools
import platform
from dataclasses import dataclass
from pathlib import Path

import torch

NATIVE_BF16_FLAGS = frozenset({"avx512_bf16", "amx_bf16"})
"""x86 flags (as /proc/cpuinfo spells them) of bf16 dot-product instructions."""
CUDA_BF16_CAPABILITY = (8, 0)
CUDA_FP16_CAPABILITY = (7, 0)
CUDA_FAST_FP16_OLDER = frozenset({(5, 3), (6, 0), (6, 2)})
"""Pre-Volta chips with full-rate fp16 arithmetic (Jetson TX1/TX2, P100)."""


@dataclass(frozen=True)
class CpuInfo:
    """A CPU as the engine cares about it: its name and instruction-set flags."""

    model: str
    flags: frozenset[str]

    @property
    def native_bf16(self) -> bool:
        return bool(self.flags & NATIVE_BF16_FLAGS)

    @property
    def vector_unit(self) -> str:
        if "avx512f" in self.flags:
            return "AVX-512"
        if "avx2" in self.flags:
            return "AVX2"
        return "no AVX2"

    def describe(self) -> str:
        """``Intel(R) Xeon(R) Processor (AVX-512, AMX, native bf16)``: what a figure was measured on."""
        features = [self.vector_unit] + (["AMX"] if "amx_tile" in self.flags else [])
        features.append("native bf16" if self.native_bf16 else "bf16 emulated")
        return f"{self.model} ({', '.join(features)})"


def parse_cpuinfo(text: str) -> CpuInfo:
    """The first processor's model name and flags from /proc/cpuinfo's text."""
    fields: dict[str, str] = {}
    for line in text.splitlines():
        key, _, value = line.partition(":")
        fields.setdefault(key.strip(), value.strip())
    return CpuInfo(fields.get("model name", "unknown CPU"), frozenset(fields.get("flags", "").split()))


@functools.lru_cache(maxsize=None)
def cpu_info() -> CpuInfo:
    """This machine's CPU: /proc/cpuinfo on Linux, else torch's own capability queries."""
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.is_file():
        parsed = parse_cpuinfo(cpuinfo.read_text(encoding="utf-8", errors="replace"))
        if parsed.flags:
            return parsed
    return CpuInfo(platform.processor() or platform.machine(), _flags_from_torch())


def _flags_from_torch() -> frozenset[str]:
    """The flags that matter here, from torch's CPU queries (private, so each is optional)."""
    queries = {"avx2": "_is_avx2_supported", "avx512f": "_is_avx512_supported",
               "avx512_bf16": "_is_avx512_bf16_supported", "amx_tile": "_is_amx_tile_supported"}
    found = {flag for flag, name in queries.items() if getattr(torch.cpu, name, lambda: False)()}
    if "amx_tile" in found:
        found.add("amx_bf16")  # every AMX CPU so far has AMX-BF16
    return frozenset(found)


def slow_precision_reason(dtype: torch.dtype, device: torch.device, cpu: CpuInfo | None = None) -> str | None:
    """Why half precision ``dtype`` would run emulated, or at a fraction of fp32's speed, on
    ``device``; ``None`` when it is native there. fp32 is native everywhere, and fp16 on the
    CPU is refused by the engine whatever the CPU."""
    name = {torch.bfloat16: "bf16", torch.float16: "fp16"}.get(dtype)
    if name is None:
        return None
    if device.type == "cpu":
        cpu = cpu or cpu_info()
        if name == "bf16" and not cpu.native_bf16:
            return (f"this CPU ({cpu.model}) has no native bf16 (neither avx512_bf16 nor amx_bf16), "
                    "so bf16 would be emulated, 15-90x slower than fp32")
        return None
    if device.type == "cuda":
        return _cuda_reason(name, torch.cuda.get_device_capability(device), torch.cuda.get_device_name(device))
    return f"{name} speed on {device.type} devices has not been measured"


def _cuda_reason(name: str, capability: tuple[int, int], gpu: str) -> str | None:
    major, minor = capability
    if name == "bf16" and capability < CUDA_BF16_CAPABILITY:
        return f"{gpu} (compute capability {major}.{minor}) has no native bf16 (needs 8.0, Ampere or newer)"
    if name == "fp16" and capability < CUDA_FP16_CAPABILITY and capability not in CUDA_FAST_FP16_OLDER:
        return f"{gpu} (compute capability {major}.{minor}) runs fp16 at a fraction of its fp32 speed (no tensor cores)"
    return None
