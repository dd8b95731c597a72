"""``vasari.core.paths.shared_data_dir``: which folder counts as the shared data."""

from __future__ import annotations

import pytest

from vasari.core.paths import shared_data_dir


def test_vasari_data_with_one_known_source_and_no_readme_is_used(tmp_path, monkeypatch):
    (tmp_path / "artists7").mkdir()
    (tmp_path / "artists7" / "artists.csv").write_text("id,name\n")
    monkeypatch.setenv("VASARI_DATA", str(tmp_path))
    assert shared_data_dir() == tmp_path.resolve()


def test_vasari_data_with_louvre_folders_is_used(tmp_path, monkeypatch):
    (tmp_path / "louvre" / "val").mkdir(parents=True)
    monkeypatch.setenv("VASARI_DATA", str(tmp_path))
    assert shared_data_dir() == tmp_path.resolve()


def test_vasari_data_without_known_sources_is_ignored_with_a_warning(tmp_path, monkeypatch):
    (tmp_path / "holiday_photos").mkdir()
    (tmp_path / "notes.txt").write_text("not a data folder\n")
    monkeypatch.setenv("VASARI_DATA", str(tmp_path))
    with pytest.warns(UserWarning, match="holds none of the known sources"):
        found = shared_data_dir()
    assert found != tmp_path.resolve()
