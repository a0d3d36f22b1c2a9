"""Folders of images, listed and paired by file stem: what `restore eval` scores and what
`restore train --pairs` learns from follow the same rules.

`rain/12.png` pairs with `clean/12.jpg` (extensions may differ); a stem held by two files in
one folder (`x.png` and `x.jpg`) is ambiguous, and a file with no partner is reported, never
silently dropped. Problems are returned rather than raised, so a caller decides whether one
bad file costs a row (eval) or stops the run before it starts (training).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from restore_cli.io.image import is_image_name


@dataclass(frozen=True)
class Pair:
    """Two files with the same stem: a degraded (or restored) image and its reference."""

    name: str
    source: Path
    reference: Path


@dataclass(frozen=True)
class Problem:
    """A file that cannot be paired; `message` is one line naming it and what is wrong."""

    name: str
    message: str


def natural_key(name: str) -> list[Any]:
    """Sort 2.png before 10.png, as benchmark folders are numbered without padding."""
    return [int(part) if part.isdigit() else part.lower() for part in re.split(r"(\d+)", name)]


def list_images(folder: Path) -> tuple[dict[str, Path], list[Problem]]:
    """Images by stem, in natural order; a stem held by two files is ambiguous and a problem."""
    by_stem: dict[str, list[Path]] = {}
    for path in sorted(folder.iterdir(), key=lambda path: natural_key(path.name)):
        if path.is_file() and is_image_name(path):
            by_stem.setdefault(path.stem, []).append(path)
    unique = {stem: paths[0] for stem, paths in by_stem.items() if len(paths) == 1}
    clashes = [
        Problem(stem, f"{folder / stem}.*: several files share this name ({', '.join(p.name for p in paths)})")
        for stem, paths in by_stem.items()
        if len(paths) > 1
    ]
    return unique, clashes


def pair_folders(sources: Path, references: Path) -> tuple[list[Pair], list[Problem]]:
    """Pair by stem, in natural order; files without a partner are problems."""
    found, problems = list_images(sources)
    expected, clashes = list_images(references)
    problems += clashes
    pairs = [Pair(stem, found[stem], expected[stem]) for stem in found if stem in expected]
    problems += _orphans(found, expected, references) + _orphans(expected, found, sources)
    return sorted(pairs, key=lambda pair: natural_key(pair.name)), problems


def _orphans(images: dict[str, Path], partners: dict[str, Path], partner_folder: Path) -> list[Problem]:
    return [
        Problem(stem, f"{path}: no file named {stem}.* in {partner_folder}")
        for stem, path in images.items()
        if stem not in partners
    ]
