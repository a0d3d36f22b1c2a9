"""The zoo's manifest: what each of the official checkpoints is, as ``manifest.toml`` says.

Only the description of the models (names, tasks, sources, checksums, licence, the paper's
scores) lives here, apart from fetching and caching them, so listing the zoo or checking a
name never imports the Hub client. Callers look the manifest up through this module
(``manifest.load_manifest()``), so a test can replace the zoo in one place.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from importlib.resources import files
from typing import Any

from restore_cli.errors import UnknownModelError

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on Python 3.10 only
    import tomli as tomllib


@dataclass(frozen=True)
class HubFile:
    """Where a checkpoint lives on the Hugging Face Hub, pinned to one commit."""

    repo: str
    filename: str
    revision: str


@dataclass(frozen=True)
class PaperResult:
    """One score the paper reports for a checkpoint: a benchmark, and for Gaussian
    denoising the noise level it was measured at. ``tlc`` marks the scores TLC's paper
    (Chu et al., ECCV 2022) reports for the same checkpoint with local statistics."""

    benchmark: str
    psnr: float
    ssim: float | None = None
    sigma: int | None = None
    tlc: bool = False


@dataclass(frozen=True)
class ModelEntry:
    """One official checkpoint as the manifest describes it."""

    name: str
    task: str
    description: str
    variant: str
    filename: str
    url: str
    sha256: str
    sha256_known: bool
    size: int
    licence: str
    training_data: str
    hub: HubFile | None = None
    paper: tuple[PaperResult, ...] = ()

    def paper_psnr(self, benchmark: str, sigma: float | None = None, tlc: bool = False) -> float | None:
        """The paper's PSNR on this benchmark (at this noise level; with TLC's local
        statistics, the TLC paper's), if the manifest has it."""
        for result in self.paper:
            if result.benchmark.lower() == benchmark.lower() and result.sigma in (None, sigma) and result.tlc == tlc:
                return result.psnr
        return None


def parse_manifest(text: str) -> dict[str, ModelEntry]:
    """Parse manifest TOML; separate from loading so tests can build their own zoo."""
    return {name: _entry(name, fields) for name, fields in tomllib.loads(text)["models"].items()}


def _entry(name: str, fields: dict[str, Any]) -> ModelEntry:
    fields = dict(fields)
    hub = fields.pop("hub", None)
    paper = tuple(PaperResult(**result) for result in fields.pop("paper", []))
    if fields["sha256_known"] != bool(fields["sha256"]):
        raise ValueError(f"manifest entry {name}: sha256 and sha256_known disagree")
    return ModelEntry(
        name=name,
        hub=HubFile(**hub) if hub else None,
        paper=paper,
        **fields,
    )


def load_manifest() -> dict[str, ModelEntry]:
    """The zoo as shipped in the wheel, keyed by model name."""
    return parse_manifest((files("restore_cli.model") / "manifest.toml").read_text("utf-8"))


def model_names() -> list[str]:
    """Every model name, in manifest order."""
    return list(load_manifest())


def get_entry(name: str) -> ModelEntry:
    """Look a model up, failing with the list of valid names so a typo is easy to fix."""
    manifest = load_manifest()
    if name not in manifest:
        raise UnknownModelError(
            f"unknown model {name!r}; known models: {', '.join(manifest)} (see `restore models list`)"
        )
    return manifest[name]
