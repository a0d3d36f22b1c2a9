"""The worker side of ``restore bench``: each measurement runs in a fresh interpreter
(``python -m restore_cli.bench COMMAND PAYLOAD_JSON``) and prints one JSON line.

Fresh processes matter: peak RSS is per process, the official procedure must not inherit the
allocator tuning ours switches on, and a calibration pass must not find the heap a larger
pass left behind.
"""

from __future__ import annotations

import json
import resource
import sys
import time
from dataclasses import asdict
from typing import Any, Callable

import numpy as np

from restore_cli.bench.procedures import (
    Spec,
    compare_8bit,
    full_model,
    official_restorer,
    plain_restorer,
    restorer_for,
    to_8bit,
)


def run_pass(spec: Spec) -> dict[str, Any]:
    """One procedure on a random image: a small warm-up, then the timed restore."""
    import torch

    torch.manual_seed(0)
    restorer = restorer_for(spec)
    image = torch.rand(1, 3, spec.height, spec.width, generator=torch.Generator().manual_seed(1))
    restorer.restore(image[..., :64, :64])  # warm-up: kernel selection, first allocations
    cuda = restorer.device.type == "cuda"
    if cuda:
        torch.cuda.reset_peak_memory_stats()
    started = time.perf_counter()
    restorer.restore(image)  # returns on the host, so CUDA work is finished
    seconds = time.perf_counter() - started
    return {
        "seconds": seconds,
        "peak_rss": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024,
        "peak_vram": torch.cuda.max_memory_allocated() if cuda else None,
        "tiles": len(restorer.plan(spec.height, spec.width)[0]),
    }


def run_calibration(side: int, precision: str, device: str, repeat: int) -> dict[str, Any]:
    """One point of the speed profile: passes of side x side through our engine's network,
    as ``restore`` runs the tiles of an image: a small warm-up, a first ("cold") pass, then
    ``repeat`` warm ones with the heap the first grew, each timed in CPU seconds of this
    process (all its threads), which other work on the machine does not inflate."""
    import torch

    from restore_cli.engine.profile import ProfileKey
    from restore_cli.engine.restorer import Restorer

    torch.manual_seed(0)
    restorer = Restorer(full_model(channels_last=True), device=device, precision=precision, tile=0)  # type: ignore[arg-type]
    image = torch.rand(1, 3, side, side, generator=torch.Generator().manual_seed(1))
    with torch.inference_mode():
        restorer.forward(image[..., :64, :64])
        timings = [_cpu_and_wall(lambda: restorer.forward(image)) for _ in range(1 + repeat)]
    return {
        "side": side, "key": asdict(ProfileKey.this_process()),
        "cold_cpu_seconds": timings[0][0], "cold_wall_seconds": timings[0][1],
        "warm_cpu_seconds": [cpu for cpu, _ in timings[1:]], "warm_wall_seconds": [wall for _, wall in timings[1:]],
    }


def _cpu_and_wall(work: Callable[[], Any]) -> tuple[float, float]:
    started_cpu, started = time.process_time(), time.perf_counter()
    work()
    return time.process_time() - started_cpu, time.perf_counter() - started


def run_fidelity(photo: str, device: str, precisions: list[str]) -> dict[str, Any]:
    """Our modes' 8-bit output on a real photo against the official fp32 output."""
    import torch
    from PIL import Image

    from restore_cli.engine.restorer import Restorer

    pixels = np.asarray(Image.open(photo).convert("RGB"), dtype=np.float32) / 255.0
    torch.manual_seed(0)
    model = full_model(channels_last=False)
    reference = to_8bit(plain_restorer(model, device, 0).restore(pixels))
    model.channels_last = True
    modes = []
    for precision in precisions:
        restored = to_8bit(Restorer(model, device=device, precision=precision, tile=0).restore(pixels))  # type: ignore[arg-type]
        diff, psnr_db = compare_8bit(restored, reference)
        modes.append({"mode": f"ours {precision}", "max_abs_diff": diff, "psnr_db": round(psnr_db, 2)})
    return {"modes": modes}


def run_official_file(weights: str, photo: str, out: str, device: str) -> dict[str, Any]:
    """Load, read, restore, write: what the official test script does for one image."""
    import torch
    from PIL import Image

    from restore_cli.model.restormer import Restormer, RestormerConfig

    model = Restormer(RestormerConfig())
    model.load_state_dict(torch.load(weights, map_location="cpu", weights_only=True)["params"])
    model.channels_last = False
    pixels = np.asarray(Image.open(photo).convert("RGB"), dtype=np.float32) / 255.0
    image = torch.from_numpy(pixels).permute(2, 0, 1)[None]
    restored = official_restorer(model, device, *image.shape[-2:]).restore(image)
    Image.fromarray(to_8bit(restored[0].permute(1, 2, 0).numpy())).save(out)
    return {}


COMMANDS: dict[str, Callable[..., dict[str, Any]]] = {
    "pass": lambda **payload: run_pass(Spec(**payload)),
    "calibrate": run_calibration,
    "fidelity": run_fidelity,
    "official-file": run_official_file,
}


def main(argv: list[str]) -> None:
    command, payload = argv[0], json.loads(argv[1])
    sys.stdout.write(json.dumps(COMMANDS[command](**payload)) + "\n")
