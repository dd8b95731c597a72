"""Scope rule and placeholder cards (vasari.dataset.clean) on hand-built records and vectors."""

from __future__ import annotations

import numpy as np

from vasari.catalog import Artwork
from vasari.dataset.clean import (
    OUT_OF_SCOPE,
    apply_scope,
    clean_gallery,
    drop_placeholders,
    placeholder_rows,
)


def _arts(artists):
    return [Artwork(artwork_id=f"s:{i}", source="s", artist=a, school="Dutch") for i, a in enumerate(artists)]


def _vectors(n=40, dim=16, seed=0):
    return np.random.default_rng(seed).normal(size=(n, dim)).astype(np.float32)


def test_scope_rule_removes_only_the_artist_label_of_listed_artists():
    arts, removed = apply_scope(_arts(["Rembrandt", "Edward Hopper", "Auguste Rodin", "Edward Hopper", None]))
    assert [a.artist for a in arts] == ["Rembrandt", None, None, None, None]
    assert all(a.school == "Dutch" for a in arts)
    assert removed == {"Auguste Rodin": 1, "Edward Hopper": 2}
    assert set(OUT_OF_SCOPE) >= {"L. S. Lowry", "Childe Hassam", "Gian Lorenzo Bernini"}


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
    feats, kept, dropped = clean_gallery(X, arts)
    assert dropped == ["s:0", "s:1"] and len(kept) == len(feats) == 38
    assert kept[0].artwork_id == "s:2" and np.array_equal(feats[0], X[2])


def test_dataset_build_with_artist_scope_counts_what_it_removed(tmp_path):
    from types import SimpleNamespace

    from PIL import Image

    from vasari.dataset import DatasetConfig, build_dataset

    arts = []
    for i, artist in enumerate(["Rembrandt"] * 6 + ["Edward Hopper"] * 4):
        grid = np.random.default_rng(i).integers(0, 256, size=(6, 8, 3), dtype=np.uint8)
        path = tmp_path / f"{i}.png"
        Image.fromarray(grid).resize((160, 120), Image.BICUBIC).save(path)
        arts.append(Artwork(artwork_id=f"s:{i}", source="s", image=str(path), artist=artist,
                            type="portrait" if i % 2 else None))
    cat = SimpleNamespace(artworks=arts, report=SimpleNamespace(source="s"))
    config = DatasetConfig(min_per_class=0, stratify_on=None, artist_scope=True)
    ds = build_dataset([cat], config, progress=False, cache_dir=tmp_path)
    assert ds.info["out_of_scope_artist_labels"] == {"Edward Hopper": 4}
    assert {a.artist for a in ds.artworks} == {"Rembrandt", None}
    # Hopper's two portraits keep their type label; his two unlabelled-otherwise works go
    assert sum(a.artist is None for a in ds.artworks) == 2
    off = build_dataset([cat], DatasetConfig(min_per_class=0, stratify_on=None), progress=False, cache_dir=tmp_path)
    assert off.info["out_of_scope_artist_labels"] == {} and len(off.artworks) == 10


def test_a_card_under_an_out_of_scope_artist_and_a_painter_is_dropped_after_the_scope_rule(tmp_path):
    """artists7's copyright card is filed under L. S. Lowry (out of scope) and Rembrandt. The
    scope rule removes Lowry's label at dataset build, so the dataset keeps the catalog's name:
    after a save/load round trip both copies of the card still leave training and the gallery."""
    from types import SimpleNamespace

    from PIL import Image

    from vasari.dataset import DatasetConfig, build_dataset, load_dataset, save_dataset
    from vasari.dataset.clean import catalog_artist

    card = np.full((120, 160, 3), 200, np.uint8)
    card[50:70, 20:140] = 40  # "image unavailable" as a dark bar on grey
    arts = []
    for i in range(24):
        path = tmp_path / f"{i}.png"
        grid = np.random.default_rng(i).integers(0, 256, size=(6, 8, 3), dtype=np.uint8)
        Image.fromarray(card if i < 2 else grid).resize((160, 120), Image.BICUBIC).save(path)
        artist = ["L. S. Lowry", "Rembrandt"][i] if i < 2 else ["Rembrandt", "Monet"][i % 2]
        arts.append(Artwork(artwork_id=f"a7:{i}", source="a7", image=str(path), artist=artist,
                            school=["English", "Dutch"][i] if i < 2 else "Dutch"))
    cat = SimpleNamespace(artworks=arts, report=SimpleNamespace(source="a7"))
    config = DatasetConfig(min_per_class=0, stratify_on=None, artist_scope=True)
    save_dataset(build_dataset([cat], config, progress=False, cache_dir=tmp_path), tmp_path / "ds")
    ds = load_dataset(tmp_path / "ds")
    by_id = {a.artwork_id: a for a in ds.artworks}
    assert by_id["a7:0"].artist is None and catalog_artist(by_id["a7:0"]) == "L. S. Lowry"
    assert ds.info["catalog_artist_of_relabelled"] == {"a7:0": "L. S. Lowry"}

    # features: the pictures themselves (any embedding maps one picture to one vector)
    X = np.stack([np.asarray(Image.open(a.image).convert("RGB").resize((16, 12)), np.float32).ravel()
                  for a in ds.artworks])
    assert placeholder_rows(X, [a.artist for a in ds.artworks]) == []  # the scoped labels alone miss it
    splits, ids = drop_placeholders(X, ds.artworks, np.array([ds.splits[a.artwork_id] for a in ds.artworks]))
    assert sorted(ids) == ["a7:0", "a7:1"] and sum(s == "placeholder" for s in splits) == 2
    feats, kept, dropped = clean_gallery(X, ds.artworks)
    assert sorted(dropped) == ["a7:0", "a7:1"] and len(kept) == len(feats) == 22
