"""`restore export`: a checkpoint as an ONNX graph, verified against PyTorch before it is written.

The graph is :class:`~restore_cli.model.onnx_graph.ExportGraph` (padding to a multiple of 8
and the crop back inside, dynamic batch, height and width), exported with torch's TorchScript
exporter at opset :data:`OPSET`, described by restore's metadata (``onnx_format``), then run
with ONNX Runtime on two random inputs of different odd sizes and compared with the PyTorch
model. Only a graph within :data:`TOLERANCE` is handed back to be written: a graph that
silently computes something else is worse than none.

Why TorchScript and not the dynamo exporter: both give graphs that are correct at every size
tested (1x1 to 131x67, batch 1 and 2), the dynamo graph is no faster in ONNX Runtime
(benchmarks/README.md, "ONNX exporters"), and the dynamo exporter took 17 times the CPU time to export the
full-size network (490 s against 29 s on 2 vCPUs), and needs onnxscript besides.
"""

from __future__ import annotations

import copy
import io
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from restore_cli.errors import ExportError, UsageError, setting
from restore_cli.model import manifest
from restore_cli.model.cache import sha256_of
from restore_cli.model.onnx_format import INSTALL, KEYS, PRECISIONS, describe, onnxruntime
from restore_cli.model.onnx_graph import ExportGraph
from restore_cli.model.restormer import Restormer

OPSET = 17
"""ONNX opset 17 (ONNX 1.12, 2022): every op the graph needs, read by every current runtime
(ONNX Runtime 1.12+, TensorRT 8.5+, OpenVINO, Core ML and DirectML converters). Opset 20 only
adds a Gelu op, which ONNX Runtime fuses from opset 17's Erf form anyway (alike in speed, measured)."""

TOLERANCE = {"fp32": 1e-4, "fp16": 1e-2}
"""The largest absolute difference from the PyTorch model (outputs in [0, 1]) a verified
export may show. fp32: a correct graph differs only by float rounding, measured at most
6e-7 for the full-size network and for the trained demonstration model; an export mistake
(a transposed reshape, a wrong pad, other weights) moves pixels by 1e-2 and more. 1e-4 is a
fortieth of an 8-bit level, so a verified graph changes an 8-bit output only where a value
sits on a rounding boundary, and then by one level. fp16: rounding to 11 significant bits,
measured at most 5e-4 on the trained demonstration model (9e-4 with random weights); 1e-2,
under three 8-bit levels, leaves room for deeper networks while still refusing mistakes.
(benchmarks/README.md, "ONNX exporters".)"""

CHECK_SHAPES = ((1, 37, 53), (2, 29, 61))
"""Verification inputs: (batch, height, width). Odd sizes, so the in-graph padding and crop
work; two of them, of different batch and aspect, so a size fixed in the graph shows."""

AXES = {0: "batch", 2: "height", 3: "width"}


@dataclass(frozen=True)
class Check:
    """One verification input and how far ONNX Runtime's output was from PyTorch's."""

    shape: tuple[int, ...]
    max_abs_diff: float


@dataclass(frozen=True)
class VerifiedExport:
    """A serialised ONNX model that passed its check, and the check's results."""

    data: bytes
    precision: str
    checks: tuple[Check, ...]
    tolerance: float

    @property
    def max_abs_diff(self) -> float:
        return max(check.max_abs_diff for check in self.checks)


@dataclass(frozen=True)
class Provenance:
    """What the metadata says of the weights: where they came from and under which licence."""

    task: str
    source: str
    source_sha256: str
    licence: str


UNKNOWN_LICENCE = "not stated at export; ask whoever trained the weights"


def provenance(checkpoint: Path, name: str | None = None, task: str | None = None, licence: str | None = None) -> Provenance:
    """The metadata's account of a checkpoint: a zoo model's task and licence (the zoo ``name``
    it was resolved from, else the pinned model with its SHA-256), or what the user says."""
    digest = sha256_of(checkpoint)
    entries = manifest.load_manifest()
    entry = entries.get(name) if name else next((e for e in entries.values() if e.sha256_known and e.sha256 == digest), None)
    if entry is not None:
        return Provenance(task or entry.task, entry.name, digest, licence or entry.licence)
    return Provenance(task or "unknown", checkpoint.name, digest, licence or UNKNOWN_LICENCE)


