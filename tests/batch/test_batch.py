"""A batch without a real network: planning (naming, folders, globs, refusals), the per-job
step (pipeline) and the threaded local executor, driven by stand-in models that record what
they are given."""

from __future__ import annotations

import dataclasses
import io
import json
import re
import threading
from pathlib import Path

import numpy as np
import pytest
import torch

from restore_cli.batch import executor, local, reporting
from restore_cli.batch.models import Model, ModelChoice, Models
from restore_cli.batch.pipeline import Pipeline
from restore_cli.batch.planning import STDIO, Job, Naming, plan_jobs
from restore_cli.errors import InputError, UsageError
from restore_cli.io.decode import read_image
from restore_cli.io.encode import write_image
from restore_cli.io.image import DecodedImage


def _image(channels: int = 3, height: int = 8, width: int = 16, seed: int = 0) -> DecodedImage:
    pixels = np.random.default_rng(seed).random((height, width, channels), dtype=np.float32)
    return DecodedImage(pixels, None, 8, None, None, "PNG")


def _save(path: Path, channels: int = 3, seed: int = 0) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    write_image(_image(channels, seed=seed), path)
    return path


def _invert(name: str = "invert", in_channels: int = 3, calls: list | None = None) -> Model:
    """A model whose output is easy to predict: 1 - x (first 3 channels for a 6-channel input)."""

    def restore(tensor: torch.Tensor, progress) -> torch.Tensor:
        if calls is not None:
            calls.append(tuple(tensor.shape))
        if progress is not None:
            progress(1, 2)
            progress(2, 2)
        return 1 - tensor[:, :3] if in_channels == 6 else 1 - tensor

    return Model(name, in_channels, restore)


def _pipeline(model: Model, **kwargs) -> Pipeline:
    return Pipeline(Models(ModelChoice.single(model.name), lambda spec: model), **kwargs)


def _outputs(jobs: list[Job]) -> list[str | None]:
    return [job.output for job in jobs]


# ---------------------------------------------------------------- planning


def test_a_file_without_output_is_written_next_to_it_with_the_task_in_its_name(tmp_path: Path) -> None:
    photo = _save(tmp_path / "holiday.jpg")
    (job,) = plan_jobs([str(photo)], Naming("denoise"))
    assert job.output == str(tmp_path / "holiday_denoise.jpg")
    (job,) = plan_jobs([str(photo)], Naming("denoise", format="png", suffix=".clean"))
    assert job.output == str(tmp_path / "holiday.clean.png")


def test_a_folder_takes_its_images_only_and_recursive_mirrors_the_tree(tmp_path: Path) -> None:
    _save(tmp_path / "in" / "a.png")
    _save(tmp_path / "in" / "sub" / "deeper" / "b.tif")
    (tmp_path / "in" / "notes.txt").write_text("not an image")
    _save(tmp_path / "in" / ".a.png.x1.tmp.png")  # hidden: e.g. an interrupted write
    out = tmp_path / "out"
    flat = plan_jobs([str(tmp_path / "in")], Naming("derain", output=str(out)))
    assert _outputs(flat) == [str(out / "a.png")]
    tree = plan_jobs([str(tmp_path / "in")], Naming("derain", output=str(out), recursive=True))
    assert _outputs(tree) == [str(out / "a.png"), str(out / "sub" / "deeper" / "b.tif")]


def test_a_glob_expands_to_images_and_recursive_mirrors_below_its_plain_part(tmp_path: Path) -> None:
    _save(tmp_path / "shoot" / "day1" / "x.png")
    _save(tmp_path / "shoot" / "day2" / "y.png")
    out = tmp_path / "out"
    pattern = str(tmp_path / "shoot" / "**" / "*.png")
    jobs = plan_jobs([pattern], Naming("deblur", output=str(out), recursive=True))
    assert _outputs(jobs) == [str(out / "day1" / "x.png"), str(out / "day2" / "y.png")]


