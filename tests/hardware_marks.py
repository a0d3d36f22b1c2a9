"""Markers for tests whose cost depends on the CPU they run on."""

from __future__ import annotations

import pytest

from restore_cli.engine.hardware import cpu_info

needs_native_bf16 = pytest.mark.skipif(
    not cpu_info().native_bf16,
    reason="bf16 compute is emulated on this CPU (15-90x slower than fp32); the engine refuses it there",
)
"""For tests that compute in bf16 on the CPU. Tests *about* the refusal simulate the CPU instead."""
