"""Web Gallery of Art catalogs (catalog.csv and the wga_paintings.csv extract): ``sniff`` and ``read``."""

from __future__ import annotations

import collections
import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from vasari.catalog import normalize as nz
from vasari.catalog.records import Artwork, Catalog, CatalogError, ParseReport
from vasari.catalog.rows import (
    absolute,
    cell,
    dated,
    no_images,
    non_empty,
    parsed_artist,
    peek_header,
    read_csv_rows,
    set_label,
    source_name,
    unique_id,
)


def wga_image_url(url: str) -> str | None:
    """The WGA page URL as its image URL: ".../html/a/x/y.html" -> ".../art/a/x/y.jpg"
    (image URLs pass through; anything else -> None)."""
    url = url.strip()
    if not url:
        return None
    m = re.match(r"^(?P<base>.*?)/html/(?P<path>.+?)\.html?$", url, re.I)
    if m:
        return f"{m.group('base')}/art/{m.group('path')}.jpg"
    if re.search(r"\.(jpe?g|png|gif|webp)$", url, re.I):
        return url
    return None


def wga_author_schools(rows: Iterable[dict[str, str]]) -> dict[str, str]:
    """AUTHOR -> Vasari school from WGA rows that give both (the most frequent school wins)."""
    counts: dict[str, collections.Counter] = collections.defaultdict(collections.Counter)
    for row in rows:
        author, school = cell(row, "AUTHOR"), nz.map_school(cell(row, "SCHOOL"))
        if author and school:
            counts[author][school] += 1
    return {a: c.most_common(1)[0][0] for a, c in counts.items()}


def _wga_local_id(url: str | None) -> str | None:
    if not url:
        return None
    m = re.search(r"/(?:art|html)/(.+?)\.[a-z]+$", url, re.I)
    return m.group(1) if m else None


def _form_filter(form: str | None) -> tuple[set[str] | None, bool]:
    """(forms, negate) from the ``form`` option: "painting" (default), "all", "not-painting",
    or a comma list ("sculpture,architecture")."""
    if form is None or str(form).lower() in {"all", "any", "*", ""}:
        return None, False
    text = str(form).lower().strip()
    negate = text.startswith(("not-", "!", "-", "non-"))
    text = re.sub(r"^(?:not-|!|-|non-)", "", text)
    return {f.strip() for f in text.split(",") if f.strip()}, negate


def read_wga(
    path: str | Path,
    *,
    source: str | None = None,
    form: str | None = "painting",
    paintings_only: bool | None = None,
    images_dir: str | Path | None = None,
    schools_from: str | Path | dict[str, str] | None = None,
) -> Catalog:
    """Read a Web Gallery of Art catalog CSV.

    Columns (any case): AUTHOR, BORN-DIED, TITLE, DATE, TECHNIQUE, LOCATION, URL, FORM, TYPE,
    SCHOOL, TIMEFRAME, optional FILE (local image, relative to the CSV or ``images_dir``);
    the extract with ``jpg_link`` instead of URL reads too. Comma or semicolon separated,
    UTF-8 or Latin-1. ``form`` keeps rows of that FORM ("painting", default; "all";
    "not-painting"; or a comma list); rows without FORM are kept. ``paintings_only=False``
    is the same as ``form="all"``. A row without SCHOOL takes its author's school from the
    author's other rows, else from ``schools_from`` (another WGA CSV, e.g. the
    wga_paintings.csv extract, or an AUTHOR -> school dict). FORM, TECHNIQUE, LOCATION, BORN-DIED, the raw DATE and
    AUTHOR and the page URL are kept in ``extra``.
    """
    path = Path(path)
    header, rows = read_csv_rows(path, required=["AUTHOR", "TITLE"])
    _require_image_column(path, header)
    if paintings_only is not None:
        form = "painting" if paintings_only else "all"
    forms, negate = _form_filter(form)
    source = source or source_name(path, "wga")
    base = Path(images_dir) if images_dir else path.parent
    report = ParseReport(source)
    schools = _AuthorSchools(wga_author_schools(rows), *_school_lookup(schools_from))
    artworks: list[Artwork] = []
    seen: set[str] = set()
    for row in rows:
        report.rows += 1
        row_form = cell(row, "FORM").lower()
        if forms is not None and row_form and ((row_form in forms) == negate):
            report.skip(f"FORM {row_form}")
            continue
        located = _locate_image(row, base, report)
        if located is not None:
            artworks.append(_row_artwork(row, row_form, located, source, seen, schools, report))
    if report.rows == 0:
        raise CatalogError(path, "the catalog has a header but no rows")
    reasons = ", ".join(f"{n} {why}" for why, n in report.skipped.most_common())
    no_images(path, artworks, f"no images found: every row was skipped ({reasons})")
    return Catalog(artworks, report)


