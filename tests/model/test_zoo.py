"""The model zoo against a real local HTTP server speaking the Hub's resolve protocol."""

from __future__ import annotations

import hashlib
import json
import multiprocessing
import re
import socket
from pathlib import Path

import pytest

from restore_cli.errors import UnknownModelError, ZooError
from restore_cli.model import cache, manifest
from restore_cli.model import zoo as model_zoo
from tests.conftest import PINNED, RELEASE_ONLY, UNPINNED, Zoo
from tests.hub_server import resolve_in_child

OFFICIAL = {
    "motion_deblurring",
    "single_image_defocus_deblurring",
    "dual_pixel_defocus_deblurring",
    "deraining",
    "real_denoising",
    *(f"gaussian_{kind}_denoising_{level}" for kind in ("color", "gray") for level in ("blind", "sigma15", "sigma25", "sigma50")),
}
UNPINNED_OFFICIAL = {
    "gaussian_color_denoising_sigma25",
    "gaussian_color_denoising_sigma50",
    *(f"gaussian_gray_denoising_{level}" for level in ("blind", "sigma15", "sigma25", "sigma50")),
}


def _files_under(folder: Path) -> list[Path]:
    return [p for p in folder.rglob("*") if p.is_file() and not p.name.endswith(".lock")]


# --------------------------------------------------------------------------- the shipped manifest


def test_manifest_lists_the_13_official_models_with_their_variants() -> None:
    entries = manifest.load_manifest()
    assert set(entries) == OFFICIAL
    variants = json.loads((Path(__file__).parents[1] / "data" / "checkpoint_keys.json").read_text())
    for variant, spec in variants.items():
        for task in spec["tasks"]:
            assert entries[task].variant == variant, task


def test_manifest_pins_hub_revision_and_release_urls() -> None:
    for entry in manifest.load_manifest().values():
        assert entry.url == f"https://github.com/swz30/Restormer/releases/download/v1.0/{entry.name}.pth"
        assert "non-commercial" in entry.licence
        if entry.name == "motion_deblurring":
            assert entry.hub is None
        else:
            assert entry.hub == manifest.HubFile(
                "deepinv/Restormer", f"{entry.name}.pth", "aa2667c79d766b67da2c1489c7ce5f0423bae798"
            )


def test_manifest_never_invents_a_checksum() -> None:
    entries = manifest.load_manifest()
    assert {n for n, e in entries.items() if not e.sha256_known} == UNPINNED_OFFICIAL
    for entry in entries.values():
        if entry.sha256_known:
            assert re.fullmatch(r"[0-9a-f]{64}", entry.sha256)
            assert entry.size > 100_000_000
        else:
            assert entry.sha256 == ""
    assert entries["real_denoising"].sha256.startswith("4cae18bed8a2")


def _one_entry_manifest(sha256_known: bool, extra: str = "") -> str:
    """A manifest of one model `x` without a published checksum, plus any extra TOML lines."""
    return f"""
[models.x]
task = "denoise"
description = "d"
variant = "rgb_biasfree"
filename = "x.pth"
url = "https://example.invalid/x.pth"
sha256 = ""
sha256_known = {str(sha256_known).lower()}
size = 0
licence = "l"
training_data = "t"
{extra}
"""


def test_manifest_rejects_an_entry_whose_checksum_flags_disagree() -> None:
    with pytest.raises(ValueError, match="disagree"):
        manifest.parse_manifest(_one_entry_manifest(sha256_known=True))


def test_paper_scores_are_looked_up_by_benchmark_and_noise_level() -> None:
    paper = """paper = [
  { benchmark = "CBSD68", sigma = 15, psnr = 34.0 },
  { benchmark = "CBSD68", sigma = 50, psnr = 28.0, ssim = 0.8 },
  { benchmark = "Kodak24", sigma = 15, psnr = 35.0 },
]"""
    entry = manifest.parse_manifest(_one_entry_manifest(sha256_known=False, extra=paper))["x"]
    assert entry.paper_psnr("cbsd68", 50) == 28.0
    assert entry.paper_psnr("CBSD68", 15) == 34.0
    assert entry.paper_psnr("CBSD68", 25) is None
    assert entry.paper_psnr("Urban100", 15) is None
    assert entry.paper[1].ssim == 0.8


# --------------------------------------------------------------------------- downloads


