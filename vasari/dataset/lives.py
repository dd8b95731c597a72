"""Artists' life years from the catalogs (issue #14, "one consistent answer"): an artist verdict
must fit the year shown beside it, and the years an artist could have painted come best from
the catalogs themselves: Kaggle's ``years`` column and the Web Gallery of Art's ``BORN-DIED``
(both read into ``Artwork.extra`` as ``born`` / ``died``). A dataset folder's CSV has no
``extra``, so the build keeps them per artist in ``dataset.json`` (``artist_life_years``) and
``load_dataset`` puts them back; ``vasari.inference.consistency.spans_from_artworks`` reads
them, and falls back to the artist's dated works where no catalog knows the years.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any, Sequence


def life_years(art: Any) -> tuple[int, int] | None:
    """(born, died) of a record's artist as its catalog gives them, None unless both are
    known and in order."""
    extra = art.extra or {}
    try:
        born, died = int(extra["born"]), int(extra["died"])
    except (KeyError, TypeError, ValueError):
        return None
    return (born, died) if born < died else None


def artist_life_years(artworks: Sequence[Any]) -> dict[str, list[int]]:
    """artist label -> [born, died] for every labelled artist a catalog dates (``dataset.json``);
    where records disagree, the first one read wins."""
    out: dict[str, list[int]] = {}
    for art in artworks:
        years = life_years(art) if art.artist else None
        if years is not None and art.artist not in out:
            out[art.artist] = list(years)
    return dict(sorted(out.items()))


def restore_life_years(artworks: Sequence[Any], table: dict[str, Sequence[int]]) -> list[Any]:
    """Inverse of ``artist_life_years`` when a dataset folder is loaded: each record of a dated
    artist gets ``born`` / ``died`` in its ``extra`` again."""
    return [replace(a, extra={**(a.extra or {}), "born": str(table[a.artist][0]), "died": str(table[a.artist][1])})
            if a.artist in table else a for a in artworks]
