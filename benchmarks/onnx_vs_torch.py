"""ONNX Runtime on the CPU against our PyTorch path, through the same engine, side by side.

Should `--device cpu` run an exported graph on ONNX Runtime instead of PyTorch? This times
`restore`'s engine (`Restorer`, whole image, fp32) on the full-size network (random weights,
seed 0, or --weights) with each backend: PyTorch (the channels-last formulation the engine
uses) and ONNX Runtime (the graph `restore export` writes, optimisations on). Every pass
runs in a fresh process, alternating backend and size, so load on a shared machine falls on
both alike; each process reports its wall and CPU seconds (user + system) for one restore
after a warm-up one, and the peak RSS it reached.

    python benchmarks/onnx_vs_torch.py [--sizes 256 512] [--repeats 2] [--threads 2] [--weights CKPT] [--onnx FILE]

The export (about a minute) is done once, first, into --onnx FILE (reused when it exists;
it must then be the export of the same weights), else into a temporary folder.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def network(weights: str | None):
    import torch

    from restore_cli.model.restormer import Restormer
    from restore_cli.model.zoo import load_model

    if weights:
        return load_model(weights)
    torch.manual_seed(0)
    return Restormer().eval()


def child(backend: str, size: int, model_path: str, weights: str | None) -> None:
    """One measurement in this fresh process; prints a JSON line."""
    import torch

    from restore_cli.engine.onnx_runtime import OnnxNetwork, restorer_for

    model = OnnxNetwork(Path(model_path), "cpu") if backend == "ort" else network(weights)
    restorer = restorer_for(model, device="cpu", tile=0)
    image = torch.rand(1, 3, size, size, generator=torch.Generator().manual_seed(size))
    restorer.restore(image)  # warm-up: allocations, ORT's arena, oneDNN's kernels
    wall, cpu = time.perf_counter(), time.process_time()
    restorer.restore(image)
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps({"backend": backend, "size": size, "wall": wall, "cpu": cpu, "peak_mib": peak}))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[256, 512])
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--weights", default=None)
    parser.add_argument("--onnx", type=Path, default=None)
    parser.add_argument("--child", nargs=3, metavar=("BACKEND", "SIZE", "ONNX"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.child[0], int(args.child[1]), args.child[2], args.weights)
        return

    from restore_cli.model.export import Provenance, export_onnx

    print(f"{platform.processor() or platform.machine()}; {os.cpu_count()} CPUs; {args.threads} threads", flush=True)
    with tempfile.TemporaryDirectory() as folder:
        onnx_path = args.onnx or Path(folder) / "model.onnx"
        if not onnx_path.exists():
            start = time.perf_counter()
            exported = export_onnx(network(args.weights), Provenance("unknown", "random", "", "unknown"))
            onnx_path.write_bytes(exported.data)
            print(f"export: {time.perf_counter() - start:.0f} s, max |ORT - torch| {exported.max_abs_diff:.2g}", flush=True)
        env = {**os.environ, "OMP_NUM_THREADS": str(args.threads), "PYTHONPATH": str(ROOT)}
        results: dict[tuple[str, int], list[dict]] = {}
        for _ in range(args.repeats):
            for size in args.sizes:
                for backend in ("torch", "ort"):
                    command = [sys.executable, __file__, "--child", backend, str(size), str(onnx_path)]
                    if args.weights:
                        command += ["--weights", args.weights]
                    line = subprocess.run(command, env=env, check=True, capture_output=True, text=True).stdout.splitlines()[-1]
                    results.setdefault((backend, size), []).append(json.loads(line))
                    print(line, flush=True)
    print("| size | backend | wall s (median) | CPU s (median) | peak RSS MiB |")
    print("|---:|---|---:|---:|---:|")
    for (backend, size), runs in sorted(results.items(), key=lambda item: (item[0][1], item[0][0])):
        wall = statistics.median(run["wall"] for run in runs)
        cpu = statistics.median(run["cpu"] for run in runs)
        peak = max(run["peak_mib"] for run in runs)
        print(f"| {size} | {backend} | {wall:.2f} | {cpu:.2f} | {peak:.0f} |")


if __name__ == "__main__":
    main()