@pytest.mark.usefixtures("flag_words")
def test_nothing_found_is_a_failed_job_not_a_crash(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    jobs = plan_jobs([str(tmp_path / "empty"), str(tmp_path / "*.webp")], Naming("denoise"))
    assert [job.output for job in jobs] == [None, None]
    assert jobs[0].problem == f"{tmp_path / 'empty'}: no images in this folder"
    assert "no image files match" in (jobs[1].problem or "")


def test_a_rerun_does_not_restore_its_own_earlier_outputs(tmp_path: Path) -> None:
    _save(tmp_path / "a.png")
    _save(tmp_path / "a_denoise.png")  # written by an earlier run
    _save(tmp_path / "clean" / "b.png")  # an output folder inside the input folder
    beside = plan_jobs([str(tmp_path)], Naming("denoise", existing="overwrite"))
    assert [job.sources for job in beside] == [(str(tmp_path / "a.png"),)]
    into = plan_jobs([str(tmp_path)], Naming("denoise", output=str(tmp_path / "clean"), recursive=True))
    assert [Path(job.sources[0]).name for job in into] == ["a.png", "a_denoise.png"]


def test_two_inputs_mapping_to_one_output_are_refused(tmp_path: Path) -> None:
    one, two = _save(tmp_path / "one" / "x.png"), _save(tmp_path / "two" / "x.png")
    with pytest.raises(UsageError, match="would both be written to"):
        plan_jobs([str(one.parent), str(two.parent)], Naming("denoise", output=str(tmp_path / "out")))
    with pytest.raises(UsageError, match="would both be written to"):
        plan_jobs([str(one), str(tmp_path / "one" / "." / "x.png")], Naming("denoise"))


def test_an_input_is_never_an_output_even_with_overwrite(tmp_path: Path) -> None:
    photo = _save(tmp_path / "x.png")
    with pytest.raises(UsageError, match="is an input and would be overwritten"):
        plan_jobs([str(photo)], Naming("denoise", suffix="", existing="overwrite"))
    with pytest.raises(UsageError, match="is an input"):
        plan_jobs([str(photo)], Naming("denoise", output=str(tmp_path), existing="overwrite"))


@pytest.mark.usefixtures("flag_words")
def test_existing_outputs_are_refused_skipped_or_replaced_as_asked(tmp_path: Path) -> None:
    photo = _save(tmp_path / "x.png")
    _save(tmp_path / "x_denoise.png")
    with pytest.raises(UsageError, match="x_denoise.png already exists; pass --overwrite .* or --skip-existing"):
        plan_jobs([str(photo)], Naming("denoise"))
    (skipped,) = plan_jobs([str(photo)], Naming("denoise", existing="skip"))
    assert skipped.skip and skipped.problem is None
    (replaced,) = plan_jobs([str(photo)], Naming("denoise", existing="overwrite"))
    assert not replaced.skip and replaced.problem is None


@pytest.mark.usefixtures("flag_words")
def test_existing_outputs_are_counted_in_one_refusal(tmp_path: Path) -> None:
    photos = [_save(tmp_path / "in" / f"{index}.png") for index in range(4)]
    for photo in photos[:3]:
        _save(tmp_path / "out" / photo.name)
    with pytest.raises(UsageError, match=r"3 of the 4 outputs already exist \(the first is .*0.png\); pass --skip-existing .* or --overwrite"):
        plan_jobs([str(tmp_path / "in")], Naming("derain", output=str(tmp_path / "out")))


def test_missing_inputs_are_found_while_planning(tmp_path: Path) -> None:
    present = _save(tmp_path / "a.png")
    jobs = plan_jobs([str(present), str(tmp_path / "typo.png")], Naming("derain", output=str(tmp_path / "out")))
    assert [job.problem for job in jobs] == [None, f"{tmp_path / 'typo.png'}: no such file; check the path"]
    (pair,) = plan_jobs([str(present), str(tmp_path / "right.png")], Naming("defocus"), views=2)
    assert pair.problem == f"{tmp_path / 'right.png'}: no such file; check the path"


@pytest.mark.usefixtures("flag_words")
@pytest.mark.parametrize("output", ["many.jpg", "many.PNG", "clean.tif"])
def test_several_inputs_and_an_output_named_like_a_file_are_refused(tmp_path: Path, output: str) -> None:
    a, b = _save(tmp_path / "a.png"), _save(tmp_path / "b.png")
    with pytest.raises(UsageError, match=f"-o .*{output} looks like a file name, but 2 inputs need an output folder"):
        plan_jobs([str(a), str(b)], Naming("derain", output=str(tmp_path / output)))
    with pytest.raises(UsageError, match="looks like a file name, but a folder or pattern needs an output folder"):
        plan_jobs([str(tmp_path / "a*.png")], Naming("derain", output=str(tmp_path / output)))
    folder = plan_jobs([str(a), str(b)], Naming("derain", output=f"{tmp_path / output}/"))
    assert _outputs(folder) == [str(tmp_path / output / "a.png"), str(tmp_path / output / "b.png")]


def test_stdout_and_stdin_take_exactly_one_image(tmp_path: Path) -> None:
    a, b = _save(tmp_path / "a.png"), _save(tmp_path / "b.png")
    assert _outputs(plan_jobs([STDIO], Naming("derain"))) == [STDIO]
    assert _outputs(plan_jobs([str(a)], Naming("derain", output=STDIO))) == [STDIO]
    with pytest.raises(UsageError, match="one image to stdout"):
        plan_jobs([str(a), str(b)], Naming("derain", output=STDIO))
    with pytest.raises(UsageError, match="must be the only input"):
        plan_jobs([STDIO, str(a)], Naming("derain", output=str(tmp_path / "out")))
    with pytest.raises(UsageError, match="is a file"):
        plan_jobs([str(a), str(b)], Naming("derain", output=str(a)))


def test_an_output_file_needs_a_known_format(tmp_path: Path) -> None:
    photo = _save(tmp_path / "a.png")
    with pytest.raises(UsageError, match="unknown image extension"):
        plan_jobs([str(photo)], Naming("derain", output=str(tmp_path / "restored.raw")))
    (job,) = plan_jobs([str(photo)], Naming("derain", output=str(tmp_path / "restored.raw"), format="png"))
    assert job.output == str(tmp_path / "restored.raw")


def test_dual_pixel_views_come_in_pairs_named_after_the_left_view(tmp_path: Path) -> None:
    left, right = _save(tmp_path / "L.png"), _save(tmp_path / "R.png")
    (job,) = plan_jobs([str(left), str(right)], Naming("defocus"), views=2)
    assert job.sources == (str(left), str(right)) and job.output == str(tmp_path / "L_defocus.png")
    with pytest.raises(UsageError, match="groups of 2"):
        plan_jobs([str(left)], Naming("defocus"), views=2)
    with pytest.raises(UsageError, match="is an input"):
        plan_jobs([str(left), str(right)], Naming("defocus", output=str(right), existing="overwrite"), views=2)


# ---------------------------------------------------------------- one job


def test_process_one_restores_and_writes_keeping_the_image_metadata(tmp_path: Path) -> None:
    source = tmp_path / "a.png"
    original = _image(seed=3)
    write_image(original, source)
    (job,) = plan_jobs([str(source)], Naming("denoise"))
    result = _pipeline(_invert()).process_one(job)
    assert (result.status, result.model, result.width, result.height, result.tiles) == ("ok", "invert", 16, 8, 2)
    written = read_image(job.output)
    assert np.abs(written.pixels - (1 - read_image(source).pixels)).max() < 1e-6


@pytest.mark.usefixtures("flag_words")
def test_process_one_turns_every_failure_into_a_result(tmp_path: Path) -> None:
    def broken(tensor: torch.Tensor, progress) -> torch.Tensor:
        raise RuntimeError("kaput\nsecond line")

    (job,) = plan_jobs([str(_save(tmp_path / "a.png"))], Naming("denoise"))
    result = _pipeline(Model("broken", 3, broken)).process_one(job)
    assert result.status == "failed" and result.output == job.output
    assert result.error == f"{job.sources[0]}: unexpected RuntimeError: kaput (rerun with --debug for the traceback)"
    missing = Job((str(tmp_path / "gone.png"),), str(tmp_path / "gone_x.png"))
    assert _pipeline(_invert()).process_one(missing).error == f"{tmp_path / 'gone.png'}: no such file; check the path"
    assert not Path(job.output).exists() and not Path(missing.output).exists()


def test_gray_photos_go_through_rgb_models_and_come_back_gray(tmp_path: Path) -> None:
    calls: list = []
    (job,) = plan_jobs([str(_save(tmp_path / "g.png", channels=1))], Naming("derain"))
    assert _pipeline(_invert(calls=calls)).process_one(job).status == "ok"
    assert calls == [(1, 3, 8, 16)]
    written = read_image(job.output)
    assert written.channels == 1
    assert np.abs(written.pixels - (1 - read_image(job.sources[0]).pixels)).max() <= 1 / 255


@pytest.mark.usefixtures("flag_words")
def test_a_gray_model_refuses_a_colour_photo_naming_both(tmp_path: Path) -> None:
    (job,) = plan_jobs([str(_save(tmp_path / "c.png"))], Naming("denoise"))
    result = _pipeline(_invert("gray_denoiser", in_channels=1)).process_one(job)
    assert result.status == "failed" and not Path(job.output).exists()
    assert result.error == (
        f"{job.sources[0]}: is a colour image but gray_denoiser is a grayscale model; use a colour model "
        "(for denoising, the default or --model gaussian picks one per image)"
    )


def test_a_dual_pixel_model_gets_both_views_and_refuses_a_single_image(tmp_path: Path) -> None:
    calls: list = []
    left, right = _save(tmp_path / "L.png", seed=1), _save(tmp_path / "R.png", channels=1, seed=2)
    (pair,) = plan_jobs([str(left), str(right)], Naming("defocus"), views=2)
    assert _pipeline(_invert(in_channels=6, calls=calls)).process_one(pair).status == "ok"
    assert calls == [(1, 6, 8, 16)]
    assert np.abs(read_image(pair.output).pixels - (1 - read_image(left).pixels)).max() < 1e-6
    (single,) = plan_jobs([str(left)], Naming("defocus", existing="overwrite"))
    assert "needs two views" in (_pipeline(_invert(in_channels=6)).process_one(single).error or "")


def test_views_of_different_sizes_are_refused(tmp_path: Path) -> None:
    left = _save(tmp_path / "L.png")
    write_image(_image(width=24), tmp_path / "R.png")
    (pair,) = plan_jobs([str(left), str(tmp_path / "R.png")], Naming("defocus"), views=2)
    assert "the views differ in size (16x8 vs 24x8)" in (_pipeline(_invert(in_channels=6)).process_one(pair).error or "")


def test_stdin_to_stdout(tmp_path: Path) -> None:
    source = _save(tmp_path / "a.png", seed=5)
    sink = io.BytesIO()
    pipeline = _pipeline(_invert(), stdin=io.BytesIO(source.read_bytes()), stdout=sink)
    (job,) = plan_jobs([STDIO], Naming("derain"))
    assert pipeline.process_one(job).status == "ok"
    assert np.abs(read_image(io.BytesIO(sink.getvalue())).pixels - (1 - read_image(source).pixels)).max() < 1e-6


def test_models_are_loaded_once_per_spec_and_a_failed_load_is_not_retried() -> None:
    loads: list = []

    def load(spec):
        loads.append(spec)
        if spec == "missing":
            raise InputError("missing is not cached")
        return _invert(spec)

    models = Models(ModelChoice("colour", "gray"), load)
    for channels in (3, 1, 3, 1):
        models.for_image(_image(channels))
    for _ in range(2):
        with pytest.raises(InputError):
            models.get("missing")
    assert loads == ["colour", "gray", "missing"]


# ---------------------------------------------------------------- the executor


def _folder_jobs(tmp_path: Path, count: int) -> list[Job]:
    for index in range(count):
        _save(tmp_path / "in" / f"{index:02d}.png", seed=index)
    return plan_jobs([str(tmp_path / "in")], Naming("denoise", output=str(tmp_path / "out")))


class _WatchedPipeline(Pipeline):
    """Records which stage ran on which thread, and when the second image finished decoding."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.threads: dict[str, set[str]] = {"read": set(), "write": set()}
        self.second_read = threading.Event()

    def read(self, job):
        outcome = super().read(job)
        self.threads["read"].add(threading.current_thread().name)
        if job.sources[0].endswith("01.png"):
            self.second_read.set()
        return outcome

    def write(self, restored):
        self.threads["write"].add(threading.current_thread().name)
        return super().write(restored)


def test_reading_overlaps_inference_and_results_keep_the_job_order(tmp_path: Path) -> None:
    jobs = _folder_jobs(tmp_path, 5)
    overlapped: list[bool] = []

    def restore(tensor: torch.Tensor, progress) -> torch.Tensor:
        if not overlapped:  # while the first image is being restored, the next one is decoded
            overlapped.append(pipeline.second_read.wait(timeout=10))
        return 1 - tensor

    pipeline = _WatchedPipeline(Models(ModelChoice.single("m"), lambda spec: Model("m", 3, restore)))
    reported: list = []
    results = local.run_local(jobs, pipeline, reported.append)
    assert overlapped == [True]
    assert [r.input for r in results] == [job.name for job in jobs] and reported == results
    assert all(r.status == "ok" for r in results)
    main = threading.current_thread().name
    assert main not in pipeline.threads["read"] | pipeline.threads["write"]


def _reporter(display: reporting.Display = "quiet", log_tiles: bool = False) -> tuple[reporting.Reporter, io.StringIO, io.StringIO]:
    stdout, stderr = io.StringIO(), io.StringIO()
    return reporting.Reporter(stdout, stderr, command="derain", json=True, display=display, log_tiles=log_tiles), stdout, stderr


def _json(stdout: io.StringIO) -> list[dict]:
    return [json.loads(line) for line in stdout.getvalue().splitlines()]


def test_an_interrupt_stops_the_batch_with_130_leaving_only_whole_files(tmp_path: Path) -> None:
    jobs = _folder_jobs(tmp_path, 6)
    seen: list = []

    def restore(tensor: torch.Tensor, progress) -> torch.Tensor:
        seen.append(1)
        if len(seen) == 3:
            raise KeyboardInterrupt
        return 1 - tensor

    reporter, stdout, stderr = _reporter()
    pipeline = Pipeline(Models(ModelChoice.single("m"), lambda spec: Model("m", 3, restore)))
    assert executor.execute(jobs, local.LocalExecutor(pipeline), reporter) == reporting.EXIT_INTERRUPTED
    written = sorted(path.name for path in (tmp_path / "out").iterdir())
    assert written == ["00.png", "01.png"]  # whole files only: no temp files, nothing half-written
    assert all(read_image(tmp_path / "out" / name).width == 16 for name in written)
    assert "interrupted after 2 image(s)" in stderr.getvalue()
    summary = _json(stdout)[-1]
    assert summary | {"seconds": 0} == {
        "schema": 1, "type": "summary", "command": "derain", "status": "interrupted", "exit_code": 130,
        "total": 6, "ok": 2, "skipped": 0, "failed": 0, "seconds": 0,
    }  # fmt: skip


def test_execute_reports_json_lines_errors_and_exit_code(tmp_path: Path) -> None:
    jobs = _folder_jobs(tmp_path, 2) + [Job((str(tmp_path / "nope.png"),), str(tmp_path / "out" / "nope.png"))]
    reporter, stdout, stderr = _reporter()
    assert executor.execute(jobs, local.LocalExecutor(_pipeline(_invert())), reporter) == reporting.EXIT_FAILED
    lines = _json(stdout)
    assert [(line["schema"], line["type"], line["status"]) for line in lines] == [
        (1, "image", "ok"), (1, "image", "ok"), (1, "image", "failed"), (1, "summary", "failed"),
    ]  # fmt: skip
    assert lines[0]["size"] == {"width": 16, "height": 8} and lines[0]["model"] == "invert"
    assert lines[3] | {"seconds": 0} == {
        "schema": 1, "type": "summary", "command": "derain", "status": "failed", "exit_code": 1,
        "total": 3, "ok": 2, "skipped": 0, "failed": 1, "seconds": 0,
    }  # fmt: skip
    assert stderr.getvalue() == f"error: {tmp_path / 'nope.png'}: no such file; check the path\n"


def test_a_log_gets_a_line_per_image_and_the_summary_and_tile_counts_end_their_line(tmp_path: Path) -> None:
    jobs = _folder_jobs(tmp_path, 2)
    seen: list = []

    def restore(tensor: torch.Tensor, progress) -> torch.Tensor:
        seen.append(1)
        for done in range(1, 4):
            progress(done, 4)  # the second image is interrupted after 3 of its 4 tiles
            if len(seen) == 2 and done == 3:
                raise KeyboardInterrupt
        progress(4, 4)
        return 1 - tensor

    reporter, _, stderr = _reporter(display="lines", log_tiles=True)
    pipeline = Pipeline(Models(ModelChoice.single("m"), lambda spec: Model("m", 3, restore)))
    assert executor.execute(jobs, local.LocalExecutor(pipeline), reporter) == reporting.EXIT_INTERRUPTED
    lines = stderr.getvalue().split("\n")
    assert lines[-2:] == ["interrupted after 1 image(s); every file written is complete", ""]
    image = re.compile(rf"\[1/2\] {re.escape(jobs[0].sources[0])} -> {re.escape(str(jobs[0].output))} \(\d+\.\d s\)")
    tiles = ["\rtiles 1/4\rtiles 2/4\rtiles 3/4\rtiles 4/4", "\rtiles 1/4\rtiles 2/4\rtiles 3/4"]
    assert [line for line in lines[:-2] if not image.fullmatch(line)] == tiles  # the first image's line may come after the second's tiles
    assert len(lines) == 5


def test_a_quiet_finished_batch_still_ends_its_json_with_a_summary(tmp_path: Path) -> None:
    jobs = _folder_jobs(tmp_path, 2)
    reporter, stdout, stderr = _reporter()
    assert executor.execute(jobs, local.LocalExecutor(_pipeline(_invert())), reporter) == reporting.EXIT_OK
    assert _json(stdout)[-1]["status"] == "done" and stderr.getvalue() == ""
    logged, _, log = _reporter(display="lines")
    skipped = [dataclasses.replace(job, skip=True) for job in jobs]
    assert executor.execute(skipped, local.LocalExecutor(_pipeline(_invert())), logged) == reporting.EXIT_OK
    lines = log.getvalue().splitlines()
    assert lines[:2] == [f"[{index}/2] {job.sources[0]}: skipped, {job.output} exists" for index, job in enumerate(skipped, 1)]
    assert len(lines) == 3 and re.fullmatch(r"0 restored, 2 skipped, 0 failed in \d+\.\d s", lines[2])
