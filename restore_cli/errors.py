"""Error text for a user: every message restore prints is one line, whatever raised it."""

from __future__ import annotations


def one_line(error: BaseException) -> str:
    """The first non-empty line of an error's text, or its type's name when it has none.
    Library errors (torch's especially) can span many lines; a report keeps one per file."""
    lines = str(error).strip().splitlines()
    return (lines[0].strip() if lines else "") or type(error).__name__
