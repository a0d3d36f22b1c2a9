"""`--weights model.onnx`: the same engine on ONNX Runtime, giving what the .pth gives, and one
clear line for every ONNX model or runtime that cannot be used."""

from __future__ import annotations

import json
import re
import runpy
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from restore_cli.cli.app import app
from restore_cli.io.decode import read_image
from tests.cli_assertions import assert_one_line_error
from tests.photos import CBSD68_3096

ort = pytest.importorskip("onnxruntime", reason='ONNX Runtime is not installed (pip install -e ".[test]" installs it)')

DATA = Path(__file__).parents[1] / "data"
DEEP = DATA / "images" / "pixel2xl_16bit_rgb.png"  # 64x64, 16-bit, with an ICC profile
EIGHT_BIT_LEVEL = 1 / 255
runner = CliRunner()


def _invoke(*args: str | Path):
    return runner.invoke(app, [str(arg) for arg in args])


@pytest.fixture
def photo(tmp_path: Path) -> Path:
    path = tmp_path / "photo.png"
    Image.open(CBSD68_3096).crop((120, 80, 280, 200)).save(path)  # 160 x 120
    return path


def _both(model_onnx: Path, checkpoint: Path, source: Path, out: Path, *args: str) -> tuple:
    """The same command with the .onnx and with the .pth it was exported from."""
    results = []
    for weights in (model_onnx, checkpoint):
        target = out / f"{weights.suffix[1:]}{source.suffix}"
        result = _invoke("run", source, "--weights", weights, "-o", target, "--quiet", *args)
        assert result.exit_code == 0, result.output
        results.append(read_image(target))
    return tuple(results)


@pytest.mark.parametrize("tile", ["0", "64"])
def test_onnx_gives_the_pth_pixels_tiled_and_whole(tiny_onnx, photo: Path, tmp_path: Path, tile: str) -> None:
    onnx_image, pth_image = _both(tiny_onnx.path, tiny_onnx.checkpoint, photo, tmp_path, "--tile", tile, "--overlap", "16")
    assert onnx_image.pixels.shape == pth_image.pixels.shape == (120, 160, 3)
    assert np.abs(onnx_image.pixels - pth_image.pixels).max() <= EIGHT_BIT_LEVEL + 1e-6


def test_sixteen_bit_in_sixteen_bit_out_with_metadata_kept(tiny_onnx, tmp_path: Path) -> None:
    onnx_image, pth_image = _both(tiny_onnx.path, tiny_onnx.checkpoint, DEEP, tmp_path, "--tile", "32", "--overlap", "8")
    source = read_image(DEEP)
    assert onnx_image.bit_depth == 16 and onnx_image.icc_profile == source.icc_profile is not None
    assert np.abs(onnx_image.pixels - pth_image.pixels).max() <= EIGHT_BIT_LEVEL
    assert not np.array_equal(onnx_image.pixels, source.pixels)  # it was restored, not copied


def test_one_session_with_optimisations_serves_every_tile_of_every_image(
    tiny_onnx, photo: Path, tmp_path: Path, monkeypatch
) -> None:
    built = []
    real = ort.InferenceSession

    def counting(model, options=None, **kwargs):
        built.append(options.graph_optimization_level)
        return real(model, options, **kwargs)

    monkeypatch.setattr(ort, "InferenceSession", counting)
    (tmp_path / "in").mkdir()
    for name in ("a.png", "b.png"):
        (tmp_path / "in" / name).write_bytes(photo.read_bytes())

    result = _invoke("derain", tmp_path / "in", "--weights", tiny_onnx.path, "-o", tmp_path / "out", "--tile", "64", "--json")

    assert result.exit_code == 0, result.output
    lines = [json.loads(line) for line in result.stdout.splitlines()]
    assert [(line["status"], line["model"], line["tiles"]) for line in lines[:-1]] == [("ok", str(tiny_onnx.path), 12)] * 2, result.stdout
    assert lines[-1]["status"] == "done"
    assert built == [ort.GraphOptimizationLevel.ORT_ENABLE_ALL]


def test_eval_scores_the_onnx_model_as_the_pth(tiny_onnx) -> None:
    scores = []
    for weights in (tiny_onnx.path, tiny_onnx.checkpoint):
        result = _invoke("eval", "--task", "derain", "--input", DATA / "rain100L" / "input",
                         "--target", DATA / "rain100L" / "target", "--weights", weights, "--json", "--tile", "0")
        assert result.exit_code == 0, result.output
        scores.append(json.loads(result.stdout.splitlines()[-1])["psnr"])
    assert scores[0] == pytest.approx(scores[1], abs=0.01)


