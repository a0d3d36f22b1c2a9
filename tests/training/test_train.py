"""`restore train` and `restore_cli.training.train`: tiny networks, small crops, a few
dozen iterations. What is expected comes from torch, metrics.py and the golden files,
never from the training code's own output."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path

import imagecodecs
import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image
from typer.testing import CliRunner

from restore_cli.cli.app import app
from restore_cli.io import decode, encode, files, image
from restore_cli.model.checkpoints import read_state_dict
from restore_cli.model.restormer import Restormer
from restore_cli.model.zoo import load_model
from restore_cli.quality import metrics
from restore_cli.training import train
from restore_cli.training.data import Sampler, load_folder
from restore_cli.training.schedule import Stage, WarmupCosine, stages
from restore_cli.training.sizes import SIZES, new_model
from restore_cli.training.state import read_state
from tests.cli_assertions import assert_one_line_error
from tests.golden import GOLDEN_DIR, config_from_official, official_variants
from tests.photos import CBSD68_3096

DATA = Path(__file__).parents[1] / "data"
PHOTO = CBSD68_3096
RAIN = DATA / "rain100L"
DEMO = DATA / "tiny_sigma25.pth"
TINY = {"size": "tiny", "patch": 16, "batch": 2, "lr": 1e-3, "val_every": 0, "save_every": 0}
runner = CliRunner()


@pytest.fixture(autouse=True)
def one_torch_thread() -> Iterator[None]:
    """Tiny steps run faster on one thread than on two contended ones (shared CI CPUs)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def crops(source: Path, folder: Path, count: int, side: int = 40) -> Path:
    """`count` different crops of a photo as PNG files: a small training folder."""
    folder.mkdir(parents=True, exist_ok=True)
    pixels = np.asarray(Image.open(source).convert("RGB"))
    for index in range(count):
        top, left = 30 * index, 45 * index
        Image.fromarray(pixels[top : top + side, left : left + side]).save(folder / f"{index}.png")
    return folder


