"""Atomic writes: a reader sees the old content or the new, never half of either."""

from __future__ import annotations

import pytest

from vasari.core.fileio import atomic_directory, atomic_write_text


def test_atomic_directory_swaps_in_new_content_and_leaves_no_temp(tmp_path):
    out = tmp_path / "bundle"
    out.mkdir()
    (out / "old.txt").write_text("old")
    with atomic_directory(out) as tmp:
        assert tmp.parent == tmp_path and tmp != out
        (tmp / "new.txt").write_text("new")
    assert sorted(p.name for p in out.iterdir()) == ["new.txt"]
    assert [p.name for p in tmp_path.iterdir()] == ["bundle"]


def test_atomic_directory_keeps_the_old_directory_when_the_build_fails(tmp_path):
    out = tmp_path / "index"
    out.mkdir()
    (out / "vectors.npy").write_text("old")
    with pytest.raises(RuntimeError, match="disk full"):
        with atomic_directory(out) as tmp:
            (tmp / "vectors.npy").write_text("half")
            raise RuntimeError("disk full")
    assert (out / "vectors.npy").read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["index"]


def test_atomic_write_text_replaces_the_file_without_temp_files(tmp_path):
    target = tmp_path / "metrics.json"
    target.write_text("{}")
    atomic_write_text(target, '{"top1": 0.97}')
    assert target.read_text() == '{"top1": 0.97}'
    assert [p.name for p in tmp_path.iterdir()] == ["metrics.json"]
