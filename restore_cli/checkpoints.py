"""Read a Restormer checkpoint safely, infer its configuration, and build the model.

The configuration is read off the state dict itself (tensor names and shapes), never
from a side file or the file name, so any checkpoint the architecture allows loads —
the thirteen official ones and anyone's retrained variant alike.
"""

from __future__ import annotations

import math
import os
import pickle
import re
from collections.abc import Mapping
from pathlib import Path

import torch

from restore_cli.restormer import Restormer, RestormerConfig

StateDict = dict[str, torch.Tensor]

WRAPPER_KEYS = ("params_ema", "params", "state_dict", "model")
"""Containers seen around Restormer state dicts, in order of preference. BasicSR-style
files may hold both the EMA and the raw weights; the EMA ones are meant for inference."""

PARALLEL_PREFIX = "module."
SAFETENSORS_SUFFIX = ".safetensors"
ENCODER_STAGES = ("encoder_level1", "encoder_level2", "encoder_level3", "latent")
DECODER_STAGES = ("decoder_level1", "decoder_level2", "decoder_level3")
STAGES_SHARING_HEADS = (
    ("encoder_level1", "decoder_level1", "refinement"),
    ("encoder_level2", "decoder_level2"),
    ("encoder_level3", "decoder_level3"),
    ("latent",),
)
"""Per level, the stages built with that level's head count."""


class CheckpointError(Exception):
    """A checkpoint that cannot be used. The message is one line a user can act on."""


def load_model(path_or_name: str | os.PathLike, device: str | torch.device = "cpu") -> Restormer:
    """Build a ready-to-run model (eval mode, fp32, `.config` set) from a checkpoint file
    or a zoo model name such as "real_denoising"."""
    path = _resolve(path_or_name)
    model = build_model(read_state_dict(path), source=str(path))
    return model.to(device)


def read_state_dict(path: str | os.PathLike) -> StateDict:
    """Load the tensors of a .pth/.pt/.safetensors file without ever executing code from it."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint not found: {path}")
    if path.suffix == SAFETENSORS_SUFFIX:
        return _read_safetensors(path)
    return unwrap_state_dict(_read_pickle(path), source=str(path))


def unwrap_state_dict(obj: object, source: str = "checkpoint") -> StateDict:
    """Find the state dict inside the wrappers used in the wild and drop `module.` prefixes."""
    while isinstance(obj, Mapping):
        wrapper = next((key for key in WRAPPER_KEYS if isinstance(obj.get(key), Mapping)), None)
        if wrapper is None:
            break
        obj = obj[wrapper]
    if not isinstance(obj, Mapping):
        raise CheckpointError(f"not a Restormer checkpoint: {source} holds a {type(obj).__name__}")
    return {_strip_prefix(str(key)): value for key, value in obj.items()}


def infer_config(state_dict: Mapping[str, torch.Tensor], source: str = "checkpoint") -> RestormerConfig:
    """Read the architecture's hyper-parameters off tensor names and shapes."""
    embed = state_dict.get("patch_embed.proj.weight")
    output = state_dict.get("output.weight")
    for name, tensor in (("patch_embed.proj.weight", embed), ("output.weight", output)):
        if not isinstance(tensor, torch.Tensor) or tensor.ndim != 4:
            raise CheckpointError(f"not a Restormer checkpoint: no {name!r} in {source}")
    num_blocks = tuple(_count_blocks(state_dict, stage) for stage in ENCODER_STAGES)
    _check_decoder_matches_encoder(state_dict, num_blocks, source)
    try:
        return _config_from_shapes(state_dict, embed, output, num_blocks, source)
    except ValueError as error:
        raise CheckpointError(f"not a usable Restormer checkpoint: {source}: {error}") from None


def _config_from_shapes(
    state_dict: Mapping[str, torch.Tensor],
    embed: torch.Tensor,
    output: torch.Tensor,
    num_blocks: tuple[int, ...],
    source: str,
) -> RestormerConfig:
    return RestormerConfig(
        in_channels=embed.shape[1],
        out_channels=output.shape[0],
        dim=embed.shape[0],
        num_blocks=num_blocks,
        num_refinement_blocks=_count_blocks(state_dict, "refinement"),
        heads=tuple(_heads(state_dict, stages) for stages in STAGES_SHARING_HEADS),
        ffn_expansion_factor=_ffn_expansion_factor(state_dict, source),
        bias="output.bias" in state_dict,
        layernorm_type="WithBias" if _has_layernorm_bias(state_dict) else "BiasFree",
        dual_pixel="skip_conv.weight" in state_dict,
    )


def build_model(state_dict: StateDict, source: str = "checkpoint") -> Restormer:
    """Instantiate the inferred architecture and load the weights key-exactly."""
    config = infer_config(state_dict, source)
    with torch.device("meta"):
        model = Restormer(config)
    _check_keys_and_shapes(model, state_dict, source)
    model.load_state_dict(state_dict, strict=True, assign=True)
    return model.float().eval()


