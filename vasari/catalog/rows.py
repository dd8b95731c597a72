"""What every catalog reader shares: reading a CSV of any encoding and delimiter into rows, picking cells, and counting each parsed label in the ``ParseReport``."""

from __future__ import annotations

import csv
import functools
import io
import os
import re
from collections.abc import Iterable
from pathlib import Path

from vasari.catalog import normalize as nz
from vasari.catalog.records import IMAGE_EXTENSIONS, Artwork, CatalogError, ParseReport
from vasari.core.labels import timeframe_of


def read_text(path: Path) -> str:
    """The text of a CSV, UTF-8 (with or without BOM) or else Latin-1/cp1252."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise CatalogError(path, f"cannot read the file ({exc.strerror or exc})") from exc
    if not data.strip():
        raise CatalogError(path, "the file is empty")
    if b"\x00" in data[:4096]:
        raise CatalogError(path, "not a text file (binary content)")
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError:
        try:
            return data.decode("cp1252")
        except UnicodeDecodeError:
            return data.decode("latin-1")


def sniff_delimiter(header: str) -> str:
    counts = {d: header.count(d) for d in (",", ";", "\t", "|")}
    best = max(counts, key=counts.get)
    return best if counts[best] else ","


def read_csv_rows(path: str | Path, required: Iterable[str] = ()) -> tuple[list[str], list[dict[str, str]]]:
    """(header, rows) of a CSV with sniffed encoding and delimiter (, ; tab |).

    Header names keep their spelling; values are stripped. Raises ``CatalogError`` naming
    the file when it is unreadable, empty or lacks a required column (case-insensitive).
    """
    path = Path(path)
    text = read_text(path)
    first_line = text.lstrip().splitlines()[0] if text.strip() else ""
    reader = csv.reader(io.StringIO(text), delimiter=sniff_delimiter(first_line))
    try:
        header = next(reader)
    except StopIteration:
        raise CatalogError(path, "the file is empty") from None
    except csv.Error as exc:
        raise CatalogError(path, f"not a readable CSV ({exc})", row=1) from exc
    header = [h.strip().lstrip("\ufeff") for h in header]
    lower = {h.lower() for h in header}
    missing = [c for c in required if c.lower() not in lower]
    if missing:
        raise CatalogError(
            path,
            f"missing required column(s) {', '.join(missing)}; the header has {', '.join(header) or 'nothing'}",
            row=1,
        )
    rows = []
    try:
        for line_no, values in enumerate(reader, start=2):
            if not any(v.strip() for v in values):
                continue
            row = {h: (values[i].strip() if i < len(values) else "") for i, h in enumerate(header)}
            row["__row__"] = str(line_no)
            rows.append(row)
    except csv.Error as exc:
        raise CatalogError(path, f"not a readable CSV ({exc})", row=reader.line_num) from exc
    return header, rows


def cell(row: dict[str, str], *names: str) -> str:
    """The first non-empty value among columns ``names`` (case-insensitive)."""
    for name in names:
        value = row.get(name)
        if value is None:
            value = next((v for k, v in row.items() if k.lower() == name.lower()), None)
        if value:
            return value
    return ""


def source_name(path: Path, default: str) -> str:
    generic = {
        "catalog",
        "metadata",
        "artists",
        "genre",
        "style",
        "manifest",
        "labels",
        "index",
        "data",
        "train",
        "val",
        "test",
    }
    if path.is_dir():
        return path.name or default
    return path.parent.name if path.stem.lower() in generic else path.stem


def absolute(path: Path) -> str:
    """An absolute path (the folder resolved once; the file name kept)."""
    return os.path.join(_resolved_dir(str(path.parent)), path.name)


@functools.lru_cache(maxsize=4096)
def _resolved_dir(folder: str) -> str:
    return str(Path(folder).resolve())


def set_label(report: ParseReport, task: str, raw: str | None, mapped: str | None) -> str | None:
    """Count one task label in the report (present / parsed / unmapped) and return it."""
    present = bool(raw and str(raw).strip())
    report.count(task, present, mapped is not None)
    if present and mapped is None:
        report.unmap(task, str(raw).strip())
    return mapped


def count_artist(report: ParseReport, raw: str, parsed: "nz.ParsedArtist") -> None:
    """Count an artist string: a name, or withheld on purpose (attribution / anonymous), or unmapped."""
    present = bool(raw and raw.strip())
    report.count("artist", present, parsed.name is not None)
    if not present or parsed.name is not None:
        return
    if parsed.attribution:
        report.withhold("artist", parsed.attribution)
    elif parsed.anonymous:
        report.withhold("artist", "anonymous")
    else:
        report.unmap("artist", raw.strip())


def count_timeframe(report: ParseReport, raw: str, date: str, year: int | None, timeframe: str | None) -> None:
    """Count a timeframe taken from a TIMEFRAME column (``raw``) or derived from the date."""
    if raw:
        report.count("timeframe", True, timeframe is not None)
        if timeframe is None:
            if re.fullmatch(r"\d{3,4}\s*-\s*\d{3,4}", raw):
                report.withhold("timeframe", "outside 1401-1900")
            else:
                report.unmap("timeframe", raw)
        return
    present = nz.has_date(date) if date is not None else year is not None
    report.count("timeframe", present, timeframe is not None)
    if present and timeframe is None and year is not None:
        if timeframe_of(year) is None:
            report.withhold("timeframe", "outside 1401-1900")
        else:
            report.withhold("timeframe", f"date spans more than {nz.MAX_TIMEFRAME_SPAN} years")


def unique_id(seen: set[str], source: str, local: str, row_no: int) -> str:
    """``source:local``, or ``source:local-r<row>`` when an earlier row took it; remembered in ``seen``."""
    artwork_id = f"{source}:{local}"
    if artwork_id in seen:
        artwork_id = f"{source}:{local}-r{row_no}"
    seen.add(artwork_id)
    return artwork_id


def non_empty(fields: dict[str, str | None]) -> dict[str, str]:
    """The fields that have a value (an Artwork's ``extra`` keeps no empty strings)."""
    return {k: v for k, v in fields.items() if v}


def is_image(path: Path) -> bool:
    return path.suffix.lower() in IMAGE_EXTENSIONS and not path.name.startswith(".")


def no_images(path: Path, artworks: list[Artwork], what: str = "no images found") -> None:
    if not artworks:
        raise CatalogError(path, what)


def parsed_artist(report: ParseReport, raw: str, *, wga: bool | None = None) -> nz.ParsedArtist:
    """The artist cell parsed (``wga``: AUTHOR's "SURNAME, Given" order), counted in ``report``."""
    parsed = nz.parse_artist(raw, wga=wga) if raw else nz.ParsedArtist()
    count_artist(report, raw, parsed)
    return parsed


def dated(report: ParseReport, date: str, timeframe_raw: str) -> tuple[int | None, str | None]:
    """(year, timeframe) from a free-text date and an optional timeframe cell (which wins over the
    date's), both counted in ``report``."""
    year, timeframe = nz.parse_date(date) if date else (None, None)
    report.count("year", nz.has_date(date), year is not None)
    if timeframe_raw:
        timeframe = nz.map_timeframe(timeframe_raw)
    count_timeframe(report, timeframe_raw, date, year, timeframe)
    return year, timeframe


def peek_header(path: Path) -> list[str]:
    """The header cells of a CSV (first non-blank line), for sniffing its kind."""
    first = read_text(path).lstrip().splitlines()[0]
    return next(csv.reader([first], delimiter=sniff_delimiter(first)))
