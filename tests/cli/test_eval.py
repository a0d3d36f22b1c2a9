"""`restore eval` end to end: scores equal an independent computation; problems stay per file.

The expected numbers come from scikit-image and from running the golden tiny checkpoints
directly, the way the official test scripts do (seeded noise, reflect padding to a multiple
of 8, clamp, 8-bit rounding); nothing expected is produced by restore_cli's eval code.
"""

from __future__ import annotations

import dataclasses
import json
import shutil
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image
from typer.testing import CliRunner

from restore_cli.cli import eval as cli_eval
from restore_cli.cli.app import app
from restore_cli.model import manifest
from restore_cli.model.zoo import load_model
from restore_cli.quality import evaluation, metrics
from tests.quality.test_metrics import reference_scores, reference_y

DATA = Path(__file__).parents[1] / "data"
RAIN = DATA / "rain100L"
SET12 = DATA / "set12"
GRAY_WEIGHTS = DATA / "golden" / "tiny_gray_biasfree.pth"
RGB_WEIGHTS = DATA / "golden" / "tiny_rgb_withbias.pth"
DERAIN = ["--task", "derain", "--input", RAIN / "input", "--target", RAIN / "target"]
SMALL = 64
"""Side of the crops the model tests run on: the tiny models take seconds on a full image."""

runner = CliRunner()


