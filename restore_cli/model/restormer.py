"""Restormer (Zamir et al., "Restormer: Efficient Transformer for High-Resolution Image
Restoration", CVPR 2022), written from the paper.

Submodule and parameter names follow the authors' checkpoints so their state dicts load
key-for-key; everything else is our own. Shapes in comments use B = batch, C = channels,
H x W = spatial size, h = attention heads.

Every module runs in either memory format. On an NCHW input it computes the paper's
formulation literally, as the official code does. On a channels-last input it computes the
same function in the form a CPU runs fastest: each pixel's channels are
contiguous, so 1x1 convs become one matrix product over pixels, LayerNorm is the fused
kernel over the last dimension, and attention needs no transposing copies. The two agree
to float rounding (tests/model/test_fast_paths.py).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Callable, Literal

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import nn

from restore_cli.model.tlc import PixelLayout, PlaneLayout, WindowGrid, window_grid

LayerNormType = Literal["WithBias", "BiasFree"]

LEVELS = 4
"""Encoder levels of the U-Net; each level halves H and W and doubles the channels."""

SIZE_MULTIPLE = 2 ** (LEVELS - 1)
"""H and W must be multiples of this so three PixelUnshuffle(2) steps divide evenly."""


@dataclass(frozen=True)
class RestormerConfig:
    """Everything that determines the network's shape. The defaults are the paper's."""

    in_channels: int = 3
    out_channels: int = 3
    dim: int = 48
    num_blocks: tuple[int, int, int, int] = (4, 6, 6, 8)
    num_refinement_blocks: int = 4
    heads: tuple[int, int, int, int] = (1, 2, 4, 8)
    ffn_expansion_factor: float = 2.66
    bias: bool = False
    layernorm_type: LayerNormType = "WithBias"
    dual_pixel: bool = False

    def __post_init__(self) -> None:
        if not self.dual_pixel and self.in_channels != self.out_channels:
            raise ValueError(
                "the output is a residual added to the input, so a single-image Restormer needs "
                f"as many output channels as input channels (got {self.in_channels} in, "
                f"{self.out_channels} out)"
            )
        if self.dim % 2:
            raise ValueError(f"dim must be even for the 2x down-sampling (got {self.dim})")


def is_channels_last(x: torch.Tensor) -> bool:
    """Whether ``x`` is stored pixel-major, which selects the channels-last formulation.
    A map that is both (1x1 pixels, or one channel) counts as NCHW, so a model asked for
    the reference formulation never leaves it."""
    return x.dim() == 4 and x.is_contiguous(memory_format=torch.channels_last) and not x.is_contiguous()


def _to_pixels(x: torch.Tensor) -> torch.Tensor:
    """(B, C, H, W) channels-last -> (B, H, W, C), a free view of the same memory."""
    return x.permute(0, 2, 3, 1)


def _from_pixels(x: torch.Tensor) -> torch.Tensor:
    """(B, H, W, C) -> (B, C, H, W) channels-last, a free view of the same memory."""
    return x.permute(0, 3, 1, 2)


def pointwise(conv: nn.Conv2d, x: torch.Tensor) -> torch.Tensor:
    """A 1x1 conv. On channels-last input it is a plain matrix product over pixels: the
    CPU convolution kernels fall back to a slow generic path for 1x1 channels-last convs.
    In fp32 inference on the CPU the product is oneDNN's rather than MKL's (see
    :func:`_onednn_linear`)."""
    if not is_channels_last(x):
        return conv(x)
    pixels, weight = _to_pixels(x), conv.weight.flatten(1)
    onednn = _onednn_linear()
    if onednn is not None and _plain_fp32_inference(pixels):
        return _from_pixels(onednn(pixels, weight, conv.bias, "none", [], ""))
    return _from_pixels(F.linear(pixels, weight, conv.bias))


@functools.lru_cache(maxsize=None)
def _onednn_linear() -> Callable[..., torch.Tensor] | None:
    """oneDNN's fp32 matrix product (the operator torch's own compiler emits for linear
    layers on the CPU), or ``None`` where this torch build has none. On an AMD EPYC with
    AVX2 it ran the model's pixel-by-channel products (K = 48-255 input channels) 10-20%
    faster than MKL's sgemm, which ``F.linear`` calls, at 30-34 GFLOP/s a core against
    24-29; results agree to float rounding. It has no backward, hence inference only."""
    if not torch.backends.mkldnn.is_available():
        return None
    try:
        return torch.ops.mkldnn._linear_pointwise.default
    except (AttributeError, RuntimeError):
        return None


def _plain_fp32_inference(pixels: torch.Tensor) -> bool:
    """No gradients wanted, fp32 on the CPU, no autocast (which must keep choosing the
    precision of F.linear), contiguous rows."""
    return (not torch.is_grad_enabled() and pixels.dtype == torch.float32 and pixels.device.type == "cpu"
            and pixels.is_contiguous() and not _autocast_on_cpu())


def _autocast_on_cpu() -> bool:
    try:
        return torch.is_autocast_enabled("cpu")
    except TypeError:  # torch < 2.4 had a separate query for the CPU
        return torch.is_autocast_cpu_enabled()


class ChannelLayerNorm(nn.Module):
    """LayerNorm over the channels of each pixel of an NCHW map.

    On NCHW maps it is computed in place, avoiding the NCHW -> (B, HW, C) -> NCHW copies a
    token LayerNorm would need; on channels-last maps that (B, H, W, C) view is free, so the
    fused kernel runs on it. The "BiasFree" variant (used by all denoisers) divides by
    the standard deviation without centring the input and has no bias; "WithBias" is the
    usual centred LayerNorm with an affine bias.
    """

    eps = 1e-5

    def __init__(self, channels: int, layernorm_type: LayerNormType) -> None:
        super().__init__()
        self.body = _NormParameters(channels, with_bias=layernorm_type == "WithBias")

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, C, H, W) -> (B, C, H, W)
        if is_channels_last(x):
            return _from_pixels(self._normalise_pixels(_to_pixels(x)))
        variance, mean = torch.var_mean(x, dim=1, keepdim=True, correction=0)
        centred = x if self.body.bias is None else x - mean
        scale = self.body.weight.view(1, -1, 1, 1)
        normalised = centred * torch.rsqrt(variance + self.eps) * scale
        if self.body.bias is None:
            return normalised
        return normalised + self.body.bias.view(1, -1, 1, 1)

    def _normalise_pixels(self, pixels: torch.Tensor) -> torch.Tensor:
        """(B, H, W, C): the reduction runs over contiguous memory, and the centred
        variant is exactly torch's fused LayerNorm."""
        weight, bias = self.body.weight, self.body.bias
        if bias is not None:
            return F.layer_norm(pixels, weight.shape, weight, bias, self.eps)
        variance = pixels.var(dim=-1, keepdim=True, correction=0)
        return pixels * torch.rsqrt(variance + self.eps) * weight