def test_hub_download_is_verified_cached_and_reused(zoo: Zoo) -> None:
    path = model_zoo.resolve(PINNED, progress=False)
    assert path.read_bytes() == zoo.payload(PINNED)
    assert (zoo.hf_home / "hub") in path.parents  # the Hub's own cache, at the pinned revision
    assert zoo.entries[PINNED].hub.revision in str(path)
    assert model_zoo.resolve(PINNED, progress=False) == path
    assert zoo.hub.downloads() == 1


def test_unpinned_model_is_checked_against_the_hub_etag_and_recorded(zoo: Zoo) -> None:
    path = model_zoo.resolve(UNPINNED, progress=False)
    records = json.loads((cache.zoo_dir() / "checksums.json").read_text())
    assert records[UNPINNED]["sha256"] == hashlib.sha256(zoo.payload(UNPINNED)).hexdigest()
    assert model_zoo.resolve(UNPINNED, offline=True) == path


def test_hub_serving_wrong_bytes_is_refused_and_deleted(zoo: Zoo) -> None:
    zoo.hub.hub_files["deraining.pth"] = b"not the checkpoint" * 100
    with pytest.raises(ZooError, match="checksum mismatch.*deleted") as caught:
        model_zoo.resolve(PINNED, progress=False)
    assert "\n" not in str(caught.value) and PINNED in str(caught.value)
    repo_cache = zoo.hf_home / "hub" / "models--deepinv--Restormer"
    assert _files_under(repo_cache / "blobs") == [] and _files_under(repo_cache / "snapshots") == []
    assert model_zoo.cached_path(PINNED) is None


def test_cached_file_corrupted_later_is_caught_before_use(zoo: Zoo) -> None:
    path = model_zoo.resolve(PINNED, progress=False)
    blob = path.resolve()
    blob.chmod(0o644)
    blob.write_bytes(b"bit rot" + zoo.payload(PINNED)[7:])
    with pytest.raises(ZooError, match="checksum mismatch"):
        model_zoo.resolve(PINNED, progress=False)
    assert not blob.exists() and not path.exists()


def test_file_missing_from_hub_comes_from_the_release_url(zoo: Zoo) -> None:
    del zoo.hub.hub_files["deraining.pth"]
    path = model_zoo.resolve(PINNED, progress=False)
    assert path == cache.zoo_dir() / "models" / "deraining.pth"
    assert path.read_bytes() == zoo.payload(PINNED)
    assert ("GET", "/release/deraining.pth") in zoo.hub.requests


def test_model_not_on_the_hub_never_asks_the_hub(zoo: Zoo) -> None:
    path = model_zoo.resolve(RELEASE_ONLY, progress=False)
    assert path.read_bytes() == zoo.payload(RELEASE_ONLY)
    assert not any("/resolve/" in p for _, p in zoo.hub.requests)
    assert zoo.hub.downloads() == 1