@pytest.fixture(scope="module")
def clean(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return crops(PHOTO, tmp_path_factory.mktemp("clean"), 3)


def invoke(*args: object):
    return runner.invoke(app, ["train", *map(str, args)])


def l1_on_fixed_noisy_crops(model: torch.nn.Module, folder: Path) -> float:
    """L1 of the model's output on every crop with fixed sigma-25 noise."""
    torch.manual_seed(1234)
    clean = torch.stack([torch.from_numpy(np.asarray(Image.open(p), dtype=np.float32) / 255).permute(2, 0, 1) for p in sorted(folder.glob("*.png"))])
    noisy = clean + torch.randn(clean.shape) * 25 / 255
    with torch.no_grad():
        return float(F.l1_loss(model.eval()(noisy), clean))


# --------------------------------------------------------------------------- learning


def test_the_loss_goes_down(clean: Path, tmp_path: Path) -> None:
    torch.manual_seed(0)
    untrained = new_model("tiny", 3, denoiser=True)  # the run's seed draws these same weights

    train(clean, output=tmp_path / "t.pth", sigma=25, iters=40, seed=0, **TINY)

    trained = load_model(tmp_path / "t.pth")
    before, after = l1_on_fixed_noisy_crops(untrained, clean), l1_on_fixed_noisy_crops(trained, clean)
    assert after < 0.8 * before


def test_fine_tuning_a_golden_checkpoint_lowers_its_loss_on_the_pairs(tmp_path: Path) -> None:
    inputs, targets = crops(RAIN / "input" / "96.png", tmp_path / "in", 2), crops(RAIN / "target" / "96.png", tmp_path / "gt", 2)
    golden = GOLDEN_DIR / "tiny_rgb_withbias.pth"
    options = {**TINY, "size": None}

    train(pairs=(inputs, targets), start=str(golden), output=tmp_path / "ft.pth", iters=30, **options)

    def loss(model: torch.nn.Module) -> float:
        rainy, clear = (torch.stack([image.to_tensor(decode.read_image(p))[0] for p in sorted(f.glob("*.png"))]) for f in (inputs, targets))
        with torch.no_grad():
            return float(F.l1_loss(model(rainy), clear))

    start, tuned = load_model(golden), load_model(tmp_path / "ft.pth")
    assert tuned.config == start.config
    assert loss(tuned) < loss(start)


def test_progressive_stages_are_the_papers_scaled_to_the_run() -> None:
    paper = [Stage(0, 128, 64), Stage(92, 160, 40), Stage(156, 192, 32), Stage(204, 256, 16), Stage(240, 320, 8), Stage(276, 384, 8)]

    assert stages(300, 384, 8, progressive=True) == paper  # the paper's 300 k iterations, in thousands
    assert [(s.patch, s.batch) for s in stages(3000, 96, 2, progressive=True)] == [(32, 16), (40, 10), (48, 8), (64, 4), (80, 2), (96, 2)]
    assert stages(3000, 96, 2, progressive=False) == [Stage(0, 96, 2)]


def test_the_learning_rate_warms_up_then_follows_a_cosine_to_1e_6() -> None:
    schedule = WarmupCosine(torch.optim.SGD([torch.zeros(1)], lr=3e-4), total=1000, warmup=100)

    assert schedule.rate(3e-4, 0) == pytest.approx(3e-6) and schedule.rate(3e-4, 99) == pytest.approx(3e-4)
    assert schedule.rate(3e-4, 550) == pytest.approx((3e-4 + 1e-6) / 2)
    assert schedule.rate(3e-4, 1000) == pytest.approx(1e-6)


# --------------------------------------------------------------------------- files written


def golden_config(name: str, **changes: object):
    """A golden case's configuration, as the official constructor was given it."""
    official = json.loads((GOLDEN_DIR / "index.json").read_text())[name]["config"]
    return config_from_official({**official, **changes})


def test_the_checkpoint_is_in_the_official_layout_key_for_key(tmp_path: Path) -> None:
    inputs, targets = crops(RAIN / "input" / "96.png", tmp_path / "in", 1), crops(RAIN / "target" / "96.png", tmp_path / "gt", 1)

    train(pairs=(inputs, targets), output=tmp_path / "t.pth", iters=2, **TINY)

    saved = torch.load(tmp_path / "t.pth", weights_only=True)
    assert list(saved) == ["params"]
    golden = read_state_dict(GOLDEN_DIR / "tiny_rgb_withbias.pth")  # saved by the official code, same configuration
    assert [(key, value.shape) for key, value in saved["params"].items()] == [(key, value.shape) for key, value in golden.items()]
    assert load_model(tmp_path / "t.pth").config == golden_config("tiny_rgb_withbias")


def test_a_denoiser_from_scratch_has_the_papers_denoiser_layernorm(clean: Path, tmp_path: Path) -> None:
    train(clean, output=tmp_path / "t.pth", sigma=25, iters=1, **TINY)

    assert load_model(tmp_path / "t.pth").config == golden_config("tiny_rgb_withbias", LayerNorm_type="BiasFree")


@pytest.mark.parametrize("variant", ["rgb_withbias", "rgb_biasfree"])
def test_size_base_is_the_papers_network(variant: str) -> None:
    official = official_variants()[variant]
    with torch.device("meta"):
        ours = new_model("base", 3, denoiser=official["config"]["LayerNorm_type"] == "BiasFree")
    assert ours.config == config_from_official(official["config"])
    assert [[key, list(value.shape)] for key, value in ours.state_dict().items()] == official["state_dict"]


def test_a_moving_average_is_saved_as_params_ema_and_preferred_by_loaders(clean: Path, tmp_path: Path) -> None:
    train(clean, output=tmp_path / "t.pth", sigma=25, iters=3, ema=0.5, **TINY)

    saved = torch.load(tmp_path / "t.pth", weights_only=True)
    assert set(saved) == {"params", "params_ema"}
    assert not torch.equal(saved["params"]["output.weight"], saved["params_ema"]["output.weight"])
    assert torch.equal(load_model(tmp_path / "t.pth").output.weight, saved["params_ema"]["output.weight"])


# --------------------------------------------------------------------------- resuming


class Recorder:
    def __init__(self) -> None:
        self.first: int | None = None
        self.lrs: dict[int, float] = {}
        self.scores: dict[int, metrics.Score] = {}

    def started(self, iteration: int, total: int) -> None:
        self.first = iteration

    def stepped(self, iteration: int, loss: float, lr: float) -> None:
        self.lrs[iteration] = lr

    def validated(self, iteration: int, score: metrics.Score) -> None:
        self.scores[iteration] = score

    def saved(self, iteration: int) -> None:
        pass


def test_a_resumed_run_continues_exactly_where_the_state_left_it(clean: Path, tmp_path: Path) -> None:
    options = {**TINY, "iters": 12, "save_every": 5, "ema": 0.9, "seed": 3, "sigma": "10-40"}
    whole = Recorder()
    train(clean, output=tmp_path / "whole.pth", reporter=whole, **options)
    state = read_state(tmp_path / "whole.state")
    assert state["iteration"] == 10  # the last save before the end

    resumed = Recorder()
    train(clean, output=tmp_path / "resumed.pth", reporter=resumed, resume=tmp_path / "whole.state", **options)

    assert resumed.first == 10
    assert resumed.lrs == {11: whole.lrs[11], 12: whole.lrs[12]}
    schedule = WarmupCosine(torch.optim.SGD([torch.zeros(1)], lr=1e-3), total=12, warmup=1)
    assert whole.lrs[11] == pytest.approx(schedule.rate(1e-3, 10))
    one, other = torch.load(tmp_path / "whole.pth", weights_only=True), torch.load(tmp_path / "resumed.pth", weights_only=True)
    for layout in ("params", "params_ema"):
        assert all(torch.equal(one[layout][key], other[layout][key]) for key in one[layout])


def test_resuming_with_different_options_is_refused(clean: Path, tmp_path: Path) -> None:
    train(clean, output=tmp_path / "a.pth", sigma=25, iters=4, **{**TINY, "save_every": 2})

    result = invoke(clean, "--sigma", 25, "--size", "tiny", "--patch", 16, "--batch", 2, "--lr", 1e-3, "--iters", 8,
                    "--resume", tmp_path / "a.state", "-o", tmp_path / "b.pth")  # fmt: skip

    assert_one_line_error(result, 2, "a.state", "iters=4")


def test_an_interrupt_while_saving_leaves_the_previous_state_whole(
    clean: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    replace, calls = os.replace, []

    def interrupted_rename(source: str, target: str) -> None:
        calls.append(target)
        if len(calls) >= 2:
            raise KeyboardInterrupt  # Ctrl-C (held down) after a new state's bytes are written, before the rename
        replace(source, target)

    monkeypatch.setattr(files.os, "replace", interrupted_rename)
    with pytest.raises(KeyboardInterrupt):
        train(clean, output=tmp_path / "t.pth", sigma=25, iters=10, **{**TINY, "save_every": 3})
    monkeypatch.undo()

    assert read_state(tmp_path / "t.state")["iteration"] == 3
    assert sorted(path.name for path in tmp_path.iterdir()) == ["t.state"]
    train(clean, output=tmp_path / "t.pth", sigma=25, iters=10, resume=tmp_path / "t.state", **{**TINY, "save_every": 3})
    assert load_model(tmp_path / "t.pth").config.dim == SIZES["tiny"].dim


# --------------------------------------------------------------------------- bad data, bad options


def write_garbage(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"not an image")
    return path


def setup_case(case: str, tmp: Path, clean: Path) -> tuple[list[object], str]:
    """The arguments of a run that must be refused, and a fragment its error names."""
    tiny = ["--size", "tiny", "--patch", "16", "-o", tmp / "t.pth"]
    if case == "no CUDA":
        return [clean, "--sigma", 25, *tiny, "--device", "cuda"], "--device"
    if case == "no images":
        (tmp / "empty").mkdir()
        return [tmp / "empty", "--sigma", 25, *tiny], "no images"
    if case == "unreadable":
        crops(PHOTO, tmp / "data", 2)
        return [tmp / "data", "--sigma", 25, *tiny], str(write_garbage(tmp / "data" / "broken.png"))
    if case == "pair sizes":
        crops(PHOTO, tmp / "in", 1, side=40), crops(PHOTO, tmp / "gt", 1, side=48)
        return ["--pairs", tmp / "in", tmp / "gt", *tiny], "same size"
    if case == "unpaired":
        crops(PHOTO, tmp / "in", 2), crops(PHOTO, tmp / "gt", 1)
        return ["--pairs", tmp / "in", tmp / "gt", *tiny], "1.png"
    if case == "patch too big":
        return [clean, "--sigma", 25, "--size", "tiny", "--patch", 64, "-o", tmp / "t.pth"], "--patch"
    if case == "missing folder":
        return [tmp / "nowhere", "--sigma", 25, *tiny], "nowhere"
    if case == "no degradation":
        return [clean, *tiny], "--sigma"
    if case == "bad sigma":
        return [clean, "--sigma", "lots", *tiny], "--sigma"
    if case == "patch not a multiple of 8":
        return [clean, "--sigma", 25, "--size", "tiny", "--patch", 20, "-o", tmp / "t.pth"], "multiple of 8"
    if case == "output exists":
        (tmp / "t.pth").write_bytes(b"earlier")
        return [clean, "--sigma", 25, *tiny], "--overwrite"
    if case == "from and size":
        return [clean, "--sigma", 25, "--from", GOLDEN_DIR / "tiny_rgb_withbias.pth", *tiny], "--from"
    if case == "gray model, colour data":
        return [clean, "--sigma", 25, "--from", GOLDEN_DIR / "tiny_gray_biasfree.pth", "--patch", 16, "-o", tmp / "t.pth"], "channels"
    if case == "bf16 on an emulating CPU" or case == "fp16 on the CPU":
        precision = "bf16" if case.startswith("bf16") else "fp16"
        return [clean, "--sigma", 25, *tiny, "--precision", precision, "--device", "cpu"], precision
    raise AssertionError(case)


BAD = [pytest.param("no CUDA", marks=pytest.mark.skipif(torch.cuda.is_available(), reason="CUDA is here")), "no images", "unreadable", "pair sizes", "unpaired", "patch too big", "missing folder", "no degradation",
       "bad sigma", "patch not a multiple of 8", "output exists", "from and size", "gray model, colour data", "fp16 on the CPU"]  # fmt: skip


@pytest.mark.parametrize("case", BAD)
def test_bad_data_and_options_are_one_line_and_exit_2_before_training(case: str, clean: Path, tmp_path: Path) -> None:
    args, fragment = setup_case(case, tmp_path, clean)

    result = invoke(*args)

    assert_one_line_error(result, 2, fragment)
    assert not (tmp_path / "t.state").exists() and (case == "output exists") == (tmp_path / "t.pth").exists()


def test_bf16_is_refused_where_the_cpu_would_emulate_it(clean: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from restore_cli.engine import hardware

    monkeypatch.setattr(hardware, "cpu_info", lambda: hardware.CpuInfo("an AVX2 CPU", frozenset({"avx2"})))
    args, _ = setup_case("bf16 on an emulating CPU", tmp_path, clean)

    assert_one_line_error(invoke(*args), 2, "emulated", "--allow-slow-precision")


# --------------------------------------------------------------------------- end to end


def test_train_then_restore_run_gives_the_trained_network_and_json_validation(clean: Path, tmp_path: Path) -> None:
    output = tmp_path / "t.pth"
    validation = crops(RAIN / "target" / "98.png", tmp_path / "val", 1, side=48)
    result = invoke(clean, "--sigma", 25, "--size", "tiny", "--patch", 16, "--batch", 2, "--iters", 6, "--lr", 1e-3,
                    "--val", validation, "--val-every", 3, "--json", "-o", output)  # fmt: skip
    assert result.exit_code == 0, result.stderr
    rows = [json.loads(line) for line in result.stdout.splitlines()]
    assert [row["type"] for row in rows] == ["validation", "validation", "done"]
    assert [row["iteration"] for row in rows[:2]] == [3, 6] and rows[2]["iterations"] == 6

    network = Restormer(golden_config("tiny_rgb_withbias", LayerNorm_type="BiasFree"))
    network.load_state_dict(torch.load(output, weights_only=True)["params"])
    target = decode.read_image(validation / "0.png").pixels
    noisy = metrics.gaussian_noise_input(target, 8, 25)
    with torch.no_grad():
        direct = network.eval()(torch.from_numpy(noisy.transpose(2, 0, 1))[None]).clamp(0, 1)[0].permute(1, 2, 0).numpy()
    assert rows[1]["psnr"] == pytest.approx(metrics.score(direct, target, 8).psnr, abs=0.01)

    noisy_file = tmp_path / "noisy.png"
    encode.write_image(image.DecodedImage(np.clip(noisy, 0, 1), None, 8, None, None, "PNG"), noisy_file)
    ran = runner.invoke(app, ["run", "--weights", str(output), str(noisy_file), "-o", str(tmp_path / "out.png")])
    assert ran.exit_code == 0, ran.stderr
    restored = decode.read_image(tmp_path / "out.png").pixels
    with torch.no_grad():
        expected = network(torch.from_numpy(decode.read_image(noisy_file).pixels.transpose(2, 0, 1))[None]).clamp(0, 1)
    assert np.abs(restored - expected[0].permute(1, 2, 0).numpy()).max() <= 1 / 255 + 1e-6


@pytest.mark.skipif(not DEMO.exists(), reason="the demonstration model is not in this checkout")
def test_the_demonstration_model_denoises_a_photo_it_never_saw(tmp_path: Path) -> None:
    clean_pixels = decode.read_image(PHOTO).pixels
    noisy = np.clip(clean_pixels + np.random.default_rng(7).normal(0, 25 / 255, clean_pixels.shape), 0, 1)
    noisy_file = tmp_path / "noisy.png"
    encode.write_image(image.DecodedImage(noisy.astype(np.float32), None, 8, None, None, "PNG"), noisy_file)

    result = runner.invoke(app, ["denoise", str(noisy_file), "--weights", str(DEMO), "-o", str(tmp_path / "out.png")])

    assert result.exit_code == 0, result.stderr
    reference = metrics.quantise(clean_pixels, 8)
    before = metrics.psnr(metrics.quantise(decode.read_image(noisy_file).pixels, 8), reference, 255)
    after = metrics.psnr(metrics.quantise(decode.read_image(tmp_path / "out.png").pixels, 8), reference, 255)
    assert after - before >= 3.0


# --------------------------------------------------------------------------- data


def test_crops_are_exact_windows_of_16_bit_images_laid_down_one_of_eight_ways(tmp_path: Path) -> None:
    source = DATA / "images" / "pixel2xl_16bit_rgb.png"
    (tmp_path / "sixteen").mkdir()
    (tmp_path / "sixteen" / source.name).write_bytes(source.read_bytes())
    levels = imagecodecs.png_decode(source.read_bytes()).astype(np.float32) / 65535
    [example] = load_folder(tmp_path / "sixteen")
    assert example.bit_depth == 16
    sampler = Sampler([example], 3, None, torch.Generator().manual_seed(0))

    _, clean = sampler.batch(6, 16)

    windows = np.lib.stride_tricks.sliding_window_view(levels, (16, 16), axis=(0, 1))  # (H', W', C, 16, 16)
    for crop in clean.numpy():
        layouts = [np.rot90(view, k, axes=(-2, -1)) for view in (crop, crop[..., ::-1]) for k in range(4)]
        assert any(np.any(np.all(windows == layout, axis=(2, 3, 4))) for layout in layouts)


def test_without_validation_images_a_share_is_held_out_and_scored(tmp_path: Path) -> None:
    folder = crops(PHOTO, tmp_path / "four", 4)
    recorder = Recorder()

    train(folder, output=tmp_path / "t.pth", sigma=25, iters=2, reporter=recorder, **{**TINY, "val_every": 2})

    assert list(recorder.scores) == [2] and 15 < recorder.scores[2].psnr < 40