class _NormParameters(nn.Module):
    """Holds the LayerNorm affine parameters under the checkpoint's `norm.body.*` names."""

    def __init__(self, channels: int, with_bias: bool) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.ones(channels))
        self.register_parameter("bias", nn.Parameter(torch.zeros(channels)) if with_bias else None)


NORMALIZE_EPS = 1e-12
"""The floor F.normalize puts under a vector's norm."""


class MDTA(nn.Module):
    """Multi-Dconv head transposed attention.

    Attention runs across channels, not pixels: each head builds a (C/h x C/h) map from
    L2-normalised queries and keys, so the cost is linear in the number of pixels. A 3x3
    depth-wise conv after the 1x1 projection gives q, k and v local spatial context.

    ``local_window`` (set through :attr:`Restormer.tlc_window`) switches to TLC: the same
    attention over windows of that many pixels at this level (:mod:`restore_cli.model.tlc`).
    """

    def __init__(self, channels: int, heads: int, bias: bool, level: int = 0) -> None:
        super().__init__()
        self.heads = heads
        self.level = level
        """U-Net level (0 = full resolution), which scales the TLC window."""
        self.local_window: int | None = None
        self.temperature = nn.Parameter(torch.ones(heads, 1, 1))
        self.qkv = nn.Conv2d(channels, 3 * channels, kernel_size=1, bias=bias)
        self.qkv_dwconv = nn.Conv2d(
            3 * channels, 3 * channels, kernel_size=3, padding=1, groups=3 * channels, bias=bias
        )
        self.project_out = nn.Conv2d(channels, channels, kernel_size=1, bias=bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, C, H, W) -> (B, C, H, W)
        qkv = self.qkv_dwconv(pointwise(self.qkv, x))
        if is_channels_last(qkv):
            return pointwise(self.project_out, self._attend_pixels(qkv))
        return self.project_out(self._attend_planes(qkv))

    def _windows(self, qkv: torch.Tensor) -> WindowGrid | None:
        """The TLC windows for this map, or None for global attention (TLC off, or one
        window covering the whole map, which is global attention exactly)."""
        if self.local_window is None:
            return None
        grid = window_grid(qkv.shape[-2], qkv.shape[-1], self.local_window)
        return None if grid.is_global else grid

    def _attend_planes(self, qkv: torch.Tensor) -> torch.Tensor:
        """The paper's formulation: per head, (C/h, HW) maps, normalised, then attention."""
        height, width = qkv.shape[-2:]
        query, key, value = (
            rearrange(t, "b (h c) y x -> b h c y x", h=self.heads) for t in qkv.chunk(3, dim=1)
        )
        windows = self._windows(qkv)
        if windows is not None:
            out = windows.attend(query, key, value, PlaneLayout, self._plane_attention)
            return rearrange(out, "b h c y x -> b (h c) y x")
        query, key, value = (t.flatten(-2) for t in (query, key, value))
        query = F.normalize(query, dim=-1)
        key = F.normalize(key, dim=-1)
        attention = (query @ key.transpose(-2, -1)) * self.temperature  # (B, h, C/h, C/h)
        out = attention.softmax(dim=-1) @ value  # (B, h, C/h, HW)
        return rearrange(out, "b h c (y x) -> b (h c) y x", y=height, x=width)

    def _plane_attention(self, gram: torch.Tensor, query_norm: torch.Tensor, key_norm: torch.Tensor) -> torch.Tensor:
        """Per-head attention from a window's unnormalised statistics: (..., h, C/h, C/h)."""
        cosine = gram / _outer_norms(query_norm, key_norm)
        return (cosine * self.temperature).softmax(dim=-1)

    def _attend_pixels(self, qkv: torch.Tensor) -> torch.Tensor:
        """The same attention on (B, HW, C) pixel rows, without rearranging the inputs.

        Each head's query, key and value are strided views of the qkv map, which the
        matrix products take as they are. Normalising q and k is folded into the Gram
        matrix: cosine similarity is the dot product divided by both norms, which saves two
        full passes. Only the output is copied once into pixel rows, when there are several
        heads; computing all heads as one masked C x C product instead did h times the
        arithmetic of the Gram and apply products at levels with h heads.
        """
        batch, qkv_channels, height, width = qkv.shape
        query, key, value = _to_pixels(qkv).chunk(3, dim=-1)  # (B, H, W, C) views
        windows = self._windows(qkv)
        if windows is not None:
            return _from_pixels(windows.attend(query, key, value, PixelLayout, self._pixel_attention))
        query, key, value = (t.flatten(1, 2) for t in (query, key, value))  # (B, HW, C) views
        by_head = [t.unflatten(-1, (self.heads, -1)).transpose(1, 2) for t in (query, key, value)]  # (B, h, HW, C/h)
        gram = by_head[0].transpose(-2, -1) @ by_head[1]  # (B, h, C/h, C/h)
        query_norm, key_norm = (_column_norms(t).unflatten(-1, (self.heads, -1)) for t in (query, key))
        attention = self._plane_attention(gram, query_norm, key_norm)
        out = by_head[2] @ attention.transpose(-2, -1)  # (B, h, HW, C/h)
        return _from_pixels(out.transpose(1, 2).reshape(batch, height, width, -1))

    def _pixel_attention(self, gram: torch.Tensor, query_norm: torch.Tensor, key_norm: torch.Tensor) -> torch.Tensor:
        """All heads' attention as one block-diagonal (..., C, C) matrix, for TLC's windows,
        whose statistics are pooled over (..., C, C) cells."""
        cosine = gram / _outer_norms(query_norm, key_norm)
        return self._mask_other_heads(cosine * self._row_temperature()).softmax(dim=-1)

    def _row_temperature(self) -> torch.Tensor:
        """(C, 1): each head's temperature repeated over that head's query channels."""
        return self.temperature.flatten().repeat_interleave(self._head_channels())[:, None]

    def _mask_other_heads(self, scores: torch.Tensor) -> torch.Tensor:
        head = torch.arange(scores.shape[-1], device=scores.device) // self._head_channels()
        return scores.masked_fill(head[:, None] != head[None, :], float("-inf"))

    def _head_channels(self) -> int:
        return self.qkv.out_channels // 3 // self.heads


