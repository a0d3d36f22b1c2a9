"""The console script's first and last steps: run the CLI where malloc hands out huge
pages, and leave without unloading torch.

glibc reads its huge-page tunable once, at process start, so the launcher re-executes the
interpreter with it (one interpreter start, tens of milliseconds) before anything heavy is
imported; :mod:`restore_cli.engine.allocator` says when that helps and why. Nothing is
re-executed where it cannot help or when ``RESTORE_HUGE_PAGES=0``.

At the end, once torch is loaded, tearing the interpreter down costs about half a CPU
second (`python -c "import torch"` took 2.95 CPU s, 2.45 s ending in ``os._exit``, on an
AMD EPYC), as much as the CLI's own imports, in every `restore` process. The launcher
skips it when nothing is left to clean up: output flushed, no other thread running, no
Ray (whose exit handlers stop the cluster it started).
"""

from __future__ import annotations

import os
import sys
import threading

from restore_cli.engine.allocator import this_machine_huge_page_environment


def main() -> None:
    environment = this_machine_huge_page_environment()
    if environment is not None:
        try:
            os.execve(sys.executable, [sys.executable, *sys.orig_argv[1:]], environment)
        except OSError:
            pass  # run here, with ordinary pages
    from restore_cli.cli.app import entry_point

    try:
        entry_point()
    except SystemExit as finished:
        if isinstance(finished.code, (int, type(None))) and _nothing_to_clean_up():
            sys.stdout.flush()
            sys.stderr.flush()
            os._exit(finished.code or 0)
        raise


def _nothing_to_clean_up() -> bool:
    """Whether ending without the interpreter's teardown loses nothing and saves time: torch
    is loaded (else the teardown is cheap), no other Python thread is running and Ray, which
    stops its cluster from an exit handler, was never imported."""
    return "torch" in sys.modules and "ray" not in sys.modules and threading.active_count() == 1
