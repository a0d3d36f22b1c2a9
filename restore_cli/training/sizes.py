"""The model a training run starts from: the paper's configuration, smaller ones, or weights.

`base` is the paper's network (26 M parameters). `small` and `tiny` keep its four levels,
head counts and feed-forward expansion but are narrower and shallower, so a CPU can train
them in minutes to hours: the architecture (and so every loader, the engine and the
authors' own code) stays the same; only widths and depths change.
"""

from __future__ import annotations

from dataclasses import replace

from restore_cli.model.restormer import Restormer, RestormerConfig

SIZES: dict[str, RestormerConfig] = {
    "base": RestormerConfig(),
    "small": RestormerConfig(dim=24, num_blocks=(2, 3, 3, 4), num_refinement_blocks=2),
    "tiny": RestormerConfig(dim=8, num_blocks=(1, 1, 1, 1), num_refinement_blocks=1),
}
"""Configurations by `--size`, for RGB input; channels and LayerNorm are set per task."""


def new_model(size: str, channels: int, denoiser: bool) -> Restormer:
    """A freshly initialised network of this size for `channels`-channel images.

    Denoisers use the bias-free LayerNorm, as all the paper's denoisers do; the other tasks
    (rain, blur) use the usual one, as the paper's models for them do.
    """
    if size not in SIZES:
        raise ValueError(f"unknown size {size!r}; choose one of {', '.join(SIZES)}")
    config = replace(
        SIZES[size],
        in_channels=channels,
        out_channels=channels,
        layernorm_type="BiasFree" if denoiser else "WithBias",
    )
    return Restormer(config)
