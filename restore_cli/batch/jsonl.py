"""The one shape of every command's `--json` output: JSON Lines on stdout.

Each line is an object with `schema` (this format's version) and `type`: `image` for one
image of a batch or an evaluation, `video` for one video of a batch (an image line's fields
plus its frames and duration), `model` for one zoo entry, and a last `summary` line with
the command, how the run ended (`status`) and its exit code. A summary is written however the
run ends — finished, failed, interrupted or stopped by an unusable model — so a consumer can
always tell a complete report from a cut one. README.md ("JSON output") documents the fields.
"""

from __future__ import annotations

import json
from typing import Any, Literal

SCHEMA = 1
"""Raised when a field changes meaning or disappears; adding a field keeps it."""

Kind = Literal["image", "video", "model", "summary"]
Status = Literal["done", "failed", "interrupted", "terminated", "error"]
"""How a run ended: all done, some items failed, Ctrl-C, SIGTERM, or nothing could run."""


def line(kind: Kind, **fields: Any) -> str:
    """One JSON object, without the newline."""
    return json.dumps({"schema": SCHEMA, "type": kind, **fields})


def summary(command: str, status: Status, exit_code: int, **fields: Any) -> str:
    """The last line of every `--json` run."""
    return line("summary", command=command, status=status, exit_code=exit_code, **fields)
