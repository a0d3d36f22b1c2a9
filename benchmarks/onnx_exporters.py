"""Which of torch's two ONNX exporters `restore export` should use: correctness at every size,
export time, and the exported graph's speed in ONNX Runtime on the CPU.

Both exporters get the same module (`restore_cli.model.onnx_graph.ExportGraph`: padding to
a multiple of 8, the network, the crop back) with dynamic batch, height and width:

- TorchScript: `torch.onnx.export(..., dynamo=False)`, which traces the module;
- dynamo: `torch.onnx.export(..., dynamo=True)`, which captures it with `torch.export`.

    python benchmarks/onnx_exporters.py [--depth full|tiny] [--size 256] [--repeats 5] [--threads 2]
        [--exporters torchscript:17 torchscript:20 dynamo:20 torchscript:17:fp16]

For each graph it prints the export time (wall and CPU seconds of this process), the largest
difference from the fp32 PyTorch model over odd sizes (1x1 to 131x67, batch 1 and 2), and
the median ORT time of one forward pass at --size, measured alternately so that load
affects all alike. A third field `fp16` exports the half-precision graph `restore export
--precision fp16` writes. The dynamo exporter needs `onnxscript` (pip install onnxscript).
"""

from __future__ import annotations

import argparse
import copy
import io
import statistics
import time
import warnings

import numpy as np
import onnxruntime as ort
import torch

from restore_cli.model.onnx_graph import ExportGraph
from restore_cli.model.restormer import Restormer, RestormerConfig

SIZES = [(1, 1, 1), (1, 37, 53), (2, 64, 96), (1, 131, 67)]
DEPTHS = {"full": RestormerConfig(), "tiny": RestormerConfig(dim=8, num_blocks=(1, 1, 1, 1), num_refinement_blocks=1)}


def export(graph: ExportGraph, exporter: str, opset: int) -> tuple[bytes, float, float]:
    example = torch.rand(2, graph.network.config.in_channels, 37, 53)  # batch 2: a size-1 axis would be fixed
    wall, cpu = time.perf_counter(), time.process_time()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if exporter == "dynamo":
            batch, height, width = (torch.export.Dim(name) for name in ("batch", "height", "width"))
            program = torch.onnx.export(
                graph, (example,), dynamo=True, opset_version=opset, input_names=["image"], output_names=["restored"],
                dynamic_shapes={"image": {0: batch, 2: height, 3: width}}, verbose=False,
            )
            data = program.model_proto.SerializeToString()
        else:
            buffer = io.BytesIO()
            axes = {0: "batch", 2: "height", 3: "width"}
            torch.onnx.export(
                graph, (example,), buffer, dynamo=False, opset_version=opset, input_names=["image"],
                output_names=["restored"], dynamic_axes={"image": axes, "restored": axes},
            )
            data = buffer.getvalue()
    return data, time.perf_counter() - wall, time.process_time() - cpu


def session(data: bytes, threads: int) -> ort.InferenceSession:
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.intra_op_num_threads = threads
    return ort.InferenceSession(data, options, providers=["CPUExecutionProvider"])


def max_difference(graph: ExportGraph, runner: ort.InferenceSession, channels: int) -> float:
    worst = 0.0
    for batch, height, width in SIZES:
        image = torch.rand(batch, channels, height, width)
        with torch.inference_mode():
            expected = graph(image).numpy()
        (got,) = runner.run(None, {"image": image.numpy()})
        assert got.shape == expected.shape, (got.shape, expected.shape)
        worst = max(worst, float(np.abs(got - expected).max()))
    return worst


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--depth", choices=DEPTHS, default="full")
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--exporters", nargs="+", default=["torchscript:17", "torchscript:20", "dynamo:20"])
    args = parser.parse_args()
    torch.manual_seed(0)
    torch.set_num_threads(args.threads)
    config = DEPTHS[args.depth]
    graph = ExportGraph(Restormer(config).eval()).eval()
    runners = {}
    for spec in args.exporters:
        exporter, opset, *precision = spec.split(":")
        exported = graph if not precision else ExportGraph(copy.deepcopy(graph.network), half=True).eval()
        data, wall, cpu = export(exported, exporter, int(opset))
        runners[spec] = session(data, args.threads)
        worst = max_difference(graph, runners[spec], config.in_channels)
        print(f"{spec}: export {wall:.1f} s wall, {cpu:.1f} s CPU; {len(data) / 2**20:.1f} MiB; max |ORT - torch| {worst:.2e}", flush=True)
    image = {"image": np.random.default_rng(0).random((1, config.in_channels, args.size, args.size), dtype=np.float32)}
    times: dict[str, list[float]] = {spec: [] for spec in runners}
    for spec, runner in runners.items():
        runner.run(None, image)  # warm-up: the first run allocates the arena
    for _ in range(args.repeats):
        for spec, runner in runners.items():
            start = time.perf_counter()
            runner.run(None, image)
            times[spec].append(time.perf_counter() - start)
    for spec, measured in times.items():
        print(f"{spec}: {args.size}x{args.size} ORT CPU median {statistics.median(measured):.3f} s over {args.repeats} (min {min(measured):.3f})")


if __name__ == "__main__":
    main()
