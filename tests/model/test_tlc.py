"""TLC (test-time local statistics) against its definition, written here as a plain loop.

The reference below follows the issue's definition literally — window by window, normalise
q and k over the window, softmax(q kᵀ · temperature) v, then each pixel's mean over the
windows that cover it — and shares no code with restore_cli.model.tlc, whose cell formulation it
checks (in both memory formats) to float rounding.
"""

from __future__ import annotations

import math

import numpy as np
import psutil
import pytest
import torch
import torch.nn.functional as F
from PIL import Image

from restore_cli.engine.budget import TLC_MEMORY_FACTOR
from restore_cli.engine.restorer import Restorer
from restore_cli.model.restormer import MDTA, Restormer, RestormerConfig
from restore_cli.model.tlc import window_starts
from restore_cli.quality.metrics import psnr
from tests.model.test_fast_paths import one_thread  # noqa: F401  (autouse: tiny models run on one thread)
from tests.photos import CBSD68_3096

TOLERANCE = 1e-5
BF16_MIN_PSNR = 40.0
PHOTO = CBSD68_3096
TINY = RestormerConfig(dim=8, num_blocks=(1, 1, 1, 1), num_refinement_blocks=1)
MANY_HEADS = RestormerConfig(dim=16, num_blocks=(1, 1, 1, 1), num_refinement_blocks=1, heads=(2, 4, 8, 16))


def reference_starts(side: int, size: int) -> list[int]:
    """Starts along one axis, straight from the definition: starts at 0, step, 2 step, ...
    until a window reaches the end, which is clamped flush with it."""
    length = min(side, size)
    count = math.ceil(side / length)
    step = length if count == 1 else math.ceil((side - length) / (count - 1))
    starts, start = [], 0
    while start + length < side:
        starts.append(start)
        start += step
    return starts + [side - length]


def reference_mdta(attention: MDTA, x: torch.Tensor, window: int) -> torch.Tensor:
    """TLC's MDTA computed window by window, with per-pixel window counts."""
    qkv = attention.qkv_dwconv(attention.qkv(x)).contiguous()
    batch, _, height, width = qkv.shape
    size = window // 2**attention.level
    query, key, value = (t.reshape(batch, attention.heads, -1, height, width) for t in qkv.chunk(3, dim=1))
    total = torch.zeros_like(value)
    count = torch.zeros(height, width)
    rows, cols = min(height, size), min(width, size)
    for top in reference_starts(height, size):
        for left in reference_starts(width, size):
            q, k, v = (t[..., top : top + rows, left : left + cols].flatten(-2) for t in (query, key, value))
            scores = F.normalize(q, dim=-1) @ F.normalize(k, dim=-1).transpose(-2, -1) * attention.temperature
            out = scores.softmax(dim=-1) @ v
            total[..., top : top + rows, left : left + cols] += out.unflatten(-1, (rows, cols))
            count[top : top + rows, left : left + cols] += 1
    mean = (total / count).reshape(batch, -1, height, width)
    return attention.project_out(mean)


def with_reference_attention(model: Restormer, window: int) -> list[torch.utils.hooks.RemovableHandle]:
    """Make every MDTA of ``model`` return the reference's output instead of its own."""

    def replace(module: MDTA, inputs: tuple[torch.Tensor], output: torch.Tensor) -> torch.Tensor:
        fmt = torch.channels_last if output.is_contiguous(memory_format=torch.channels_last) else torch.contiguous_format
        return reference_mdta(module, inputs[0], window).contiguous(memory_format=fmt)

    return [m.register_forward_hook(replace) for m in model.modules() if isinstance(m, MDTA)]


def _run(model: Restormer, image: torch.Tensor, channels_last: bool) -> torch.Tensor:
    model.channels_last = channels_last
    with torch.inference_mode():
        return model(image)


# ---------------------------------------------------------------- the windows


