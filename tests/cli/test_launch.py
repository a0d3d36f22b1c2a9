"""The launcher re-runs the CLI with malloc's huge pages only where that changes something, and
skips the interpreter's teardown only where nothing is left to clean up."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from PIL import Image

from restore_cli.cli import launcher
from restore_cli.engine.allocator import HUGE_PAGES_TUNABLE, huge_page_environment

WEIGHTS = Path(__file__).parents[1] / "data" / "golden" / "tiny_rgb_withbias.pth"

MADVISE = "always [madvise] never\n"


def test_glibc_with_madvise_huge_pages_gets_the_tunable_added_to_the_users() -> None:
    assert huge_page_environment({"A": "1"}, MADVISE, "glibc 2.36") == {"A": "1", "GLIBC_TUNABLES": HUGE_PAGES_TUNABLE}
    added = huge_page_environment({"GLIBC_TUNABLES": "glibc.malloc.arena_max=2"}, MADVISE, "glibc 2.36")
    assert added == {"GLIBC_TUNABLES": f"glibc.malloc.arena_max=2:{HUGE_PAGES_TUNABLE}"}


@pytest.mark.parametrize(
    ("environ", "thp", "libc"),
    [
        ({}, MADVISE, None),  # musl, macOS, Windows
        ({}, "[always] madvise never\n", "glibc 2.36"),  # every page may be huge already
        ({}, "always madvise [never]\n", "glibc 2.36"),
        ({}, None, "glibc 2.36"),  # no transparent huge pages at all
        ({"GLIBC_TUNABLES": "glibc.malloc.hugetlb=0"}, MADVISE, "glibc 2.36"),  # the user decided
        ({"RESTORE_HUGE_PAGES": "0"}, MADVISE, "glibc 2.36"),
    ],
)
def test_nothing_is_re_run_where_it_cannot_help(environ: dict, thp: str | None, libc: str | None) -> None:
    assert huge_page_environment(environ, thp, libc) is None


def test_the_re_run_cli_keeps_its_arguments_stdin_and_exit_code() -> None:
    done = subprocess.run([sys.executable, "-m", "restore_cli", "run", "--weights", "x.pth", "--files-from", "-"],
                          input=b"", capture_output=True, timeout=120)
    assert done.returncode == 2
    assert done.stderr.decode().startswith("error: Missing argument 'INPUT...' or --files-from FILE")


def test_a_run_that_ends_without_the_teardown_still_writes_everything_and_its_exit_code(tmp_path) -> None:
    """With torch loaded the launcher leaves through os._exit: stdout, stderr, the output
    file and a failure's exit code must all be there as after a normal exit."""
    good, bad = tmp_path / "good.png", tmp_path / "bad.png"
    Image.new("RGB", (40, 30), (120, 60, 30)).save(good)
    bad.write_bytes(b"not a png")
    done = subprocess.run([sys.executable, "-m", "restore_cli", "run", "--weights", str(WEIGHTS), str(good), str(bad),
                           "-o", str(tmp_path / "out"), "--json"], capture_output=True, text=True, timeout=300)

    assert done.returncode == 1, done.stderr
    lines = [json.loads(line) for line in done.stdout.splitlines()]
    assert [line.get("status") for line in lines[:2]] == ["ok", "failed"]
    assert (lines[-1]["type"], lines[-1]["exit_code"], lines[-1]["ok"], lines[-1]["failed"]) == ("summary", 1, 1, 1)
    assert (tmp_path / "out" / "good.png").is_file()
    assert "bad.png" in done.stderr


@pytest.mark.parametrize(("modules", "threads", "expected"), [
    ({"torch"}, 1, True),
    (set(), 1, False),  # no torch: the teardown is cheap, let it run
    ({"torch", "ray"}, 1, False),  # Ray stops its cluster from an exit handler
    ({"torch"}, 2, False),  # another thread is still working
])
def test_the_teardown_is_skipped_only_when_nothing_is_left_to_clean_up(monkeypatch, modules, threads, expected) -> None:
    monkeypatch.setattr(launcher.sys, "modules", {name: object() for name in modules})
    monkeypatch.setattr(launcher.threading, "active_count", lambda: threads)

    assert launcher._nothing_to_clean_up() is expected
