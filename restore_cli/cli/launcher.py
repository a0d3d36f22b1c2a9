"""The console script's first step: run the CLI where malloc hands out huge pages.

glibc reads its huge-page tunable once, at process start, so the launcher re-executes the
interpreter with it (one interpreter start, tens of milliseconds) before anything heavy is
imported; :mod:`restore_cli.engine.allocator` says when that helps and why. Nothing is
re-executed where it cannot help or when ``RESTORE_HUGE_PAGES=0``.
"""

from __future__ import annotations

import os
import sys

from restore_cli.engine.allocator import this_machine_huge_page_environment


def main() -> None:
    environment = this_machine_huge_page_environment()
    if environment is not None:
        try:
            os.execve(sys.executable, [sys.executable, *sys.orig_argv[1:]], environment)
        except OSError:
            pass  # run here, with ordinary pages
    from restore_cli.cli.app import entry_point

    entry_point()
