"""How many threads torch computes with: one per core this process may use, less the cores
other work keeps busy.

torch's own default is one thread per physical core. That is right on an idle machine, but
where other processes already keep cores busy, every OpenMP barrier waits for a thread the
kernel has descheduled: on 2 cores shared with other work, a batch took 5x longer with 2
threads than with 1 (benchmarks/README.md, "Threads"). So the default subtracts the cores
that other processes used while this one started, measured from the kernel's CPU counters
(``/proc/stat``) over the interval between :func:`sample` and :func:`default_threads` (the
command's start-up, torch's import included) and net of this process's own CPU time. Where
the counters are unavailable (not Linux), the 1-minute load average stands in. An explicit
``OMP_NUM_THREADS`` is the user's choice and is kept.

Imports nothing heavy: the command line samples the counters before torch loads.
"""

from __future__ import annotations

import logging
import math
import os
import time
from dataclasses import dataclass
from pathlib import Path

logger = logging.getLogger(__name__)
_STAT = Path("/proc/stat")
_IDLE_FIELDS = (3, 4)
"""idle and iowait, among the `cpuN` line's user nice system idle iowait irq softirq steal fields."""
_BUSY_FIELDS = 8
"""The first eight fields; guest time is already counted in user time. Steal (time the
hypervisor gave to other machines) counts as busy: a thread waiting on it stalls a barrier too."""
_SHORTEST = 0.05
"""Seconds: a shorter interval says too little about the load; the load average is used instead."""


@dataclass(frozen=True)
class CpuSample:
    """The CPU counters at one moment: wall time, this process's CPU time, and the busy
    seconds of each CPU this process may run on (None where the kernel does not say)."""

    wall: float
    own: float
    busy: float | None


def affinity_cpus() -> int:
    """CPUs this process may run on (its affinity set)."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def _cgroup_quota() -> float | None:
    """CPUs' worth of time a cgroup v2 `cpu.max` allows (a container's --cpus), if any."""
    try:
        limit, period = Path("/sys/fs/cgroup/cpu.max").read_text().split()[:2]
    except (OSError, ValueError):
        return None
    return None if limit == "max" else int(limit) / int(period)


def sample() -> CpuSample:
    """The counters now, to be compared with a later moment by :func:`busy_cores`."""
    times = os.times()
    return CpuSample(time.monotonic(), times.user + times.system, _busy_seconds())


def _busy_seconds() -> float | None:
    """Busy seconds so far of the CPUs in this process's affinity set."""
    try:
        lines = _STAT.read_text().splitlines()
        mine = os.sched_getaffinity(0)
    except (OSError, AttributeError):
        return None
    ticks = os.sysconf("SC_CLK_TCK")
    busy = 0
    for line in lines:
        name, *fields = line.split()
        if name.startswith("cpu") and name[3:].isdigit() and int(name[3:]) in mine:
            counts = [int(field) for field in fields[:_BUSY_FIELDS]]
            busy += sum(counts) - sum(counts[index] for index in _IDLE_FIELDS)
    return busy / ticks


def busy_cores(since: CpuSample) -> float | None:
    """Cores kept busy by other processes since ``since``: the CPUs' busy time less this
    process's own, per second. The load average where the counters say too little."""
    now = sample()
    interval = now.wall - since.wall
    if now.busy is not None and since.busy is not None and interval >= _SHORTEST:
        return max(0.0, (now.busy - since.busy - (now.own - since.own)) / interval)
    try:
        return os.getloadavg()[0]
    except (AttributeError, OSError):
        return None


def default_threads(since: CpuSample) -> int:
    """The number of torch threads to use: ``OMP_NUM_THREADS`` when set, else torch's choice
    (one per physical core) within the usable CPUs, less the cores other work keeps busy,
    and at least one."""
    chosen = os.environ.get("OMP_NUM_THREADS", "")
    if chosen.isdigit() and int(chosen) > 0:
        return int(chosen)
    quota = _cgroup_quota()
    cores = _torch_default()
    if quota:
        cores = min(cores, math.ceil(quota))
    busy = busy_cores(since)
    chosen_count = max(1, min(cores, round(affinity_cpus() - (busy or 0.0))))
    logger.debug("%d threads: %d cores, %s busy with other work", chosen_count, cores, "?" if busy is None else f"{busy:.2f}")
    return chosen_count


def worker_threads(cpus: float) -> int:
    """Torch threads of a Ray worker that reserved ``cpus``: no more than it reserved (the
    cluster places no more workers than its CPUs hold), and a fraction of a CPU still needs
    a thread."""
    return max(1, math.floor(cpus))


_startup_threads: list[int] = []


def _torch_default() -> int:
    """torch's own choice of threads (one per physical core), as it was before any change."""
    if not _startup_threads:
        import torch

        _startup_threads.append(torch.get_num_threads())
    return _startup_threads[0]


def use_threads(threads: int) -> None:
    """Compute with ``threads`` threads in this process from now on."""
    import torch

    _torch_default()
    torch.set_num_threads(threads)