def _require_image_column(path: Path, header: list[str]) -> None:
    """A WGA CSV without any image column cannot give a single image: say so before reading rows."""
    lower = {h.lower() for h in header}
    if not lower & {"url", "jpg_link", "file", "image", "image_url"}:
        raise CatalogError(path, f"no image column (URL, jpg_link or FILE); the header has {', '.join(header)}", row=1)


@dataclass(frozen=True)
class _AuthorSchools:
    """Where a row without SCHOOL finds its author's school: the catalog's own rows, then a lookup
    (another WGA CSV or a dict, named in the report's notes)."""

    own: dict[str, str]
    lookup: dict[str, str]
    lookup_name: str


def _school_lookup(schools_from: str | Path | dict[str, str] | None) -> tuple[dict[str, str], str]:
    """(AUTHOR -> school, its name for the report) from ``schools_from``."""
    if not schools_from:
        return {}, "the lookup"
    if isinstance(schools_from, dict):
        return schools_from, "the lookup"
    table = wga_author_schools(read_csv_rows(Path(schools_from), required=["AUTHOR", "SCHOOL"])[1])
    return table, Path(schools_from).name


@dataclass(frozen=True)
class _LocatedImage:
    """A row's local image and/or image URL, the FILE value and the page URL it came from."""

    image: str | None
    url: str | None
    file_value: str
    page: str


def _locate_image(row: dict[str, str], base: Path, report: ParseReport) -> _LocatedImage | None:
    """The row's image file (relative to ``base``) and image URL; None (counted as skipped) when it has neither."""
    page = cell(row, "URL")
    url = wga_image_url(cell(row, "jpg_link", "image_url")) or wga_image_url(page)
    image = None
    file_value = cell(row, "FILE", "image")
    if file_value:
        candidate = (base / file_value) if not Path(file_value).is_absolute() else Path(file_value)
        if candidate.is_file():
            image = absolute(candidate)
        elif not url:
            report.skip("image file missing")
            return None
    if image is None and url is None:
        report.skip("no image or URL")
        return None
    return _LocatedImage(image, url, file_value, page)


def _author_school(
    report: ParseReport, row: dict[str, str], author: str, parsed: nz.ParsedArtist, schools: _AuthorSchools
) -> str | None:
    """The row's SCHOOL; without one, WGA's school is the author's: from the author's other rows,
    the lookup, or the nationality in AUTHOR ("UNKNOWN MASTER, Portuguese"), each counted in the notes."""
    school_raw = cell(row, "SCHOOL")
    school = set_label(report, "school", school_raw, nz.map_school(school_raw)) if school_raw else None
    if school is None and not school_raw:
        if author in schools.own:
            school = schools.own[author]
            report.notes["school from the author's other rows"] += 1
        elif author in schools.lookup:
            school = schools.lookup[author]
            report.notes[f"school from AUTHOR in {schools.lookup_name}"] += 1
        elif parsed.school:
            school = parsed.school
            report.notes["school from the AUTHOR's nationality"] += 1
    return school


def _row_artwork(
    row: dict[str, str],
    row_form: str,
    located: _LocatedImage,
    source: str,
    seen: set[str],
    schools: _AuthorSchools,
    report: ParseReport,
) -> Artwork:
    """One kept row as an Artwork, its labels counted in ``report``."""
    row_no = int(row["__row__"])
    file_value, url = located.file_value, located.url
    local = Path(file_value).stem if file_value else _wga_local_id(url) or f"row{row_no}"
    artwork_id = unique_id(seen, source, local, row_no)
    author = cell(row, "AUTHOR")
    parsed = parsed_artist(report, author, wga=True)
    date = cell(row, "DATE")
    year, timeframe = dated(report, date, cell(row, "TIMEFRAME"))
    school = _author_school(report, row, author, parsed, schools)
    type_raw = cell(row, "TYPE")
    kind = set_label(report, "type", type_raw, nz.map_type(type_raw)) if type_raw else None
    page = located.page
    extra = non_empty(
        {
            "form": row_form,
            "technique": cell(row, "TECHNIQUE"),
            "location": cell(row, "LOCATION"),
            "born_died": cell(row, "BORN-DIED"),
            "date": date,
            "author": author,
            "page": page if page and page != url else "",
            "row": str(row_no),
        }
    )
    if parsed.attribution:
        extra["attribution"] = parsed.attribution
    born, died = nz.born_died(extra.get("born_died"))
    if born and died:
        extra.update(born=str(born), died=str(died))
    return Artwork(
        artwork_id=artwork_id,
        source=source,
        image=located.image,
        url=url,
        title=cell(row, "TITLE") or None,
        artist=parsed.name,
        year=year,
        timeframe=timeframe,
        school=school,
        type=kind,
        style=None,
        extra=extra,
    )


def sniff(path: Path) -> bool:
    """A WGA catalog: a CSV with AUTHOR and an image column, or a folder with catalog.csv."""
    if path.is_dir():
        return (path / "catalog.csv").is_file()
    lower = {h.lower() for h in peek_header(path)}
    return "author" in lower and bool(lower & {"url", "jpg_link", "file"})


read = read_wga
