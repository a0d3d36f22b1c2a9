"""--debug's log in a process that runs several commands (a test suite, a script): it never
prints a logging error of its own, and it ends with the command that asked for it."""

from __future__ import annotations

import logging
from pathlib import Path

from restore_cli.batch.pipeline import describe_error
from tests.cli.test_hardening_cli import _photo
from tests.cli.test_tasks import RGB_WITHBIAS, _invoke


def test_an_earlier_debug_command_leaves_no_logging_error_and_no_debug_log(tmp_path: Path, capsys) -> None:
    photo = _photo(tmp_path / "a.png")
    debugged = _invoke("run", "--weights", RGB_WITHBIAS, photo, "-o", tmp_path / "b.png", "--debug")
    assert debugged.exit_code == 0, debugged.output
    capsys.readouterr()

    # the stream that command's log was written to is closed now; an unexpected error logs anyway
    assert describe_error(RuntimeError("a bug")).startswith("unexpected RuntimeError: a bug")
    assert "Logging error" not in capsys.readouterr().err

    plain = _invoke("run", "--weights", RGB_WITHBIAS, photo, "-o", tmp_path / "c.png")
    assert plain.exit_code == 0, plain.output
    assert not logging.getLogger("restore_cli").isEnabledFor(logging.DEBUG)
    describe_error(RuntimeError("another bug"))
    assert capsys.readouterr().err == ""
