"""PSNR / SSIM against scikit-image (an independent implementation) and closed forms.

The reference side never calls restore_cli: it decodes with Pillow, converts to Y with
skimage's rgb2ycbcr (then rounds to levels, as MATLAB does for uint8 images) and scores with
skimage configured as Wang et al.'s reference code (Gaussian 11x11, sigma 1.5, population
covariance).
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from restore_cli.errors import MetricError
from restore_cli.io.decode import read_image
from restore_cli.quality import metrics

skimage_color = pytest.importorskip("skimage.color")
skimage_metrics = pytest.importorskip("skimage.metrics")

DATA = Path(__file__).parents[1] / "data"
RAIN = DATA / "rain100L"
RAIN_PAIRS = sorted(path.name for path in (RAIN / "input").glob("*.png"))
SET12 = DATA / "set12"


def reference_y(rgb8: np.ndarray) -> np.ndarray:
    """Y levels of an 8-bit RGB array: skimage's BT.601 matrix, rounded half up to integers."""
    return np.floor(skimage_color.rgb2ycbcr(rgb8)[..., 0] + 0.5)


def reference_scores(prediction: np.ndarray, target: np.ndarray, data_range: float) -> tuple[float, float]:
    """skimage PSNR and SSIM of two HxW or HxWxC level arrays, SSIM set up as Wang et al. 2004."""
    prediction = prediction.astype(np.float64)
    target = target.astype(np.float64)
    psnr = skimage_metrics.peak_signal_noise_ratio(target, prediction, data_range=data_range)
    ssim = skimage_metrics.structural_similarity(
        target,
        prediction,
        data_range=data_range,
        gaussian_weights=True,
        sigma=1.5,
        use_sample_covariance=False,
        channel_axis=-1 if target.ndim == 3 else None,
    )
    return float(psnr), float(ssim)


def pillow_levels(path: Path) -> np.ndarray:
    return np.asarray(Image.open(path))


def test_there_are_real_pairs_to_compare() -> None:
    assert len(RAIN_PAIRS) >= 2


@pytest.mark.parametrize("name", RAIN_PAIRS)
def test_y_channel_scores_match_skimage_on_rain100l(name: str) -> None:
    rainy, clean = RAIN / "input" / name, RAIN / "target" / name
    expected = reference_scores(reference_y(pillow_levels(rainy)), reference_y(pillow_levels(clean)), 255)

    ours = metrics.score(read_image(rainy).pixels, read_image(clean).pixels, 8, y_channel=True)

    assert ours.psnr == pytest.approx(expected[0], abs=1e-3)
    assert ours.ssim == pytest.approx(expected[1], abs=1e-4)


@pytest.mark.parametrize("name", RAIN_PAIRS)
def test_rgb_scores_match_skimage_on_rain100l(name: str) -> None:
    rainy, clean = RAIN / "input" / name, RAIN / "target" / name
    expected = reference_scores(pillow_levels(rainy), pillow_levels(clean), 255)

    ours = metrics.score(read_image(rainy).pixels, read_image(clean).pixels, 8)

    assert ours.psnr == pytest.approx(expected[0], abs=1e-3)
    assert ours.ssim == pytest.approx(expected[1], abs=1e-4)


def test_crop_border_scores_only_the_inside() -> None:
    name = RAIN_PAIRS[0]
    rainy, clean = pillow_levels(RAIN / "input" / name), pillow_levels(RAIN / "target" / name)
    border = 7
    inside = (slice(border, -border), slice(border, -border))
    expected = reference_scores(reference_y(rainy)[inside], reference_y(clean)[inside], 255)

    ours = metrics.score(rainy / 255.0, clean / 255.0, 8, y_channel=True, border=border)

    assert ours.psnr == pytest.approx(expected[0], abs=1e-3)
    assert ours.ssim == pytest.approx(expected[1], abs=1e-4)


def test_sixteen_bit_images_use_the_sixteen_bit_data_range() -> None:
    rng = np.random.default_rng(1)
    clean = rng.integers(0, 65536, size=(40, 48, 3))
    noisy = np.clip(clean + rng.normal(0, 3000, clean.shape).round(), 0, 65535)
    expected = reference_scores(noisy, clean, 65535)

    ours = metrics.score(noisy / 65535, clean / 65535, 16)

    assert ours.psnr == pytest.approx(expected[0], abs=1e-3)
    assert ours.ssim == pytest.approx(expected[1], abs=1e-4)


