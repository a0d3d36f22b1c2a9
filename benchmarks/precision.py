"""Speed and fidelity of half precision against fp32 on this machine.

Restores a crop of a real photo whole, once per precision, and prints seconds per
megapixel and PSNR against the fp32 result. Without ``--weights`` the network is a
full-size Restormer with random weights (seed 0), which shows the numerical drift through
the full depth but not how a trained model's output changes. With ``--sigma`` the crop gets
the official seeded Gaussian noise first and each result is also scored against the clean
crop: what a precision costs in denoising quality.

    python benchmarks/precision.py --crop 256 --precisions fp32 bf16
    python benchmarks/precision.py --weights tests/data/tiny_sigma25.pth --sigma 25 --crop 320
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from restore_cli.model.zoo import load_model
from restore_cli.engine.device import resolve_device
from restore_cli.engine.restorer import Restorer
from restore_cli.quality.metrics import gaussian_noise_input, psnr
from restore_cli.model.restormer import Restormer, RestormerConfig

PHOTO = Path(__file__).parent.parent / "restore_cli" / "assets" / "3096.png"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--photo", type=Path, default=PHOTO)
    parser.add_argument("--weights", type=Path, help="a Restormer checkpoint (default: random full-size model)")
    parser.add_argument("--crop", type=int, default=256, help="side of the centre crop restored")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--precisions", nargs="+", default=["fp32", "bf16"])
    parser.add_argument("--sigma", type=float, help="add the official seeded Gaussian noise of this level first")
    args = parser.parse_args()

    torch.manual_seed(0)
    model = load_model(args.weights) if args.weights else Restormer(RestormerConfig()).eval()
    clean = _centre_crop(np.asarray(Image.open(args.photo).convert("RGB"), dtype=np.float32) / 255, args.crop)
    pixels = clean if args.sigma is None else gaussian_noise_input(clean, 8, args.sigma)
    if args.sigma is not None:
        print(f"noisy input (sigma {args.sigma:g}): {psnr(np.clip(pixels, 0, 1), clean, 1.0):.2f} dB against the clean crop")
    device = resolve_device(args.device)
    print(f"{args.photo.name} crop {args.crop}x{args.crop} on {device}; model: {args.weights or 'random full-size'}")
    reference = None
    for precision in args.precisions:
        restorer = Restorer(model, device=device, precision=precision, tile=0)
        restorer.restore(pixels[:64, :64])  # warm-up
        started = time.perf_counter()
        restored = restorer.restore(pixels)
        seconds = time.perf_counter() - started
        reference = restored if reference is None else reference
        quality = "" if args.sigma is None else f", vs the clean crop: {psnr(restored, clean, 1.0):.2f} dB"
        print(f"{precision}: {seconds / (args.crop**2 / 1e6):.0f} s/Mpix, PSNR vs {args.precisions[0]}: "
              f"{psnr(restored, reference, 1.0):.2f} dB{quality}")


def _centre_crop(pixels: np.ndarray, side: int) -> np.ndarray:
    top, left = (pixels.shape[0] - side) // 2, (pixels.shape[1] - side) // 2
    return pixels[top : top + side, left : left + side]


if __name__ == "__main__":
    main()
