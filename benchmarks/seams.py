"""How close is tiled output to whole-image output: smooth blending vs uniform averaging.

For each photo, runs the whole image in one pass, then the same tile plan blended two ways:
our raised-cosine windows and the official demo's uniform averaging. Both blends reuse one
set of tile outputs (the model is memoised), so the comparison isolates the blending. Prints
PSNR of each against the whole-image result and writes a difference image per photo:
|tiled - whole| x ``--gain`` (ours left, uniform right).

Without ``--weights`` the network is a full-size Restormer with random weights (seed 0).
``--tlc-window N`` runs every pass, whole and tiled, with TLC's local statistics.

    python benchmarks/seams.py --tile 128 --overlap 32 --out benchmarks/figures
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch import nn

from restore_cli.model.zoo import load_model
from restore_cli.engine.restorer import Restorer
from restore_cli.quality.metrics import psnr
from restore_cli.model.restormer import Restormer, RestormerConfig

PHOTOS = Path(__file__).parent.parent / "tests" / "data" / "photos"


class Memoised(nn.Module):
    """Returns the stored output for an input it has already seen."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model, self.config, self.outputs = model, model.config, {}

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        key = (tuple(x.shape), x.numpy().tobytes())
        if key not in self.outputs:
            self.outputs[key] = self.model(x)
        return self.outputs[key]


def compare(model: nn.Module, path: Path, tile: int, overlap: int, out: Path, gain: float, tlc: int | None) -> None:
    pixels = np.asarray(Image.open(path).convert("RGB"), dtype=np.float32) / 255
    started = time.perf_counter()
    whole = Restorer(model, device="cpu", tile=0, tlc_window=tlc).restore(pixels)  # sets model.tlc_window
    memoised = Memoised(model)
    ours = Restorer(memoised, device="cpu", tile=tile, overlap=overlap, tlc_window=tlc).restore(pixels)
    uniform = Restorer(memoised, device="cpu", tile=tile, overlap=overlap, blend="uniform", tlc_window=tlc).restore(pixels)
    print(
        f"{path.name} ({pixels.shape[1]}x{pixels.shape[0]}), tile {tile}, overlap {overlap}"
        f"{'' if tlc is None else f', TLC window {tlc}'}: "
        f"PSNR vs whole image: ours {psnr(ours, whole, 1.0):.2f} dB, uniform {psnr(uniform, whole, 1.0):.2f} dB; "
        f"max |diff| ours {np.abs(ours - whole).max():.4f}, uniform {np.abs(uniform - whole).max():.4f} "
        f"({time.perf_counter() - started:.0f} s)"
    )
    difference = np.concatenate([np.abs(ours - whole), np.abs(uniform - whole)], axis=1).mean(axis=2)
    out.mkdir(parents=True, exist_ok=True)
    target = out / f"seams_{path.stem}_t{tile}_o{overlap}{'' if tlc is None else f'_tlc{tlc}'}.png"
    Image.fromarray((np.clip(difference * gain, 0, 1) * 255).round().astype(np.uint8)).save(target)
    print(f"  difference image (x{gain:g}; ours | uniform): {target}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("photos", nargs="*", type=Path, default=sorted(PHOTOS.glob("*.png")))
    parser.add_argument("--weights", type=Path, help="a Restormer checkpoint (default: random full-size model)")
    parser.add_argument("--tile", type=int, default=128)
    parser.add_argument("--overlap", type=int, default=32)
    parser.add_argument("--gain", type=float, default=20.0, help="amplification of the difference images")
    parser.add_argument("--out", type=Path, default=Path("benchmarks/figures"))
    parser.add_argument("--tlc-window", type=int, default=None, help="run with TLC's local statistics")
    args = parser.parse_args()

    torch.manual_seed(0)
    model = load_model(args.weights) if args.weights else Restormer(RestormerConfig()).eval()
    print(f"model: {args.weights or 'full-size Restormer (dim 48, blocks 4/6/6/8), random weights'}")
    with torch.inference_mode():
        for path in args.photos:
            compare(model, path, args.tile, args.overlap, args.out, args.gain, args.tlc_window)


if __name__ == "__main__":
    main()
