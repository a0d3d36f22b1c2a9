"""Everything a batch tells the user, whichever executor runs it: errors and progress on
stderr, JSON lines on stdout with --json (see ``jsonl``), and the exit code."""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, TextIO

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TaskID, TextColumn, TimeRemainingColumn

from restore_cli.batch import jsonl
from restore_cli.batch.pipeline import Result
from restore_cli.batch.planning import STDIO, Job

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_INTERRUPTED, EXIT_TERMINATED = 0, 1, 2, 130, 143


Display = Literal["live", "lines", "quiet"]
"""What stderr shows besides errors: a live progress display (a terminal is watching), one
plain line per image and a summary (a log: cron, CI, `2> log`), or nothing (--quiet)."""


@dataclass
class Reporter:
    """Everything a batch tells the user, whichever executor runs it: errors and progress on
    stderr, JSON lines on stdout with --json (see restore_cli.batch.jsonl), and the exit code."""

    stdout: TextIO
    stderr: TextIO
    command: str = "run"
    json: bool = False
    display: Display = "quiet"
    log_tiles: bool = False
    """Without the live display, write plain tile counts (for logs of engine measurements)."""
    _console: Console = field(init=False)
    _bar: Progress | None = field(init=False, default=None)
    _images: TaskID = field(init=False, default=TaskID(0))
    _tiles: TaskID = field(init=False, default=TaskID(1))
    _started: float = field(init=False, default=0.0)
    _total: int = field(init=False, default=0)
    _counts: dict[str, int] = field(init=False, default_factory=lambda: dict.fromkeys(("ok", "skipped", "failed"), 0))
    _reported: set[str] = field(init=False, default_factory=set)
    """The inputs already reported, by name: what a fatal error leaves are the others."""
    _open_line: bool = field(init=False, default=False)
    """A tile count was written without its newline; the next message starts a line first."""

    def __post_init__(self) -> None:
        self._console = Console(file=self.stderr, soft_wrap=True, markup=False, highlight=False, emoji=False)

    def start(self, total: int) -> None:
        self._started = time.perf_counter()
        self._total = total
        if self.display != "live":
            return
        self._bar = Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeRemainingColumn(),
            console=self._console,
            transient=True,
        )
        self._images = self._bar.add_task("images", total=total)
        self._tiles = self._bar.add_task("tiles", total=None)
        self._bar.start()

    def tiles(self, done: int, total: int) -> None:
        if self._bar is not None:
            self._bar.update(self._tiles, completed=done, total=total)
        elif self.log_tiles and total > 1:
            self._open_line = done != total
            self.stderr.write(f"\rtiles {done}/{total}" + ("" if self._open_line else "\n"))
            self.stderr.flush()

    def result(self, result: Result) -> None:
        self._reported.add(result.input)
        self._counts[result.status] += 1
        if result.error is not None:
            self._say(f"error: {result.error}")
        elif self.display == "lines":
            self._say(f"[{self._done}/{self._total}] {_outcome(result)}")
        if self.json:
            self._json_line(jsonl.line("image", **result.to_json()))
        if self._bar is not None:
            self._bar.advance(self._images)

    def notice(self, line: str) -> None:
        """A run-level warning, printed above the live display."""
        self._say(line)

    def note(self, line: str) -> None:
        """What the run is doing while no image moves (starting a cluster), unless --quiet."""
        if self.display != "quiet":
            self._say(line)

    def finish(self) -> int:
        """The summary, and the exit code: 1 if any image failed."""
        code = EXIT_FAILED if self._counts["failed"] else EXIT_OK
        self._stop()
        if self.display != "quiet":
            counts = self._counts
            self._say(f"{counts['ok']} restored, {counts['skipped']} skipped, {counts['failed']} failed in {self._seconds():.1f} s")
        self._json_summary("failed" if code else "done", code)
        return code

    def interrupted(self, code: int) -> int:
        self._stop()
        self._say(f"interrupted after {self._done} image(s); every file written is complete")
        self._json_summary("interrupted" if code == EXIT_INTERRUPTED else "terminated", code)
        return code

    def fatal(self, message: str, jobs: Sequence[Job] = ()) -> int:
        """Nothing more can be restored (the model did not load): one error line, and exit 1.
        With --json, every job not yet reported still gets its line, failed for the same
        reason, so the report has one line per input however the run ends."""
        self._stop()
        self._say(f"error: {message}")
        for job in jobs:
            if job.name not in self._reported:
                self._reported.add(job.name)
                self._counts["failed"] += 1
                if self.json:
                    self._json_line(jsonl.line("image", **Result(job.name, job.output, "failed", error=message).to_json()))
        self._json_summary("error", EXIT_FAILED, error=message)
        return EXIT_FAILED

    @property
    def _done(self) -> int:
        return sum(self._counts.values())

    def _seconds(self) -> float:
        return time.perf_counter() - self._started

    def _say(self, text: str) -> None:
        if self._open_line:
            self.stderr.write("\n")
            self._open_line = False
        self._console.print(text)

    def _stop(self) -> None:
        if self._bar is not None:
            self._bar.stop()
            self._bar = None

    def _json_summary(self, status: jsonl.Status, code: int, **fields: Any) -> None:
        if self.json:
            totals = {"total": self._total, **self._counts, "seconds": round(self._seconds(), 3)}
            self._json_line(jsonl.summary(self.command, status, code, **totals, **fields))

    def _json_line(self, text: str) -> None:
        self.stdout.write(text + "\n")
        self.stdout.flush()


def _outcome(result: Result) -> str:
    if result.status == "skipped":
        return f"{result.input}: skipped, {result.output} exists"
    output = "<stdout>" if result.output == STDIO else result.output
    return f"{result.input} -> {output} ({result.seconds:.1f} s)"
