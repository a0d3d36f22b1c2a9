"""Where a forward pass of the full model spends its time, by kind of operator, and how far
it is from the FLOP floor on this CPU.

One process, the full-size Restormer (random weights, seed 0), fp32. For each formulation
(``ours``: channels-last, the default; ``official``: the paper's NCHW formulation) a warm-up
pass, then ``--repeats`` timed passes alternating between the two, CPU seconds of this
process (user + system: on a shared machine the wall clock also measures the neighbours),
medians. The last pass of each is profiled (torch.profiler) and every operator's self time
is put in a category by the module it ran in (the shares of the profiled pass, scaled to
the median CPU seconds, since the profiler clocks wall time): 1x1 convolutions (GEMMs), depth-wise 3x3
convolutions, the dense 3x3 convolutions, LayerNorm, attention (Gram and apply products,
norms, softmax), the GELU gate, pixel (un)shuffle and memory-format copies, and the rest.

The FLOP floor is the official formulation's FLOPs (``torch.utils.flop_counter``) divided by
the rate of a large fp32 matrix product measured in the same run (``--gemm-side``), so the
multiple says how close each formulation gets to running every FLOP at GEMM speed.

    OMP_NUM_THREADS=1 python benchmarks/profile_forward.py --size 256 --repeats 3
    OMP_NUM_THREADS=1 python benchmarks/profile_forward.py --size 512 --repeats 1 --json
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import time
from collections import defaultdict
from typing import Any, Callable

import torch
from torch import nn
from torch.profiler import ProfilerActivity, profile, record_function
from torch.utils.flop_counter import FlopCounterMode

from restore_cli.engine.allocator import reuse_freed_memory
from restore_cli.engine.hardware import cpu_info
from restore_cli.model.restormer import GDFN, MDTA, ChannelLayerNorm, Downsample, Restormer, Upsample

GEMMS = {"aten::mm", "aten::addmm", "aten::bmm", "aten::baddbmm"}
CONVS = {"aten::mkldnn_convolution", "aten::_convolution", "aten::convolution", "aten::conv2d",
         "aten::thnn_conv2d", "aten::_slow_conv2d_forward", "aten::_nnpack_spatial_convolution",
         "aten::_conv_depthwise2d"}
ONEDNN_LINEARS = {"mkldnn::_linear_pointwise"}
"""oneDNN's matrix product, which the model runs its 1x1 convs with in fp32 inference."""
MODULE_TAG = "module:"


def categorise(op: str, module: str | None, kernel: str | None = None) -> str:
    """One of the issue's categories for an operator, by where it ran and, for a
    convolution, its kernel (``1x1``, ``depth-wise`` or ``dense``)."""
    if op in ONEDNN_LINEARS or (op in CONVS and kernel == "1x1"):
        return "1x1 conv (GEMM)"
    if module == "MDTA":
        if op in CONVS:
            return "depth-wise 3x3 conv"
        if op in {"aten::mm", "aten::addmm"}:
            return "1x1 conv (GEMM)"
        return "attention: products" if op in GEMMS else "attention: norms, softmax, other"
    if module == "GDFN":
        if op in CONVS:
            return "depth-wise 3x3 conv"
        return "1x1 conv (GEMM)" if op in GEMMS else "GELU gate"
    if module == "ChannelLayerNorm":
        return "LayerNorm"
    if module in ("Downsample", "Upsample"):
        return "dense 3x3 conv" if op in CONVS else "pixel (un)shuffle, format copies"
    if op in CONVS:
        return "dense 3x3 conv"
    if op in GEMMS:
        return "1x1 conv (GEMM)"
    return "residual adds, concatenation, other"


def tag_modules(model: nn.Module) -> None:
    """Name a record_function range after each module kind the categories need."""
    kinds = (MDTA, GDFN, ChannelLayerNorm, Downsample, Upsample)

    def enter(module: nn.Module, _inputs: Any) -> None:
        module._profile_range = record_function(MODULE_TAG + type(module).__name__)
        module._profile_range.__enter__()

    def leave(module: nn.Module, _inputs: Any, _output: Any) -> None:
        module._profile_range.__exit__(None, None, None)

    for module in model.modules():
        if isinstance(module, kinds):
            module.register_forward_pre_hook(enter)
            module.register_forward_hook(leave)


def _innermost_module(event: Any) -> str | None:
    parent = event.cpu_parent
    while parent is not None:
        if parent.name.startswith(MODULE_TAG):
            return parent.name[len(MODULE_TAG):]
        parent = parent.cpu_parent
    return None


