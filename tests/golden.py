"""Access to the golden cases: tiny random-weight checkpoints in the official format, with
an input and the official implementation's fp32 output (tests/data/golden/index.json)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

GOLDEN_DIR = Path(__file__).parent / "data" / "golden"
CHECKPOINT_KEYS = Path(__file__).parent / "data" / "checkpoint_keys.json"


@dataclass(frozen=True)
class GoldenCase:
    name: str
    checkpoint: Path
    official_config: dict
    input: torch.Tensor
    output: torch.Tensor


def golden_cases() -> list[GoldenCase]:
    index = json.loads((GOLDEN_DIR / "index.json").read_text())
    return [
        GoldenCase(
            name=name,
            checkpoint=GOLDEN_DIR / case["checkpoint"],
            official_config=case["config"],
            input=torch.from_numpy(np.load(GOLDEN_DIR / case["input"])),
            output=torch.from_numpy(np.load(GOLDEN_DIR / case["output"])),
        )
        for name, case in index.items()
    ]


def official_variants() -> dict[str, dict]:
    """The four full-size official variants: tasks, config and every key with its shape."""
    return json.loads(CHECKPOINT_KEYS.read_text())


def config_from_official(official: dict):
    """Translate the official constructor's argument names into our RestormerConfig."""
    from restore_cli.model.restormer import RestormerConfig

    return RestormerConfig(
        in_channels=official["inp_channels"],
        out_channels=official["out_channels"],
        dim=official["dim"],
        num_blocks=tuple(official["num_blocks"]),
        num_refinement_blocks=official["num_refinement_blocks"],
        heads=tuple(official["heads"]),
        ffn_expansion_factor=official["ffn_expansion_factor"],
        bias=official["bias"],
        layernorm_type=official["LayerNorm_type"],
        dual_pixel=official["dual_pixel_task"],
    )