def export_onnx(
    network: Restormer,
    provenance: Provenance,
    *,
    precision: str = "fp32",
    tlc_window: int | None = None,
    version: str = "",
) -> VerifiedExport:
    """``network`` as a serialised ONNX model, verified against PyTorch with ONNX Runtime.

    Raises :class:`ExportError` when ONNX Runtime's output is further than :data:`TOLERANCE`
    from the PyTorch model's, and a usage error for what cannot be exported (TLC).
    """
    if precision not in PRECISIONS:
        raise UsageError(f"{setting('precision')} {precision}: an export is fp32 or fp16")
    if tlc_window is not None:
        raise UsageError(
            f"{setting('tlc_window')} cannot be exported: TLC lays its windows out from each feature map's size "
            "in Python (how many windows, where each starts), which a graph with dynamic height and width "
            f"cannot hold; export without {setting('tlc_window')} and use TLC with the checkpoint itself"
        )
    reference = ExportGraph(copy.deepcopy(network).float().eval()).eval()
    graph = ExportGraph(copy.deepcopy(network).float().eval(), half=precision == "fp16").eval()
    model = _to_onnx(graph)
    metadata = describe(network.config, precision=precision, version=version, **vars(provenance))
    checks = _verify(model.SerializeToString(), reference, TOLERANCE[precision])
    metadata[KEYS["verified_max_abs_diff"]] = f"{max(check.max_abs_diff for check in checks):.3g}"
    _set_metadata(model, metadata)
    return VerifiedExport(model.SerializeToString(), precision, checks, TOLERANCE[precision])


def _to_onnx(graph: ExportGraph):  # -> onnx.ModelProto
    try:
        import onnx
    except ModuleNotFoundError:
        raise UsageError(f"exporting needs the onnx package, which is not installed: {INSTALL}") from None

    example = torch.rand(2, graph.network.config.in_channels, 37, 53)  # size-1 or even axes would be fixed or skip the pad
    buffer = io.BytesIO()
    with warnings.catch_warnings(), torch.inference_mode(False):
        warnings.simplefilter("ignore")  # the tracer warns about every shape it records as dynamic
        torch.onnx.export(
            graph, (example,), buffer, dynamo=False, opset_version=OPSET, input_names=["image"],
            output_names=["restored"], dynamic_axes={"image": AXES, "restored": AXES},
        )
    model = onnx.load_from_string(buffer.getvalue())
    onnx.checker.check_model(model)
    return model


def _verify(data: bytes, reference: ExportGraph, tolerance: float) -> tuple[Check, ...]:
    """The graph on ONNX Runtime's CPU provider against PyTorch, on :data:`CHECK_SHAPES`."""
    ort = onnxruntime()
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.intra_op_num_threads = torch.get_num_threads()
    session = ort.InferenceSession(data, options, providers=["CPUExecutionProvider"])
    generator = torch.Generator().manual_seed(0)
    checks = []
    for batch, height, width in CHECK_SHAPES:
        image = torch.rand(batch, reference.network.config.in_channels, height, width, generator=generator)
        with torch.inference_mode():
            expected = reference(image).numpy()
        (got,) = session.run(None, {"image": image.numpy()})
        shape = tuple(image.shape)
        if got.shape != expected.shape:
            raise ExportError(f"the exported graph gave a {list(got.shape)} output for a {list(shape)} input; nothing was written")
        checks.append(Check(shape, float(np.abs(got - expected).max())))
    worst = max(checks, key=lambda check: check.max_abs_diff)
    if not worst.max_abs_diff <= tolerance:  # NaN fails too
        raise ExportError(
            f"the exported graph is not the model: on a {'x'.join(map(str, worst.shape))} input ONNX Runtime differs from "
            f"PyTorch by up to {worst.max_abs_diff:.3g} (tolerance {tolerance:g}); nothing was written"
        )
    return tuple(checks)


def _set_metadata(model, metadata: dict[str, str]) -> None:
    del model.metadata_props[:]
    for key, value in metadata.items():
        entry = model.metadata_props.add()
        entry.key, entry.value = key, value
    model.producer_name = "restore"
    model.producer_version = metadata[KEYS["version"]]
    model.doc_string = (
        "Restormer image restoration (Zamir et al., CVPR 2022). Input 'image': float32 N x C x H x W in [0, 1], "
        f"channels {metadata[KEYS['channel_order']]}, any N, H, W; output 'restored': the same. Weights licence: "
        f"{metadata[KEYS['licence']]}."
    )

