"""atomic_folder: the new folder replaces the old one whole, or the old one stays as it was."""

from __future__ import annotations

from pathlib import Path

import pytest

from model_training.atomic import atomic_folder


def _old_folder(tmp_path: Path) -> Path:
    target = tmp_path / "model"
    target.mkdir()
    (target / "a.txt").write_text("old a")
    (target / "old-only.txt").write_text("old")
    return target


def test_success_replaces_the_folder(tmp_path: Path) -> None:
    target = _old_folder(tmp_path)
    with atomic_folder(target) as staging:
        assert staging.parent == tmp_path and staging != target
        assert (target / "a.txt").read_text() == "old a"  # untouched until the block ends
        (staging / "a.txt").write_text("new a")
        (staging / "new-only.txt").write_text("new")
    assert sorted(p.name for p in target.iterdir()) == ["a.txt", "new-only.txt"]
    assert (target / "a.txt").read_text() == "new a"
    assert [p.name for p in tmp_path.iterdir()] == ["model"]  # no staging or old copy left


def test_creates_a_missing_folder_and_its_parents(tmp_path: Path) -> None:
    target = tmp_path / "runs" / "model"
    with atomic_folder(target) as staging:
        (staging / "a.txt").write_text("a")
    assert (target / "a.txt").read_text() == "a"
    assert [p.name for p in target.parent.iterdir()] == ["model"]


def test_failure_keeps_the_old_folder_and_cleans_up(tmp_path: Path) -> None:
    target = _old_folder(tmp_path)
    with pytest.raises(RuntimeError, match="converter failed"), atomic_folder(target) as staging:
        (staging / "a.txt").write_text("half-written")
        raise RuntimeError("converter failed")
    assert sorted(p.name for p in target.iterdir()) == ["a.txt", "old-only.txt"]
    assert (target / "a.txt").read_text() == "old a"
    assert [p.name for p in tmp_path.iterdir()] == ["model"]


def test_failure_without_an_old_folder_leaves_nothing(tmp_path: Path) -> None:
    with pytest.raises(KeyboardInterrupt), atomic_folder(tmp_path / "model") as staging:
        (staging / "a.txt").write_text("half-written")
        raise KeyboardInterrupt
    assert list(tmp_path.iterdir()) == []


def test_without_replace_a_folder_written_meanwhile_is_kept(tmp_path: Path) -> None:
    target = tmp_path / "model"
    with atomic_folder(target, replace=False) as staging:
        (staging / "a.txt").write_text("first")
    assert (target / "a.txt").read_text() == "first"
    with atomic_folder(target, replace=False) as staging:
        (staging / "a.txt").write_text("second")
    assert (target / "a.txt").read_text() == "first"
    assert [p.name for p in tmp_path.iterdir()] == ["model"]
