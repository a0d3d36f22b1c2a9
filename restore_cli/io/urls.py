"""Names of objects in a store (``s3://bucket/scans/a.png``) and the path arithmetic on them.

Planning names outputs with the operations a `pathlib.Path` offers (``parent``, ``with_name``,
joining, ``relative_to``); ``Path("s3://bucket/a.png")`` would turn the URL into the local path
``s3:/bucket/a.png``. `Url` offers the same operations on the part after ``scheme://``, so
naming, mirroring folders and refusals are the same code for files and objects. Nothing here
talks to a store (that is `storage`); this module imports no third-party package.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path, PurePath, PurePosixPath
from typing import Union

_SCHEME = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*)://")
_USERINFO = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*://)[^/@]*:[^/@]*@")


def is_url(name: object) -> bool:
    """Whether ``name`` is a URL (``s3://``, ``gs://``, ``az://``, any ``scheme://``) rather than
    a local path. Only strings can be URLs: a `Path` is always local."""
    return isinstance(name, str) and _SCHEME.match(name) is not None


def protocol_of(url: str) -> str:
    match = _SCHEME.match(url)
    if match is None:
        raise ValueError(f"not a URL: {url!r}")
    return match.group(1).lower()


def has_password(url: str) -> bool:
    """``scheme://user:secret@...``: a secret that every report line would repeat."""
    return _USERINFO.match(url) is not None


def without_password(url: str) -> str:
    """The URL with its ``user:secret@`` part hidden, for the one message that refuses it."""
    return _USERINFO.sub(r"\1***@", url)


@dataclass(frozen=True, order=True)
class Url:
    """An object or "folder" (prefix) in a store: the path operations of `pathlib.PurePath` on
    the part after ``scheme://``, which starts with the bucket (or container, or host)."""

    protocol: str
    path: PurePosixPath

    @classmethod
    def parse(cls, url: str) -> Url:
        rest = url[_SCHEME.match(url).end() :]  # type: ignore[union-attr]
        return cls(protocol_of(url), PurePosixPath(rest.lstrip("/")))

    def __str__(self) -> str:
        rest = self.path.as_posix()
        return f"{self.protocol}://{'' if rest == '.' else rest}"

    @property
    def name(self) -> str:
        return self.path.name

    @property
    def stem(self) -> str:
        return self.path.stem

    @property
    def suffix(self) -> str:
        return self.path.suffix

    @property
    def parts(self) -> tuple[str, ...]:
        return self.path.parts

    @property
    def parent(self) -> Url:
        return Url(self.protocol, self.path.parent)

    @property
    def parents(self) -> tuple[Url, ...]:
        return tuple(Url(self.protocol, parent) for parent in self.path.parents)

    def is_absolute(self) -> bool:
        return True

    def with_name(self, name: str) -> Url:
        return Url(self.protocol, self.path.with_name(name))

    def joinpath(self, *parts: str | PurePath) -> Url:
        return Url(self.protocol, self.path.joinpath(*(PurePosixPath(PurePath(part).as_posix()) for part in parts)))

    def __truediv__(self, part: str | PurePath) -> Url:
        return self.joinpath(part)

    def relative_to(self, other: Url) -> PurePosixPath:
        if other.protocol != self.protocol:
            raise ValueError(f"{self} is not below {other}")
        return self.path.relative_to(other.path)


Location = Union[Path, Url]
"""Where an input or output is: a local path or an object in a store."""


def location(name: str | Path) -> Location:
    """``Url`` for a URL, ``Path`` for anything else."""
    return Url.parse(name) if is_url(name) else Path(name)  # type: ignore[arg-type]
