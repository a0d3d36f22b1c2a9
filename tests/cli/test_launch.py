"""The launcher re-runs the CLI with malloc's huge pages only where that changes something."""

from __future__ import annotations

import subprocess
import sys

import pytest

from restore_cli.engine.allocator import HUGE_PAGES_TUNABLE, huge_page_environment

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
