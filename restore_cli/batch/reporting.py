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
from restore_cli.errors import setting

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_INTERRUPTED, EXIT_TERMINATED = 0, 1, 2, 130, 143


FRAME_LINE_SECONDS = 30.0
"""Without the live display, how often a video's progress line is written to the log."""

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
    resume: str | None = None
    """The command line that finishes this batch (the one typed, with --skip-existing), for the
    message when a batch ends early; None words it generally."""
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
    _lost: str | None = field(init=False, default=None)
    """Why the batch ended before every input could finish (the Ray cluster lost), in one line."""
    _videos: dict[str, _FrameRate] = field(init=False, default_factory=dict)

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
            TextColumn("{task.fields[rate]}"),
            TimeRemainingColumn(),
            console=self._console,
            transient=True,
        )
        self._images = self._bar.add_task("images", total=total, rate="")
        self._tiles = self._bar.add_task("tiles", total=None, rate="")
        self._bar.start()

    def tiles(self, done: int, total: int) -> None:
        if self._bar is not None:
            self._bar.update(self._tiles, completed=done, total=total)
        elif self.log_tiles and total > 1:
            self._open_line = done != total
            self.stderr.write(f"\rtiles {done}/{total}" + ("" if self._open_line else "\n"))
            self.stderr.flush()

    def frames(self, name: str, done: int, total: int) -> None:
        """A video's progress: frames done of all, frames per second and, live, the time left."""
        now = time.perf_counter()
        video = self._videos.get(name)
        if video is None:
            task = self._bar.add_task("frames", total=total, rate="") if self._bar is not None else None
            video = self._videos[name] = _FrameRate(now, done, now, task)
        fps = video.fps(now, done)
        if self._bar is not None and video.task is not None:
            self._bar.update(video.task, completed=done, total=total, rate=f"{fps:.2f} fps" if fps else "")
        elif self.display == "lines" and now - video.said >= FRAME_LINE_SECONDS:
            video.said = now
            left = f", {_duration((total - done) / fps)} left" if fps and total > done else ""
            self._say(f"{name}: {done}/{total} frames, {fps:.2f} fps{left}")

    def result(self, result: Result) -> None:
        self._reported.add(result.input)
        self._counts[result.status] += 1
        if result.failure == "cluster":
            pass  # said once for all of them, by lost()
        elif result.error is not None:
            self._say(f"error: {result.error}")
        elif self.display == "lines":
            self._say(f"[{self._done}/{self._total}] {_outcome(result)}")
        if self.json:
            self._json_line(jsonl.line(result.kind, **result.to_json()))
        video = self._videos.pop(result.input, None)
        if self._bar is not None:
            self._bar.advance(self._images)
            if video is not None and video.task is not None:
                self._bar.remove_task(video.task)

    def notice(self, line: str) -> None:
        """A run-level warning, printed above the live display."""
        self._say(line)

    def lost(self, why: str, missing: int) -> None:
        """The batch ended before ``missing`` inputs could finish (each already reported failed,
        without a line of its own): one line, after the summary, with how to resume."""
        resume = f"`{self.resume}`" if self.resume else f"the same command with {setting('skip_existing')}"
        self._lost = (
            f"{why}; {missing} of {self._total} input(s) not restored, {self._counts['ok']} restored; "
            f"finish the batch with {resume}"
        )
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
        if self._lost is not None:
            self._say(f"error: {self._lost}")
            self._json_summary("failed", code, error=self._lost)
        else:
            self._json_summary("failed" if code else "done", code)
        return code

    def interrupted(self, code: int) -> int:
        self._stop()
        resume = "; run the same command again to finish the video where it stopped" if self._videos else ""
        self._say(f"interrupted after {self._done} image(s); every file written is complete{resume}")
        self._json_summary("interrupted" if code == EXIT_INTERRUPTED else "terminated", code)
        return code

    def abandon(self) -> None:
        """The command turned out unusable before anything was written (exit 2): clear the display."""
        self._stop()

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
                    result = Result(job.name, job.output, "failed", error=message, kind="video" if job.video else "image")
                    self._json_line(jsonl.line(result.kind, **result.to_json()))
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


@dataclass
class _FrameRate:
    """Where a video's frame count stood when this run first heard of it (a resumed video
    starts part done), to measure this run's speed."""

    started: float
    first: int
    said: float
    task: TaskID | None

    def fps(self, now: float, done: int) -> float:
        return (done - self.first) / (now - self.started) if now > self.started else 0.0


def _duration(seconds: float) -> str:
    minutes, secs = divmod(round(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes:02d} min" if hours else f"{minutes} min {secs:02d} s" if minutes else f"{secs} s"


def _outcome(result: Result) -> str:
    if result.status == "skipped":
        return f"{result.input}: skipped, {result.output} exists"
    output = "<stdout>" if result.output == STDIO else result.output
    frames = f"{result.frames} frames, " if result.frames is not None else ""
    return f"{result.input} -> {output} ({frames}{result.seconds:.1f} s)"
