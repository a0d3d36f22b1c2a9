"""`restore bench`: speed, memory and fidelity on this machine, against the official procedure."""

from __future__ import annotations

import os
import sys
from dataclasses import asdict
from typing import List, Optional

import typer
from rich.console import Console
from rich.table import Table

from restore_cli import bench
from restore_cli.batch import jsonl
from restore_cli.cli import threads as cli_threads
from restore_cli.cli.console import EXIT_USAGE, fail

EPILOG = (
    "Examples:\n\n\b\n"
    "restore bench                                # 256, 512, 1024x768 on the CPU, twice each\n"
    "restore bench --sizes 512 --end-to-end 512 --repeat 3\n"
    "restore bench --sizes 4000x3000 --repeat 1   # a 12 Mpix photo, tiled (about an hour on 2 cores)\n"
    "restore bench --device cuda --precision fp16 --json > gpu.json\n"
    "restore bench --calibrate                    # measure this CPU's speed profile for --tile auto"
)


def bench_command(
    sizes: Optional[List[str]] = typer.Option(None, "--sizes", metavar="SIZE", help="Image sizes: N (N x N) or WxH; repeat the option for several. Default: 256, 512, 1024x768; with --calibrate, the pass sides 256 to 1024."),
    repeat: Optional[int] = typer.Option(None, "--repeat", min=1, metavar="N", help="Passes per size and procedure, alternated; the median is reported. Default 2; with --calibrate, warm passes per side, default 1."),
    device: str = typer.Option("cpu", "--device", metavar="cpu|cuda[:N]", help="cpu, cuda or cuda:N."),
    precision: str = typer.Option("auto", "--precision", metavar="auto|fp32|bf16|fp16", help="Our precision: auto, fp32, bf16, fp16 (CUDA). The baseline is always fp32."),
    allow_slow_precision: bool = typer.Option(False, "--allow-slow-precision", help="Measure bf16/fp16 even where this hardware emulates it (very slow)."),
    threads: Optional[int] = cli_threads.option(),
    end_to_end: Optional[str] = typer.Option(None, "--end-to-end", metavar="SIZE", help="Also time `restore run` on a photo of SIZE against the official script, model load included."),
    fidelity: bool = typer.Option(True, "--fidelity/--no-fidelity", help="Compare our outputs in fp32 and each half precision native here with the official fp32 output on a real photo."),
    calibrate: bool = typer.Option(False, "--calibrate", help="Measure this CPU's speed profile (CPU s/Mpix against the pass's side) for --tile auto, store it in the cache directory for this CPU, thread count and torch, and exit."),
    as_json: bool = typer.Option(False, "--json", help="Print the results as one JSON summary line on stdout."),
) -> None:
    """Time the full-size network (random weights) with our defaults against the official
    procedure (fp32, NCHW, whole image or uniform tiles), side by side, each pass in a fresh process."""
    threads = cli_threads.chosen(threads)
    # read by each pass's fresh process as it starts (this one may already have loaded torch
    # to choose the default), and by the speed profile's key below
    os.environ["OMP_NUM_THREADS"] = str(threads)
    from restore_cli.engine.device import resolve_device, resolve_precision

    try:
        parsed = [bench.parse_size(size) for size in sizes or (() if calibrate else bench.DEFAULT_SIZES)]
        e2e_size = bench.parse_size(end_to_end) if end_to_end else None
        resolve_precision(precision, resolve_device(device), allow_slow_precision)  # type: ignore[arg-type]
    except ValueError as error:
        fail(str(error), EXIT_USAGE)
    console = Console(stderr=as_json)
    console.print(f"[dim]{bench.describe_machine()}; --precision auto is {bench.auto_precision(device)} here[/dim]")
    if calibrate:
        _calibrate(console, parsed, precision, device, repeat or 1, as_json)
        return
    profile = bench.speed_profile(precision, device)
    console.print(f"[dim]tile speed profile: {profile}[/dim]")
    repeat = repeat or 2
    rows = bench.run_benchmark(parsed, repeat, device, precision, _progress(console), allow_slow_precision)
    e2e = bench.measure_end_to_end(e2e_size, repeat, precision, device, allow_slow_precision) if e2e_size else None
    matches = bench.measure_fidelity(device=device, precisions=bench.native_precisions(device)) if fidelity else []
    if as_json:
        sys.stdout.write(jsonl.summary("bench", "done", 0, **_as_json(rows, e2e, matches, device, precision, threads, profile)) + "\n")
        return
    console.print(_speed_table(rows, device, precision))
    if e2e is not None:
        console.print(_end_to_end_table(e2e))
    if matches:
        console.print(_fidelity_table(matches))


