"""`restore export`: the ONNX graph computes what the engine computes, at every size, and says
what it is; a graph that does not match PyTorch is never written."""

from __future__ import annotations

import hashlib
import json
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from restore_cli.cli.app import app
from restore_cli.engine.restorer import pad_to_multiple
from restore_cli.model import export
from restore_cli.model.onnx_graph import padding_indices
from restore_cli.model.zoo import load_model
from tests.cli_assertions import assert_one_line_error

ort = pytest.importorskip("onnxruntime", reason='ONNX Runtime is not installed (pip install -e ".[test]" installs it)')

GOLDEN = Path(__file__).parents[1] / "data" / "golden"
ODD_SIZES = [(1, 1, 1), (1, 37, 53), (2, 64, 96), (1, 131, 67)]
runner = CliRunner()


def _session(path: Path) -> ort.InferenceSession:
    return ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])


def _engine(checkpoint: Path, image: torch.Tensor) -> np.ndarray:
    """What `restore` computes with the PyTorch model on the whole image, before clamping."""
    model = load_model(checkpoint)
    with torch.inference_mode():
        return model(pad_to_multiple(image))[:, :, : image.shape[2], : image.shape[3]].numpy()


@pytest.mark.parametrize("side", range(1, 20))
def test_the_in_graph_padding_is_the_engines(side: int) -> None:
    image = torch.arange(float(side)).view(1, 1, side, 1)
    assert torch.equal(image[:, :, padding_indices(side)], pad_to_multiple(image.expand(1, 1, side, 8))[..., :1])


@pytest.mark.parametrize(("batch", "height", "width"), ODD_SIZES)
def test_the_graph_matches_pytorch_at_odd_sizes(tiny_onnx, batch: int, height: int, width: int) -> None:
    image = torch.rand(batch, 3, height, width, generator=torch.Generator().manual_seed(height))
    (got,) = _session(tiny_onnx.path).run(None, {"image": image.numpy()})
    assert got.shape == (batch, 3, height, width)
    assert np.abs(got - _engine(tiny_onnx.checkpoint, image)).max() <= export.TOLERANCE["fp32"]


def test_the_metadata_says_what_the_model_is_and_where_it_came_from(tiny_onnx) -> None:
    model = _session(tiny_onnx.path).get_modelmeta()
    meta = model.custom_metadata_map
    assert meta["restore.source"] == tiny_onnx.checkpoint.name
    assert meta["restore.source_sha256"] == hashlib.sha256(tiny_onnx.checkpoint.read_bytes()).hexdigest()
    assert (meta["restore.input_range"], meta["restore.channel_order"], meta["restore.precision"]) == ("[0, 1]", "RGB", "fp32")
    assert meta["restore.task"] == "unknown" and meta["restore.licence"] == export.UNKNOWN_LICENCE
    assert json.loads(meta["restore.config"])["dim"] == 8
    assert float(meta["restore.verified_max_abs_diff"]) <= export.TOLERANCE["fp32"]
    assert model.producer_name == "restore"


def test_export_prints_its_check_and_the_files_checksum(tiny_onnx) -> None:
    lines = tiny_onnx.stderr.splitlines()
    assert "max |ONNX - PyTorch|" in lines[-2] and "1x3x37x53" in lines[-2] and "2x3x29x61" in lines[-2]
    assert lines[-1].endswith(hashlib.sha256(tiny_onnx.path.read_bytes()).hexdigest())


def test_fp16_graph_keeps_float32_io_and_stays_near_the_fp32_model(tmp_path: Path) -> None:
    checkpoint = GOLDEN / "tiny_rgb_biasfree_bias.pth"
    exported = export.export_onnx(load_model(checkpoint), export.provenance(checkpoint), precision="fp16")
    path = tmp_path / "half.onnx"
    path.write_bytes(exported.data)
    try:
        session = _session(path)
        image = torch.rand(1, 3, 37, 53)
        (got,) = session.run(None, {"image": image.numpy()})
    except Exception as error:  # ONNX Runtime's CPU provider lacks fp16 kernels on some builds
        pytest.skip(f"ONNX Runtime's CPU provider cannot run this fp16 graph here: {error}")
    assert session.get_inputs()[0].type == session.get_outputs()[0].type == "tensor(float)"
    assert session.get_modelmeta().custom_metadata_map["restore.precision"] == "fp16"
    assert 0 < np.abs(got - _engine(checkpoint, image)).max() <= export.TOLERANCE["fp16"]
    assert any(init.data_type == 10 for init in __import__("onnx").load(path).graph.initializer)  # FLOAT16 weights


def test_a_graph_that_differs_from_pytorch_is_refused_and_nothing_is_written(tiny_onnx, tmp_path: Path, monkeypatch) -> None:
    """The exporter is made to hand back the graph of another checkpoint of the same shape:
    only the comparison with PyTorch can tell."""
    import onnx

    monkeypatch.setattr(export, "_to_onnx", lambda graph: onnx.load(tiny_onnx.path))
    target = tmp_path / "other.onnx"

    result = runner.invoke(app, ["export", "--weights", str(GOLDEN / "tiny_rgb_biasfree_bias.pth"), "-o", str(target)])

    assert_one_line_error(result, 1, "ONNX Runtime differs from PyTorch by up to", "nothing was written")
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--tlc-window", "384"], "--tlc-window cannot be exported"),
        (["--precision", "bf16"], "--precision bf16: an export is fp32 or fp16"),
        (["--model", "deraining"], "give --model NAME or --weights CKPT"),
        (["-o", "model.pth"], "must end in .onnx"),
    ],
)
def test_what_cannot_be_exported_is_a_usage_error(tmp_path: Path, monkeypatch, args: list[str], message: str) -> None:
    monkeypatch.chdir(tmp_path)
    result = runner.invoke(app, ["export", "--weights", str(GOLDEN / "tiny_rgb_withbias.pth"), *args])
    assert_one_line_error(result, 2, message)
    assert list(tmp_path.iterdir()) == []


def test_an_unknown_zoo_name_is_a_usage_error_as_in_every_other_command(tmp_path: Path) -> None:
    """A typo in --model is the user's to fix (exit 2, like `restore eval` and the task
    commands), told before any download."""
    result = runner.invoke(app, ["export", "--model", "nope", "-o", str(tmp_path / "x.onnx")])
    assert_one_line_error(result, 2, "unknown model 'nope'", "restore models list")
    assert list(tmp_path.iterdir()) == []


def test_an_existing_file_is_kept_without_overwrite(tmp_path: Path) -> None:
    target = tmp_path / "model.onnx"
    target.write_bytes(b"keep me")
    result = runner.invoke(app, ["export", "--weights", str(GOLDEN / "tiny_rgb_withbias.pth"), "-o", str(target)])
    assert_one_line_error(result, 2, "exists; add --overwrite")
    assert target.read_bytes() == b"keep me"


@pytest.mark.parametrize("package", ["onnx", "onnxruntime"])
def test_without_the_onnx_extra_export_is_a_usage_error_naming_it(tmp_path: Path, monkeypatch, package: str) -> None:
    monkeypatch.setitem(sys.modules, package, None)  # what the import meets where it is not installed
    result = runner.invoke(app, ["export", "--weights", str(GOLDEN / "tiny_rgb_withbias.pth"), "-o", str(tmp_path / "m.onnx")])
    assert_one_line_error(result, 2, 'pip install "restore-cli[onnx]"')
    assert list(tmp_path.iterdir()) == []
