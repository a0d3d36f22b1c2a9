"""Assertions shared by the CLI tests: the project's rule for errors a user can cause."""

from __future__ import annotations


def assert_one_line_error(result, exit_code: int, *fragments: str) -> None:
    """Exit code as given, exactly one `error: ...` line on stderr, no traceback anywhere,
    and every fragment (file names, hints) in that line."""
    assert result.exit_code == exit_code, result.output
    assert result.stderr.startswith("error: ") and result.stderr.count("\n") == 1, result.stderr
    assert "Traceback" not in result.output and "Traceback" not in result.stderr
    for fragment in fragments:
        assert fragment in result.stderr