def test_release_serving_wrong_bytes_leaves_nothing_behind(zoo: Zoo) -> None:
    zoo.hub.release_files["motion_deblurring.pth"] = b"truncated"
    with pytest.raises(ZooError, match="checksum mismatch.*deleted"):
        model_zoo.resolve(RELEASE_ONLY, progress=False)
    assert _files_under(cache.zoo_dir() / "models") == []


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_unreachable_hub_falls_back_to_the_release_url(zoo: Zoo, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HF_ENDPOINT", f"http://127.0.0.1:{_closed_port()}")
    path = model_zoo.resolve(PINNED, progress=False)
    assert path.read_bytes() == zoo.payload(PINNED)
    assert zoo.hub.requests == [("GET", "/release/deraining.pth")]


def test_unpinned_model_is_not_fetched_unverified_when_the_hub_is_down(
    zoo: Zoo, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HF_ENDPOINT", f"http://127.0.0.1:{_closed_port()}")
    with pytest.raises(ZooError, match="no pinned SHA-256.*--sha256"):
        model_zoo.resolve(UNPINNED, progress=False)
    assert zoo.hub.downloads() == 0


def test_unreachable_release_url_is_one_clear_error(zoo: Zoo) -> None:
    zoo.hub.release_files.clear()
    with pytest.raises(ZooError) as caught:
        model_zoo.resolve(RELEASE_ONLY, progress=False)
    message = str(caught.value)
    assert "could not download" in message and zoo.entries[RELEASE_ONLY].url in message
    assert "\n" not in message


# --------------------------------------------------------------------------- offline


@pytest.mark.parametrize("via_env", [False, True])
def test_offline_without_cache_says_how_to_import(zoo: Zoo, monkeypatch: pytest.MonkeyPatch, via_env: bool) -> None:
    if via_env:
        monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(ZooError) as caught:
        model_zoo.resolve(PINNED, offline=None if via_env else True)
    message = str(caught.value)
    assert zoo.entries[PINNED].url in message and "restore models import" in message
    assert zoo.hub.requests == []


def test_offline_with_cache_uses_it_without_network(zoo: Zoo, monkeypatch: pytest.MonkeyPatch) -> None:
    path = model_zoo.resolve(PINNED, progress=False)
    zoo.hub.requests.clear()
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    assert model_zoo.resolve(PINNED) == path
    assert zoo.hub.requests == []


def test_unknown_model_names_the_known_ones(zoo: Zoo) -> None:
    with pytest.raises(UnknownModelError, match="unknown model 'derain'.*deraining"):
        model_zoo.resolve("derain")


# --------------------------------------------------------------------------- concurrency


@pytest.mark.parametrize("name", [PINNED, RELEASE_ONLY])
def test_two_processes_downloading_at_once_get_one_intact_file(zoo: Zoo, name: str) -> None:
    zoo.hub.seconds_per_chunk = 0.05  # about 0.4 s per download: the two surely overlap
    ctx = multiprocessing.get_context("spawn")
    with ctx.Pool(2) as pool:
        paths = pool.starmap(resolve_in_child, [(zoo.entries, name)] * 2)
    assert paths[0] == paths[1]
    assert Path(paths[0]).read_bytes() == zoo.payload(name)
    assert zoo.hub.downloads() == 1


# --------------------------------------------------------------------------- import and verify


def test_import_infers_the_model_from_the_file_name(zoo: Zoo, tmp_path: Path) -> None:
    source = tmp_path / "deraining.pth"
    source.write_bytes(zoo.payload(PINNED))
    name, target = model_zoo.import_file(source)
    assert name == PINNED and target.read_bytes() == zoo.payload(PINNED)
    assert model_zoo.resolve(PINNED, offline=True) == target


def test_import_infers_the_model_from_its_checksum(zoo: Zoo, tmp_path: Path) -> None:
    source = tmp_path / "download (1).bin"
    source.write_bytes(zoo.payload(RELEASE_ONLY))
    assert model_zoo.import_file(source)[0] == RELEASE_ONLY


def test_import_with_a_bad_checksum_installs_nothing(zoo: Zoo, tmp_path: Path) -> None:
    source = tmp_path / "deraining.pth"
    source.write_bytes(b"something else")
    with pytest.raises(ZooError, match="is not deraining.*nothing was installed"):
        model_zoo.import_file(source)
    assert _files_under(cache.zoo_dir() / "models") == []


@pytest.mark.usefixtures("flag_words")
def test_import_of_an_unpinned_model_needs_an_expected_checksum(zoo: Zoo, tmp_path: Path) -> None:
    source = tmp_path / f"{UNPINNED}.pth"
    source.write_bytes(zoo.payload(UNPINNED))
    with pytest.raises(ZooError, match="--sha256"):
        model_zoo.import_file(source)
    sha = hashlib.sha256(zoo.payload(UNPINNED)).hexdigest()
    assert model_zoo.import_file(source, sha256=sha.upper())[0] == UNPINNED
    assert model_zoo.resolve(UNPINNED, offline=True).read_bytes() == zoo.payload(UNPINNED)


def test_verify_reports_each_state_and_deletes_a_bad_file(zoo: Zoo) -> None:
    model_zoo.resolve(UNPINNED, progress=False)
    bad = model_zoo.resolve(RELEASE_ONLY, progress=False)
    bad.write_bytes(b"tampered")
    states = {v.name: v.state for v in model_zoo.verify()}
    assert states == {PINNED: "missing", UNPINNED: "unpinned", RELEASE_ONLY: "mismatch"}
    assert not bad.exists()
    model_zoo.resolve(PINNED, progress=False)
    assert [v.state for v in model_zoo.verify([PINNED])] == ["ok"]
