"""Scope and clean data (issue #14): which artists the vocabulary may hold, and which images
are not paintings at all ("image unavailable due to copyright" cards).

* **Scope rule** (docs/labels.md, *Artists*): the artist vocabulary holds painters active
  1401-1900. The data cannot tell a sculptor from a painter, and a painter's active years
  are only partly known, so the artists outside the rule are listed in ``OUT_OF_SCOPE``, a data
  table with the reason for each; ``apply_scope`` removes their *artist* label at dataset
  build (their other labels stay: a Hopper is still a 20th-century landscape for no task,
  but a Bernini portrait bust photo is still no artist class).
* **Placeholder cards**: the same picture under two different artists. Perceptual hashes
  miss them (the card's text differs: 22 of 64 bits), the backbone's embedding does not, so
  ``placeholder_rows`` runs where features exist (training and the gallery index build) on
  ``cross_artist_duplicates``, with the catalogs' own artist names: artists7's card is filed
  under Lowry *and* Rembrandt, and the scope rule removes Lowry's label, after which the pair
  no longer looks cross-artist (the first scoped bundle kept both cards). So wherever the
  dataset build removes an artist label (scope rule, rare class) it keeps the catalog's name
  in ``Artwork.extra[CATALOG_ARTIST]`` and in ``dataset.json``
  (``catalog_artist_of_relabelled``, restored by ``load_dataset``); ``catalog_artist`` reads
  it. Any picture filed under two artists goes: on ../shared/data that is the two cards and
  WikiArt's Charles I triple portrait filed under both van Dyck and Bernini, whose
  attribution conflicts anyway.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import replace
from typing import Any, Sequence

import numpy as np

from vasari.core.scope import OUT_OF_SCOPE

#: Cosine between centred embeddings at or above which two rows are the same picture.
PLACEHOLDER_COSINE = 0.97
#: ``Artwork.extra`` key: the catalog's artist name of a record whose artist label the dataset
#: build removed (placeholder detection must still see it).
CATALOG_ARTIST = "catalog_artist"


def in_scope(artist: str | None) -> bool:
    """Whether an artist label may be a class of the artist vocabulary."""
    return artist is not None and artist not in OUT_OF_SCOPE


def apply_scope(artworks: Sequence[Any]) -> tuple[list[Any], dict[str, int]]:
    """Artworks with out-of-scope artist labels set to None, and how many per artist."""
    removed: Counter[str] = Counter()
    out = []
    for art in artworks:
        if art.artist is not None and not in_scope(art.artist):
            removed[art.artist] += 1
            art = forget_artist(art)
        out.append(art)
    return out, dict(sorted(removed.items()))


def forget_artist(art: Any) -> Any:
    """The record without its artist label, the catalog's name kept for placeholder detection."""
    return replace(art, artist=None, extra={**(art.extra or {}), CATALOG_ARTIST: catalog_artist(art)})


def catalog_artist(art: Any) -> str | None:
    """The artist the catalog files this record under, also where the dataset build removed
    the label (scope rule, rare class): what "the same picture under two artists" compares."""
    return (art.extra or {}).get(CATALOG_ARTIST) or art.artist


def relabelled_artists(artworks: Sequence[Any]) -> dict[str, str]:
    """artwork id -> catalog artist of the records whose artist label was removed (dataset.json)."""
    return {a.artwork_id: a.extra[CATALOG_ARTIST] for a in artworks if (a.extra or {}).get(CATALOG_ARTIST)}


def restore_catalog_artists(artworks: Sequence[Any], relabelled: dict[str, str]) -> list[Any]:
    """Inverse of ``relabelled_artists`` when a dataset folder is loaded (CSV rows have no extra)."""
    return [replace(a, extra={**(a.extra or {}), CATALOG_ARTIST: relabelled[a.artwork_id]})
            if a.artwork_id in relabelled else a for a in artworks]


def cross_artist_duplicates(X: np.ndarray, artists: Sequence[str | None], min_cosine: float = 0.97,
                            chunk: int = 1024) -> list[int]:
    """Rows whose (centred) embedding nearly equals that of a row by a *different* artist:
    the same picture under two names, as "image unavailable due to copyright" cards are.
    Perceptual hashes miss these cards (their text differs: 22 of 64 bits between
    artists7's Lowry and Rembrandt cards), the embedding does not. Unlabelled rows are
    ignored; the rows of every such pair are returned, sorted."""
    Z = np.asarray(X, dtype=np.float32) - np.asarray(X, dtype=np.float32).mean(axis=0)
    Z /= np.linalg.norm(Z, axis=1, keepdims=True) + 1e-9
    names = np.array([a or "" for a in artists])
    rows = np.flatnonzero(names != "")
    found: set[int] = set()
    for start in range(0, len(rows), chunk):
        block = rows[start:start + chunk]
        bi, bj = np.nonzero(Z[block] @ Z[rows].T >= min_cosine)
        for i, j in zip(block[bi], rows[bj]):
            if names[i] != names[j]:
                found.update((int(i), int(j)))
    return sorted(found)


def placeholder_rows(features: np.ndarray, artists: Sequence[str | None]) -> list[int]:
    """Rows that are one picture filed under different artists (placeholder cards)."""
    X = np.asarray(features, np.float32)
    rows = np.flatnonzero(np.isfinite(X).all(axis=1))
    if len(rows) < 2:
        return []
    found = cross_artist_duplicates(X[rows], [artists[i] for i in rows], PLACEHOLDER_COSINE)
    return sorted(int(rows[i]) for i in found)


def drop_placeholders(features: np.ndarray, artworks: Sequence[Any], split_of: np.ndarray) -> tuple[np.ndarray, list[str]]:
    """Training hook: split names with placeholder rows moved to "placeholder" (never trained
    on or evaluated), and their artwork ids for the model card."""
    rows = placeholder_rows(features, [catalog_artist(a) for a in artworks])
    split_of = np.asarray(split_of).astype(object)
    split_of[rows] = "placeholder"
    return split_of, [artworks[i].artwork_id for i in rows]


def clean_gallery(features: np.ndarray, artworks: Sequence[Any]) -> tuple[np.ndarray, list[Any], list[str]]:
    """Gallery hook: placeholder rows dropped; returns the kept features and artworks and the
    dropped ids. (The scope rule comes with a dataset folder built with ``--artist-scope``.)"""
    drop = set(placeholder_rows(features, [catalog_artist(a) for a in artworks]))
    keep = [i for i in range(len(artworks)) if i not in drop]
    return np.asarray(features)[keep], [artworks[i] for i in keep], [artworks[i].artwork_id for i in sorted(drop)]
