"""Human labels for gallery works: title, artist and year wherever a catalog knows them.

Issue #14: similar paintings showed "Untitled" and raw ids (``artists7:Claude_Monet_156``)
although the id itself names the artist, and WikiArt titles came out lower case. The
gallery's ``artist`` column holds only the artist *vocabulary* (it drives affinity), so a work
by an artist outside it has no artist there; its catalog id often still says who painted it.
``display_labels`` fills the gaps from the id and restores title case; it never invents a
title (a work without one stays untitled) and never returns an id as a label.
"""

from __future__ import annotations

import re
from typing import Any, Mapping

from vasari.catalog.normalize import display_artist, slug_to_name, slug_to_title

#: Words kept lower case inside a title or a name ("View of the Sea", "Anthony van Dyck").
SMALL_WORDS = frozenset("a an and as at by de del della der des di du for from in la le of on or the to van von with".split())

_WIKIART = re.compile(r"^wikiart:[^/]+/(?P<artist>[^_]+)_(?P<title>.+?)(?:-(?P<year>1[3-9]\d\d))?$")
_KAGGLE = re.compile(r"^artists7:(?P<artist>.+?)_\d+$")


def title_case(text: str) -> str:
    """Title case that keeps small words lower (not the first) and leaves words that already
    carry a capital alone ("Jan van Eyck", "St Peter", "McNeill")."""
    words = text.split()
    out = []
    for i, word in enumerate(words):
        if any(c.isupper() for c in word) or (i and word.lower() in SMALL_WORDS):
            out.append(word)
        else:
            out.append(word[:1].upper() + word[1:])
    return " ".join(out)


def _from_id(artwork_id: str) -> dict[str, Any]:
    """What a catalog id says about its work: WikiArt ``Style/artist-slug_title-slug-1631``,
    Kaggle ``artists7:Claude_Monet_156`` (names as the catalog readers display them)."""
    m = _WIKIART.match(artwork_id)
    if m:
        return {"artist": display_artist(slug_to_name(m["artist"])), "title": title_case(slug_to_title(m["title"])),
                "year": int(m["year"]) if m["year"] else None}
    m = _KAGGLE.match(artwork_id)
    if m:
        return {"artist": display_artist(slug_to_name(m["artist"]))}
    return {}


def display_labels(row: Mapping[str, Any]) -> dict[str, Any]:
    """``title``, ``artist`` and ``year`` to show for a gallery row (None where nobody knows):
    the row's own values first (the vocabulary artist, else the catalog's name for an artist
    outside the vocabulary), then what its id says; titles in title case."""
    known = _from_id(str(row.get("artwork_id") or ""))
    title = row.get("title") or known.get("title")
    year = row.get("year")
    return {"title": title_case(title) if title else None,
            "artist": row.get("artist") or row.get("catalog_artist") or known.get("artist"),
            "year": int(year) if year not in (None, "") else known.get("year")}


def hit_text(hit: Mapping[str, Any]) -> str:
    """One similar work for text output: "Artist, Title (year)" with only the known parts;
    "untitled work" when neither title nor artist is known (never the raw id)."""
    name = ", ".join(str(v) for v in (hit.get("artist"), hit.get("title")) if v) or "untitled work"
    return f"{name} ({hit['year']})" if hit.get("year") else name
