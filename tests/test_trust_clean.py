"""Scope rule and placeholder cards (vasari.dataset.clean) on hand-built records and vectors."""

from __future__ import annotations

import numpy as np

from vasari.catalog.readers import Artwork
from vasari.dataset.clean import (
    OUT_OF_SCOPE,
    apply_scope,
    clean_gallery,
    drop_placeholders,
    placeholder_rows,
)
from vasari.heads.trust import ScopeRule


def _arts(artists):
    return [Artwork(artwork_id=f"s:{i}", source="s", artist=a, school="Dutch") for i, a in enumerate(artists)]


def _vectors(n=40, dim=16, seed=0):
    return np.random.default_rng(seed).normal(size=(n, dim)).astype(np.float32)


def test_scope_rule_removes_only_the_artist_label_of_listed_artists():
    arts, removed = apply_scope(_arts(["Rembrandt", "Edward Hopper", "Auguste Rodin", "Edward Hopper", None]))
    assert [a.artist for a in arts] == ["Rembrandt", None, None, None, None]
    assert all(a.school == "Dutch" for a in arts)
    assert removed == {"Auguste Rodin": 1, "Edward Hopper": 2}
    assert set(ScopeRule().excluded) == set(OUT_OF_SCOPE) >= {"L. S. Lowry", "Childe Hassam", "Gian Lorenzo Bernini"}


def test_the_same_picture_under_two_artists_is_a_placeholder():
    X = _vectors()
    X[7] = X[3] * 1.01  # the card filed under another artist (a scaled copy: cosine 1)
    X[9] = X[4]         # the same picture under the *same* artist: a duplicate, not a card
    artists = [f"A{i % 5}" for i in range(40)]
    artists[3], artists[7], artists[4], artists[9] = "L. S. Lowry", "Rembrandt", "Monet", "Monet"
    assert placeholder_rows(X, artists) == [3, 7]


def test_unreadable_rows_are_ignored():
    X = _vectors()
    X[7] = X[3]
    X[5] = np.nan
    artists = [f"A{i}" for i in range(40)]
    assert placeholder_rows(X, artists) == [3, 7]


def test_training_and_gallery_hooks_drop_the_cards():
    X = _vectors()
    X[1] = X[0]
    arts = _arts(["L. S. Lowry", "Rembrandt"] + [f"A{i}" for i in range(38)])
    splits, ids = drop_placeholders(X, arts, np.array(["train"] * 40))
    assert list(splits[:3]) == ["placeholder", "placeholder", "train"] and ids == ["s:0", "s:1"]
    arts[2] = Artwork(artwork_id="s:2", source="s", artist="Edward Hopper")
    feats, kept, dropped = clean_gallery(X, arts)
    assert dropped == ["s:0", "s:1"] and len(kept) == len(feats) == 38
    assert kept[0].artwork_id == "s:2" and kept[0].artist is None
