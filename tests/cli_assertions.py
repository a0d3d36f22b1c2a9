"""Assertions shared by the CLI tests: the project's rule for errors a user can cause."""

from __future__ import annotations

import re

LOG_LINE = re.compile(
    r"\[\d+/\d+\] .+|\d+ restored, \d+ skipped, \d+ failed in \d+\.\d s"
    r"|starting Ray \(first run takes ~10 s\)…|connecting to Ray at \S+…"
)
"""What a batch writes besides errors when stderr is not a terminal: a line per image, the
summary, and with --engine ray the line saying Ray is starting."""


def assert_one_line_error(result, exit_code: int, *fragments: str) -> None:
    """Exit code as given, exactly one `error: ...` line on stderr, no traceback anywhere,
    and every fragment (file names, hints) in that line. Any other line on stderr must be a
    batch's log line (CliRunner's stderr is not a terminal)."""
    assert result.exit_code == exit_code, result.output
    lines = result.stderr.splitlines()
    errors = [line for line in lines if line.startswith("error: ")]
    assert len(errors) == 1 and result.stderr.endswith("\n"), result.stderr
    assert all(LOG_LINE.fullmatch(line) for line in lines if not line.startswith("error: ")), result.stderr
    assert "Traceback" not in result.output and "Traceback" not in result.stderr
    for fragment in fragments:
        assert fragment in errors[0]