def _kernel(event: Any) -> str | None:
    """``1x1``, ``depth-wise`` or ``dense`` from a convolution's recorded weight shape."""
    shapes = getattr(event, "input_shapes", None) or []
    weight = shapes[1] if len(shapes) > 1 else []
    if len(weight) != 4:
        return None
    if weight[2:] == [1, 1]:
        return "1x1"
    return "depth-wise" if weight[1] == 1 else "dense"


def breakdown(profiler: Any) -> dict[str, float]:
    """Each category's share of the profiled pass, by operators' self time. The profiler
    clocks wall time, so on a shared machine only the shares are worth reading."""
    seconds: dict[str, float] = defaultdict(float)
    for event in profiler.events():
        if event.name.startswith(MODULE_TAG):
            continue
        seconds[categorise(event.name, _innermost_module(event), _kernel(event))] += event.self_cpu_time_total
    total = sum(seconds.values())
    return {category: value / total for category, value in seconds.items()}


def cpu_seconds(function: Callable[[], Any]) -> float:
    started = time.process_time()
    function()
    return time.process_time() - started


def gemm_rate(side: int, repeats: int = 3) -> float:
    """FLOP/s of the best of ``repeats`` fp32 ``side`` x ``side`` matrix products."""
    left, right = torch.randn(side, side), torch.randn(side, side)
    left @ right
    return 2 * side**3 / min(cpu_seconds(lambda: left @ right) for _ in range(repeats))


def count_flops(model: Restormer, image: torch.Tensor) -> float:
    """The official formulation's FLOPs at this size (convolutions and matrix products)."""
    model.channels_last = False
    with FlopCounterMode(display=False) as counter:
        model(image)
    return float(counter.get_total_flops())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--gemm-side", type=int, default=2048)
    parser.add_argument("--formulations", nargs="+", default=["official", "ours"], choices=["official", "ours"])
    parser.add_argument("--json", action="store_true", help="one JSON line instead of the table")
    args = parser.parse_args()

    reuse_freed_memory()
    torch.manual_seed(0)
    model = Restormer().eval()
    tag_modules(model)
    image = torch.rand(1, 3, args.size, args.size, generator=torch.Generator().manual_seed(1))
    results: dict[str, dict[str, Any]] = {}
    with torch.inference_mode():
        flops = count_flops(model, image[..., :64, :64]) * (args.size / 64) ** 2
        rates = [gemm_rate(args.gemm_side)]
        for name in args.formulations:
            model.channels_last = name == "ours"
            model(image)  # warm-up: kernel selection, the heap grown to the pass's size
            results[name] = {"cpu_seconds": [], "minor_faults": []}
        for repeat in range(args.repeats):
            for name in args.formulations:
                model.channels_last = name == "ours"
                faults = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
                if repeat == args.repeats - 1:
                    with profile(activities=[ProfilerActivity.CPU], record_shapes=True) as profiler:
                        results[name]["cpu_seconds"].append(cpu_seconds(lambda: model(image)))
                    results[name]["categories"] = breakdown(profiler)
                else:
                    results[name]["cpu_seconds"].append(cpu_seconds(lambda: model(image)))
                results[name]["minor_faults"].append(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - faults)
            rates.append(gemm_rate(args.gemm_side))
    rate = statistics.median(rates)
    floor = flops / rate
    summary = {
        "machine": cpu_info().describe(), "threads": torch.get_num_threads(), "torch": torch.__version__,
        "size": args.size, "gflop": round(flops / 1e9, 1), "gemm_gflops": [round(r / 1e9, 1) for r in rates],
        "floor_seconds": round(floor, 2),
    }
    for name, result in results.items():
        median = statistics.median(result["cpu_seconds"])
        summary[name] = {
            "cpu_seconds": [round(s, 2) for s in result["cpu_seconds"]], "median": round(median, 2),
            "floor_multiple": round(median / floor, 2), "minor_faults": result["minor_faults"],
            "categories": {key: round(share * median, 3)
                           for key, share in sorted(result["categories"].items(), key=lambda kv: -kv[1])},
        }
    if args.json:
        print(json.dumps(summary))
        return
    _print_table(summary, list(results))


def _print_table(summary: dict[str, Any], names: list[str]) -> None:
    print(f"# {summary['machine']}, {summary['threads']} threads, torch {summary['torch']}, {summary['size']}^2")
    print(f"# {summary['gflop']} GFLOP; GEMM {summary['gemm_gflops']} GFLOP/s; floor {summary['floor_seconds']} s")
    for name in names:
        result = summary[name]
        print(f"{name}: {result['cpu_seconds']} CPU s, median {result['median']} = {result['floor_multiple']}x floor, "
              f"faults {result['minor_faults']}")
        total = sum(result["categories"].values())
        for category, seconds in result["categories"].items():
            print(f"    {category:40s} {seconds:8.2f} s  {100 * seconds / total:5.1f}%")


if __name__ == "__main__":
    main()
