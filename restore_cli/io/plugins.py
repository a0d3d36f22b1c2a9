"""Codecs that live in optional packages, loaded when a file needs them.

HEIC (pillow-heif) and camera RAW (rawpy) come with the ``formats`` extra rather than with
restore itself: their wheels bundle GPL/LGPL libraries (x265, libheif, LibRaw). A file whose
package is missing fails alone, with one line naming the package to install.
"""

from __future__ import annotations

import importlib
from types import ModuleType

from restore_cli.errors import ImageError

EXTRA = 'pip install "restore-cli[formats]"'


def load(module: str, package: str, purpose: str, name: str = "") -> ModuleType:
    """Import an optional codec, or say in one line which package `purpose` needs."""
    try:
        return importlib.import_module(module)
    except ImportError:
        prefix = f"{name}: " if name else ""
        raise ImageError(f"{prefix}{purpose} needs the {package} package; install it (pip install {package}, or {EXTRA})") from None