def _resolve(path_or_name: str | os.PathLike) -> Path:
    path = Path(path_or_name)
    if path.is_file():
        return path
    from restore_cli import registry  # imported late: the zoo pulls in huggingface_hub

    name = str(path_or_name)
    if name in registry.load_manifest():
        return registry.resolve(name)
    raise CheckpointError(
        f"no checkpoint file or zoo model named {name!r}: give a path to a .pth/.safetensors "
        "file, or a name from `restore models list`"
    )


def _read_pickle(path: Path) -> object:
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as error:
        if "Weights only load failed" in str(error):
            raise CheckpointError(
                f"refused to load {path}: it contains Python objects that would run code when "
                "unpickled; only plain tensor checkpoints are accepted (re-save it as a state dict "
                "or .safetensors)"
            ) from None
        raise CheckpointError(f"{path} is truncated or not a PyTorch checkpoint ({error})") from None
    except Exception as error:  # the unpickler meets arbitrary bytes and may raise anything
        reason = str(error).splitlines()[0] if str(error) else type(error).__name__
        raise CheckpointError(
            f"{path} is truncated or not a PyTorch checkpoint ({reason}); download it again"
        ) from None


def _read_safetensors(path: Path) -> StateDict:
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    try:
        return unwrap_state_dict(load_file(path, device="cpu"), source=str(path))
    except (SafetensorError, OSError, ValueError) as error:
        raise CheckpointError(
            f"{path} is truncated or not a safetensors file ({error}); download it again"
        ) from None


def _strip_prefix(key: str) -> str:
    while key.startswith(PARALLEL_PREFIX):
        key = key[len(PARALLEL_PREFIX) :]
    return key


def _block_indices(state_dict: Mapping[str, torch.Tensor], stage: str) -> set[int]:
    pattern = re.compile(rf"^{stage}\.(\d+)\.")
    return {int(match.group(1)) for key in state_dict if (match := pattern.match(key))}


def _count_blocks(state_dict: Mapping[str, torch.Tensor], stage: str) -> int:
    indices = _block_indices(state_dict, stage)
    return max(indices) + 1 if indices else 0


def _check_decoder_matches_encoder(
    state_dict: Mapping[str, torch.Tensor], num_blocks: tuple[int, ...], source: str
) -> None:
    """Each decoder level mirrors its encoder level in depth; a mismatch means the file is
    not of this architecture (or was edited), which strict loading would report less clearly."""
    for level, decoder in enumerate(DECODER_STAGES):
        found = _count_blocks(state_dict, decoder)
        if found != num_blocks[level]:
            raise CheckpointError(
                f"not a Restormer checkpoint: {source} has {found} {decoder} blocks but "
                f"{num_blocks[level]} {ENCODER_STAGES[level]} blocks"
            )


def _heads(state_dict: Mapping[str, torch.Tensor], stages: tuple[str, ...]) -> int:
    """Heads are the leading size of a block's temperature, shape (heads, 1, 1). A level
    without any attention block accepts any head count; 1 is used."""
    for stage in stages:
        temperature = state_dict.get(f"{stage}.0.attn.temperature")
        if isinstance(temperature, torch.Tensor):
            return int(temperature.shape[0])
    return 1


def _has_layernorm_bias(state_dict: Mapping[str, torch.Tensor]) -> bool:
    return any(key.endswith(".norm1.body.bias") for key in state_dict)


def _ffn_expansion_factor(state_dict: Mapping[str, torch.Tensor], source: str) -> float:
    """Recover the float factor f from the hidden widths int(channels * f) of every GDFN.

    Each width only bounds f to an interval, [hidden / channels, (hidden + 1) / channels);
    the factor is the shortest decimal inside all of them (2.66 for the official models),
    so rebuilding from it reproduces every width exactly.
    """
    widths = [
        (weight.shape[1], weight.shape[0] // 2)
        for key, weight in state_dict.items()
        if key.endswith(".ffn.project_in.weight")
    ]
    if not widths:
        return RestormerConfig.ffn_expansion_factor
    low = max(hidden / channels for channels, hidden in widths)
    high = min((hidden + 1) / channels for channels, hidden in widths)
    for decimals in range(1, 10):
        candidate = math.ceil(low * 10**decimals) / 10**decimals
        if candidate < high and all(int(c * candidate) == h for c, h in widths):
            return candidate
    raise CheckpointError(
        f"not a Restormer checkpoint: the feed-forward widths in {source} fit no single expansion factor"
    )


def _check_keys_and_shapes(model: Restormer, state_dict: StateDict, source: str) -> None:
    expected = model.state_dict()
    missing = [key for key in expected if key not in state_dict]
    unexpected = [key for key in state_dict if key not in expected]
    if missing:
        raise CheckpointError(f"{source} does not match Restormer: missing {missing[0]!r} ({len(missing)} missing)")
    if unexpected:
        raise CheckpointError(
            f"{source} does not match Restormer: unexpected {unexpected[0]!r} ({len(unexpected)} unexpected)"
        )
    for key, tensor in expected.items():
        value = state_dict[key]
        if not isinstance(value, torch.Tensor):
            raise CheckpointError(f"{source}: {key!r} is a {type(value).__name__}, not a tensor")
        if value.shape != tensor.shape:
            raise CheckpointError(
                f"{source}: {key!r} has shape {list(value.shape)}, expected {list(tensor.shape)} "
                "for the architecture inferred from the rest of the file"
            )
