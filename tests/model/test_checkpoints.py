"""Reading checkpoints safely, unwrapping them, and inferring the configuration."""

from __future__ import annotations

import dataclasses
import pickle
import random
from pathlib import Path

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from safetensors.torch import save_file

from restore_cli.errors import CheckpointError
from restore_cli.model.checkpoints import build_model, infer_config, read_state_dict
from restore_cli.model.restormer import Restormer, RestormerConfig
from restore_cli.model.zoo import load_model
from tests.golden import config_from_official, golden_cases, official_variants
from tests.photos import CBSD68_3096

PNG = CBSD68_3096
TINY = RestormerConfig(dim=8, num_blocks=(1, 1, 1, 1), num_refinement_blocks=1)


def _tiny_state_dict() -> dict[str, torch.Tensor]:
    torch.manual_seed(0)
    return Restormer(TINY).state_dict()


def _meta_state_dict(variant: dict) -> dict[str, torch.Tensor]:
    """A full-size state dict without allocating its 100 MB: shapes only."""
    return {key: torch.empty(shape, device="meta") for key, shape in variant["state_dict"]}


@pytest.mark.parametrize("variant", sorted(official_variants()))
def test_infers_official_config_from_keys_alone(variant: str) -> None:
    official = official_variants()[variant]
    state_dict = _meta_state_dict(official)
    assert infer_config(state_dict) == config_from_official(official["config"])
    assert build_model(state_dict).config == config_from_official(official["config"])


@pytest.mark.parametrize("case", golden_cases(), ids=lambda case: case.name)
def test_load_model_reproduces_golden_output(case) -> None:
    model = load_model(case.checkpoint)
    assert not model.training
    assert model.config == config_from_official(case.official_config)
    with torch.inference_mode():
        assert (model(case.input) - case.output).abs().max().item() <= 1e-5


@pytest.mark.parametrize(
    "wrap",
    [
        lambda sd: {"params": sd},
        lambda sd: {"params_ema": sd},
        lambda sd: {"state_dict": sd},
        lambda sd: {"model": sd},
        lambda sd: sd,
        lambda sd: {"params": {f"module.{key}": value for key, value in sd.items()}},
        lambda sd: {"state_dict": {"model": sd}, "epoch": 3},
    ],
    ids=["params", "params_ema", "state_dict", "model", "bare", "module-prefix", "nested"],
)
def test_accepts_wrappers_seen_in_the_wild(tmp_path: Path, wrap) -> None:
    state_dict = _tiny_state_dict()
    path = tmp_path / "model.pth"
    torch.save(wrap(state_dict), path)
    loaded = load_model(path).state_dict()
    assert loaded.keys() == state_dict.keys()
    assert all(torch.equal(loaded[key], state_dict[key]) for key in state_dict)


def test_prefers_ema_weights_when_both_are_present(tmp_path: Path) -> None:
    raw, ema = _tiny_state_dict(), {key: value + 1 for key, value in _tiny_state_dict().items()}
    torch.save({"params": raw, "params_ema": ema}, tmp_path / "both.pth")
    loaded = load_model(tmp_path / "both.pth").state_dict()
    assert torch.equal(loaded["output.weight"], ema["output.weight"])


@pytest.mark.parametrize("name", ["model.safetensors", "model.pth", "model"])
def test_reads_safetensors_whatever_the_extension(tmp_path: Path, name: str) -> None:
    state_dict = _tiny_state_dict()
    save_file(state_dict, tmp_path / name)
    loaded = read_state_dict(tmp_path / name)
    assert loaded.keys() == state_dict.keys()
    assert all(torch.equal(loaded[key], state_dict[key]) for key in state_dict)


