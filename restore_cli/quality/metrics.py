"""PSNR and SSIM computed the way restoration papers compute them, so numbers are comparable.

Papers score the *saved* result: the network output is rounded to the file's integer levels
before scoring, and comparisons on luma use MATLAB's `rgb2ycbcr`, whose output for integer
images is itself rounded to integer levels. Both roundings move scores by a few hundredths
of a dB, which is the size of the differences tables report, so they are reproduced here
rather than scoring floats directly. SSIM is Wang et al. (2004) as in their reference code:
11x11 Gaussian window (sigma 1.5), K1 = 0.01, K2 = 0.03, averaged over the "valid" region
only, i.e. where the window lies wholly inside the image.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from restore_cli.errors import MetricError

Y_COEFFICIENTS = np.array([65.481, 128.553, 24.966])
"""BT.601 luma weights for R, G, B in [0, 1], giving Y in [16, 235] on the 8-bit scale."""
Y_OFFSET = 16.0

SSIM_WINDOW = 11
SSIM_SIGMA = 1.5
SSIM_K1 = 0.01
SSIM_K2 = 0.03



@dataclass(frozen=True)
class Score:
    """One image's quality against its reference."""

    psnr: float
    ssim: float


def peak(bit_depth: int) -> int:
    """The largest level of an image with this many bits: the data range of its scores."""
    return 2**bit_depth - 1


def quantise(pixels: np.ndarray, bit_depth: int) -> np.ndarray:
    """Round [0, 1] floats to integer levels (as float64), as saving to a file would.

    Rounds half up rather than half to even, like MATLAB and skimage's img_as_ubyte.
    """
    top = peak(bit_depth)
    return np.clip(np.floor(np.asarray(pixels, dtype=np.float64) * top + 0.5), 0, top)


def rgb_to_y(levels: np.ndarray, bit_depth: int) -> np.ndarray:
    """Luma levels of an HxWx3 level array, rounded to integers like MATLAB's rgb2ycbcr.

    MATLAB scales the 8-bit formula by (2^bits - 1) / 255 for other integer types, so 16-bit
    images get Y in [16 * 257, 235 * 257].
    """
    top = peak(bit_depth)
    luma = ((levels / top) @ Y_COEFFICIENTS + Y_OFFSET) * (top / 255.0)
    return np.clip(np.floor(luma + 0.5), 0, top)[..., None]


def crop_border(image: np.ndarray, border: int) -> np.ndarray:
    """Drop `border` pixels on every side, as super-resolution and deblurring protocols do."""
    if border <= 0:
        return image
    if min(image.shape[:2]) <= 2 * border:
        raise MetricError(f"a {image.shape[1]}x{image.shape[0]} image has nothing left after cropping {border} px")
    return image[border:-border, border:-border]


def psnr(prediction: np.ndarray, reference: np.ndarray, data_range: float) -> float:
    """Peak signal-to-noise ratio in dB over every sample; inf for identical images."""
    mse = float(np.mean((prediction.astype(np.float64) - reference.astype(np.float64)) ** 2))
    if mse == 0.0:
        return math.inf
    return 10.0 * math.log10(data_range**2 / mse)


def ssim(prediction: np.ndarray, reference: np.ndarray, data_range: float) -> float:
    """Mean SSIM of HxWxC arrays: per channel over the valid region, then averaged over channels."""
    if min(reference.shape[:2]) < SSIM_WINDOW:
        raise MetricError(f"SSIM needs images of at least {SSIM_WINDOW}x{SSIM_WINDOW} pixels")
    channels = reference.shape[2]
    return float(np.mean([_ssim_plane(prediction[..., c], reference[..., c], data_range) for c in range(channels)]))


def _ssim_plane(x: np.ndarray, y: np.ndarray, data_range: float) -> float:
    x = x.astype(np.float64)
    y = y.astype(np.float64)
    c1 = (SSIM_K1 * data_range) ** 2
    c2 = (SSIM_K2 * data_range) ** 2
    mu_x, mu_y = _gaussian_valid(x), _gaussian_valid(y)
    var_x = _gaussian_valid(x * x) - mu_x * mu_x
    var_y = _gaussian_valid(y * y) - mu_y * mu_y
    cov = _gaussian_valid(x * y) - mu_x * mu_y
    numerator = (2 * mu_x * mu_y + c1) * (2 * cov + c2)
    denominator = (mu_x * mu_x + mu_y * mu_y + c1) * (var_x + var_y + c2)
    return float(np.mean(numerator / denominator))


def _gaussian_window() -> np.ndarray:
    """The normalised 1-D factor of MATLAB's fspecial('gaussian', 11, 1.5)."""
    offsets = np.arange(SSIM_WINDOW) - SSIM_WINDOW // 2
    weights = np.exp(-(offsets**2) / (2 * SSIM_SIGMA**2))
    return weights / weights.sum()


def _gaussian_valid(plane: np.ndarray) -> np.ndarray:
    """Separable Gaussian filter keeping only outputs whose window fits inside the plane."""
    window = _gaussian_window()
    rows = np.lib.stride_tricks.sliding_window_view(plane, SSIM_WINDOW, axis=0) @ window
    return np.lib.stride_tricks.sliding_window_view(rows, SSIM_WINDOW, axis=1) @ window


def score(
    prediction: np.ndarray,
    reference: np.ndarray,
    bit_depth: int,
    *,
    y_channel: bool = False,
    border: int = 0,
) -> Score:
    """Score HxWxC [0, 1] pixels against a reference at the reference's bit depth.

    Both are quantised to `bit_depth` levels first, so a float network output scores as the
    file it would be saved as. Gray images are scored as they are, with or without y_channel.
    """
    if prediction.shape != reference.shape:
        raise MetricError(f"sizes differ: {_size(prediction)} vs reference {_size(reference)}")
    predicted, expected = quantise(prediction, bit_depth), quantise(reference, bit_depth)
    if y_channel and expected.shape[2] == 3:
        predicted, expected = rgb_to_y(predicted, bit_depth), rgb_to_y(expected, bit_depth)
    predicted, expected = crop_border(predicted, border), crop_border(expected, border)
    data_range = peak(bit_depth)
    return Score(psnr=psnr(predicted, expected, data_range), ssim=ssim(predicted, expected, data_range))


def _size(image: np.ndarray) -> str:
    return f"{image.shape[1]}x{image.shape[0]}x{image.shape[2]}"


def gaussian_noise_input(pixels: np.ndarray, bit_depth: int, sigma: float) -> np.ndarray:
    """The noisy network input of the official Gaussian-denoising test scripts, bit for bit.

    They load 8-bit files as float32(levels) / 255, then per image seed numpy's legacy
    generator with 0 and add normal(0, sigma/255) noise of the image's shape (HxWxC, float64),
    in place, so the sum is rounded back to float32. No clipping: the network sees values
    outside [0, 1]. A fresh RandomState(0) draws the same stream as np.random.seed(0) without
    touching the global generator.
    """
    clean = quantise(pixels, bit_depth).astype(np.float32) / np.float32(peak(bit_depth))
    noise = np.random.RandomState(0).normal(0.0, sigma / 255.0, clean.shape)
    return (clean + noise).astype(np.float32)