def _column_norms(rows: torch.Tensor) -> torch.Tensor:
    """(B, HW, C) -> (B, C): each channel's L2 norm over the pixels. ``rows`` is a strided
    view into the qkv map, and ``Tensor.norm`` reduces over it 4-8x slower than squaring
    into a contiguous buffer and summing its columns (measured on an AMD EPYC with AVX2,
    where it was 12% of a forward pass)."""
    return rows.square().sum(dim=1).sqrt_()


def _outer_norms(query_norm: torch.Tensor, key_norm: torch.Tensor) -> torch.Tensor:
    """(..., C), (..., C) -> (..., C, C) products of the norms, each floored as F.normalize does."""
    return query_norm.clamp_min(NORMALIZE_EPS)[..., :, None] * key_norm.clamp_min(NORMALIZE_EPS)[..., None, :]


class GDFN(nn.Module):
    """Gated-Dconv feed-forward network: one half of the expanded features, passed through
    GELU, gates the other half; depth-wise 3x3 convs add local context before gating."""

    def __init__(self, channels: int, expansion_factor: float, bias: bool) -> None:
        super().__init__()
        hidden = int(channels * expansion_factor)
        self.project_in = nn.Conv2d(channels, 2 * hidden, kernel_size=1, bias=bias)
        self.dwconv = nn.Conv2d(
            2 * hidden, 2 * hidden, kernel_size=3, padding=1, groups=2 * hidden, bias=bias
        )
        self.project_out = nn.Conv2d(hidden, channels, kernel_size=1, bias=bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, C, H, W) -> (B, C, H, W)
        gate, features = self.dwconv(pointwise(self.project_in, x)).chunk(2, dim=1)
        return pointwise(self.project_out, F.gelu(gate).mul_(features))


