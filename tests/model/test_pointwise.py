"""1x1 convs on channels-last maps: oneDNN's product in plain fp32 inference, torch's
F.linear wherever it must not be used (gradients, autocast), the same numbers either way."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from restore_cli.model import restormer
from restore_cli.model.restormer import pointwise


@pytest.fixture
def calls(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Counts the calls that reach oneDNN's product."""
    real = restormer._onednn_linear()
    if real is None:
        pytest.skip("this torch build has no oneDNN linear")
    seen: list[int] = []

    def spy(*args):
        seen.append(1)
        return real(*args)

    monkeypatch.setattr(restormer, "_onednn_linear", lambda: spy)
    return seen


def _conv_and_map() -> tuple[nn.Conv2d, torch.Tensor]:
    torch.manual_seed(0)
    conv = nn.Conv2d(48, 144, kernel_size=1, bias=True)
    return conv, torch.randn(1, 48, 12, 20).contiguous(memory_format=torch.channels_last)


def test_fp32_inference_uses_onednn_and_matches_the_convolution(calls: list[int]) -> None:
    conv, x = _conv_and_map()
    with torch.inference_mode():
        out = pointwise(conv, x)
        reference = F.conv2d(x.contiguous(), conv.weight, conv.bias)

    assert calls == [1]
    assert out.is_contiguous(memory_format=torch.channels_last)
    assert (out - reference).abs().max().item() <= 1e-5


def test_training_keeps_torchs_product_and_its_gradients(calls: list[int]) -> None:
    conv, x = _conv_and_map()
    pointwise(conv, x).sum().backward()

    assert calls == []
    assert conv.weight.grad is not None


def test_autocast_keeps_choosing_the_precision(calls: list[int]) -> None:
    conv, x = _conv_and_map()
    with torch.inference_mode(), torch.autocast("cpu", dtype=torch.bfloat16):
        out = pointwise(conv, x)

    assert calls == []
    assert out.dtype == torch.bfloat16


def test_float64_keeps_torchs_product_and_its_precision(calls: list[int]) -> None:
    """The float64 comparisons with the official network (tests/golden.py's checkpoints in
    double precision) must not go through an fp32 kernel."""
    conv, x = _conv_and_map()
    conv, x = conv.double(), x.double()
    with torch.inference_mode():
        out = pointwise(conv, x)
        reference = F.conv2d(x.contiguous(), conv.weight, conv.bias)

    assert calls == []
    assert out.dtype == torch.float64
    assert (out - reference).abs().max().item() <= 1e-12
