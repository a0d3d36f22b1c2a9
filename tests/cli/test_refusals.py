"""Commands that would surprise a user are refused, or reported once, before any work: an
output named like a file for many inputs, a rerun into a folder of outputs, a missing input,
a bad cached model, engine options that cannot work, folders with nothing to compare.

Each test runs the real command (tiny golden checkpoints, a private offline zoo) and checks
both what is said and that nothing was written.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from restore_cli.model import zoo as model_zoo
from tests.cli.test_tasks import RGB_WITHBIAS, Photos, _invoke, _use_zoo, one_thread, photos, zoo, zoo_cache  # noqa: F401
from tests.cli_assertions import assert_one_line_error

DATA = Path(__file__).parents[1] / "data"


def _files_below(folder: Path) -> dict[str, bytes]:
    return {str(path.relative_to(folder)): path.read_bytes() for path in sorted(folder.rglob("*")) if path.is_file()}


def _three_photos(photos: Photos, folder: Path) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    paths = [folder / f"{index}.png" for index in range(3)]
    for path in paths:
        path.write_bytes(photos.colour.read_bytes())
    return paths


@pytest.mark.parametrize("given", ["glob", "names"])
def test_several_inputs_into_an_output_named_like_a_file_is_a_usage_error(photos: Photos, tmp_path: Path, given: str) -> None:
    paths = _three_photos(photos, tmp_path / "three")
    inputs = [str(tmp_path / "three" / "*.png")] if given == "glob" else paths
    before = _files_below(tmp_path)
    result = _invoke("run", "--weights", RGB_WITHBIAS, *inputs, "-o", tmp_path / "many.jpg")
    assert_one_line_error(result, 2, "many.jpg looks like a file name", "give a folder (-o many/)")
    assert _files_below(tmp_path) == before and not (tmp_path / "many.jpg").exists()


def test_a_rerun_into_a_folder_of_outputs_is_one_line_and_restores_nothing(photos: Photos, tmp_path: Path) -> None:
    _three_photos(photos, tmp_path / "in")
    out = tmp_path / "out"
    assert _invoke("derain", tmp_path / "in", "-o", out, "--weights", RGB_WITHBIAS, "-q").exit_code == 0
    (out / "1.png").unlink()
    written = _files_below(out)
    result = _invoke("derain", tmp_path / "in", "-o", out, "--weights", RGB_WITHBIAS, "--json")
    assert_one_line_error(result, 2, "2 of the 3 outputs already exist", "--skip-existing", "--overwrite")
    assert result.stdout == "" and _files_below(out) == written
    single = _invoke("derain", tmp_path / "in" / "0.png", "-o", out / "0.png", "--weights", RGB_WITHBIAS)
    assert_one_line_error(single, 2, f"{out / '0.png'} already exists; pass --overwrite")


def test_a_missing_input_is_reported_as_missing_even_offline_without_the_model(
    photos: Photos, zoo: dict[str, Path], tmp_path: Path
) -> None:
    typo = tmp_path / "holiday.png"
    result = _invoke("denoise", typo, "--sigma", "50", "--offline")  # sigma 50 is not in the test cache
    assert_one_line_error(result, 1, f"{typo}: no such file")
    assert "cache" not in result.stderr


def _broken_cache(zoo_cache, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, name: str) -> None:
    """A copy of the test zoo in which ``name``'s cached checkpoint was damaged after download."""
    hf_home, entries = zoo_cache
    shutil.copytree(hf_home, tmp_path / "hf")
    _use_zoo(monkeypatch, tmp_path / "hf", entries)
    cached = model_zoo.cached_path(name)
    cached.write_bytes(cached.read_bytes()[:1000])


def test_a_bad_cached_model_is_reported_once_after_the_missing_inputs_and_before_any_image(
    photos: Photos, zoo_cache, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    paths = _three_photos(photos, tmp_path / "in")
    _broken_cache(zoo_cache, tmp_path, monkeypatch, "deraining")
    result = _invoke("derain", tmp_path / "in" / "typo.png", *paths, "-o", tmp_path / "out")
    assert result.exit_code == 1, result.output
    errors = [line for line in result.stderr.splitlines() if line.startswith("error: ")]
    assert errors[0] == f"error: {tmp_path / 'in' / 'typo.png'}: no such file; check the path"
    assert len(errors) == 2 and errors[1].startswith("error: deraining: checksum mismatch")
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize(
    ("options", "message"),
    [
        (["--tile", "16", "--overlap", "32"], "--overlap 32 must be smaller than --tile 16"),
        (["--max-memory", "10MB"], "--max-memory 10MB is less than restore needs"),
        (["--device", "tpu"], "--device tpu: use auto, cpu, cuda, cuda:N or mps"),
    ],
)
def test_engine_options_that_cannot_work_are_usage_errors(photos: Photos, tmp_path: Path, options, message: str) -> None:
    result = _invoke("derain", photos.colour, "-o", tmp_path / "o.png", "--weights", RGB_WITHBIAS, *options)
    assert_one_line_error(result, 2, message)
    assert "Traceback" not in result.output and not (tmp_path / "o.png").exists()


def test_eval_of_folders_without_common_names_is_one_line(tmp_path: Path) -> None:
    image = sorted((DATA / "rain100L" / "target").iterdir())[0]
    for folder, names in (("pred", ["a", "b"]), ("gt", ["c", "d"])):
        (tmp_path / folder).mkdir()
        for name in names:
            shutil.copy(image, tmp_path / folder / f"{name}.png")
    result = _invoke("eval", tmp_path / "pred", tmp_path / "gt")
    assert_one_line_error(result, 2, f"no file names in common between {tmp_path / 'pred'} and {tmp_path / 'gt'}")
    assert result.stdout == ""


def test_gray_photos_never_need_the_colour_model_that_is_loaded_up_front(
    photos: Photos, zoo_cache, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _broken_cache(zoo_cache, tmp_path, monkeypatch, "real_denoising")
    model_zoo.cached_path("real_denoising").unlink()
    result = _invoke("denoise", photos.gray, "-o", tmp_path / "clean.png", "--offline", "--quiet")
    assert result.exit_code == 0 and result.stderr == "", result.output
    assert (tmp_path / "clean.png").exists()
