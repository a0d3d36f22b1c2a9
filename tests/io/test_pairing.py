"""Pairing folders by stem, the rule `restore eval` and `restore train --pairs` share."""

from __future__ import annotations

from pathlib import Path

from restore_cli.io.pairing import list_images, pair_folders


def touch(folder: Path, *names: str) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for name in names:
        (folder / name).write_bytes(b"")


def test_pairs_by_stem_across_extensions_in_natural_order(tmp_path: Path) -> None:
    touch(tmp_path / "in", "10.png", "2.jpg", "1.tif", "notes.txt")
    touch(tmp_path / "gt", "1.png", "2.png", "10.png")

    pairs, problems = pair_folders(tmp_path / "in", tmp_path / "gt")

    assert problems == []
    assert [pair.name for pair in pairs] == ["1", "2", "10"]
    assert pairs[1].source == tmp_path / "in" / "2.jpg" and pairs[1].reference == tmp_path / "gt" / "2.png"


def test_orphans_and_ambiguous_stems_are_problems_naming_the_file(tmp_path: Path) -> None:
    touch(tmp_path / "in", "a.png", "a.jpg", "b.png", "lonely.png")
    touch(tmp_path / "gt", "a.png", "b.png", "unmatched.png")

    pairs, problems = pair_folders(tmp_path / "in", tmp_path / "gt")

    assert [pair.name for pair in pairs] == ["b"]
    messages = {problem.name: [] for problem in problems}
    for problem in problems:
        messages[problem.name].append(problem.message)
    assert set(messages) == {"a", "lonely", "unmatched"}
    assert any("a.jpg" in message and "a.png" in message for message in messages["a"])
    assert messages["lonely"] == [f"{tmp_path / 'in' / 'lonely.png'}: no file named lonely.* in {tmp_path / 'gt'}"]
    assert messages["unmatched"] == [f"{tmp_path / 'gt' / 'unmatched.png'}: no file named unmatched.* in {tmp_path / 'in'}"]


def test_listing_skips_folders_and_non_images(tmp_path: Path) -> None:
    touch(tmp_path, "3.png", "readme.md")
    (tmp_path / "sub.png").mkdir()

    images, problems = list_images(tmp_path)

    assert images == {"3": tmp_path / "3.png"} and problems == []
