"""The task commands end to end: real photos, tiny real checkpoints, the real engine.

Each output is compared with the network applied directly to the decoded input, and with
the input's bit depth, alpha, ICC profile and EXIF bytes. Zoo models are tiny checkpoints
installed into a private, offline HF_HOME under the official names (no network, ever).
"""

from __future__ import annotations

import dataclasses
import hashlib
import io
import json
import os
import pty
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from restore_cli.cli.app import app
from restore_cli.io.decode import read_image
from restore_cli.io.encode import write_image
from restore_cli.io.image import DecodedImage, to_tensor, with_pixels
from restore_cli.model import checkpoints, manifest
from restore_cli.model import zoo as model_zoo
from restore_cli.model.restormer import Restormer, RestormerConfig
from tests.cli_assertions import assert_one_line_error

DATA = Path(__file__).parents[1] / "data"
ROOT = Path(__file__).parents[2]
RGB_WITHBIAS = DATA / "golden" / "tiny_rgb_withbias.pth"
RGB_BIASFREE = DATA / "golden" / "tiny_rgb_biasfree_bias.pth"
GRAY = DATA / "golden" / "tiny_gray_biasfree.pth"
DUAL_PIXEL = "dual_pixel_defocus_deblurring"
ZOO = {
    "real_denoising": RGB_BIASFREE,
    "gaussian_color_denoising_blind": RGB_BIASFREE,
    "gaussian_color_denoising_sigma25": RGB_BIASFREE,
    "gaussian_gray_denoising_blind": GRAY,
    "gaussian_gray_denoising_sigma25": GRAY,
    "deraining": RGB_WITHBIAS,
    "motion_deblurring": RGB_WITHBIAS,
    "single_image_defocus_deblurring": RGB_WITHBIAS,
    DUAL_PIXEL: None,
}
"""Every name gets its own weights (the base plus name-seeded noise), so pixels tell which ran."""

runner = CliRunner()