@pytest.fixture(autouse=True)
def one_torch_thread() -> Iterator[None]:
    """The tiny models run in milliseconds on one thread, but take seconds when two OpenMP
    threads compete with other processes for a shared CPU (as on CI and dev machines)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def invoke(*args: object):
    return runner.invoke(app, ["eval", *map(str, args)])


def json_rows(stdout: str) -> tuple[dict[str, dict], dict]:
    """Per-image objects by name, and the summary; fails if stdout holds anything but JSON."""
    rows = [json.loads(line) for line in stdout.splitlines()]
    assert all(row["schema"] == 1 for row in rows)
    images = {row["input"]: row for row in rows if row["type"] == "image"}
    assert rows[-1]["type"] == "summary" and rows[-1]["command"] == "eval" and len(images) == len(rows) - 1
    assert rows[-1]["total"] == len(images) and rows[-1]["exit_code"] == (1 if rows[-1]["failed"] else 0)
    return images, rows[-1]


def levels(path: Path) -> np.ndarray:
    return np.asarray(Image.open(path))


def save_crop(source: Path, destination: Path, height: int, width: int) -> None:
    destination.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(levels(source)[40 : 40 + height, 60 : 60 + width]).save(destination)


def official_restore(model: torch.nn.Module, image: np.ndarray) -> np.ndarray:
    """HxWxC float input -> 8-bit levels, as the official test scripts produce their outputs."""
    tensor = torch.from_numpy(np.ascontiguousarray(image.transpose(2, 0, 1)))[None].float()
    height, width = tensor.shape[-2:]
    padded = F.pad(tensor, (0, -width % 8, 0, -height % 8), mode="reflect")
    with torch.inference_mode():
        restored = model(padded)[..., :height, :width].clamp(0, 1)
    return np.floor(restored[0].permute(1, 2, 0).numpy().astype(np.float64) * 255 + 0.5)


# --------------------------------------------------------------------------- PRED GT


def test_paired_folders_score_like_skimage_on_y(tmp_path: Path) -> None:
    result = invoke(RAIN / "input", RAIN / "target", "--y-channel", "--json")

    assert result.exit_code == 0, result.stderr
    assert result.stderr == ""
    images, summary = json_rows(result.stdout)
    expected = {
        path.stem: reference_scores(reference_y(levels(path)), reference_y(levels(RAIN / "target" / path.name)), 255)
        for path in (RAIN / "input").glob("*.png")
    }
    assert set(images) == set(expected)
    for name, (psnr, ssim) in expected.items():
        assert images[name]["psnr"] == pytest.approx(psnr, abs=1e-3)
        assert images[name]["ssim"] == pytest.approx(ssim, abs=1e-4)
    assert summary["ok"] == len(expected) and summary["failed"] == 0
    assert summary["psnr"] == pytest.approx(np.mean([s[0] for s in expected.values()]), abs=1e-3)
    assert summary["ssim"] == pytest.approx(np.mean([s[1] for s in expected.values()]), abs=1e-4)


def test_paired_folders_score_rgb_by_default_and_pair_across_extensions(tmp_path: Path) -> None:
    predictions = tmp_path / "pred"
    predictions.mkdir()
    for path in (RAIN / "input").glob("*.png"):
        Image.open(path).save(predictions / f"{path.stem}.tif")

    result = invoke(predictions, RAIN / "target", "--json")

    images, summary = json_rows(result.stdout)
    assert summary["channel"] == "RGB"
    for name, row in images.items():
        rainy, clean = levels(RAIN / "input" / f"{name}.png"), levels(RAIN / "target" / f"{name}.png")
        psnr, ssim = reference_scores(rainy, clean, 255)
        assert row["psnr"] == pytest.approx(psnr, abs=1e-3)
        assert row["ssim"] == pytest.approx(ssim, abs=1e-4)


def test_the_table_goes_to_stdout_with_every_image_when_verbose() -> None:
    quiet = invoke(RAIN / "input", RAIN / "target")
    verbose = invoke(RAIN / "input", RAIN / "target", "--verbose")

    assert quiet.exit_code == verbose.exit_code == 0
    assert "mean of 2" in quiet.stdout and "96" not in quiet.stdout
    assert "PSNR (dB, RGB)" in quiet.stdout and "PSNR (dB, Y)" in invoke(RAIN / "input", RAIN / "target", "--y-channel").stdout
    assert "mean of 2" in verbose.stdout and "96" in verbose.stdout and "98" in verbose.stdout


def test_identical_folders_report_null_psnr_in_json() -> None:
    result = invoke(RAIN / "target", RAIN / "target", "--json")

    images, summary = json_rows(result.stdout)
    assert all(row["psnr"] is None and row["ssim"] == pytest.approx(1.0) for row in images.values())
    assert summary["psnr"] is None


def test_problem_files_fail_one_by_one_and_the_rest_is_scored(tmp_path: Path) -> None:
    predictions, references = tmp_path / "pred", tmp_path / "gt"
    predictions.mkdir(), references.mkdir()
    for name in ("96.png", "98.png"):
        shutil.copy(RAIN / "target" / name, references / name)
    shutil.copy(RAIN / "input" / "96.png", predictions / "96.png")
    save_crop(RAIN / "input" / "98.png", predictions / "98.png", 100, 100)  # wrong size
    shutil.copy(RAIN / "input" / "96.png", predictions / "orphan.png")  # no reference
    shutil.copy(RAIN / "target" / "96.png", references / "unscored.png")  # no prediction
    (predictions / "broken.png").write_bytes(b"not a png")
    shutil.copy(RAIN / "target" / "96.png", references / "broken.png")

    result = invoke(predictions, references, "--json")

    assert result.exit_code == 1
    errors = result.stderr.splitlines()
    assert len(errors) == 4 and all(line.startswith("error: ") for line in errors)
    for fragment in ("98.png", "orphan.png", "unscored.png", "broken.png"):
        assert sum(fragment in line for line in errors) == 1
    images, summary = json_rows(result.stdout)
    assert images["96"]["psnr"] > 0 and "error" in images["98"]
    assert summary["ok"] == 1 and summary["failed"] == 4


@pytest.mark.parametrize(
    "args",
    [
        [],
        [RAIN / "input"],
        [RAIN / "input", DATA / "missing-folder"],
        [RAIN / "input", RAIN / "target", "--sigma", "25"],
        [RAIN / "input", RAIN / "target", "--crop-border", "-1"],
        ["--task", "denoise", "--dataset", SET12],
        ["--task", "denoise", "--sigma", "25"],
        ["--task", "denoise", "--sigma", "25", "--dataset", SET12, "--input", SET12],
        ["--task", "derain", "--input", RAIN / "input"],
        [*DERAIN, "--model", "no_such_model"],
        [*DERAIN, "--model", "deraining", "--weights", RGB_WEIGHTS],
        [*DERAIN, "--sigma", "25"],
        [*DERAIN, "--tile", "big"],
        [*DERAIN, "--tile", "4"],
        [*DERAIN, "--overlap", "-1"],
        [*DERAIN, "--precision", "fp64"],
        [*DERAIN, "--max-memory", "lots"],
        [*DERAIN, RAIN / "input", RAIN / "target"],
        [*DERAIN, "--tlc-window", "4"],
        [RAIN / "input", RAIN / "target", "--tlc"],
    ],
)
def test_usage_errors_exit_2_with_one_line(args: list[object]) -> None:
    result = invoke(*args)

    assert result.exit_code == 2
    assert result.stdout == ""
    assert result.stderr.startswith("error: ") and result.stderr.count("\n") == 1


def test_an_unusable_checkpoint_is_one_line_and_exit_1(tmp_path: Path) -> None:
    bogus = tmp_path / "bogus.pth"
    bogus.write_bytes(b"not a checkpoint")

    result = invoke(*DERAIN, "--weights", bogus)

    assert result.exit_code == 1
    assert result.stderr.startswith("error: ") and result.stderr.count("\n") == 1


# --------------------------------------------------------------------------- running a model


def test_denoise_matches_the_official_protocol_run_directly(tmp_path: Path) -> None:
    dataset = tmp_path / "Set12"
    for name in ("02.png", "03.png"):
        save_crop(SET12 / name, dataset / name, SMALL, SMALL)
    model = load_model(GRAY_WEIGHTS)
    expected = {}
    for path in dataset.iterdir():
        clean = levels(path)[..., None]
        noisy = np.float32(clean) / 255.0
        np.random.seed(0)
        noisy += np.random.normal(0, 25 / 255.0, noisy.shape)
        expected[path.stem] = reference_scores(official_restore(model, noisy), clean, 255)

    result = invoke("--task", "denoise", "--sigma", 25, "--dataset", dataset, "--weights", GRAY_WEIGHTS, "--json")

    assert result.exit_code == 0, result.stderr
    images, summary = json_rows(result.stdout)
    assert set(images) == set(expected)
    for name, (psnr, ssim) in expected.items():
        assert images[name]["psnr"] == pytest.approx(psnr, abs=1e-3)
        assert images[name]["ssim"] == pytest.approx(ssim, abs=1e-4)
    assert summary["benchmark"] == "Set12" and summary["ok"] == 2


def test_derain_restores_and_scores_on_y_by_default(tmp_path: Path) -> None:
    root = tmp_path / "Rain100L"
    for name in ("96.png", "98.png"):
        save_crop(RAIN / "input" / name, root / "input" / name, 52, 60)  # not multiples of 8: padded
        save_crop(RAIN / "target" / name, root / "target" / name, 52, 60)
    model = load_model(RGB_WEIGHTS)
    expected = {}
    for path in (root / "input").iterdir():
        restored = official_restore(model, np.float32(levels(path)) / 255.0).astype(np.uint8)
        clean = levels(root / "target" / path.name)
        expected[path.stem] = reference_scores(reference_y(restored), reference_y(clean), 255)

    derain = ["--task", "derain", "--input", root / "input", "--target", root / "target"]
    result = invoke(*derain, "--weights", RGB_WEIGHTS, "--json")

    assert result.exit_code == 0, result.stderr
    images, summary = json_rows(result.stdout)
    for name, (psnr, ssim) in expected.items():
        assert images[name]["psnr"] == pytest.approx(psnr, abs=1e-3)
        assert images[name]["ssim"] == pytest.approx(ssim, abs=1e-4)
    assert summary["benchmark"] == "Rain100L"


def test_a_gray_image_goes_through_a_colour_model_as_the_task_commands_take_it(tmp_path: Path) -> None:
    """Three equal channels in, BT.601 luma of the (clamped) output back: what `restore
    denoise` does with the same gray photo and weights; the summary names the weights."""
    dataset = tmp_path / "gray"
    save_crop(SET12 / "02.png", dataset / "02.png", SMALL, SMALL)
    clean = levels(dataset / "02.png")[..., None]
    noisy = np.float32(clean) / 255.0
    np.random.seed(0)
    noisy += np.random.normal(0, 15 / 255.0, noisy.shape)
    tensor = torch.from_numpy(np.repeat(noisy, 3, axis=2).transpose(2, 0, 1))[None].float()
    with torch.inference_mode():
        rgb = load_model(RGB_WEIGHTS)(tensor).clamp(0, 1)[0].permute(1, 2, 0).numpy().astype(np.float64)
    luma = np.floor((rgb @ np.array([0.299, 0.587, 0.114])) * 255 + 0.5)[..., None]
    psnr, ssim = reference_scores(luma, clean, 255)

    result = invoke("--task", "denoise", "--sigma", 15, "--dataset", dataset, "--weights", RGB_WEIGHTS, "--json")

    assert result.exit_code == 0, result.stderr
    images, summary = json_rows(result.stdout)
    assert images["02"]["psnr"] == pytest.approx(psnr, abs=1e-3) and images["02"]["ssim"] == pytest.approx(ssim, abs=1e-4)
    assert summary["model"] == str(RGB_WEIGHTS)


def test_a_colour_image_for_a_gray_model_fails_with_the_task_commands_words(tmp_path: Path) -> None:
    pair = {folder: tmp_path / folder / "96.png" for folder in ("input", "target")}
    for folder, path in pair.items():
        save_crop(RAIN / folder / "96.png", path, SMALL, SMALL)

    result = invoke("--task", "derain", "--input", tmp_path / "input", "--target", tmp_path / "target", "--weights", GRAY_WEIGHTS)
    restored = runner.invoke(app, ["run", "--weights", str(GRAY_WEIGHTS), str(pair["input"]), "-o", str(tmp_path / "o.png")])

    assert result.exit_code == 1 and restored.exit_code == 1
    assert result.stderr == restored.stderr.splitlines()[0] + "\n"
    assert f"{pair['input']}: is a colour image but {GRAY_WEIGHTS} is a grayscale model" in result.stderr


def test_a_model_that_cannot_be_loaded_fails_every_image_with_one_reason(tmp_path: Path) -> None:
    bogus = tmp_path / "bogus.pth"
    bogus.write_bytes(b"not a checkpoint")

    result = invoke(*DERAIN, "--weights", bogus, "--json")

    assert result.exit_code == 1 and result.stderr.startswith("error: ") and result.stderr.count("\n") == 1
    images, summary = json_rows(result.stdout)
    reason = result.stderr.removeprefix("error: ").strip()
    assert set(images) == {"96", "98"} and all(row["status"] == "failed" and row["error"] == reason for row in images.values())
    assert summary["status"] == "error" and summary["error"] == reason and summary["model"] == str(bogus)


def test_offline_quiet_and_debug_work_as_in_the_task_commands(tmp_path: Path, hf_home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    offline = invoke(*DERAIN, "--offline", "--quiet")
    assert offline.exit_code == 1 and offline.stderr.count("\n") == 1
    assert "deraining is not in the cache" in offline.stderr and "offline mode is on" in offline.stderr

    def bug(*args: object) -> None:
        raise KeyError("a bug")

    monkeypatch.setattr(evaluation, "pair_folders", bug)
    plain, debug = invoke(*DERAIN, "--weights", RGB_WEIGHTS), invoke(*DERAIN, "--weights", RGB_WEIGHTS, "--debug")
    assert plain.stderr == "error: unexpected KeyError: 'a bug' (rerun with --debug for the traceback)\n"
    assert isinstance(debug.exception, KeyError)


# --------------------------------------------------------------------------- models and paper values


@pytest.mark.parametrize(
    ("task", "sigma", "channels", "model"),
    [
        (evaluation.Task.denoise, 25, 1, "gaussian_gray_denoising_sigma25"),
        (evaluation.Task.denoise, 50, 3, "gaussian_color_denoising_sigma50"),
        (evaluation.Task.denoise, 30, 3, "gaussian_color_denoising_blind"),
        (evaluation.Task.derain, None, 3, "deraining"),
        (evaluation.Task.deblur, None, 3, "motion_deblurring"),
    ],
)
def test_the_default_model_is_the_official_one_for_the_task(
    task: evaluation.Task, sigma: float | None, channels: int, model: str
) -> None:
    assert evaluation.default_model(task, sigma, channels) == model
    assert model in manifest.load_manifest()


def test_benchmarks_are_recognised_from_the_folder_or_its_parent(tmp_path: Path) -> None:
    assert evaluation.benchmark_name(tmp_path / "cbsd68") == "CBSD68"
    assert evaluation.benchmark_name(tmp_path / "Rain100L" / "input") == "Rain100L"
    assert evaluation.benchmark_name(tmp_path / "holiday") is None


@pytest.mark.parametrize(
    ("sigma", "channels", "benchmark", "psnr"),
    [
        (25, 3, "CBSD68", 31.79),  # the sigma-25 model: Table 5's non-blind row
        (30, 3, "CBSD68", None),  # the blind model, at a level the paper did not test
        (15, 3, "Urban100", 35.13),
        (50, 1, "BSD68", 26.62),
        (25, 1, "Set12", 31.08),
    ],
)
def test_denoise_eval_finds_the_papers_score_in_the_shipped_manifest(
    sigma: float, channels: int, benchmark: str, psnr: float | None
) -> None:
    model = evaluation.default_model(evaluation.Task.denoise, sigma, channels)
    assert evaluation.paper_psnr(model, benchmark, sigma) == psnr


def test_the_blind_denoisers_carry_the_papers_blind_rows() -> None:
    blind = manifest.load_manifest()["gaussian_color_denoising_blind"]
    assert [blind.paper_psnr("McMaster", sigma) for sigma in (15, 25, 50)] == [35.55, 33.31, 30.29]


def test_the_paper_value_is_shown_only_for_its_own_benchmark(monkeypatch: pytest.MonkeyPatch) -> None:
    entries = dict(manifest.load_manifest())
    name = "gaussian_color_denoising_blind"
    paper = (manifest.PaperResult("CBSD68", 12.34, sigma=25), manifest.PaperResult("CBSD68", 10.5, sigma=50))
    entries[name] = dataclasses.replace(entries[name], paper=paper)
    monkeypatch.setattr(manifest, "load_manifest", lambda: entries)

    assert evaluation.paper_psnr(name, "CBSD68", 25) == 12.34
    assert evaluation.paper_psnr(name, "cbsd68", 50) == 10.5
    assert evaluation.paper_psnr(name, "CBSD68", 15) is None
    assert evaluation.paper_psnr(name, "Kodak24", 25) is None
    assert evaluation.paper_psnr(None, "CBSD68", 25) is None

    outcomes = [evaluation.Outcome("1", score=metrics.Score(30.0, 0.9))]
    summary = evaluation.summarise(outcomes, "CBSD68", name, 12.34)
    lines = cli_eval.json_lines(outcomes, summary, "RGB")
    assert json.loads(lines[-1])["paper_psnr"] == 12.34
    console = cli_eval.Console(record=True, width=100)
    console.print(cli_eval.table(outcomes, summary, verbose=False, channel="RGB"))
    text = console.export_text()
    assert "paper" in text and "12.34" in text


def test_deblur_with_tlc_scores_rgb_against_the_tlc_papers_value(tmp_path: Path) -> None:
    """Pairs of rain crops stand in for blurred/sharp pairs: what is checked is that the
    model runs with TLC's windows, that scores are on RGB, and which paper value is shown."""
    root = tmp_path / "GoPro"
    for name in ("96.png", "98.png"):
        save_crop(RAIN / "input" / name, root / "input" / name, 48, 64)
        save_crop(RAIN / "target" / name, root / "target" / name, 48, 64)
    model = load_model(RGB_WEIGHTS)
    model.tlc_window = 16
    expected = {
        path.stem: reference_scores(
            official_restore(model, np.float32(levels(path)) / 255.0).astype(np.uint8), levels(root / "target" / path.name), 255
        )
        for path in (root / "input").iterdir()
    }
    deblur = ["--task", "deblur", "--input", root / "input", "--target", root / "target", "--weights", RGB_WEIGHTS, "--json"]

    with_tlc = invoke(*deblur, "--tlc-window", 16)
    default_window = invoke(*deblur, "--tlc")
    without = invoke(*deblur)

    assert with_tlc.exit_code == 0, with_tlc.stderr
    images, summary = json_rows(with_tlc.stdout)
    for name, (psnr, ssim) in expected.items():
        assert images[name]["psnr"] == pytest.approx(psnr, abs=1e-3)
        assert images[name]["ssim"] == pytest.approx(ssim, abs=1e-4)
    plain_images, plain_summary = json_rows(without.stdout)
    assert plain_images["96"]["psnr"] != pytest.approx(images["96"]["psnr"], abs=1e-3)
    assert json_rows(default_window.stdout)[0] == plain_images  # a 384-px window covers a 48 x 64 image
    assert summary["benchmark"] == plain_summary["benchmark"] == "GoPro"
    assert summary["paper_psnr"] is None  # --weights: not the official checkpoint
    assert evaluation.paper_psnr("motion_deblurring", "GoPro", tlc=True) == 33.57
    assert evaluation.paper_psnr("motion_deblurring", "HIDE", tlc=True) == 31.49
    assert evaluation.paper_psnr("motion_deblurring", "GoPro") == 32.92
