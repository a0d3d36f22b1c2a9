"""Validation during training: whole images restored by the engine, scored by metrics.py,
exactly as `restore eval` and `restore run` would restore and score them."""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from restore_cli.engine.restorer import Restorer
from restore_cli.quality import metrics
from restore_cli.training.data import ValidationImage


def validate(model: nn.Module, images: list[ValidationImage], device: torch.device, precision: str) -> metrics.Score:
    """Mean PSNR / SSIM over the images (at each reference's bit depth), the way papers
    average: per image, then over images. Leaves the model in training mode."""
    restorer = Restorer(model, device=device, precision=precision, tile="auto", tune_process=False)
    try:
        scores = [metrics.score(restorer.restore(image.degraded), image.target, image.bit_depth) for image in images]
    finally:
        model.train()
    return metrics.Score(
        psnr=float(np.mean([score.psnr for score in scores])),
        ssim=float(np.mean([score.ssim for score in scores])),
    )