# ---------------------------------------------------------------- fixtures


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    """Tiny models gain nothing from intra-op threads, and on a busy machine the thread
    hand-offs can cost 100x the work itself."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@dataclasses.dataclass(frozen=True)
class Photos:
    colour: Path  # 48x40 crop of a Canon JPEG, as PNG, with its ICC profile and EXIF
    jpeg: Path  # the same crop as JPEG
    gray: Path  # 40x32 crop of Set12 #01
    deep: Path  # 64x64 16-bit RGB PNG with an ACEScg ICC profile
    deep_tiff: Path  # the same pixels as a 16-bit TIFF
    alpha: Path  # the colour crop with a gradient alpha
    right: Path  # another crop of the same photo: a second dual-pixel view


def _crop(image: DecodedImage, top: int, left: int, height: int, width: int) -> DecodedImage:
    return dataclasses.replace(image, pixels=image.pixels[top : top + height, left : left + width])


@pytest.fixture(scope="session")
def photos(tmp_path_factory: pytest.TempPathFactory) -> Photos:
    folder = tmp_path_factory.mktemp("photos")
    canon = read_image(DATA / "images" / "Landscape_9.jpg")
    colour = _crop(canon, 100, 200, 40, 48)
    deep = read_image(DATA / "images" / "pixel2xl_16bit_rgb.png")
    ramp = np.tile(np.linspace(0, 255, 48).astype(np.uint8), (40, 1))
    paths = Photos(*(folder / name for name in ("c.png", "c.jpg", "g.png", "d.png", "d.tif", "a.png", "r.png")))
    write_image(colour, paths.colour)
    write_image(colour, paths.jpeg)
    write_image(_crop(read_image(DATA / "images" / "set12_01.png"), 64, 96, 40, 32), paths.gray)
    (folder / "d.png").write_bytes((DATA / "images" / "pixel2xl_16bit_rgb.png").read_bytes())
    write_image(deep, paths.deep_tiff)
    write_image(dataclasses.replace(colour, alpha=ramp), paths.alpha)
    write_image(_crop(canon, 104, 202, 40, 48), paths.right)
    return paths


def _variant(name: str, base: Path | None) -> dict[str, torch.Tensor]:
    generator = torch.Generator().manual_seed(int(hashlib.sha256(name.encode()).hexdigest()[:8], 16))
    if base is None:
        config = RestormerConfig(6, 3, dim=8, num_blocks=(1, 1, 1, 1), num_refinement_blocks=1, dual_pixel=True)
        torch.manual_seed(0)
        state = Restormer(config).state_dict()
    else:
        state = checkpoints.read_state_dict(base)
    return {key: value + 0.05 * torch.randn(value.shape, generator=generator) for key, value in state.items()}


@pytest.fixture(scope="session")
def zoo_cache(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, manifest.ModelEntry]]:
    """Tiny checkpoints installed under official names with `model_zoo.import_file`, once."""
    folder = tmp_path_factory.mktemp("zoo")
    real = manifest.load_manifest()
    entries = dict(real)
    for name, base in ZOO.items():
        path = folder / real[name].filename
        torch.save({"params": _variant(name, base)}, path)
        data = path.read_bytes()
        digest = hashlib.sha256(data).hexdigest()
        entries[name] = dataclasses.replace(real[name], sha256=digest, sha256_known=True, size=len(data))
    with pytest.MonkeyPatch.context() as patch:
        _use_zoo(patch, folder / "hf", entries)
        for name in ZOO:
            model_zoo.import_file(folder / real[name].filename, name=name)
    return folder / "hf", entries


def _use_zoo(patch: pytest.MonkeyPatch, hf_home: Path, entries: dict[str, manifest.ModelEntry]) -> None:
    patch.setattr(manifest, "load_manifest", lambda: entries)
    patch.setenv("HF_HOME", str(hf_home))
    patch.setenv("HF_HUB_OFFLINE", "1")
    for variable in ("HF_HUB_CACHE", "XDG_CACHE_HOME"):
        patch.delenv(variable, raising=False)


@pytest.fixture
def zoo(zoo_cache, monkeypatch: pytest.MonkeyPatch) -> dict[str, Path]:
    """Zoo name -> its cached checkpoint, with the zoo pointed at that cache, offline."""
    hf_home, entries = zoo_cache
    _use_zoo(monkeypatch, hf_home, entries)
    return {name: hf_home / "restore" / "models" / entries[name].filename for name in ZOO}


# ---------------------------------------------------------------- helpers


def _invoke(*args: str | Path, stdin: bytes | None = None):
    return runner.invoke(app, [str(arg) for arg in args], input=stdin)


def _apply(checkpoint: Path, *views: Path) -> DecodedImage:
    """What the output must be: the network run directly on the decoded input(s)."""
    model = checkpoints.load_checkpoint(checkpoint)
    images = [read_image(view) for view in views]
    channels = 3 if model.config.dual_pixel else model.config.in_channels
    with torch.no_grad():
        restored = model(torch.cat([to_tensor(image, channels) for image in images], dim=1))
    return with_pixels(images[0], restored.clamp(0, 1))  # the engine's output range, before gray conversion


def _as_jpeg(image: DecodedImage) -> DecodedImage:
    """The expected image as it reads back after encoding at the default JPEG quality."""
    encoded = io.BytesIO()
    write_image(image, encoded, format="jpg")
    return read_image(io.BytesIO(encoded.getvalue()))


def _assert_restored(output: Path | bytes, expected: DecodedImage, levels: float = 1.0) -> DecodedImage:
    written = read_image(output if isinstance(output, Path) else io.BytesIO(output))
    assert written.bit_depth == expected.bit_depth and written.pixels.shape == expected.pixels.shape
    step = 1 / (2**written.bit_depth - 1)
    assert np.abs(written.pixels - expected.pixels).max() <= levels * step + 1e-6
    return written


def _json_lines(text: str) -> list[dict]:
    return [json.loads(line) for line in text.splitlines()]


# ---------------------------------------------------------------- one image, every property


def test_output_is_the_network_applied_to_the_input_with_icc_and_exif_kept(photos: Photos, tmp_path: Path) -> None:
    out = tmp_path / "out.png"
    result = _invoke("derain", photos.colour, "--weights", RGB_WITHBIAS, "-o", out, "--tile", "0", "--quiet")
    assert result.exit_code == 0 and result.stdout == "" and result.stderr == ""
    written = _assert_restored(out, _apply(RGB_WITHBIAS, photos.colour))
    source = read_image(photos.colour)
    assert written.icc_profile == source.icc_profile and written.exif == source.exif and source.exif


def test_a_jpeg_is_written_next_to_itself_as_a_jpeg_with_its_metadata(photos: Photos, tmp_path: Path) -> None:
    photo = tmp_path / "holiday.jpg"
    photo.write_bytes(photos.jpeg.read_bytes())
    assert _invoke("deblur", photo, "--weights", RGB_WITHBIAS).exit_code == 0
    out = tmp_path / "holiday_deblur.jpg"
    written, source = read_image(out), read_image(photo)
    assert written.source_format == "JPEG" and written.exif == source.exif and written.icc_profile == source.icc_profile
    _assert_restored(out, _as_jpeg(_apply(RGB_WITHBIAS, photo)))


@pytest.mark.parametrize("name", ["deep", "deep_tiff"])
def test_sixteen_bit_stays_sixteen_bit_at_full_precision(photos: Photos, tmp_path: Path, name: str) -> None:
    source = getattr(photos, name)
    out = tmp_path / f"out{source.suffix}"
    result = _invoke("derain", source, "--weights", RGB_WITHBIAS, "-o", out)
    assert result.exit_code == 0, result.stderr
    written = _assert_restored(out, _apply(RGB_WITHBIAS, source))
    assert written.bit_depth == 16 and len(np.unique(written.pixels)) > 256  # not 8-bit values in 16 bits
    assert written.icc_profile == read_image(source).icc_profile


def test_alpha_is_passed_through_untouched(photos: Photos, tmp_path: Path) -> None:
    out = tmp_path / "out.png"
    assert _invoke("derain", photos.alpha, "--weights", RGB_WITHBIAS, "-o", out).exit_code == 0
    written = _assert_restored(out, _apply(RGB_WITHBIAS, photos.alpha))
    assert written.alpha is not None and np.array_equal(written.alpha, read_image(photos.alpha).alpha)


def test_a_gray_photo_through_an_rgb_model_comes_back_gray(photos: Photos, tmp_path: Path) -> None:
    out = tmp_path / "out.png"
    assert _invoke("derain", photos.gray, "--weights", RGB_WITHBIAS, "-o", out).exit_code == 0
    written = _assert_restored(out, _apply(RGB_WITHBIAS, photos.gray))
    assert written.channels == 1


# ---------------------------------------------------------------- pipelines


def test_stdin_to_stdout_through_the_cli(photos: Photos) -> None:
    result = _invoke("derain", "-", "-o", "-", "--weights", RGB_WITHBIAS, "-q", stdin=photos.colour.read_bytes())
    assert result.exit_code == 0 and result.stderr == ""
    assert result.stdout_bytes.startswith(b"\x89PNG")
    _assert_restored(result.stdout_bytes, _apply(RGB_WITHBIAS, photos.colour))


def _subprocess(*args: str | Path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, **kwargs) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    command = [sys.executable, "-m", "restore_cli", *map(str, args)]
    return subprocess.Popen(command, env=env, stdout=stdout, stderr=stderr, **kwargs)


def test_a_shell_pipeline_with_jpeg_on_stdout(photos: Photos) -> None:
    with photos.colour.open("rb") as stdin:
        process = _subprocess("derain", "-", "-o", "-", "--format", "jpg", "--weights", RGB_WITHBIAS, stdin=stdin)
        stdout, stderr = process.communicate(timeout=120)
    assert process.returncode == 0 and stderr.decode().startswith("[1/1] <stdin> -> <stdout> (")
    assert stdout.startswith(b"\xff\xd8")
    _assert_restored(stdout, _as_jpeg(_apply(RGB_WITHBIAS, photos.colour)))


@pytest.mark.parametrize(("sent", "code"), [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_a_signal_stops_a_batch_cleanly_leaving_only_whole_files(photos: Photos, tmp_path: Path, sent, code) -> None:
    big = dataclasses.replace(read_image(photos.colour), pixels=np.tile(read_image(photos.colour).pixels, (3, 3, 1)))
    (tmp_path / "in").mkdir()
    for index in range(20):
        write_image(big, tmp_path / "in" / f"{index:02d}.png")
    out = tmp_path / "out"
    process = _subprocess("derain", tmp_path / "in", "-o", out, "--weights", RGB_WITHBIAS, "--tile", "0")
    deadline = time.monotonic() + 120
    while not (out.is_dir() and any(out.glob("*.png"))) and time.monotonic() < deadline and process.poll() is None:
        time.sleep(0.05)
    process.send_signal(sent)
    _, stderr = process.communicate(timeout=120)
    assert process.returncode == code, stderr.decode()
    written = sorted(out.iterdir())
    assert 1 <= len(written) < 20 and b"interrupted after" in stderr and b"Traceback" not in stderr
    for path in written:
        assert not path.name.startswith(".")  # no temp file left behind
        assert read_image(path).pixels.shape == big.pixels.shape


def test_progress_and_summary_appear_only_when_stderr_is_a_terminal(photos: Photos, tmp_path: Path) -> None:
    reader, terminal = pty.openpty()
    process = _subprocess("derain", photos.colour, photos.gray, "-o", tmp_path, "--weights", RGB_WITHBIAS, stderr=terminal)
    os.close(terminal)
    shown = _read_all(reader)
    assert process.wait(timeout=120) == 0 and process.stdout.read() == b""
    assert "images" in shown and "tiles" in shown and "2 restored, 0 skipped, 0 failed" in shown


def test_a_log_gets_one_line_per_image_and_the_summary_unless_quiet(photos: Photos, tmp_path: Path) -> None:
    inputs = (photos.colour, photos.gray)
    process = _subprocess("derain", *inputs, "-o", tmp_path / "out", "--weights", RGB_WITHBIAS)
    _, stderr = process.communicate(timeout=120)
    assert process.returncode == 0, stderr.decode()
    log = stderr.decode().split("\n")
    for index, (line, source) in enumerate(zip(log, inputs), 1):
        assert re.fullmatch(rf"\[{index}/2\] {re.escape(str(source))} -> {re.escape(str(tmp_path / 'out' / source.name))} \(\d+\.\d s\)", line)
    assert re.fullmatch(r"2 restored, 0 skipped, 0 failed in \d+\.\d s", log[2]) and log[3:] == [""]
    quiet = _subprocess("derain", *inputs, "-o", tmp_path / "quiet", "--weights", RGB_WITHBIAS, "--quiet")
    assert quiet.communicate(timeout=120) == (b"", b"") and quiet.returncode == 0


def test_image_bytes_are_never_sent_to_a_terminal(photos: Photos) -> None:
    reader, terminal = pty.openpty()
    with photos.colour.open("rb") as stdin:
        process = _subprocess("derain", "-", "--weights", RGB_WITHBIAS, stdin=stdin, stdout=terminal)
    os.close(terminal)
    _, stderr = process.communicate(timeout=120)
    assert process.returncode == 2 and _read_all(reader) == ""
    assert stderr.decode() == "error: refusing to write image bytes to a terminal; redirect stdout (> out.png) or give -o FILE\n"


def _read_all(descriptor: int) -> str:
    """Everything written to a pty until its last writer closes it (Linux then raises EIO)."""
    chunks = []
    while True:
        try:
            chunk = os.read(descriptor, 65536)
        except OSError:
            break
        if not chunk:
            break
        chunks.append(chunk)
    os.close(descriptor)
    return b"".join(chunks).decode(errors="replace")


# ---------------------------------------------------------------- batches


def test_a_folder_batch_goes_on_past_a_bad_file_and_reports_json(photos: Photos, tmp_path: Path) -> None:
    folder = tmp_path / "in"
    (folder / "sub").mkdir(parents=True)
    (folder / "a.png").write_bytes(photos.colour.read_bytes())
    (folder / "b_broken.png").write_bytes(photos.colour.read_bytes()[:100])
    (folder / "sub" / "c.png").write_bytes(photos.gray.read_bytes())
    out = tmp_path / "out"
    result = _invoke("derain", folder, "-r", "-o", out, "--weights", RGB_WITHBIAS, "--json")
    assert result.exit_code == 1
    lines = _json_lines(result.stdout)
    assert [line.get("status") for line in lines[:3]] == ["ok", "failed", "ok"]
    assert lines[0] == {
        "schema": 1,
        "type": "image",
        "input": str(folder / "a.png"),
        "output": str(out / "a.png"),
        "model": str(RGB_WITHBIAS),
        "size": {"width": 48, "height": 40},
        "tiles": 1,
        "seconds": lines[0]["seconds"],
        "status": "ok",
        "error": None,
        "failure": None,
        "attempts": 1,
        "memory_budget": None,
    }
    assert lines[1]["failure"] == "image"  # the input's own problem
    assert lines[3] | {"seconds": 0} == {
        "schema": 1, "type": "summary", "command": "derain", "status": "failed", "exit_code": 1,
        "total": 3, "ok": 2, "skipped": 0, "failed": 1, "seconds": 0,
    }  # fmt: skip
    assert_one_line_error(result, 1, str(folder / "b_broken.png"), "cannot decode image")
    (error,) = [line for line in result.stderr.splitlines() if line.startswith("error: ")]
    assert lines[1]["error"] == error.removeprefix("error: ")
    _assert_restored(out / "sub" / "c.png", _apply(RGB_WITHBIAS, photos.gray))
    assert sorted(p.name for p in out.rglob("*") if p.is_file()) == ["a.png", "c.png"]


def test_run_takes_several_inputs_through_the_same_batch_path(photos: Photos, tmp_path: Path) -> None:
    for source in (photos.colour, photos.gray):
        (tmp_path / source.name).write_bytes(source.read_bytes())
    result = _invoke("run", "--weights", RGB_WITHBIAS, tmp_path / "c.png", tmp_path / "g.png", "--json")
    assert result.exit_code == 0, result.stderr
    assert [line.get("status") for line in _json_lines(result.stdout)] == ["ok", "ok", "done"]
    _assert_restored(tmp_path / "c_restored.png", _apply(RGB_WITHBIAS, photos.colour))
    _assert_restored(tmp_path / "g_restored.png", _apply(RGB_WITHBIAS, photos.gray))


def test_existing_outputs_are_refused_unless_skipped_or_overwritten(photos: Photos, tmp_path: Path) -> None:
    photo = tmp_path / "p.png"
    photo.write_bytes(photos.colour.read_bytes())
    existing = tmp_path / "p_derain.png"
    existing.write_bytes(b"keep me")
    refused = _invoke("derain", photo, "--weights", RGB_WITHBIAS)
    assert_one_line_error(refused, 2, str(existing), "--overwrite", "--skip-existing")
    skipped = _invoke("derain", photo, "--weights", RGB_WITHBIAS, "--skip-existing", "--json")
    assert skipped.exit_code == 0 and _json_lines(skipped.stdout)[0]["status"] == "skipped"
    assert existing.read_bytes() == b"keep me"
    assert _invoke("derain", photo, "--weights", RGB_WITHBIAS, "--overwrite").exit_code == 0
    _assert_restored(existing, _apply(RGB_WITHBIAS, photo))


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["-o", "-", "--json"], "both need stdout"),
        (["--overwrite", "--skip-existing"], "contradict"),
        (["--suffix", ""], "is an input and would be overwritten"),
        (["--max-memory", "lots"], "cannot read memory size 'lots'"),
    ],
)
def test_usage_errors_exit_2_with_one_line(photos: Photos, args: list[str], message: str) -> None:
    result = _invoke("derain", photos.colour, "--weights", RGB_WITHBIAS, *args)
    assert_one_line_error(result, 2, message)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["derain", "--tile", "5"], "--tile must be auto, 0 (whole image) or at least 8 pixels"),
        (["derain", "--precision", "fp8"], "precision must be one of"),
        (["denoise", "--sigma", "30"], "exist for sigma 15, 25, 50"),
        (["denoise", "--sigma", "25", "--model", "real_denoising"], "cannot be combined with --model"),
        (["derain", "--model", "no_such_model"], "unknown model 'no_such_model'"),
    ],
)
def test_bad_option_values_are_one_line_usage_errors(photos: Photos, args: list[str], message: str) -> None:
    assert_one_line_error(_invoke(*args, photos.colour), 2, message)
    assert _invoke("derain").exit_code == 2


def test_a_missing_checkpoint_is_one_line_and_exit_1(photos: Photos, tmp_path: Path) -> None:
    result = _invoke("derain", photos.colour, "--weights", tmp_path / "nope.pth", "-o", tmp_path / "o.png")
    assert_one_line_error(result, 1, "no checkpoint file", str(tmp_path / "nope.pth"))
    assert not (tmp_path / "o.png").exists()


def test_help_shows_examples_and_the_licence() -> None:
    result = _invoke("denoise", "--help")
    assert result.exit_code == 0
    assert "Examples" in result.stdout and "restore denoise shoot/ -r -o clean/" in result.stdout
    assert "non-commercial" in result.stdout


# ---------------------------------------------------------------- task defaults from the zoo


def _models_used(result) -> list[str]:
    return [line["model"] for line in _json_lines(result.stdout)[:-1]]


def test_denoise_picks_real_noise_for_colour_and_gaussian_for_gray_loading_each_once(
    photos: Photos, zoo: dict[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    folder = tmp_path / "in"
    folder.mkdir()
    for name, source in [("a", photos.colour), ("b", photos.gray), ("c", photos.colour), ("d", photos.gray)]:
        (folder / f"{name}.png").write_bytes(source.read_bytes())
    loads: list = []
    real_load = checkpoints.load_checkpoint
    monkeypatch.setattr(checkpoints, "load_checkpoint", lambda path, *a, **k: loads.append(path) or real_load(path, *a, **k))
    result = _invoke("denoise", folder, "-o", tmp_path / "out", "--json")
    assert result.exit_code == 0, result.stderr
    assert _models_used(result) == ["real_denoising", "gaussian_gray_denoising_blind"] * 2
    assert len(loads) == 2
    _assert_restored(tmp_path / "out" / "a.png", _apply(zoo["real_denoising"], photos.colour))
    _assert_restored(tmp_path / "out" / "b.png", _apply(zoo["gaussian_gray_denoising_blind"], photos.gray))
    other = _apply(zoo["gaussian_color_denoising_blind"], photos.colour).pixels
    assert np.abs(read_image(tmp_path / "out" / "a.png").pixels - other).max() > 2 / 255  # pixels tell models apart


@pytest.mark.parametrize(
    ("options", "colour", "gray"),
    [
        (["--model", "gaussian"], "gaussian_color_denoising_blind", "gaussian_gray_denoising_blind"),
        (["--sigma", "25"], "gaussian_color_denoising_sigma25", "gaussian_gray_denoising_sigma25"),
        (["--model", "deraining"], "deraining", "deraining"),
    ],
)
def test_denoise_model_options(photos: Photos, zoo: dict[str, Path], tmp_path: Path, options, colour, gray) -> None:
    result = _invoke("denoise", photos.colour, photos.gray, "-o", tmp_path, "--json", *options)
    assert result.exit_code == 0, result.stderr
    assert _models_used(result) == [colour, gray]
    _assert_restored(tmp_path / "c.png", _apply(zoo[colour], photos.colour))


@pytest.mark.parametrize(
    ("task", "model"),
    [("derain", "deraining"), ("deblur", "motion_deblurring"), ("defocus", "single_image_defocus_deblurring")],
)
def test_each_task_uses_its_official_model(photos: Photos, zoo: dict[str, Path], tmp_path: Path, task, model) -> None:
    photo = tmp_path / "p.png"
    photo.write_bytes(photos.colour.read_bytes())
    result = _invoke(task, photo, "--json")
    assert result.exit_code == 0, result.stderr
    assert _models_used(result) == [model]
    _assert_restored(tmp_path / f"p_{task}.png", _apply(zoo[model], photo))


def test_defocus_dual_pixel_restores_from_both_views(photos: Photos, zoo: dict[str, Path], tmp_path: Path) -> None:
    out = tmp_path / "sharp.png"
    result = _invoke("defocus", "--dual-pixel", photos.colour, photos.right, "-o", out, "--json")
    assert result.exit_code == 0, result.stderr
    assert _models_used(result) == [DUAL_PIXEL]
    _assert_restored(out, _apply(zoo[DUAL_PIXEL], photos.colour, photos.right))


def test_offline_without_the_model_cached_is_one_line_and_exit_1(photos: Photos, zoo: dict[str, Path], tmp_path: Path) -> None:
    result = _invoke("denoise", photos.colour, "--sigma", "50", "-o", tmp_path / "o.png", "--offline")
    assert_one_line_error(result, 1, "gaussian_color_denoising_sigma50", "offline", "restore models import")