@pytest.mark.parametrize(
    ("side", "size", "starts"),
    [
        (1024, 384, (0, 320, 640)),  # level 1 of a 1024 px image at the default window
        (128, 48, (0, 40, 80)),  # level 4 of it
        (10, 3, (0, 3, 6, 7)),  # step ceil(7 / 3) = 3, the last start clamped from 9 to 7
        (9, 2, (0, 2, 4, 6, 7)),
        (96, 48, (0, 48)),  # windows that tile exactly
        (40, 384, (0,)),  # a map smaller than the window: one window, the whole map
    ],
)
def test_window_starts_follow_the_definition(side: int, size: int, starts: tuple[int, ...]) -> None:
    assert window_starts(side, size) == starts


def test_window_starts_agree_with_the_reference_on_every_small_case() -> None:
    for side in range(1, 130):
        for size in range(1, 140):
            assert list(window_starts(side, size)) == reference_starts(side, size), (side, size)


# ---------------------------------------------------------------- one attention


@pytest.mark.parametrize("channels_last", [False, True], ids=["nchw", "channels_last"])
@pytest.mark.parametrize(
    ("heads", "level", "height", "width", "window"),
    [
        (1, 0, 23, 37, 16),  # odd sides, windows overlapping unevenly on both axes
        (2, 1, 19, 31, 24),  # window 12 at level 1
        (4, 2, 13, 9, 32),  # window 8 at level 2: wider than one side only
        (8, 3, 11, 7, 40),  # window 5 at level 3
        (2, 0, 5, 6, 384),  # map smaller than the window: global attention
        (1, 3, 9, 9, 8),  # one-pixel windows at the deepest level
    ],
)
def test_local_attention_equals_the_loop_definition(
    channels_last: bool, heads: int, level: int, height: int, width: int, window: int
) -> None:
    torch.manual_seed(0)
    attention = MDTA(8 * heads, heads, bias=True, level=level).eval()
    torch.nn.init.uniform_(attention.temperature, 0.5, 2.0)
    attention.local_window = window // 2**level
    x = torch.randn(2, 8 * heads, height, width)
    if channels_last:
        x = x.contiguous(memory_format=torch.channels_last)

    with torch.inference_mode():
        ours = attention(x)
        reference = reference_mdta(attention, x, window)

    assert ours.is_contiguous(memory_format=torch.channels_last) == channels_last
    assert (ours - reference).abs().max().item() <= TOLERANCE


# ---------------------------------------------------------------- the whole network


@pytest.mark.parametrize("channels_last", [False, True], ids=["nchw", "channels_last"])
@pytest.mark.parametrize(("config", "window"), [(TINY, 24), (MANY_HEADS, 16), (MANY_HEADS, 40)], ids=["tiny24", "heads16", "heads40"])
def test_the_network_with_tlc_equals_the_loop_definition_in_every_block(
    channels_last: bool, config: RestormerConfig, window: int
) -> None:
    """Every MDTA, refinement included, at every level: a 40 x 56 image puts levels 3-4
    (10 x 14, 5 x 7) below the window there for some windows and above it for others."""
    torch.manual_seed(0)
    model = Restormer(config).eval()
    image = torch.rand(2, 3, 40, 56)
    model.tlc_window = window
    ours = _run(model, image, channels_last)
    handles = with_reference_attention(model, window)
    reference = _run(model, image, channels_last)
    for handle in handles:
        handle.remove()

    assert (ours - reference).abs().max().item() <= TOLERANCE


def test_a_window_wider_than_the_image_is_exactly_global_attention() -> None:
    torch.manual_seed(0)
    model = Restormer(MANY_HEADS).eval()
    image = torch.rand(1, 3, 40, 56)
    for channels_last in (False, True):
        model.tlc_window = None
        plain = _run(model, image, channels_last)
        model.tlc_window = 64
        assert torch.equal(_run(model, image, channels_last), plain)
        model.tlc_window = 32
        assert not torch.allclose(_run(model, image, channels_last), plain, atol=1e-3)


