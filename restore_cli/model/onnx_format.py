"""What an exported ONNX model says about itself, so a program can use it without our docs.

ONNX keeps free-form string pairs in ``metadata_props``; ``restore export`` writes the keys
in :data:`KEYS` (docs/onnx.md lists them), and the engine reads the configuration and
precision back. No torch or onnx here: the runtime side reads these through ONNX Runtime,
which both sides load through :func:`onnxruntime`, an optional dependency.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any, NoReturn

from restore_cli.errors import CheckpointError, UsageError, one_line

if TYPE_CHECKING:
    from restore_cli.model.restormer import RestormerConfig

PREFIX = "restore."
KEYS = {
    name: PREFIX + name
    for name in (
        "task", "source", "source_sha256", "licence", "input_range", "channel_order", "layout",
        "precision", "config", "padding", "verified_max_abs_diff", "version",
    )
}
"""The metadata keys restore writes, each prefixed so they never collide with another tool's."""
ONNX_SUFFIX = ".onnx"
PRECISIONS = ("fp32", "fp16")
INSTALL = 'pip install "restore-cli[onnx]"'


def onnxruntime() -> Any:
    """The ``onnxruntime`` module, or a usage error naming the extra that installs it."""
    try:
        import onnxruntime as ort
    except ModuleNotFoundError as error:
        if error.name != "onnxruntime":
            raise
        raise UsageError(f"ONNX models run on ONNX Runtime, which is not installed: {INSTALL}") from None
    return ort


def channel_order(config: RestormerConfig) -> str:
    """How the input's channels are laid out, in words a caller can act on."""
    if config.dual_pixel:
        return "RGB of the left view, then RGB of the right view (6 channels)"
    return "gray" if config.in_channels == 1 else "RGB"


def describe(
    config: RestormerConfig, *, precision: str, task: str, source: str, source_sha256: str, licence: str, version: str
) -> dict[str, str]:
    """Every metadata entry of an export but the verification result, which comes later."""
    return {
        KEYS["task"]: task,
        KEYS["source"]: source,
        KEYS["source_sha256"]: source_sha256,
        KEYS["licence"]: licence,
        KEYS["input_range"]: "[0, 1]",
        KEYS["channel_order"]: channel_order(config),
        KEYS["layout"]: "NCHW float32 in and out; any batch, height and width",
        KEYS["precision"]: precision,
        KEYS["config"]: json.dumps(asdict(config), sort_keys=True),
        KEYS["padding"]: "inside the graph: reflected to a multiple of 8, cropped back",
        KEYS["version"]: version,
    }


def graph_precision(metadata: Mapping[str, str]) -> str:
    """The precision a graph computes in; one without restore's metadata is taken as fp32."""
    value = metadata.get(KEYS["precision"], "fp32")
    return value if value in PRECISIONS else "fp32"


def runtime_reason(error: BaseException) -> str:
    """ONNX Runtime's message in one line, without its bracketed status code."""
    return re.sub(r"^\[ONNXRuntimeError\] : \d+ : \w+ : ", "", one_line(error)).rstrip(".")


def is_onnx(spec: object) -> bool:
    """Whether a model the user names is an ONNX graph: a file (or a model imported into the
    zoo) whose name ends in .onnx. ONNX files have no magic number, so the name decides."""
    return str(spec).lower().endswith(ONNX_SUFFIX)


@dataclass(frozen=True)
class OnnxConfig:
    """What the engine reads off a network's configuration: its channels, and its width for
    the memory budget (the full-size model's 48 when the graph does not say)."""

    in_channels: int
    out_channels: int
    dim: int = 48


def check_interface(session: Any, source: str) -> tuple[OnnxConfig, str, str]:
    """The configuration, input name and output name of an ONNX Runtime session whose graph
    restores images as ``restore export`` writes them: one float32 NCHW image in, with a fixed
    number of channels and any height and width, one image out first. Anything else is a
    :class:`CheckpointError` naming what the graph is instead."""
    inputs, outputs = session.get_inputs(), session.get_outputs()
    if len(inputs) != 1 or not outputs:
        _refuse(source, f"it takes {len(inputs)} inputs and gives {len(outputs)} outputs, not one image each")
    image, restored = inputs[0], outputs[0]
    for role, arg in (("input", image), ("output", restored)):
        if arg.type != "tensor(float)" or len(arg.shape) != 4 or not _is_size(arg.shape[1]):
            _refuse(source, f"its {role} {arg.name!r} is {arg.type} {list(arg.shape)}, not a float32 N x C x H x W image")
    if any(_is_size(side) for side in image.shape[2:]):
        _refuse(source, f"its input has a fixed size {list(image.shape)}; export it with dynamic height and width")
    in_channels, out_channels = int(image.shape[1]), int(restored.shape[1])
    if in_channels not in (1, 3, 6) or out_channels not in (1, 3):
        _refuse(source, f"it maps {in_channels} channels to {out_channels}; images have 1 (gray) or 3 (RGB)")
    metadata = session.get_modelmeta().custom_metadata_map
    dim = json.loads(metadata.get(KEYS["config"], "{}")).get("dim", OnnxConfig.dim)
    return OnnxConfig(in_channels, out_channels, int(dim)), image.name, restored.name


def _is_size(value: object) -> bool:
    return isinstance(value, int) and value > 0


def _refuse(source: str, why: str) -> NoReturn:
    raise CheckpointError(f"{source} is not an image restoration network: {why}")
