"""An exported ONNX graph as the engine's network: ``--weights model.onnx`` runs on ONNX Runtime.

:class:`OnnxNetwork` answers the one call :class:`~restore_cli.engine.restorer.Restorer`
makes of a network (an NCHW float tensor of tiles in, the restored tiles out) from an
``onnxruntime.InferenceSession``, so padding, tiling, blending, the memory budget and
everything after them are the engine's own, not copies. The session is built once per model,
with ONNX Runtime's graph optimisations on, and serves every tile of every image.

``--device`` becomes an ONNX Runtime execution provider (:data:`PROVIDERS`); the tensors the
engine hands over stay on the host, since ONNX Runtime moves them itself. ``onnxruntime`` is
an optional dependency (``restore-cli[onnx]``), loaded only when an ONNX model is used.
:func:`load_network` and :func:`restorer_for` are where the engine's callers choose between
the two kinds of network, so each caller does not have to.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Union

import numpy as np
import torch

from restore_cli.engine.restorer import Restorer
from restore_cli.errors import CheckpointError, UsageError, setting
from restore_cli.model import zoo
from restore_cli.model.download import Progress
from restore_cli.model.onnx_format import check_interface, graph_precision, is_onnx, onnxruntime, runtime_reason
from restore_cli.model.restormer import Restormer

OnnxSource = Union[Path, bytes]
"""A file, or its bytes (what a Ray worker receives from the driver)."""


@dataclass(frozen=True)
class Provider:
    """An ONNX Runtime execution provider, and the package that brings it."""

    name: str
    package: str
    takes_device_id: bool = False


PROVIDERS = {
    "cpu": Provider("CPUExecutionProvider", "onnxruntime"),
    "cuda": Provider("CUDAExecutionProvider", "onnxruntime-gpu", takes_device_id=True),
    "tensorrt": Provider("TensorrtExecutionProvider", "onnxruntime-gpu and NVIDIA TensorRT", takes_device_id=True),
    "directml": Provider("DmlExecutionProvider", "onnxruntime-directml", takes_device_id=True),
    "coreml": Provider("CoreMLExecutionProvider", "onnxruntime (the macOS wheel)"),
    "openvino": Provider("OpenVINOExecutionProvider", "onnxruntime-openvino"),
}
"""``--device`` values for ONNX models. ``mps`` (Apple's GPU for torch) means CoreML here."""
AUTO_ORDER = ("cuda", "directml", "coreml", "cpu")
"""What ``--device auto`` takes, the first one installed. TensorRT and OpenVINO are asked for
by name: TensorRT compiles an engine for every new tile shape, which only pays off on long runs."""
DEVICE = re.compile(r"(?P<kind>auto|cpu|mps|cuda|tensorrt|directml|coreml|openvino)(:(?P<index>\d+))?")


def providers(device: str) -> list[Any]:
    """The execution providers for ``device``, most preferred first, ending with the CPU's for
    what a GPU provider cannot run; a provider that is not installed is a usage error naming
    the package that brings it."""
    match = DEVICE.fullmatch(device)
    if match is None:
        choices = "auto, cpu, " + ", ".join(f"{kind}[:N]" if p.takes_device_id else kind for kind, p in PROVIDERS.items() if kind != "cpu")
        raise UsageError(f"{setting('device')} {device}: for an ONNX model use {choices}")
    available = onnxruntime().get_available_providers()
    kind = {"mps": "coreml"}.get(match["kind"], match["kind"])
    if kind == "auto":
        kind = next(k for k in AUTO_ORDER if PROVIDERS[k].name in available)
    provider = PROVIDERS[kind]
    if provider.name not in available:
        names = ", ".join(sorted(name.removesuffix("ExecutionProvider") for name in available))
        raise UsageError(
            f"{setting('device')} {device}: ONNX Runtime's {provider.name} is not installed here "
            f"(available: {names}); install {provider.package}, or use {setting('device')} cpu"
        )
    index = match["index"]
    if index is not None and not provider.takes_device_id:
        raise UsageError(f"{setting('device')} {device}: {kind} takes no device number; use {setting('device')} {kind}")
    chosen: list[Any] = [(provider.name, {"device_id": index}) if index is not None else provider.name]
    if kind == "tensorrt" and PROVIDERS["cuda"].name in available:
        chosen.append((PROVIDERS["cuda"].name, {"device_id": index}) if index is not None else PROVIDERS["cuda"].name)
    return chosen + ([] if kind == "cpu" else [PROVIDERS["cpu"].name])


class OnnxNetwork:
    """One ``InferenceSession`` presenting the network call the engine makes.

    The graph must take one float32 NCHW image with a fixed number of channels and any height
    and width and return one of the same size, as ``restore export`` writes them; anything else
    is refused when the model is loaded, in one line. ``source`` names it in messages.
    """

    tlc_window: int | None = None
    """TLC is not part of an exported graph (see ``restore_cli.model.export``)."""

    def __init__(self, model: OnnxSource, device: str = "auto", source: str | None = None) -> None:
        ort = onnxruntime()
        self.source = source or str(model)
        chosen = providers(device)
        options = ort.SessionOptions()
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        options.intra_op_num_threads = torch.get_num_threads()  # OMP_NUM_THREADS, Ray's CPUs per worker
        options.log_severity_level = 3  # ONNX Runtime's own warnings would interleave with progress
        data = model if isinstance(model, bytes) else read_graph(model)
        try:
            self.session = ort.InferenceSession(data, options, providers=chosen)
        except Exception as error:  # ONNX Runtime raises its own types for damaged protobufs, bad graphs
            raise CheckpointError(f"{self.source} is not a usable ONNX model ({runtime_reason(error)}); export it again") from None
        metadata: dict[str, str] = dict(self.session.get_modelmeta().custom_metadata_map)
        self.config, self._input, self._output = check_interface(self.session, self.source)
        self.precision = graph_precision(metadata)
        self._probe()

    def eval(self) -> OnnxNetwork:
        return self

    def to(self, device: object) -> OnnxNetwork:
        """The engine's tensors stay on the host: the session's provider places the work."""
        return self

    def __call__(self, batch: torch.Tensor) -> torch.Tensor:
        """(B, C, H, W) float tiles -> (B, C_out, H, W) float32, on the host."""
        pixels = np.ascontiguousarray(batch.detach().cpu().numpy(), dtype=np.float32)
        try:
            (restored,) = self.session.run([self._output], {self._input: pixels})
        except Exception as error:
            raise CheckpointError(f"{self.source}: ONNX Runtime failed on a {_size(pixels)} input ({runtime_reason(error)})") from None
        if restored.shape[0] != pixels.shape[0] or restored.shape[2:] != pixels.shape[2:]:
            raise CheckpointError(
                f"{self.source} is not an image-to-image network: a {_size(pixels)} input gave a "
                f"{_size(restored)} output; give a model exported with `restore export`"
            )
        return torch.from_numpy(np.asarray(restored, dtype=np.float32))

    def _probe(self) -> None:
        """One tiny run at load, so a graph the provider cannot execute (or that changes the
        image size) fails here, once, rather than on every image of a batch."""
        self(torch.rand(1, self.config.in_channels, 16, 16))


Network = Union[Restormer, "OnnxNetwork"]


def load_network(spec: str | os.PathLike, device: str = "auto", progress: Progress = True) -> Network:
    """A zoo name or a checkpoint file as a network the engine runs: a Restormer, or for an ONNX
    file (or an ONNX model imported into the zoo) an :class:`OnnxNetwork` on ``device``'s provider."""
    if not is_onnx(spec):
        return zoo.load_model(spec, progress=progress)
    path = Path(spec)
    return OnnxNetwork(path if path.is_file() else zoo.resolve(str(spec)), device)


def restorer_for(
    network: Network,
    *,
    device: str = "auto",
    precision: str = "auto",
    tlc_window: int | None = None,
    allow_slow_precision: bool = False,
    **tiling: Any,
) -> Restorer:
    """The engine around either kind of network, with the same tiling, blending and memory
    budget. For an ONNX network the tensors stay on the host (its provider was chosen when it
    was built); its precision was fixed at export and TLC cannot be part of it, so asking for
    either is refused rather than ignored."""
    if not isinstance(network, OnnxNetwork):
        return Restorer(network, device, precision, tlc_window=tlc_window, allow_slow_precision=allow_slow_precision, **tiling)  # type: ignore[arg-type]
    if precision not in ("auto", network.precision):
        raise UsageError(
            f"{setting('precision')} {precision}: {network.source} computes in {network.precision}, fixed when it "
            f"was exported; drop {setting('precision')}, or export it again with `restore export --precision {precision}`"
        )
    if tlc_window is not None:
        raise UsageError(
            f"{setting('tlc')} cannot run an ONNX model: TLC lays its windows out from each image's size in "
            "Python, which an exported graph does not hold; run TLC with the .pth checkpoint"
        )
    return Restorer(network, device="cpu", precision="fp32", **tiling)  # type: ignore[arg-type]


def read_graph(path: Path) -> bytes:
    """An ONNX file's bytes, or a CheckpointError naming it (missing, unreadable)."""
    try:
        return path.read_bytes()
    except FileNotFoundError:
        raise CheckpointError(f"ONNX model not found: {path}") from None
    except OSError as error:
        raise CheckpointError(f"cannot read {path}: {error.strerror or error}") from None


def _size(array: np.ndarray) -> str:
    return " x ".join(map(str, array.shape))
