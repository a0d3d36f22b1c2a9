"""The network as an ONNX graph sees it: any image size in, the same size out.

The engine pads every image to the network's multiple of 8 before it runs and crops the
result back (``restore_cli.engine.restorer.pad_to_multiple``). A program that loads an
exported graph must not need to know that, so :class:`ExportGraph` puts the same padding
and the crop inside the graph. The padding is written as a gather of rows and columns
rather than as ``F.pad`` with a mode chosen in Python: which mode the engine uses (reflect,
or replicate when the pad is as long as the side) depends on the image size, and a graph
with dynamic height and width must decide that from tensors, not from Python branches.
"""

from __future__ import annotations

from typing import Callable

import torch
from torch import nn

from restore_cli.model.restormer import MDTA, SIZE_MULTIPLE, ChannelLayerNorm, Restormer


def padding_indices(side: int | torch.SymInt, multiple: int = SIZE_MULTIPLE) -> torch.Tensor:
    """Source row (or column) of every row of the padded image: the engine's padding as indices.

    The side grows to the next multiple. Rows past the end mirror the image about its last
    row (reflection) when the pad is shorter than the side, and repeat the last row otherwise,
    exactly as ``pad_to_multiple`` does with ``F.pad``.
    """
    padded = (side + multiple - 1) // multiple * multiple
    rows = torch.arange(padded)
    last = side - 1
    reflect_fits = rows.max() <= 2 * last  # the mirrored index of the last padded row is >= 0
    beyond = torch.where(reflect_fits, 2 * last - rows, torch.full_like(rows, last))
    return torch.where(rows < side, rows, beyond)


class ExportGraph(nn.Module):
    """(B, C, H, W) float32 in [0, 1], any H and W -> (B, C_out, H, W): pad, network, crop.

    The network runs in its NCHW formulation (``channels_last`` off): ONNX tensors are NCHW,
    and that formulation is the one checked against the official network in float64.
    ``half`` computes in fp16 while the graph's inputs and outputs stay float32, so a caller
    feeds the same arrays to either precision. The module takes ``network`` over (it changes
    its formulation and precision in place).
    """

    def __init__(self, network: Restormer, half: bool = False) -> None:
        super().__init__()
        network.channels_last = False
        self.network = _half_with_fp32_statistics(network) if half else network
        self.half = half

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        height, width = image.shape[-2], image.shape[-1]
        padded = image.index_select(2, padding_indices(height)).index_select(3, padding_indices(width))
        if self.half:
            padded = padded.half()
        restored = self.network(padded)[:, :, :height, :width]
        return restored.float()


def _half_with_fp32_statistics(network: Restormer) -> Restormer:
    """fp16 weights, as autocast would compute them: the convolutions in fp16, but each
    LayerNorm and the attention's normalisation and softmax in fp32. Those reduce over all
    channels or all pixels, where fp16 sums overflow (65,504) on real photos; the outputs they
    produce are small again, so the cast back to fp16 is safe."""
    network.half()
    for module in network.modules():
        if isinstance(module, ChannelLayerNorm):
            module.float()
            module.forward = _in_fp32(module.forward)  # type: ignore[method-assign]
        elif isinstance(module, MDTA):
            module.temperature.data = module.temperature.data.float()
            module._attend_planes = _in_fp32(module._attend_planes)  # type: ignore[method-assign]
    return network


def _in_fp32(step: Callable[[torch.Tensor], torch.Tensor]) -> Callable[[torch.Tensor], torch.Tensor]:
    def run(x: torch.Tensor) -> torch.Tensor:
        return step(x.float()).to(x.dtype)

    return run
