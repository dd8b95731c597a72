"""CSV manifests (one row per image, columns mapped onto fields; e.g. AIC metadata.csv): ``sniff`` and ``read``."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from vasari.catalog import normalize as nz
from vasari.catalog.records import Artwork, Catalog, CatalogError, ParseReport
from vasari.catalog.rows import (
    absolute,
    dated,
    no_images,
    non_empty,
    parsed_artist,
    read_csv_rows,
    set_label,
    source_name,
    unique_id,
)

#: Column names tried for each field of a manifest when no mapping is given.
MANIFEST_COLUMNS: dict[str, tuple[str, ...]] = {
    "image": ("image", "file", "filename", "path", "image_path", "filepath", "img"),
    "url": ("url", "image_url", "jpg_link", "link"),
    "id": ("id", "artwork_id", "object_id", "objectid", "identifier"),
    "title": ("title", "name_of_work", "work"),
    "artist": ("artist", "author", "artist_display", "painter", "creator"),
    "date": ("date", "date_display", "dated", "year", "creation_date"),
    "school": ("school", "nationality", "culture", "country"),
    "type": ("type", "genre", "subject", "category"),
    "style": ("style", "movement", "period_style"),
    "timeframe": ("timeframe",),
}


def read_manifest(
    path: str | Path,
    *,
    source: str | None = None,
    columns: dict[str, str] | None = None,
    images_dir: str | Path | None = None,
    **column_options: str,
) -> Catalog:
    """Read a CSV manifest: one row per image, columns mapped onto fields.

    The mapping is ``columns={"image": "file", "artist": "maker", ...}`` or keyword options
    ``image=file, artist=maker`` (from a spec: ``manifest:meta.csv?image=file&artist=maker``);
    fields left out are found by common names (``MANIFEST_COLUMNS``). Needs an image or url
    column. Images are relative to the CSV (or ``images_dir``). ``date`` is free text
    ("c. 1270", "1360/70"); ``artist`` may carry nationality ("Allegretto Nuzi (Italian,
    1346–1373)"), which gives the school when no school column exists.
    """
    path = Path(path)
    header, rows = read_csv_rows(path)
    mapping = dict(columns or {})
    mapping.update({k: v for k, v in column_options.items() if k in MANIFEST_COLUMNS})
    columns_of = _ManifestColumns(header, _resolve_columns(path, header, mapping))
    base = Path(images_dir) if images_dir else path.parent
    source = source or source_name(path, "manifest")
    report = ParseReport(source)
    artworks: list[Artwork] = []
    seen: set[str] = set()
    for row in rows:
        report.rows += 1
        located = _locate_image(row, columns_of, base, report)
        if located is not None:
            artworks.append(_row_artwork(row, columns_of, located, source, seen, report))
    if report.rows == 0:
        raise CatalogError(path, "the manifest has a header but no rows")
    no_images(path, artworks, "no images found: no row's image file exists and no row has a url")
    return Catalog(artworks, report)


def _resolve_columns(path: Path, header: list[str], mapping: dict[str, str]) -> dict[str, str]:
    """field -> header column: the mapped ones (which must exist), else the first common name
    (``MANIFEST_COLUMNS``) not already taken; an image or url column is required."""
    lower = {h.lower(): h for h in header}
    resolved: dict[str, str] = {}
    for fld, names in MANIFEST_COLUMNS.items():
        if fld in mapping:
            col = lower.get(str(mapping[fld]).lower())
            if col is None:
                raise CatalogError(
                    path, f"column {mapping[fld]!r} (for {fld}) is not in the header: {', '.join(header)}", row=1
                )
            resolved[fld] = col
            continue
        col = next((lower[n] for n in names if n in lower), None)
        if col is not None and col not in resolved.values():
            resolved[fld] = col
    if "image" not in resolved and "url" not in resolved:
        raise CatalogError(
            path, f"missing required column: an image path or url column; the header has {', '.join(header)}", row=1
        )
    return resolved


@dataclass(frozen=True)
class _ManifestColumns:
    """The manifest's header and which column holds each field."""

    header: list[str]
    resolved: dict[str, str]

    def value(self, row: dict[str, str], fld: str) -> str:
        """The row's stripped value of a field ("" when the manifest has no such column)."""
        col = self.resolved.get(fld)
        return row.get(col, "").strip() if col else ""


def _locate_image(
    row: dict[str, str], columns: _ManifestColumns, base: Path, report: ParseReport
) -> tuple[str | None, str | None, str] | None:
    """(image file, url, image cell) of a row; an http(s) image cell is a url. None (counted as
    skipped) when the row has neither an existing file nor a url."""
    image_value, url = columns.value(row, "image"), columns.value(row, "url") or None
    image = None
    if image_value:
        candidate = Path(image_value) if Path(image_value).is_absolute() else base / image_value
        if candidate.is_file():
            image = absolute(candidate)
        elif re.match(r"^https?://", image_value):
            url = url or image_value
    if image is None and url is None:
        report.skip("image file missing" if image_value else "no image or URL")
        return None
    return image, url, image_value


def _school(report: ParseReport, school_raw: str, parsed: nz.ParsedArtist) -> str | None:
    """The school column, else the nationality the artist cell carries ("(Italian, 1346–1373)")."""
    if school_raw:
        return set_label(report, "school", school_raw, nz.map_school(school_raw))
    nat = parsed.nationality
    return set_label(report, "school", nat, parsed.school) if nat else None


def _row_artwork(
    row: dict[str, str],
    columns: _ManifestColumns,
    located: tuple[str | None, str | None, str],
    source: str,
    seen: set[str],
    report: ParseReport,
) -> Artwork:
    """One row with an image as an Artwork, its labels counted in ``report``; unmapped columns go to ``extra``."""
    row_no = int(row["__row__"])
    image, url, image_value = located
    value = columns.value
    local = value(row, "id") or (Path(image_value).with_suffix("").as_posix() if image_value else f"row{row_no}")
    local = re.sub(r"^images/", "", local)
    artwork_id = unique_id(seen, source, local, row_no)
    artist_raw = value(row, "artist")
    parsed = parsed_artist(report, artist_raw)
    date = value(row, "date")
    year, timeframe = dated(report, date, value(row, "timeframe"))
    school = _school(report, value(row, "school"), parsed)
    type_raw = value(row, "type")
    kind = set_label(report, "type", type_raw, nz.map_type(type_raw)) if type_raw else None
    style_raw = value(row, "style")
    style = set_label(report, "style", style_raw, nz.map_style(style_raw)) if style_raw else None
    extra = non_empty(
        {
            "artist_raw": artist_raw,
            "date": date,
            "row": str(row_no),
            "attribution": parsed.attribution,
            "attributed_to": parsed.attributed_to,
        }
    )
    for col in columns.header:
        if col not in columns.resolved.values() and row.get(col):
            extra[col.lower()] = row[col]
    return Artwork(
        artwork_id=artwork_id,
        source=source,
        image=image,
        url=url,
        title=value(row, "title") or None,
        artist=parsed.name,
        year=year,
        timeframe=timeframe,
        school=school,
        type=kind,
        style=style,
        extra=extra,
    )


def sniff(path: Path) -> bool:
    """A manifest: a folder with metadata.csv; any CSV that no other kind claims (the registry asks
    this kind last) reads as one."""
    return (path / "metadata.csv").is_file() if path.is_dir() else path.is_file()


read = read_manifest