def _not_an_image_network(path: Path) -> Path:
    """A classifier: a 3-channel image in, 10 scores out."""
    import onnx
    from onnx import TensorProto, helper

    weights = helper.make_tensor("w", TensorProto.FLOAT, [3, 10], np.ones(30, dtype=np.float32).tolist())
    graph = helper.make_graph(
        [helper.make_node("ReduceMean", ["image"], ["pooled"], axes=[2, 3], keepdims=0),
         helper.make_node("MatMul", ["pooled", "w"], ["scores"])],
        "classifier",
        [helper.make_tensor_value_info("image", TensorProto.FLOAT, ["n", 3, "h", "w"])],
        [helper.make_tensor_value_info("scores", TensorProto.FLOAT, ["n", 10])],
        [weights],
    )
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), path)
    return path


def test_a_damaged_onnx_file_is_one_line(tiny_onnx, photo: Path, tmp_path: Path) -> None:
    damaged = tmp_path / "damaged.onnx"
    damaged.write_bytes(tiny_onnx.path.read_bytes()[: 50_000])
    result = _invoke("run", photo, "--weights", damaged, "-o", tmp_path / "out.png")
    assert_one_line_error(result, 1, str(damaged), "not a usable ONNX model")
    assert not (tmp_path / "out.png").exists()


def test_an_onnx_model_that_is_not_an_image_network_is_one_line(photo: Path, tmp_path: Path) -> None:
    model = _not_an_image_network(tmp_path / "classifier.onnx")
    result = _invoke("run", photo, "--weights", model, "-o", tmp_path / "out.png")
    assert_one_line_error(result, 1, str(model), "not an image restoration network", "'scores'")


@pytest.mark.parametrize("device", ["cuda", "directml", "openvino"])
def test_a_provider_not_installed_is_a_usage_error_naming_its_package(tiny_onnx, photo: Path, device: str) -> None:
    from restore_cli.engine.onnx_runtime import PROVIDERS

    provider = PROVIDERS[device]
    if provider.name in ort.get_available_providers():
        pytest.skip(f"{provider.name} is installed here")
    result = _invoke("run", photo, "--weights", tiny_onnx.path, "--device", device)
    assert_one_line_error(result, 2, f"--device {device}", provider.name, f"install {provider.package}")


def test_without_onnxruntime_an_onnx_model_is_a_usage_error_naming_the_extra(tiny_onnx, photo: Path, monkeypatch) -> None:
    monkeypatch.setitem(sys.modules, "onnxruntime", None)  # what `import onnxruntime` meets where it is not installed
    result = _invoke("run", photo, "--weights", tiny_onnx.path)
    assert_one_line_error(result, 2, 'pip install "restore-cli[onnx]"')


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--precision", "bf16"], "--precision bf16: an ONNX model computes in the precision it was exported in"),
        (["--tlc"], "--tlc cannot run an ONNX model"),
        (["--device", "coreml:1"], "coreml takes no device number"),
    ],
)
def test_what_an_onnx_graph_cannot_do_is_a_usage_error(tiny_onnx, photo: Path, args: list[str], message: str) -> None:
    if args == ["--device", "coreml:1"] and "CoreMLExecutionProvider" not in ort.get_available_providers():
        message = "CoreMLExecutionProvider is not installed"
    result = _invoke("run", photo, "--weights", tiny_onnx.path, *args)
    assert_one_line_error(result, 2, message)


def test_a_torch_only_device_names_the_onnx_providers_for_what_they_are(photo: Path) -> None:
    result = _invoke("run", photo, "--weights", DATA / "golden" / "tiny_rgb_withbias.pth", "--device", "openvino")
    assert_one_line_error(result, 2, "--device openvino", "ONNX models only")


def test_the_plain_python_example_in_the_docs_restores_as_restore_does(tiny_onnx, photo: Path, tmp_path: Path, monkeypatch) -> None:
    page = Path(__file__).parents[2] / "docs" / "onnx.md"
    (example,) = re.findall(r"```python\n(.*?)```", page.read_text(encoding="utf-8"), flags=re.S)
    assert '"deraining.onnx"' in example and "import torch" not in example and "restore_cli" not in example
    np.save(tmp_path / "photo.npy", np.asarray(Image.open(photo).convert("RGB")))
    monkeypatch.chdir(tmp_path)
    runpy.run_path(str(_write(tmp_path / "example.py", example.replace('"deraining.onnx"', repr(str(tiny_onnx.path))))))

    result = _invoke("run", photo, "--weights", tiny_onnx.path, "-o", tmp_path / "expected.png", "--tile", "0", "--quiet")
    assert result.exit_code == 0, result.output
    expected = np.asarray(Image.open(tmp_path / "expected.png"), dtype=np.int16)
    assert np.abs(np.load(tmp_path / "photo_restored.npy").astype(np.int16) - expected).max() <= 1


def _write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path
