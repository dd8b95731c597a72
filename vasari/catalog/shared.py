"""The shared data (``../shared/data``): every labelled source read with its options, artist names harmonised and schools filled across sources."""

from __future__ import annotations

import collections
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

from vasari.catalog import normalize as nz
from vasari.catalog.folder import read_folder
from vasari.catalog.kaggle import read_kaggle
from vasari.catalog.manifest import read_manifest
from vasari.catalog.records import Catalog, CatalogError
from vasari.catalog.rows import read_csv_rows
from vasari.catalog.wga import read_wga, wga_author_schools
from vasari.catalog.wikiart import read_wikiart


def harmonize_artists(catalogs: Sequence[Catalog]) -> list[Catalog]:
    """One spelling per artist across catalogs: names with the same ``artist_key``
    ("Pierre Auguste Renoir" from a WikiArt slug, "Pierre-Auguste Renoir" from AIC) take the
    richest spelling (accents and hyphens first, then the most frequent)."""
    spellings: dict[str, collections.Counter] = collections.defaultdict(collections.Counter)
    for cat in catalogs:
        for art in cat.artworks:
            if art.artist:
                spellings[nz.artist_key(art.artist)][art.artist] += 1

    def richness(name: str, n: int) -> tuple:
        return (sum(not c.isascii() for c in name), name.count("-") + name.count("'"), n, name)

    best = {
        key: max(counter.items(), key=lambda kv: richness(*kv))[0]
        for key, counter in spellings.items()
        if len(counter) > 1
    }
    if not best:
        return list(catalogs)
    out = []
    for cat in catalogs:
        arts = [replace(a, artist=best.get(nz.artist_key(a.artist), a.artist)) if a.artist else a for a in cat.artworks]
        out.append(Catalog(arts, cat.report))
    return out


def artist_schools(catalogs: Sequence[Catalog], extra_wga: Sequence[str | Path] = ()) -> dict[str, str]:
    """artist key -> school, from every record that has both (and from WGA catalog CSVs
    such as the wga_paintings.csv extract); the most frequent school wins."""
    votes: dict[str, collections.Counter] = collections.defaultdict(collections.Counter)
    for cat in catalogs:
        for art in cat.artworks:
            if art.artist and art.school:
                votes[nz.artist_key(art.artist)][art.school] += 1
    for csv_path in extra_wga:
        for author, school in wga_author_schools(
            read_csv_rows(Path(csv_path), required=["AUTHOR", "SCHOOL"])[1]
        ).items():
            name = nz.parse_artist(author, wga=True).name
            if name:
                votes[nz.artist_key(name)][school] += 1
    return {key: c.most_common(1)[0][0] for key, c in votes.items()}


def fill_schools(catalogs: Sequence[Catalog], table: dict[str, str]) -> list[Catalog]:
    """Give records with an artist but no school the artist's school from ``table``
    (``artist_schools``); counted in each report's notes."""
    out = []
    for cat in catalogs:
        arts = []
        for art in cat.artworks:
            if art.artist and not art.school:
                school = table.get(nz.artist_key(art.artist))
                if school:
                    art = replace(art, school=school)
                    cat.report.notes["school from the artist's school in other catalogs"] += 1
            arts.append(art)
        out.append(Catalog(arts, cat.report))
    return out


#: Short source names of the shared data, in the order ``shared_catalogs`` gives them.
SHARED_SOURCES: tuple[str, ...] = ("louvre", "louvre_photos", "wga", "wga_thumbs", "aic", "artists7", "wikiart")


def shared_catalogs(
    data_dir: str | Path, include_photos: bool = False, *, wga_thumbs_form: str = "painting"
) -> list[Catalog]:
    """Every labelled source of ``../shared/data`` read with the right options:
    louvre (train + val type folders), louvre_photos (only with ``include_photos``), wga,
    wga_thumbs (paintings only; ``wga_thumbs_form="not-painting"`` reads the negatives),
    aic, artists7 (Kaggle layout), wikiart (with genre.csv). Sources absent from
    ``data_dir`` are left out. Artist names are harmonised across sources."""
    data = Path(data_dir)
    if not data.is_dir():
        raise CatalogError(data, "the shared data folder does not exist")
    catalogs: list[Catalog] = []
    extract = data / "catalogs" / "wga_paintings.csv"
    schools = extract if extract.is_file() else None
    louvre_roots = [data / "louvre" / s for s in ("train", "val") if (data / "louvre" / s).is_dir()]
    if louvre_roots:
        catalogs.append(read_folder(louvre_roots, task="type", source="louvre"))
    if include_photos and (data / "louvre" / "photos").is_dir():
        catalogs.append(read_folder(data / "louvre" / "photos", task="type", source="louvre_photos"))
    if (data / "wga" / "catalog.csv").is_file():
        catalogs.append(read_wga(data / "wga" / "catalog.csv", source="wga", form="painting", schools_from=schools))
    if (data / "wga_thumbs" / "catalog.csv").is_file():
        catalogs.append(
            read_wga(
                data / "wga_thumbs" / "catalog.csv", source="wga_thumbs", form=wga_thumbs_form, schools_from=schools
            )
        )
    if (data / "aic" / "metadata.csv").is_file():
        catalogs.append(read_manifest(data / "aic" / "metadata.csv", source="aic"))
    if (data / "artists7" / "artists.csv").is_file():
        catalogs.append(read_kaggle(data / "artists7", source="artists7"))
    if (data / "wikiart").is_dir():
        catalogs.append(read_wikiart(data / "wikiart", source="wikiart"))
    catalogs = harmonize_artists(catalogs)
    table = artist_schools(catalogs, extra_wga=[schools] if schools else [])
    return fill_schools(catalogs, table)


def shared_negatives(data_dir: str | Path) -> list[Catalog]:
    """The shared data's known non-paintings (wga_thumbs rows whose FORM is not painting: buildings,
    sculpture, prints), the references novelty uses for "not a painting"."""
    return [read_wga(Path(data_dir) / "wga_thumbs" / "catalog.csv", source="wga_thumbs", form="not-painting")]
