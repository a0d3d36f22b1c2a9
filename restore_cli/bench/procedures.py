"""What the two procedures ``restore bench`` compares are, shared by the parent and the
workers: the full-size network, our engine with its defaults, the official procedure
(fp32, the paper's NCHW formulation, whole image or uniformly averaged tiles, glibc's
allocator left alone), the FLOP count, and how 8-bit outputs are compared."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from restore_cli.engine.restorer import Restorer
    from restore_cli.model.restormer import Restormer

OFFICIAL, OURS = "official", "ours"
OFFICIAL_TILE, OFFICIAL_OVERLAP = 512, 32
"""Above ``OFFICIAL_WHOLE_LIMIT`` pixels the baseline averages 512-pixel tiles uniformly,
as the official demo's tiled mode does; whole-image inference would need ~100 GiB."""
OFFICIAL_WHOLE_LIMIT = 4_000_000
FLOP_PROBE = 32
"""Side of the input FLOPs are counted on; every layer's cost is linear in pixels."""
PHOTO = Path(__file__).resolve().parents[1] / "assets" / "3096.png"


@dataclass(frozen=True)
class Spec:
    """One measurement, as handed to a worker process."""

    mode: str
    height: int
    width: int
    device: str = "cpu"
    precision: str = "auto"
    allow_slow_precision: bool = False


def full_model(channels_last: bool) -> Restormer:
    """The paper's network (the width and depth of every published checkpoint)."""
    from restore_cli.model.restormer import Restormer, RestormerConfig

    model = Restormer(RestormerConfig()).eval()
    model.channels_last = channels_last
    return model


def official_restorer(model: Restormer, device: str, height: int, width: int) -> Restorer:
    """The official procedure: fp32, NCHW, padded to a multiple of 8, whole image or
    uniformly averaged tiles; no allocator tuning, no autotuning."""
    tile = OFFICIAL_TILE if height * width > OFFICIAL_WHOLE_LIMIT else 0
    return plain_restorer(model, device, tile)


def plain_restorer(model: Restormer, device: str, tile: int) -> Restorer:
    """The engine with none of its speed-ups, for the baseline: padding and tiling only."""
    from restore_cli.engine.restorer import Restorer

    return Restorer(model, device=device, precision="fp32", tile=tile, overlap=OFFICIAL_OVERLAP,
                    blend="uniform", batch_size=1, tune_process=False)


def restorer_for(spec: Spec) -> Restorer:
    """The engine a measurement runs: ours with its defaults, or the official procedure."""
    from restore_cli.engine.restorer import Restorer

    model = full_model(channels_last=spec.mode == OURS)
    if spec.mode == OFFICIAL:
        return official_restorer(model, spec.device, spec.height, spec.width)
    return Restorer(model, device=spec.device, precision=spec.precision,  # type: ignore[arg-type]
                    allow_slow_precision=spec.allow_slow_precision)


def flops_per_pixel() -> float:
    """Counted by torch on the official formulation of the full model, per input pixel:
    convolutions and matrix products, which is where nearly all the arithmetic is."""
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    with torch.device("meta"):
        model = full_model(channels_last=False)
        probe = torch.empty(1, model.config.in_channels, FLOP_PROBE, FLOP_PROBE)
    with FlopCounterMode(display=False) as counter, torch.inference_mode():
        model(probe)
    return counter.get_total_flops() / FLOP_PROBE**2


def compare_8bit(ours: np.ndarray, reference: np.ndarray) -> tuple[int, float]:
    """Max abs difference in 8-bit levels and PSNR (dB, peak 255) of two uint8 images."""
    from restore_cli.quality.metrics import psnr

    difference = np.abs(ours.astype(np.int16) - reference.astype(np.int16))
    return int(difference.max()), psnr(ours, reference, 255.0)


def to_8bit(pixels: np.ndarray) -> np.ndarray:
    """Float [0, 1] to uint8 exactly as `restore` writes an 8-bit file."""
    from restore_cli.io.image import to_integer_levels

    return to_integer_levels(pixels, 8)