class TransformerBlock(nn.Module):
    """Pre-norm residual block: x + MDTA(LN(x)), then x + GDFN(LN(x))."""

    def __init__(self, channels: int, heads: int, config: RestormerConfig, level: int = 0) -> None:
        super().__init__()
        self.norm1 = ChannelLayerNorm(channels, config.layernorm_type)
        self.attn = MDTA(channels, heads, config.bias, level)
        self.norm2 = ChannelLayerNorm(channels, config.layernorm_type)
        self.ffn = GDFN(channels, config.ffn_expansion_factor, config.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(self.norm1(x))
        return x + self.ffn(self.norm2(x))


def _stage(count: int, level: int, config: RestormerConfig, channels: int | None = None) -> nn.Sequential:
    """``count`` blocks at U-Net ``level``, with that level's heads and (by default) width."""
    width = channels if channels is not None else config.dim * 2**level
    return nn.Sequential(*(TransformerBlock(width, config.heads[level], config, level) for _ in range(count)))


class PatchEmbed(nn.Module):
    """3x3 conv lifting the image to `dim` feature channels. It never has a bias, whatever
    `config.bias` says: that is how the published checkpoints were trained."""

    def __init__(self, in_channels: int, dim: int) -> None:
        super().__init__()
        self.proj = nn.Conv2d(in_channels, dim, kernel_size=3, padding=1, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, in, H, W) -> (B, dim, H, W)
        return self.proj(x)


def _same_format(out: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """Pixel (un)shuffle returns NCHW whatever its input; restore channels-last so the
    next level keeps the fast formulation."""
    return out.contiguous(memory_format=torch.channels_last) if is_channels_last(x) else out


class Downsample(nn.Module):
    """Halve H and W, double C: a 3x3 conv to C/2 then PixelUnshuffle(2) (C/2 * 4 = 2C)."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(channels, channels // 2, kernel_size=3, padding=1, bias=False),
            nn.PixelUnshuffle(2),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, C, H, W) -> (B, 2C, H/2, W/2)
        return _same_format(self.body(x), x)


class Upsample(nn.Module):
    """Double H and W, halve C: a 3x3 conv to 2C then PixelShuffle(2) (2C / 4 = C/2)."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(channels, channels * 2, kernel_size=3, padding=1, bias=False),
            nn.PixelShuffle(2),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, C, H, W) -> (B, C/2, 2H, 2W)
        return _same_format(self.body(x), x)


class Restormer(nn.Module):
    """The 4-level encoder/decoder of Transformer blocks with skip connections.

    Level l (0-based) works at dim * 2**l channels and 1/2**l resolution. Decoder level 1
    keeps the concatenated 2 * dim channels (no channel reduction), as do the refinement
    blocks. The output is a residual added to the input image, except for dual-pixel
    input (two stacked views), where the residual comes from the first features through
    `skip_conv` because input and output channel counts differ.
    """

    channels_last = True
    """Run in the channels-last formulation (faster, equal to float rounding); ``False``
    runs the official NCHW formulation, which benchmarks use as the baseline."""

    def __init__(self, config: RestormerConfig | None = None) -> None:
        super().__init__()
        config = config or RestormerConfig()
        self.config = config
        self._tlc_window: int | None = None
        dim, blocks, bias = config.dim, config.num_blocks, config.bias

        self.patch_embed = PatchEmbed(config.in_channels, dim)
        self.encoder_level1 = _stage(blocks[0], 0, config)
        self.down1_2 = Downsample(dim)
        self.encoder_level2 = _stage(blocks[1], 1, config)
        self.down2_3 = Downsample(dim * 2)
        self.encoder_level3 = _stage(blocks[2], 2, config)
        self.down3_4 = Downsample(dim * 4)
        self.latent = _stage(blocks[3], 3, config)

        self.up4_3 = Upsample(dim * 8)
        self.reduce_chan_level3 = nn.Conv2d(dim * 8, dim * 4, kernel_size=1, bias=bias)
        self.decoder_level3 = _stage(blocks[2], 2, config)
        self.up3_2 = Upsample(dim * 4)
        self.reduce_chan_level2 = nn.Conv2d(dim * 4, dim * 2, kernel_size=1, bias=bias)
        self.decoder_level2 = _stage(blocks[1], 1, config)
        self.up2_1 = Upsample(dim * 2)
        self.decoder_level1 = _stage(blocks[0], 0, config, channels=dim * 2)

        self.refinement = _stage(config.num_refinement_blocks, 0, config, channels=dim * 2)
        if config.dual_pixel:
            self.skip_conv = nn.Conv2d(dim, dim * 2, kernel_size=1, bias=bias)
        self.output = nn.Conv2d(dim * 2, config.out_channels, kernel_size=3, padding=1, bias=bias)

    @property
    def tlc_window(self) -> int | None:
        """TLC's window side in input pixels, or None (the default): attention statistics
        over the whole map, as the paper computes them. With a window, every MDTA pools its
        statistics over windows of ``window // 2**level`` pixels (:mod:`restore_cli.model.tlc`);
        384 is TLC's published choice for models trained on 256-px crops."""
        return self._tlc_window

    @tlc_window.setter
    def tlc_window(self, window: int | None) -> None:
        if window is not None and (isinstance(window, bool) or not isinstance(window, int) or window < SIZE_MULTIPLE):
            raise ValueError(
                f"the TLC window must be at least {SIZE_MULTIPLE} pixels (a pixel a side at the "
                f"deepest level), got {window!r}"
            )
        self._tlc_window = window
        for module in self.modules():
            if isinstance(module, MDTA):
                module.local_window = None if window is None else window // 2**module.level

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        """(B, in_channels, H, W) -> (B, out_channels, H, W); H, W multiples of 8. The
        output is stored channels-last unless ``channels_last`` is off."""
        if self.channels_last:
            # Always a fresh, aligned copy: kernels round differently on unaligned memory
            # (e.g. a numpy array's), and the same image must give the same output.
            image = image.clone(memory_format=torch.channels_last)
        features1 = self.patch_embed(image)
        encoded1 = self.encoder_level1(features1)  # (B, dim, H, W)
        encoded2 = self.encoder_level2(self.down1_2(encoded1))  # (B, 2dim, H/2, W/2)
        encoded3 = self.encoder_level3(self.down2_3(encoded2))  # (B, 4dim, H/4, W/4)
        latent = self.latent(self.down3_4(encoded3))  # (B, 8dim, H/8, W/8)

        decoded3 = torch.cat([self.up4_3(latent), encoded3], dim=1)  # (B, 8dim, H/4, W/4)
        decoded3 = self.decoder_level3(pointwise(self.reduce_chan_level3, decoded3))
        decoded2 = torch.cat([self.up3_2(decoded3), encoded2], dim=1)  # (B, 4dim, H/2, W/2)
        decoded2 = self.decoder_level2(pointwise(self.reduce_chan_level2, decoded2))
        decoded1 = torch.cat([self.up2_1(decoded2), encoded1], dim=1)  # (B, 2dim, H, W)
        refined = self.refinement(self.decoder_level1(decoded1))

        if self.config.dual_pixel:
            return self.output(refined + pointwise(self.skip_conv, features1))
        return self.output(refined) + image