class _RunsCodeWhenUnpickled:
    """A payload that touches a marker file if unpickling ever executes it."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (Path.touch, (self.marker,))


def test_refuses_a_pickle_that_would_run_code(tmp_path: Path) -> None:
    marker = tmp_path / "code-ran"
    path = tmp_path / "evil.pth"
    torch.save({"params": {"patch_embed.proj.weight": _RunsCodeWhenUnpickled(marker)}}, path)
    with pytest.raises(CheckpointError, match="refused to load .*evil.pth: it references getattr, .*would run code"):
        load_model(path)
    assert not marker.exists()
    # The payload is live: an unsafe load would have run it.
    torch.load(path, weights_only=False)
    assert marker.exists()


NOT_CHECKPOINTS = [
    (lambda good: good[: len(good) // 2], r"is truncated or not a PyTorch checkpoint \(PytorchStreamReader"),
    (lambda good: good[:-5000], r"is truncated or not a PyTorch checkpoint \("),
    (lambda good: b"", r"is not a PyTorch checkpoint \(the file is empty\)"),
    (lambda good: b"this is not a checkpoint at all\n", r"is not a PyTorch checkpoint \(it is a text file\)"),
    (lambda good: PNG.read_bytes(), r"is not a PyTorch checkpoint \(it is a PNG image\)"),
    (lambda good: b"\x07" + random.Random(0).randbytes(4095), r"is not a PyTorch checkpoint \(unknown content\)"),
    (lambda good: pickle.dumps({"weights": [1.0, 2.0]}, protocol=4), r"is truncated or not a PyTorch checkpoint \(not a pickle of tensors"),
]
"""Files that are not checkpoints, and what each is called: never "would run code"."""


@pytest.mark.parametrize(("content", "message"), NOT_CHECKPOINTS, ids=["truncated", "cut-short", "empty", "text", "png", "random", "plain-pickle"])
def test_files_that_are_not_checkpoints_are_named_for_what_they_are(tmp_path: Path, content, message: str) -> None:
    good = tmp_path / "good.pth"
    torch.save({"params": _tiny_state_dict()}, good)
    bad = tmp_path / "bad.pth"
    bad.write_bytes(content(good.read_bytes()))
    with pytest.raises(CheckpointError, match=message) as error:
        load_model(bad)
    assert str(bad) in str(error.value) and "\n" not in str(error.value)
    assert "run code" not in str(error.value)


def test_truncated_safetensors_is_reported(tmp_path: Path) -> None:
    path = tmp_path / "model.safetensors"
    save_file(_tiny_state_dict(), path)
    path.write_bytes(path.read_bytes()[:1000])
    with pytest.raises(CheckpointError, match="truncated or not a safetensors file"):
        load_model(path)


def test_another_architecture_is_named_as_such(tmp_path: Path) -> None:
    torch.save({"params": torch.nn.Conv2d(3, 3, 3).state_dict()}, tmp_path / "conv.pth")
    with pytest.raises(CheckpointError, match="not a Restormer checkpoint: no 'patch_embed.proj.weight'"):
        load_model(tmp_path / "conv.pth")


def test_a_tensor_of_the_wrong_shape_is_named(tmp_path: Path) -> None:
    state_dict = _tiny_state_dict()
    state_dict["encoder_level2.0.attn.project_out.weight"] = torch.zeros(16, 15, 1, 1)
    torch.save({"params": state_dict}, tmp_path / "edited.pth")
    with pytest.raises(CheckpointError, match=r"'encoder_level2.0.attn.project_out.weight' has shape \[16, 15, 1, 1\], expected \[16, 16, 1, 1\]"):
        load_model(tmp_path / "edited.pth")


def test_a_missing_tensor_is_named(tmp_path: Path) -> None:
    state_dict = _tiny_state_dict()
    del state_dict["latent.0.ffn.dwconv.weight"]
    torch.save(state_dict, tmp_path / "partial.pth")
    with pytest.raises(CheckpointError, match="missing 'latent.0.ffn.dwconv.weight'"):
        load_model(tmp_path / "partial.pth")


def test_an_extra_tensor_is_refused(tmp_path: Path) -> None:
    state_dict = {**_tiny_state_dict(), "extra_head.weight": torch.zeros(1)}
    torch.save(state_dict, tmp_path / "extra.pth")
    with pytest.raises(CheckpointError, match="unexpected 'extra_head.weight'"):
        load_model(tmp_path / "extra.pth")


def test_single_image_model_with_mismatched_channels_is_refused(tmp_path: Path) -> None:
    state_dict = _tiny_state_dict()
    state_dict["output.weight"] = state_dict["output.weight"][:1]
    torch.save(state_dict, tmp_path / "odd.pth")
    with pytest.raises(CheckpointError, match="as many output channels as input channels"):
        load_model(tmp_path / "odd.pth")


def test_a_missing_file_or_unknown_name_says_what_to_give(tmp_path: Path) -> None:
    with pytest.raises(CheckpointError, match="no checkpoint file or zoo model named"):
        load_model(tmp_path / "nowhere.pth")


def _divisor_of(channels: int):
    return st.sampled_from([h for h in (1, 2, 4, 8) if channels % h == 0])


@st.composite
def restormer_configs(draw) -> RestormerConfig:
    dim = draw(st.sampled_from([2, 4, 6, 8, 12]))
    dual_pixel = draw(st.booleans())
    channels = draw(st.sampled_from([1, 3, 4]))
    return RestormerConfig(
        in_channels=6 if dual_pixel else channels,
        out_channels=channels,
        dim=dim,
        num_blocks=tuple(draw(st.integers(0, 2)) for _ in range(4)),
        num_refinement_blocks=draw(st.integers(0, 2)),
        heads=(draw(_divisor_of(dim)), draw(_divisor_of(2 * dim)), draw(_divisor_of(4 * dim)), draw(_divisor_of(8 * dim))),
        ffn_expansion_factor=draw(st.one_of(st.sampled_from([1.0, 2.0, 2.66, 4.0]), st.floats(0.5, 4.0))),
        bias=draw(st.booleans()),
        layernorm_type=draw(st.sampled_from(["WithBias", "BiasFree"])),
        dual_pixel=dual_pixel,
    )


@settings(max_examples=40, deadline=None)
@given(config=restormer_configs())
def test_any_config_the_architecture_allows_round_trips(config: RestormerConfig) -> None:
    """Infer the config back from a random model's weights and check the rebuilt model is
    the same function: identical keys, shapes, and outputs."""
    original = Restormer(config).eval()
    for parameter in original.parameters():
        torch.nn.init.normal_(parameter, std=0.2)
    rebuilt = build_model(original.state_dict())
    if all(config.num_blocks) and config.num_refinement_blocks:
        assert dataclasses.replace(rebuilt.config, ffn_expansion_factor=0) == dataclasses.replace(
            config, ffn_expansion_factor=0
        )
    image = torch.rand(1, config.in_channels, 8, 16)
    with torch.inference_mode():
        assert torch.equal(rebuilt(image), original(image))