def _calibrate(console: Console, sizes: list[bench.Size], precision: str, device: str, repeat: int, as_json: bool) -> None:
    if device != "cpu":
        fail("the speed profile is for the CPU; calibrate with --device cpu", EXIT_USAGE)
    try:
        sides = bench.calibration_sides(sizes)
    except ValueError as error:
        fail(str(error), EXIT_USAGE)
    concrete = bench.auto_precision(device) if precision == "auto" else precision
    console.print(f"[dim]calibrating {concrete} passes of sides {', '.join(map(str, sides))}, 1 cold + {repeat} warm each, "
                  "each in a fresh process[/dim]")

    def report(point: bench.SidePoint) -> None:
        console.print(f"[dim]{point.side}: {point.seconds_per_mpix:.1f} CPU s/Mpix[/dim]")

    found = bench.calibrate(sides, concrete, repeat, report)
    for side in found.skipped:
        console.print(f"[dim]{side}: skipped, its pass would not fit the default memory budget[/dim]")
    if as_json:
        points = [{"side": point.side, "cpu_seconds_per_mpix": round(point.seconds_per_mpix, 3),
                   "cold_cpu_seconds": round(point.cold_cpu_seconds, 3), "warm_cpu_seconds": point.warm_cpu_seconds,
                   "cold_wall_seconds": round(point.cold_wall_seconds, 3), "warm_wall_seconds": point.warm_wall_seconds}
                  for point in found.points]
        sys.stdout.write(jsonl.summary("bench", "done", 0, calibration={
            "key": found.key, "precision": found.precision, "points": points, "skipped": found.skipped,
            "path": str(found.path) if found.path else None}) + "\n")
        return
    table = Table(title=f"speed profile, {found.precision}, {found.key.get('threads', '?')} threads",
                  caption=f"stored in {found.path}" if found.path else "nothing fitted the memory budget: not stored")
    for column in ("side", "CPU s/Mpix (warm)", "cold pass CPU s", "warm passes CPU s"):
        table.add_column(column, justify="right")
    for point in found.points:
        table.add_row(str(point.side), f"{point.seconds_per_mpix:.1f}", f"{point.cold_cpu_seconds:.1f}",
                      _seconds(point.warm_cpu_seconds))
    console.print(table)


def _progress(console: Console) -> bench.PassReport:
    def report(size: bench.Size, mode: str, measured: bench.Pass) -> None:
        console.print(f"[dim]{size.label} {mode}: {measured.seconds:.2f} s[/dim]")

    return report


def _speed_table(rows: list[bench.Row], device: str, precision: str) -> Table:
    table = Table(title=f"restore bench on {device}: official | ours (--precision {precision}), medians",
                  caption="full-size Restormer, random weights; peak memory is per process")
    for column in ("size", "tiles", "s/image", "s/Mpix", "GFLOP/s", "peak RSS MiB", "speed-up"):
        table.add_column(column, justify="right")
    if device.startswith("cuda"):
        table.add_column("peak VRAM MiB", justify="right")
    for row in rows:
        figures = row.summary()
        cells = [row.size.label, _pair(figures, "tiles", "{}"), _pair(figures, "median_seconds", "{:.2f}"),
                 _pair(figures, "seconds_per_mpix", "{:.1f}"), _pair(figures, "gflops", "{:.1f}"),
                 _pair(figures, "peak_rss_mib", "{}"), f"{figures['speedup']:.2f}x"]
        if device.startswith("cuda"):
            cells.append(_pair(figures, "peak_vram_mib", "{}"))
        table.add_row(*cells)
    return table


def _pair(figures: dict, key: str, form: str) -> str:
    """``official | ours`` in one cell, so the table fits a terminal."""
    return " | ".join(form.format(figures[mode][key]) for mode in (bench.OFFICIAL, bench.OURS))


def _end_to_end_table(e2e: bench.EndToEnd) -> Table:
    table = Table(title=f"{e2e.size.label} photo, whole process incl. model load")
    for column in ("official s", "restore run s", "speed-up", "CPU s official | ours", "speed-up (CPU)",
                   "PSNR vs official (8-bit)", "max |diff| (levels)"):
        table.add_column(column, justify="right")
    table.add_row(_seconds(e2e.official_seconds), _seconds(e2e.ours_seconds), f"{e2e.speedup():.2f}x",
                  f"{_seconds(e2e.official_cpu_seconds)} | {_seconds(e2e.ours_cpu_seconds)}", f"{e2e.cpu_speedup():.2f}x",
                  f"{e2e.psnr_db:.2f} dB", str(e2e.max_abs_diff))
    return table


def _seconds(values: list[float]) -> str:
    return " ".join(f"{value:.1f}" for value in values)


def _fidelity_table(matches: list[bench.Fidelity]) -> Table:
    table = Table(title=f"against the official fp32 output of {bench.PHOTO.name} (8-bit)")
    for column in ("mode", "PSNR", "max |diff| (levels)"):
        table.add_column(column, justify="right")
    for match in matches:
        table.add_row(match.mode, f"{match.psnr_db:.2f} dB", str(match.max_abs_diff))
    return table


def _as_json(rows: list[bench.Row], e2e: Optional[bench.EndToEnd], matches: list[bench.Fidelity],
             device: str, precision: str, threads: Optional[int], profile: str) -> dict:
    return {
        "machine": bench.describe_machine(),
        "device": device,
        "auto_precision": bench.auto_precision(device),
        "precision": precision,
        "threads": threads,
        "speed_profile": profile,
        "flops_per_pixel": rows[0].flops / rows[0].size.height / rows[0].size.width if rows else None,
        "sizes": [row.summary() for row in rows],
        "end_to_end": None if e2e is None else {
            "size": e2e.size.label, "official_seconds": e2e.official_seconds, "ours_seconds": e2e.ours_seconds,
            "speedup": round(e2e.speedup(), 2), "psnr_db": round(e2e.psnr_db, 2), "max_abs_diff": e2e.max_abs_diff,
            "official_cpu_seconds": e2e.official_cpu_seconds, "ours_cpu_seconds": e2e.ours_cpu_seconds,
            "cpu_speedup": round(e2e.cpu_speedup(), 2),
        },
        "fidelity": [asdict(match) for match in matches],
    }