def test_identical_images_score_infinity_and_one() -> None:
    image = read_image(RAIN / "target" / RAIN_PAIRS[0]).pixels

    for y_channel in (False, True):
        same = metrics.score(image, image.copy(), 8, y_channel=y_channel)
        assert same.psnr == math.inf
        assert same.ssim == pytest.approx(1.0, abs=1e-12)


@pytest.mark.parametrize(("bit_depth", "offset"), [(8, 5), (8, 1), (16, 300)])
def test_a_constant_offset_has_the_closed_form_psnr(bit_depth: int, offset: int) -> None:
    top = 2**bit_depth - 1
    levels = np.random.default_rng(2).integers(0, top - offset, size=(24, 32, 3))

    shifted = metrics.score((levels + offset) / top, levels / top, bit_depth)

    assert shifted.psnr == pytest.approx(20 * math.log10(top / offset), abs=1e-9)


def test_y_is_matlab_rgb2ycbcr_rounded_to_levels() -> None:
    colours = np.array([[[0, 0, 0], [255, 255, 255], [255, 0, 0], [0, 255, 0], [0, 0, 255]]], dtype=np.float64)
    # 16 + 65.481, 16 + 128.553, 16 + 24.966: 81.481, 144.553, 40.966
    assert metrics.rgb_to_y(colours, 8)[0, :, 0].tolist() == [16, 235, 81, 145, 41]
    assert metrics.rgb_to_y(colours * 257, 16)[0, :2, 0].tolist() == [16 * 257, 235 * 257]


def test_gray_images_are_scored_as_they_are_with_y_channel() -> None:
    gray = pillow_levels(SET12 / "02.png")[..., None]
    noisy = np.clip(gray.astype(int) + 9, 0, 255)
    expected = reference_scores(noisy[..., 0], gray[..., 0], 255)

    ours = metrics.score(noisy / 255, gray / 255, 8, y_channel=True)

    assert ours.psnr == pytest.approx(expected[0], abs=1e-3)
    assert ours.ssim == pytest.approx(expected[1], abs=1e-4)


def test_float_predictions_are_scored_as_the_file_they_would_be_saved_as() -> None:
    clean = read_image(SET12 / "03.png").pixels
    restored = np.clip(clean + 0.3 / 255, 0, 1)  # less than half a level away: saves as the clean file

    assert metrics.score(restored, clean, 8).psnr == math.inf


@pytest.mark.parametrize(
    ("prediction", "reference", "border", "message"),
    [
        ((32, 32, 3), (32, 33, 3), 0, "sizes differ"),
        ((32, 32, 1), (32, 32, 3), 0, "sizes differ"),
        ((10, 40, 3), (10, 40, 3), 0, "at least 11x11"),
        ((32, 32, 3), (32, 32, 3), 16, "nothing left"),
    ],
)
def test_images_that_cannot_be_compared_raise_metric_error(
    prediction: tuple[int, ...], reference: tuple[int, ...], border: int, message: str
) -> None:
    with pytest.raises(MetricError, match=message):
        metrics.score(np.zeros(prediction), np.zeros(reference), 8, border=border)


@pytest.mark.parametrize("sigma", [15, 25, 50])
def test_noise_is_the_official_seeded_noise_bit_for_bit(sigma: int) -> None:
    path = SET12 / "02.png"
    official = np.float32(pillow_levels(path)[..., None]) / 255.0
    np.random.seed(0)
    official += np.random.normal(0, sigma / 255.0, official.shape)

    ours = metrics.gaussian_noise_input(read_image(path).pixels, 8, sigma)

    assert ours.dtype == np.float32
    np.testing.assert_array_equal(ours, official)


def test_noise_is_not_clipped_and_leaves_the_global_generator_alone() -> None:
    clean = read_image(RAIN / "target" / RAIN_PAIRS[0]).pixels
    np.random.seed(123)
    before = np.random.get_state()[1].copy()

    noisy = metrics.gaussian_noise_input(clean, 8, 50)

    np.testing.assert_array_equal(np.random.get_state()[1], before)
    assert noisy.min() < 0 and noisy.max() > 1
    assert noisy.shape == clean.shape