def test_the_window_scales_with_the_level_and_can_be_switched_off() -> None:
    model = Restormer(TINY)
    model.tlc_window = 384
    sizes = {name: m.local_window for name, m in model.named_modules() if isinstance(m, MDTA)}
    assert sizes["encoder_level1.0.attn"] == sizes["refinement.0.attn"] == sizes["decoder_level1.0.attn"] == 384
    assert sizes["encoder_level2.0.attn"] == sizes["decoder_level2.0.attn"] == 192
    assert sizes["encoder_level3.0.attn"] == 96 and sizes["latent.0.attn"] == 48
    model.tlc_window = None
    assert all(m.local_window is None for m in model.modules() if isinstance(m, MDTA))


@pytest.mark.parametrize("window", [0, 7, -8, 8.5, True])
def test_a_window_below_one_pixel_at_the_deepest_level_is_refused(window) -> None:
    model = Restormer(TINY)
    with pytest.raises(ValueError, match="at least 8 pixels"):
        model.tlc_window = window


def test_bf16_tlc_stays_within_the_bf16_psnr_of_fp32_on_a_real_photo() -> None:
    """Kept to a 64 x 96 crop, so that it stays cheap where bf16 is emulated (and slow)."""
    torch.manual_seed(0)
    model = Restormer(TINY).eval()
    photo = np.asarray(Image.open(PHOTO).convert("RGB"), dtype=np.float32)[100:164, 150:246] / 255

    fp32 = Restorer(model, device="cpu", precision="fp32", tile=0, tlc_window=32).restore(photo)
    bf16 = Restorer(model, device="cpu", precision="bf16", tile=0, tlc_window=32, allow_slow_precision=True).restore(photo)
    plain = Restorer(model, device="cpu", precision="fp32", tile=0).restore(photo)

    assert psnr(bf16, fp32, 1.0) >= BF16_MIN_PSNR
    assert psnr(bf16, fp32, 1.0) > psnr(bf16, plain, 1.0)  # it ran TLC, not global attention


def test_tiles_narrower_than_the_window_are_warned_about(caplog: pytest.LogCaptureFixture) -> None:
    model = Restormer(TINY)
    with caplog.at_level("WARNING", logger="restore_cli.engine"):
        Restorer(model, device="cpu", tile=512, tlc_window=384)
        assert caplog.records == []
        Restorer(model, device="cpu", tile=256, tlc_window=384)
    assert len(caplog.records) == 1 and "narrower than the 384-pixel TLC window" in caplog.text
    assert model.tlc_window == 384


def test_auto_tiles_allow_for_tlcs_extra_memory_and_hold_whole_windows() -> None:
    def restorer(window: int | None, budget: str = "1TB") -> Restorer:
        return Restorer(Restormer(TINY), device="cpu", max_memory=budget, tlc_window=window)

    plain, local = restorer(None).memory_model(), restorer(384).memory_model()
    assert local.per_pixel_per_dim == pytest.approx(plain.per_pixel_per_dim * TLC_MEMORY_FACTOR)
    assert local.fixed == plain.fixed

    budget = str(psutil.Process().memory_info().rss + 3000 * 2**20)
    plan, _ = restorer(768, budget).plan(3000, 4000)
    assert plan.tile_height >= 768 and len(plan) > 1


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
@pytest.mark.parametrize("channels_last", [False, True], ids=["nchw", "channels_last"])
def test_cuda_tlc_equals_the_cpu(channels_last: bool) -> None:
    torch.manual_seed(0)
    model = Restormer(MANY_HEADS).eval()
    image = torch.rand(2, 3, 40, 56)
    model.tlc_window = 16
    cpu = _run(model, image, channels_last)
    cuda = _run(model.cuda(), image.cuda(), channels_last).cpu()

    assert (cuda - cpu).abs().max().item() <= 1e-4
