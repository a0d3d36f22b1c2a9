"""Real photographs the tests restore, shared so that each is stored once in the repository."""

from pathlib import Path

import restore_cli

CBSD68_3096 = Path(restore_cli.__file__).parent / "assets" / "3096.png"
"""CBSD68 image 3096 (481x321, 8-bit RGB), shipped in the package for `restore bench`;
its provenance is in examples/README.md."""
