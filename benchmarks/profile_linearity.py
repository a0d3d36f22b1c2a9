"""Why a large pass costs more per pixel than a 512x512 one: per-op time per Mpix and the
minor page faults of a warm (second) forward pass at each size, with the engine's CPU
allocator setting. Run it with the huge-page tunable the CLI's launcher sets, to see what
`restore` sees.

    python benchmarks/profile_linearity.py
    GLIBC_TUNABLES=glibc.malloc.hugetlb=1 OMP_NUM_THREADS=1 python benchmarks/profile_linearity.py --sides 512 768
"""

import argparse
import resource
import time

import torch
from torch.profiler import ProfilerActivity, profile

from restore_cli.engine.allocator import reuse_freed_memory
from restore_cli.model.restormer import Restormer



def profile_side(model: Restormer, side: int) -> tuple[float, int, dict[str, float]]:
    """CPU seconds per Mpix of the pass, minor faults, and each op's self time per Mpix (the
    profiler clocks wall time), warm."""
    image = torch.rand(1, 3, side, side).contiguous(memory_format=torch.channels_last)
    model(image)  # the first pass maps the buffers that later passes recycle
    faults_before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    with profile(activities=[ProfilerActivity.CPU]) as profiler:
        start = time.process_time()
        model(image)
        seconds = time.process_time() - start
    faults = resource.getrusage(resource.RUSAGE_SELF).ru_minflt - faults_before
    megapixels = side * side / 1e6
    ops = {event.key: event.self_cpu_time_total / 1e6 / megapixels for event in profiler.key_averages()}
    return seconds / megapixels, faults, ops


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sides", type=int, nargs=2, default=[512, 1024])
    sides = parser.parse_args().sides
    reuse_freed_memory()
    torch.manual_seed(0)
    model = Restormer().eval()
    results = {}
    with torch.inference_mode():
        for side in sides:
            results[side] = profile_side(model, side)
            print(f"{side}: {results[side][0]:.1f} s/Mpix, {results[side][1]} minor faults")
    small, large = results[sides[0]][2], results[sides[1]][2]
    for op in sorted(large, key=lambda key: -large[key])[:10]:
        ratio = large[op] / max(small.get(op, 0.0), 1e-9)
        print(f"{op:30s} {small.get(op, 0.0):7.2f} -> {large[op]:7.2f} s/Mpix  ({ratio:.2f}x)")


if __name__ == "__main__":
    main()
