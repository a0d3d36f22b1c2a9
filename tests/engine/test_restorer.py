"""Restorer: any size, exact whole-image results, seamless tiles, memory budget, NaN guard."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import psutil
import pytest
import torch
from PIL import Image
from torch import nn

from restore_cli.engine.budget import MemoryModel, choose_tile, parse_memory_size
from restore_cli.engine.restorer import Restorer, pad_to_multiple
from restore_cli.errors import MemoryBudgetError
from restore_cli.model.restormer import Restormer, RestormerConfig
from restore_cli.model.zoo import load_model
from restore_cli.quality.metrics import psnr
from tests.hardware_marks import needs_native_bf16
from tests.photos import CBSD68_3096

DATA = Path(__file__).parents[1] / "data"
TINY = RestormerConfig(dim=8, num_blocks=(1, 1, 1, 1), num_refinement_blocks=1)


@pytest.fixture(scope="module")
def tiny_model() -> Restormer:
    torch.manual_seed(0)
    return Restormer(TINY).eval()


@pytest.fixture(scope="module")
def golden_model() -> Restormer:
    return load_model(DATA / "golden" / "tiny_rgb_biasfree_bias.pth")


@pytest.fixture(scope="module")
def photo() -> np.ndarray:
    """A 160 x 240 crop of a real photo (BSD68 3096), HWC float32 in [0, 1]."""
    pixels = np.asarray(Image.open(CBSD68_3096).convert("RGB"), dtype=np.float32) / 255
    return pixels[80:240, 120:360]


class Pixelwise(nn.Module):
    """A stand-in network whose output at a pixel depends only on that pixel, so any
    correct tiling reproduces it exactly; it also insists on the 8-pixel grid."""

    def __init__(self, channels: int = 3) -> None:
        super().__init__()
        self.config = RestormerConfig(in_channels=channels, out_channels=channels, dim=8)
        self.shapes: list[tuple[int, ...]] = []

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        assert x.shape[-2] % 8 == 0 and x.shape[-1] % 8 == 0, x.shape
        self.shapes.append(tuple(x.shape))
        return 1.0 - x * x


class Faulty(nn.Module):
    """Wraps a model and spoils its first forward pass with ``fault``."""

    def __init__(self, inner: nn.Module, fault) -> None:
        super().__init__()
        self.inner, self.config, self.fault, self.calls = inner, inner.config, fault, 0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.calls += 1
        return self.fault(x, self.inner(x)) if self.calls == 1 else self.inner(x)


# -- padding -------------------------------------------------------------------------


def test_reflect_padding_mirrors_about_the_last_row_and_column():
    image = torch.arange(5 * 7, dtype=torch.float32).reshape(1, 1, 5, 7)

    padded = pad_to_multiple(image)

    assert padded.shape == (1, 1, 8, 8)
    torch.testing.assert_close(padded[..., :5, :7], image, rtol=0, atol=0)
    torch.testing.assert_close(padded[0, 0, 5:, :7], image[0, 0, [3, 2, 1]], rtol=0, atol=0)
    torch.testing.assert_close(padded[0, 0, :5, 7], image[0, 0, :, 5], rtol=0, atol=0)


def test_padding_replicates_when_image_is_smaller_than_the_pad():
    image = torch.tensor([[[[0.25, 0.5, 0.75]]]])  # 1 x 3: both pads exceed the sides

    padded = pad_to_multiple(image)

    assert padded.shape == (1, 1, 8, 8)
    assert torch.all(padded[0, 0, :, 2:] == 0.75)
    assert torch.all(padded[0, 0, :, 0] == 0.25)


def test_image_already_on_the_grid_is_not_copied():
    image = torch.rand(1, 3, 16, 24)
    assert pad_to_multiple(image) is image


@pytest.mark.parametrize(("height", "width"), [(1, 1), (5, 7), (3, 777), (20000, 300)])
def test_any_size_round_trips_through_tiles(height, width):
    rng = np.random.default_rng(height)
    image = rng.random((height, width, 3), dtype=np.float32)
    model = Pixelwise()

    restored = Restorer(model, device="cpu", tile=256, overlap=32).restore(image)

    np.testing.assert_allclose(restored, 1.0 - image * image, atol=1e-6)
    assert max(shape[-1] for shape in model.shapes) <= 256


@pytest.mark.parametrize(("height", "width"), [(1, 1), (5, 7), (3, 777)])
def test_real_network_accepts_tiny_and_odd_sizes(tiny_model, height, width):
    image = torch.rand(1, 3, height, width)

    restored = Restorer(tiny_model, device="cpu", tile=64).restore(image)

    assert restored.shape == (1, 3, height, width)
    assert torch.isfinite(restored).all()


# -- whole image ---------------------------------------------------------------------


@pytest.mark.parametrize("tile", [0, 64, 1024, "auto"])
def test_tile_at_least_the_image_equals_whole_image_inference(golden_model, tile):
    image = torch.rand(1, 3, 48, 64, generator=torch.Generator().manual_seed(1))
    with torch.inference_mode():
        expected = golden_model(image).clamp(0, 1)

    restored = Restorer(golden_model, device="cpu", tile=tile, max_memory="64GB").restore(image)

    assert torch.equal(restored, expected)


def test_odd_size_whole_image_matches_reflect_padded_inference(golden_model):
    image = np.random.default_rng(2).random((45, 61, 3), dtype=np.float32)
    padded = np.pad(image, ((0, 3), (0, 3), (0, 0)), mode="reflect")
    with torch.inference_mode():
        expected = golden_model(torch.from_numpy(padded).permute(2, 0, 1)[None]).clamp(0, 1)
    expected = expected[0, :, :45, :61].permute(1, 2, 0).numpy()

    restored = Restorer(golden_model, device="cpu", tile=0).restore(image)

    np.testing.assert_array_equal(restored, expected)


# -- seams ---------------------------------------------------------------------------


def test_smooth_blending_beats_uniform_averaging_on_a_real_photo(golden_model, photo):
    whole = Restorer(golden_model, device="cpu", tile=0).restore(photo)

    ours = Restorer(golden_model, device="cpu", tile=64, overlap=32).restore(photo)
    uniform = Restorer(golden_model, device="cpu", tile=64, overlap=32, blend="uniform").restore(photo)

    assert psnr(ours, whole, 1.0) > psnr(uniform, whole, 1.0) + 3.0


# -- precision -----------------------------------------------------------------------


@needs_native_bf16
@pytest.mark.parametrize("value", [float("inf"), float("nan")])
def test_non_finite_half_precision_tile_is_recomputed_in_fp32(golden_model, photo, value):
    def spoil_first_tile(_, output):
        output[0, :, :4, :4] = value
        return output

    faulty = Faulty(golden_model, spoil_first_tile)
    fp32 = Restorer(golden_model, device="cpu", precision="fp32", tile=64).restore(photo)

    restored = Restorer(faulty, device="cpu", precision="bf16", tile=64).restore(photo)

    assert np.isfinite(restored).all()
    np.testing.assert_array_equal(restored[:16, :16], fp32[:16, :16])
    assert psnr(restored, fp32, 1.0) > 30.0


@needs_native_bf16
def test_bf16_runs_in_reduced_precision_close_to_fp32(golden_model, photo):
    fp32 = Restorer(golden_model, device="cpu", precision="fp32", tile=0).restore(photo)
    bf16 = Restorer(golden_model, device="cpu", precision="bf16", tile=0).restore(photo)

    assert not np.array_equal(bf16, fp32)
    assert psnr(bf16, fp32, 1.0) > 30.0


def test_fp16_needs_cuda(tiny_model):
    with pytest.raises(ValueError, match="CUDA"):
        Restorer(tiny_model, device="cpu", precision="fp16")


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
@pytest.mark.parametrize("precision", ["fp16", "bf16"])
def test_cuda_half_precision_matches_fp32(golden_model, photo, precision):
    fp32 = Restorer(golden_model, device="cuda", precision="fp32", tile=64).restore(photo)
    half = Restorer(golden_model, device="cuda", precision=precision, tile=64).restore(photo)

    assert psnr(half, fp32, 1.0) > 30.0


# -- memory --------------------------------------------------------------------------


def test_choose_tile_is_the_largest_grid_tile_that_fits():
    memory = MemoryModel(fixed=1000, per_pixel_per_dim=1.0)
    available = 1000 + 8 * 200 * 200 + 8 * 100  # room for 200^2 pixels at dim 8, not 208^2

    assert choose_tile(available, memory, dim=8, height=3000, width=4000) == (200, 200)
    assert choose_tile(available, memory, dim=8, height=3000, width=4000, batch=4) == (96, 96)
    assert choose_tile(available, memory, dim=8, height=199, width=199) is None


@pytest.mark.usefixtures("flag_words")
def test_choose_tile_refuses_a_budget_below_the_smallest_tile():
    memory = MemoryModel(fixed=1000, per_pixel_per_dim=1.0)

    with pytest.raises(MemoryBudgetError, match="max-memory"):
        choose_tile(1000 + 8 * 63 * 63, memory, dim=8, height=3000, width=4000)


def test_auto_tile_shrinks_with_the_budget(tiny_model):
    def tile_for(budget: str):
        plan, _ = Restorer(tiny_model, device="cpu", max_memory=budget).plan(3000, 4000)
        return plan.tile_height * plan.tile_width, len(plan)

    assert tile_for("1TB")[1] > 1  # tiled for speed even with memory to spare: see test_auto_tile.py
    small_tile, small_count = tile_for(f"{_rss() + 600 * 2**20}")
    large_tile, large_count = tile_for(f"{_rss() + 2000 * 2**20}")
    assert 64 * 64 <= small_tile < large_tile < 3000 * 4000
    assert small_count > large_count > 1
    with pytest.raises(MemoryBudgetError):
        tile_for(f"{_rss() // 2}")


@pytest.mark.parametrize(
    ("text", "expected"),
    [("2GB", 2 * 10**9), ("1.5GiB", 3 * 2**29), ("512M", 512 * 10**6), ("100", 100), (4096, 4096)],
)
def test_parse_memory_size(text, expected):
    assert parse_memory_size(text) == expected


def test_parse_memory_size_rejects_nonsense():
    with pytest.raises(ValueError, match="2GB"):
        parse_memory_size("lots")


def test_cuda_out_of_memory_retries_with_smaller_tiles(monkeypatch):
    model = Pixelwise()
    inner_forward = model.forward

    def forward(x):
        if x.shape[-1] > 96:
            raise torch.cuda.OutOfMemoryError("simulated")
        return inner_forward(x)

    monkeypatch.setattr(model, "forward", forward)
    image = np.random.default_rng(3).random((300, 300, 3), dtype=np.float32)

    restored = Restorer(model, device="cpu", tile=128, batch_size=2).restore(image)

    np.testing.assert_allclose(restored, 1.0 - image * image, atol=1e-6)
    assert max(shape[-1] for shape in model.shapes) == 96


def _rss() -> int:
    return psutil.Process().memory_info().rss


# -- interface -----------------------------------------------------------------------


def test_progress_counts_every_tile_once(tiny_model):
    calls: list[tuple[int, int]] = []
    restorer = Restorer(tiny_model, device="cpu", tile=64, overlap=16)
    plan, _ = restorer.plan(100, 150)

    restorer.restore(torch.rand(1, 3, 100, 150), progress=lambda done, total: calls.append((done, total)))

    assert calls[-1] == (len(plan), len(plan)) and len(plan) > 1
    assert [done for done, _ in calls] == sorted({done for done, _ in calls})


def test_batch_of_images_equals_one_at_a_time(tiny_model):
    images = torch.rand(2, 3, 40, 56)
    restorer = Restorer(tiny_model, device="cpu", tile=32, overlap=8)

    together = restorer.restore(images)

    assert torch.equal(together[1:], restorer.restore(images[1:]))


def test_grayscale_array_keeps_its_layout():
    image = np.random.default_rng(4).random((20, 30), dtype=np.float32)

    restored = Restorer(Pixelwise(channels=1), device="cpu").restore(image)

    assert restored.shape == (20, 30) and restored.dtype == np.float32
    np.testing.assert_allclose(restored, 1.0 - image * image, atol=1e-6)


def test_wrong_channel_count_is_a_clear_error(tiny_model):
    with pytest.raises(ValueError, match="3 x H x W"):
        Restorer(tiny_model, device="cpu").restore(torch.rand(1, 1, 16, 16))
