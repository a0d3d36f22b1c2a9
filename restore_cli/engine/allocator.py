"""What restore knows about glibc's malloc, in one place: huge pages for the whole process,
chosen before the interpreter starts, and recycling freed feature maps inside it.

A forward pass of the full model touches gigabytes of fresh feature maps. glibc's defaults
hand each big one out as a fresh mmap with 4 KiB pages, so every layer page-faults its output
into existence and zeroes it. Two settings fix that: the tunable ``glibc.malloc.hugetlb=1``
(read once, at process start, which is why the console script re-executes the interpreter
with it; see :func:`huge_page_environment`) and raised mmap/trim thresholds, set at run time
by :func:`reuse_freed_memory`. Imports nothing heavy: the launcher uses it before torch loads.
"""

from __future__ import annotations

import ctypes
import functools
import os
import sys
from collections.abc import Mapping

HUGE_PAGES_TUNABLE = "glibc.malloc.hugetlb=1"
THP_SETTING = "/sys/kernel/mm/transparent_hugepage/enabled"
_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3
_C_INT_MAX = 2**31 - 1


@functools.lru_cache(maxsize=None)
def _glibc() -> ctypes.CDLL | None:
    if not sys.platform.startswith("linux"):
        return None
    try:
        libc = ctypes.CDLL("libc.so.6")
        return libc if hasattr(libc, "mallopt") and hasattr(libc, "malloc_trim") else None
    except OSError:
        return None


def reuse_freed_memory() -> bool:
    """Make glibc keep freed feature maps for reuse instead of unmapping them.

    By default every allocation above 32 MiB is a fresh mmap, so each layer of a large
    forward pass page-faults its output into existence and zeroes it: 3-4
    million faults per 256x256 pass and a third or more of its time, growing faster than
    the pixels. With the thresholds raised, buffers are recycled and a second pass takes
    no faults. The threshold is the largest mallopt accepts (2 GiB), which still holds the
    widest map of the full model (510 channels, fp32) for a whole 1024 x 1024 image; with
    1 GiB, 1024 x 1024 ran 1.4x slower per pixel than 512 x 512. Process-wide; returns
    whether it took effect (glibc only).
    """
    libc = _glibc()
    if libc is None:
        return False
    return bool(libc.mallopt(_M_MMAP_THRESHOLD, _C_INT_MAX) and libc.mallopt(_M_TRIM_THRESHOLD, _C_INT_MAX))


def release_freed_memory() -> None:
    """Hand recycled buffers back to the OS, so RSS (which the tile budget is measured
    against) reflects what the process holds, not the last image's peak."""
    libc = _glibc()
    if libc is not None:
        libc.malloc_trim(0)



def huge_page_environment(environ: Mapping[str, str], thp_setting: str | None, libc: str | None) -> dict[str, str] | None:
    """The environment to re-run the CLI in so that malloc asks for 2 MiB pages, or ``None``
    when there is nothing to gain. Linux usually gives huge pages only to memory that asks
    for them (transparent_hugepage = ``madvise``), and glibc's malloc asks only with the
    tunable set. Nothing is gained without glibc, with huge pages ``never`` or already
    ``always``, with the tunable already set, or when ``RESTORE_HUGE_PAGES=0``."""
    if not (libc or "").startswith("glibc") or thp_setting is None or "[madvise]" not in thp_setting:
        return None
    tunables = environ.get("GLIBC_TUNABLES", "")
    if "glibc.malloc.hugetlb" in tunables or environ.get("RESTORE_HUGE_PAGES") == "0":
        return None
    return {**environ, "GLIBC_TUNABLES": ":".join(filter(None, (tunables, HUGE_PAGES_TUNABLE)))}


def this_machine_huge_page_environment() -> dict[str, str] | None:
    """:func:`huge_page_environment` for this process and machine."""
    try:
        libc = os.confstr("CS_GNU_LIBC_VERSION")
    except (AttributeError, ValueError, OSError):
        libc = None
    try:
        with open(THP_SETTING, encoding="ascii") as setting:
            thp = setting.read()
    except OSError:
        thp = None
    return huge_page_environment(os.environ, thp, libc)
