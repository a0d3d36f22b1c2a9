"""Read a Restormer checkpoint safely, infer its configuration, and build the model.

The configuration is read off the state dict itself (tensor names and shapes), never
from a side file or the file name, so any checkpoint the architecture allows loads —
the thirteen official ones and anyone's retrained variant alike. A file is all this module
knows: model names and downloads are the zoo's (``restore_cli.model.zoo``).
"""

from __future__ import annotations

import math
import os
import pickle
import re
import warnings
from collections.abc import Mapping
from pathlib import Path

import torch

from restore_cli.errors import CheckpointError
from restore_cli.model.restormer import Restormer, RestormerConfig

StateDict = dict[str, torch.Tensor]

WRAPPER_KEYS = ("params_ema", "params", "state_dict", "model")
"""Containers seen around Restormer state dicts, in order of preference. BasicSR-style
files may hold both the EMA and the raw weights; the EMA ones are meant for inference."""

PARALLEL_PREFIX = "module."
SAFETENSORS_SUFFIX = ".safetensors"
ZIP_MAGIC = b"PK\x03\x04"
"""torch.save's archive format (the default since torch 1.6)."""
PICKLE_PROTOCOL_2_OR_LATER = b"\x80"
"""First byte of torch's legacy format: a plain pickle stream."""
FOREIGN_SIGNATURES = {
    b"\x89PNG\r\n\x1a\n": "a PNG image",
    b"\xff\xd8\xff": "a JPEG image",
    b"II*\x00": "a TIFF image",
    b"MM\x00*": "a TIFF image",
    b"GIF8": "a GIF image",
    b"BM": "a BMP image",
}
"""Files people pass by mistake, named in the refusal so the slip is obvious."""
_DISALLOWED_GLOBAL = re.compile(r"GLOBAL (\S+)")
ENCODER_STAGES = ("encoder_level1", "encoder_level2", "encoder_level3", "latent")
DECODER_STAGES = ("decoder_level1", "decoder_level2", "decoder_level3")
STAGES_SHARING_HEADS = (
    ("encoder_level1", "decoder_level1", "refinement"),
    ("encoder_level2", "decoder_level2"),
    ("encoder_level3", "decoder_level3"),
    ("latent",),
)
"""Per level, the stages built with that level's head count."""



def load_checkpoint(path: str | os.PathLike, device: str | torch.device = "cpu") -> Restormer:
    """Build a ready-to-run model (eval mode, fp32, `.config` set) from a checkpoint file."""
    model = build_model(read_state_dict(path), source=str(path))
    return model.to(device)


def read_state_dict(path: str | os.PathLike) -> StateDict:
    """Load the tensors of a .pth/.pt/.safetensors file without ever executing code from it."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint not found: {path}")
    kind = sniff(path)
    if kind == "safetensors" or (kind != "pytorch" and path.suffix == SAFETENSORS_SUFFIX):
        return _read_safetensors(path)
    if kind == "pytorch":
        return unwrap_state_dict(_read_pickle(path), source=str(path))
    raise CheckpointError(
        f"{path} is not a PyTorch checkpoint ({kind}); give a .pth, .pt or .safetensors file of Restormer weights"
    )


def sniff(path: Path) -> str:
    """What a file holds, from its first bytes: "pytorch" (a zip archive or pickle, the two
    formats torch.save writes), "safetensors", or a description of what it is instead.

    The content decides, not the extension: a safetensors file named .pth is still read as
    safetensors, and a PNG renamed .pth is named as an image rather than unpickled.
    """
    with path.open("rb") as handle:
        head = handle.read(4096)
    size = path.stat().st_size
    if not head:
        return "the file is empty"
    if head.startswith(ZIP_MAGIC) or head.startswith(PICKLE_PROTOCOL_2_OR_LATER):
        return "pytorch"
    if _is_safetensors_header(head, size):
        return "safetensors"
    for signature, description in FOREIGN_SIGNATURES.items():
        if head.startswith(signature):
            return f"it is {description}"
    if head.startswith(b"RIFF") and head[8:12] == b"WEBP":
        return "it is a WebP image"
    if _is_text(head):
        return "it is a text file"
    return "unknown content"


def _is_safetensors_header(head: bytes, size: int) -> bool:
    """safetensors: an 8-byte little-endian header length, then that many bytes of JSON."""
    if len(head) < 9:
        return False
    length = int.from_bytes(head[:8], "little")
    return 2 <= length <= size - 8 and head[8:9] == b"{"


def _is_text(head: bytes) -> bool:
    try:
        text = head.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return all(character.isprintable() or character in "\t\r\n" for character in text)


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


def _read_pickle(path: Path) -> object:
    """torch.load with weights_only: a pickle that names a global outside torch's allowlist
    (a function to call, a class to build) is refused as unsafe; any other failure means the
    bytes are damaged or are not a checkpoint at all, which is a different thing to tell a user."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # torch warns about pickle protocols it may not read
            return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as error:
        disallowed = _DISALLOWED_GLOBAL.search(str(error))
        if disallowed is not None:
            raise CheckpointError(
                f"refused to load {path}: it references {disallowed.group(1)}, a Python object that "
                "would run code when unpickled; only plain tensor checkpoints are accepted (re-save "
                "it as a state dict or .safetensors)"
            ) from None
        reason = _weights_unpickler_reason(error)
        raise CheckpointError(f"{path} is truncated or not a PyTorch checkpoint ({reason}); download it again") from None
    except Exception as error:  # the unpickler meets arbitrary bytes and may raise anything
        raise CheckpointError(
            f"{path} is truncated or not a PyTorch checkpoint ({_first_sentence(error)}); download it again"
        ) from None


def _first_sentence(error: Exception) -> str:
    """torch's archive errors run to several sentences, some after an internal location tag."""
    text = re.sub(r"^\[enforce fail at [^\]]*\]\s*\.?\s*", "", str(error).strip())
    return text.split(". ")[0].splitlines()[0] if text else type(error).__name__


def _weights_unpickler_reason(error: pickle.UnpicklingError) -> str:
    """The line of torch's long weights_only message that says what was wrong."""
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    detail = next((line for line in lines if "WeightsUnpickler error" not in line and "Unsupported" in line), None)
    return f"not a pickle of tensors: {detail}" if detail else (lines[0] if lines else type(error).__name__)


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
