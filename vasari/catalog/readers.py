"""Catalog readers: turn a source's own table or folder layout into ``Artwork`` records."""

from __future__ import annotations

import collections
import csv
import functools
import io
import os
import re
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path
from urllib.parse import parse_qsl

from vasari.catalog import normalize as nz
from vasari.core.labels import TASKS, timeframe_of
from vasari.errors import InputError


@dataclass(frozen=True)
class Artwork:
    """One image of an artwork with whatever labels its source gives (None = unknown).

    ``artwork_id`` is unique within a merged dataset (``"<source>:<local id>"``).
    ``image`` is a local file path (absolute) when the image is on disk; ``url`` where it
    can be downloaded from. ``group`` names the physical artwork this image shows, so that
    details and copies of one painting can be kept in one split (filled by the dataset
    stage from perceptual hashes; readers may preset it).
    """

    artwork_id: str
    source: str
    image: str | None = None
    url: str | None = None
    title: str | None = None
    artist: str | None = None
    year: int | None = None
    timeframe: str | None = None
    school: str | None = None
    type: str | None = None
    style: str | None = None
    group: str | None = None
    extra: dict[str, str] = field(default_factory=dict, compare=False, hash=False)

    def label(self, task: str) -> str | None:
        """This artwork's label for a task (one of ``vasari.core.labels.TASKS``)."""
        if task not in TASKS:
            raise KeyError(f"unknown task {task!r}; tasks are {', '.join(TASKS)}")
        return getattr(self, task)

    def to_row(self) -> dict[str, str]:
        """A flat CSV row ("" for None); ``extra`` is not included."""
        row = asdict(self)
        row.pop("extra")
        return {k: "" if v is None else str(v) for k, v in row.items()}

    @classmethod
    def from_row(cls, row: dict[str, str]) -> "Artwork":
        """Inverse of ``to_row``."""
        names = {f.name for f in fields(cls)} - {"extra"}
        values = {k: (v if v != "" else None) for k, v in row.items() if k in names}
        if values.get("year") is not None:
            values["year"] = int(values["year"])
        return cls(**values)


# ======================================================================================
# Readers
# ======================================================================================

#: Image file extensions the readers pick up (lower case).
IMAGE_EXTENSIONS = frozenset({".jpg", ".jpeg", ".png", ".webp", ".tif", ".tiff", ".bmp", ".gif"})

#: Fields the parse report counts.
REPORT_FIELDS: tuple[str, ...] = ("year", "timeframe", "school", "type", "style", "artist")


class CatalogError(InputError):
    """A catalog cannot be read: missing columns, unreadable or empty file, no images.

    The message names the file (and the row, 1-based counting the header as row 1, where
    one row is at fault); ``path`` and ``row`` carry the same for programs.
    """

    def __init__(self, path: str | Path, message: str, row: int | None = None):
        self.path = str(path)
        self.row = row
        where = f"{self.path}" + (f", row {row}" if row is not None else "")
        super().__init__(f"{where}: {message}")


@dataclass
class ParseReport:
    """What one reader made of one source: rows read, per field how many labels parsed of
    how many the source gave, rows skipped by reason, raw labels with no Vasari label.

    Beyond the contract: ``withheld`` counts labels set to None on purpose, by (task,
    reason) — e.g. ("artist", "after"), ("artist", "anonymous") — so that for each field
    parsed + withheld + unmapped = present; ``notes`` counts labels filled from elsewhere
    (e.g. "school from AUTHOR (same catalog)").
    """

    source: str
    rows: int = 0
    fields: dict[str, tuple[int, int]] = field(default_factory=lambda: {f: (0, 0) for f in REPORT_FIELDS})
    skipped: collections.Counter = field(default_factory=collections.Counter)
    unmapped: collections.Counter = field(default_factory=collections.Counter)
    withheld: collections.Counter = field(default_factory=collections.Counter)
    notes: collections.Counter = field(default_factory=collections.Counter)

    def count(self, name: str, present: bool, parsed: bool) -> None:
        """Count one row's field: ``present`` = the source gave a value, ``parsed`` = it became a label."""
        done, given = self.fields.get(name, (0, 0))
        self.fields[name] = (done + int(bool(present and parsed)), given + int(bool(present)))

    def skip(self, reason: str) -> None:
        self.skipped[reason] += 1

    def unmap(self, task: str, raw: str) -> None:
        self.unmapped[(task, str(raw))] += 1

    def withhold(self, task: str, reason: str) -> None:
        self.withheld[(task, reason)] += 1

    def rate(self, name: str) -> float | None:
        """Parsed / present for one field (None when the source never gives it)."""
        done, given = self.fields.get(name, (0, 0))
        return done / given if given else None

    def to_dict(self) -> dict:
        return {
            "source": self.source,
            "rows": self.rows,
            "fields": {k: {"parsed": v[0], "present": v[1]} for k, v in self.fields.items()},
            "skipped": dict(self.skipped),
            "unmapped": {f"{t}:{raw}": n for (t, raw), n in self.unmapped.most_common()},
            "withheld": {f"{t}:{why}": n for (t, why), n in self.withheld.most_common()},
            "notes": dict(self.notes),
        }

    def summary(self) -> str:
        """One line: "aic: 202 rows; year 196/199, school 190/202, ..."."""
        parts = [f"{k} {d}/{g}" for k, (d, g) in self.fields.items() if g]
        return f"{self.source}: {self.rows} rows; " + ", ".join(parts)

    def as_table(self, max_unmapped: int = 8):
        """A rich Table: one row per field (parsed / present / rate), then skips and unmapped labels."""
        from rich.table import Table

        table = Table(title=f"{self.source}: {self.rows} rows read", title_justify="left")
        table.add_column("field")
        table.add_column("parsed", justify="right")
        table.add_column("present", justify="right")
        table.add_column("rate", justify="right")
        for name, (done, given) in self.fields.items():
            rate = f"{done / given:.0%}" if given else "-"
            table.add_row(name, str(done), str(given), rate)
        for reason, n in self.skipped.most_common():
            table.add_row(f"[yellow]skipped: {reason}[/]", str(n), "", "")
        for (task, why), n in self.withheld.most_common():
            table.add_row(f"[cyan]withheld {task}: {why}[/]", str(n), "", "")
        for note, n in self.notes.most_common():
            table.add_row(f"[green]{note}[/]", str(n), "", "")
        for (task, raw), n in self.unmapped.most_common(max_unmapped):
            table.add_row(f"[dim]unmapped {task}: {raw}[/]", str(n), "", "")
        rest = len(self.unmapped) - max_unmapped
        if rest > 0:
            table.add_row(f"[dim]… {rest} more unmapped labels[/]", "", "", "")
        return table


@dataclass
class Catalog:
    """The artworks one source gives, with the report of how its labels were parsed."""

    artworks: list[Artwork]
    report: ParseReport

    @property
    def source(self) -> str:
        return self.report.source

    def __len__(self) -> int:
        return len(self.artworks)

    def __iter__(self):
        return iter(self.artworks)


# ----------------------------------------------------------------------------- CSV helpers


def _read_text(path: Path) -> str:
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


def _sniff_delimiter(header: str) -> str:
    counts = {d: header.count(d) for d in (",", ";", "\t", "|")}
    best = max(counts, key=counts.get)
    return best if counts[best] else ","


def read_csv_rows(path: str | Path, required: Iterable[str] = ()) -> tuple[list[str], list[dict[str, str]]]:
    """(header, rows) of a CSV with sniffed encoding and delimiter (, ; tab |).

    Header names keep their spelling; values are stripped. Raises ``CatalogError`` naming
    the file when it is unreadable, empty or lacks a required column (case-insensitive).
    """
    path = Path(path)
    text = _read_text(path)
    first_line = text.lstrip().splitlines()[0] if text.strip() else ""
    reader = csv.reader(io.StringIO(text), delimiter=_sniff_delimiter(first_line))
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


def _get(row: dict[str, str], *names: str) -> str:
    """The first non-empty value among columns ``names`` (case-insensitive)."""
    for name in names:
        value = row.get(name)
        if value is None:
            value = next((v for k, v in row.items() if k.lower() == name.lower()), None)
        if value:
            return value
    return ""


def _source_name(path: Path, default: str) -> str:
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


def _abs(path: Path) -> str:
    """An absolute path (the folder resolved once; the file name kept)."""
    return os.path.join(_resolved_dir(str(path.parent)), path.name)


@functools.lru_cache(maxsize=4096)
def _resolved_dir(folder: str) -> str:
    return str(Path(folder).resolve())


def _set_label(report: ParseReport, task: str, raw: str | None, mapped: str | None) -> str | None:
    """Count one task label in the report (present / parsed / unmapped) and return it."""
    present = bool(raw and str(raw).strip())
    report.count(task, present, mapped is not None)
    if present and mapped is None:
        report.unmap(task, str(raw).strip())
    return mapped


def _count_artist(report: ParseReport, raw: str, parsed: "nz.ParsedArtist") -> None:
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


def _count_timeframe(report: ParseReport, raw: str, date: str, year: int | None, timeframe: str | None) -> None:
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


def _unique_id(seen: set[str], source: str, local: str, row_no: int) -> str:
    """``source:local``, or ``source:local-r<row>`` when an earlier row took it; remembered in ``seen``."""
    artwork_id = f"{source}:{local}"
    if artwork_id in seen:
        artwork_id = f"{source}:{local}-r{row_no}"
    seen.add(artwork_id)
    return artwork_id


def _non_empty(fields: dict[str, str | None]) -> dict[str, str]:
    """The fields that have a value (an Artwork's ``extra`` keeps no empty strings)."""
    return {k: v for k, v in fields.items() if v}


def _is_image(path: Path) -> bool:
    return path.suffix.lower() in IMAGE_EXTENSIONS and not path.name.startswith(".")


def _no_images(path: Path, artworks: list[Artwork], what: str = "no images found") -> None:
    if not artworks:
        raise CatalogError(path, what)


# ----------------------------------------------------------------------------- WGA


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
        author, school = _get(row, "AUTHOR"), nz.map_school(_get(row, "SCHOOL"))
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
    lower = {h.lower() for h in header}
    if not lower & {"url", "jpg_link", "file", "image", "image_url"}:
        raise CatalogError(path, f"no image column (URL, jpg_link or FILE); the header has {', '.join(header)}", row=1)
    if paintings_only is not None:
        form = "painting" if paintings_only else "all"
    forms, negate = _form_filter(form)
    source = source or _source_name(path, "wga")
    base = Path(images_dir) if images_dir else path.parent
    report = ParseReport(source)
    artworks: list[Artwork] = []
    seen: set[str] = set()
    own_schools = wga_author_schools(rows)
    lookup: dict[str, str] = {}
    lookup_name = "the lookup"
    if schools_from:
        if isinstance(schools_from, dict):
            lookup = schools_from
        else:
            lookup_name = Path(schools_from).name
            lookup = wga_author_schools(read_csv_rows(Path(schools_from), required=["AUTHOR", "SCHOOL"])[1])
    for row in rows:
        row_no = int(row["__row__"])
        report.rows += 1
        row_form = _get(row, "FORM").lower()
        if forms is not None and row_form and ((row_form in forms) == negate):
            report.skip(f"FORM {row_form}")
            continue
        page = _get(row, "URL")
        url = wga_image_url(_get(row, "jpg_link", "image_url")) or wga_image_url(page)
        image = None
        file_value = _get(row, "FILE", "image")
        if file_value:
            candidate = (base / file_value) if not Path(file_value).is_absolute() else Path(file_value)
            if candidate.is_file():
                image = _abs(candidate)
            elif not url:
                report.skip("image file missing")
                continue
        if image is None and url is None:
            report.skip("no image or URL")
            continue
        local = Path(file_value).stem if file_value else _wga_local_id(url) or f"row{row_no}"
        artwork_id = _unique_id(seen, source, local, row_no)
        author = _get(row, "AUTHOR")
        parsed = nz.parse_artist(author, wga=True) if author else nz.ParsedArtist()
        _count_artist(report, author, parsed)
        date = _get(row, "DATE")
        year, tf_from_date = nz.parse_date(date) if date else (None, None)
        report.count("year", nz.has_date(date), year is not None)
        tf_raw = _get(row, "TIMEFRAME")
        timeframe = nz.map_timeframe(tf_raw) if tf_raw else tf_from_date
        _count_timeframe(report, tf_raw, date, year, timeframe)
        school_raw = _get(row, "SCHOOL")
        school = _set_label(report, "school", school_raw, nz.map_school(school_raw)) if school_raw else None
        if school is None and not school_raw:
            # WGA's school is the author's: fill it from the author's other rows or a lookup
            if author in own_schools:
                school = own_schools[author]
                report.notes["school from the author's other rows"] += 1
            elif author in lookup:
                school = lookup[author]
                report.notes[f"school from AUTHOR in {lookup_name}"] += 1
            elif parsed.school:
                school = parsed.school  # "UNKNOWN MASTER, Portuguese" names its school
                report.notes["school from the AUTHOR's nationality"] += 1
        type_raw = _get(row, "TYPE")
        kind = _set_label(report, "type", type_raw, nz.map_type(type_raw)) if type_raw else None
        extra = _non_empty(
            {
                "form": row_form,
                "technique": _get(row, "TECHNIQUE"),
                "location": _get(row, "LOCATION"),
                "born_died": _get(row, "BORN-DIED"),
                "date": date,
                "author": author,
                "page": page if page and page != url else "",
                "row": str(row_no),
            }
        )
        if parsed.attribution:
            extra["attribution"] = parsed.attribution
        artworks.append(
            Artwork(
                artwork_id=artwork_id,
                source=source,
                image=image,
                url=url,
                title=_get(row, "TITLE") or None,
                artist=parsed.name,
                year=year,
                timeframe=timeframe,
                school=school,
                type=kind,
                style=None,
                extra=extra,
            )
        )
    if report.rows == 0:
        raise CatalogError(path, "the catalog has a header but no rows")
    reasons = ", ".join(f"{n} {why}" for why, n in report.skipped.most_common())
    _no_images(path, artworks, f"no images found: every row was skipped ({reasons})")
    return Catalog(artworks, report)


# ----------------------------------------------------------------------------- Kaggle


def _kaggle_years(text: str) -> tuple[int | None, int | None]:
    nums = [int(n) for n in re.findall(r"\d{3,4}", text or "")]
    return (nums[0] if nums else None, nums[1] if len(nums) > 1 else None)


def read_kaggle(path: str | Path, *, source: str | None = None, images_dir: str | Path | None = None) -> Catalog:
    """Read Kaggle's "Best Artworks of All Time" layout: ``artists.csv`` (name, years, genre,
    nationality, ...) beside ``images/images/<Artist_Name>/<Artist_Name>_<n>.jpg``.

    ``path`` is the folder or its artists.csv. Artist = artists.csv name (display-normalised),
    style = genre (mapped), school = nationality (mapped). The images carry no date of their
    own: year and timeframe stay None; the artist's years go to ``extra`` (born, died).
    """
    path = Path(path)
    root = path.parent if path.is_file() else path
    csv_path = path if path.is_file() else root / "artists.csv"
    if not csv_path.is_file():
        raise CatalogError(csv_path, "no artists.csv (Kaggle layout: artists.csv + images/images/<Artist_Name>/)")
    header, rows = read_csv_rows(csv_path, required=["name"])
    if images_dir is not None:
        img_root = Path(images_dir)
    else:
        img_root = next(
            (p for p in (root / "images" / "images", root / "images", root / "resized") if p.is_dir()),
            root / "images" / "images",
        )
    if not img_root.is_dir():
        raise CatalogError(root, "no images/images/ folder beside artists.csv")
    source = source or root.name or "kaggle"
    report = ParseReport(source)
    by_key: dict[str, dict[str, str]] = {}
    for row in rows:
        name = _get(row, "name")
        if name:
            by_key[nz.fold(name)] = row
    artworks: list[Artwork] = []
    folders = sorted(p for p in img_root.iterdir() if p.is_dir())
    matched_rows = set()
    for folder in folders:
        key = nz.fold(nz.fix_text(folder.name.replace("_", " ")))
        row = by_key.get(key)
        if row is None:  # "Albrecht_Du╠êrer": compare without the damaged letters
            loose = re.sub(r"[^a-z ]", "", key)
            row = next(
                (r for k, r in by_key.items() if re.sub(r"[^a-z ]", "", k).replace(" ", "") == loose.replace(" ", "")),
                None,
            )
        images = sorted((p for p in folder.iterdir() if p.is_file() and _is_image(p)), key=lambda p: _natural(p.name))
        if row is None:
            report.rows += len(images)
            for _ in images:
                report.skip("artist folder not in artists.csv")
            continue
        matched_rows.add(id(row))
        raw_name = _get(row, "name")
        artist = nz.display_artist(raw_name)
        style_raw = _get(row, "genre", "style")
        nat_raw = _get(row, "nationality")
        style = nz.map_style(style_raw) if style_raw else None
        school = _school_from_nationality(nat_raw)
        born, died = _kaggle_years(_get(row, "years"))
        for image in images:
            report.rows += 1
            _set_label(report, "artist", raw_name, artist)
            _set_label(report, "style", style_raw, style)
            _set_label(report, "school", nat_raw, school)
            extra = {"years": _get(row, "years"), "nationality": nat_raw, "genre": style_raw}
            if born:
                extra["born"] = str(born)
            if died:
                extra["died"] = str(died)
            artworks.append(
                Artwork(
                    artwork_id=f"{source}:{image.stem}",
                    source=source,
                    image=_abs(image),
                    url=None,
                    title=None,
                    artist=artist,
                    school=school,
                    style=style,
                    extra=_non_empty(extra),
                )
            )
    _no_images(img_root, artworks, "no images found under the artist folders (images/images/<Artist_Name>/*.jpg)")
    return Catalog(artworks, report)


def _school_from_nationality(raw: str) -> str | None:
    """Kaggle nationality, possibly several ("French,British"): the first that maps."""
    if not raw:
        return None
    for part in re.split(r"[,/;]", raw):
        school = nz.map_school(part)
        if school:
            return school
    return None


def _natural(name: str) -> list:
    return [int(t) if t.isdigit() else t.lower() for t in re.split(r"(\d+)", name)]


# ----------------------------------------------------------------------------- folder per class


def read_folder(
    path: str | Path | Sequence[str | Path],
    *,
    task: str = "type",
    source: str | None = None,
) -> Catalog:
    """Read ``<root>/<class>/*.jpg``: each image's parent folder name is its label for ``task``
    (mapped onto Vasari's vocabulary; e.g. Louvre "still-life", "Naturmort" -> "still-life").

    ``path`` may be a list of roots (Louvre train + val); ids are the image paths relative to
    the roots' common parent, so they stay unique and stable.
    """
    if task not in TASKS:
        raise CatalogError(
            path if isinstance(path, (str, Path)) else path[0], f"unknown task {task!r}; tasks are {', '.join(TASKS)}"
        )
    roots = [Path(path)] if isinstance(path, (str, Path)) else [Path(p) for p in path]
    for root in roots:
        if not root.is_dir():
            raise CatalogError(root, "not a folder (expected <root>/<class>/<image>)")
    base = Path(os.path.commonpath([str(r.resolve()) for r in roots])) if len(roots) > 1 else roots[0].resolve()
    source = source or (base.name if len(roots) > 1 else roots[0].name) or "folder"
    report = ParseReport(source)
    artworks: list[Artwork] = []
    for root in roots:
        for class_dir in sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")):
            images = sorted(p for p in class_dir.rglob("*") if p.is_file() and _is_image(p))
            label_raw = class_dir.name
            label = nz.map_label(task, label_raw)
            for image in images:
                report.rows += 1
                _set_label(report, task, label_raw, label)
                rel = image.resolve().relative_to(base).with_suffix("").as_posix()
                artworks.append(
                    Artwork(
                        artwork_id=f"{source}:{rel}",
                        source=source,
                        image=_abs(image),
                        extra={"folder": label_raw, "root": root.name},
                        **{task: label},
                    )
                )
    _no_images(
        roots[0] if len(roots) == 1 else base, artworks, "no images found in class folders (<root>/<class>/*.jpg)"
    )
    return Catalog(artworks, report)


# ----------------------------------------------------------------------------- CSV manifest

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
    base = Path(images_dir) if images_dir else path.parent
    source = source or _source_name(path, "manifest")
    report = ParseReport(source)
    artworks: list[Artwork] = []
    seen: set[str] = set()

    def value(row: dict[str, str], fld: str) -> str:
        col = resolved.get(fld)
        return row.get(col, "").strip() if col else ""

    for row in rows:
        row_no = int(row["__row__"])
        report.rows += 1
        image_value, url = value(row, "image"), value(row, "url") or None
        image = None
        if image_value:
            candidate = Path(image_value) if Path(image_value).is_absolute() else base / image_value
            if candidate.is_file():
                image = _abs(candidate)
            elif re.match(r"^https?://", image_value):
                url = url or image_value
        if image is None and url is None:
            report.skip("image file missing" if image_value else "no image or URL")
            continue
        local = value(row, "id") or (Path(image_value).with_suffix("").as_posix() if image_value else f"row{row_no}")
        local = re.sub(r"^images/", "", local)
        artwork_id = _unique_id(seen, source, local, row_no)
        artist_raw = value(row, "artist")
        parsed = nz.parse_artist(artist_raw) if artist_raw else nz.ParsedArtist()
        _count_artist(report, artist_raw, parsed)
        date = value(row, "date")
        year, timeframe = nz.parse_date(date) if date else (None, None)
        report.count("year", nz.has_date(date), year is not None)
        tf_raw = value(row, "timeframe")
        if tf_raw:
            timeframe = nz.map_timeframe(tf_raw)
        _count_timeframe(report, tf_raw, date, year, timeframe)
        school_raw = value(row, "school")
        if school_raw:
            school = _set_label(report, "school", school_raw, nz.map_school(school_raw))
        else:
            nat = parsed.nationality
            school = _set_label(report, "school", nat, parsed.school) if nat else None
        type_raw = value(row, "type")
        kind = _set_label(report, "type", type_raw, nz.map_type(type_raw)) if type_raw else None
        style_raw = value(row, "style")
        style = _set_label(report, "style", style_raw, nz.map_style(style_raw)) if style_raw else None
        extra = _non_empty(
            {
                "artist_raw": artist_raw,
                "date": date,
                "row": str(row_no),
                "attribution": parsed.attribution,
                "attributed_to": parsed.attributed_to,
            }
        )
        for col in header:
            if col not in resolved.values() and row.get(col):
                extra[col.lower()] = row[col]
        artworks.append(
            Artwork(
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
        )
    if report.rows == 0:
        raise CatalogError(path, "the manifest has a header but no rows")
    _no_images(path, artworks, "no images found: no row's image file exists and no row has a url")
    return Catalog(artworks, report)


# ----------------------------------------------------------------------------- WikiArt

_WIKIART_STEM = re.compile(r"^(?P<title>.*?)(?:-(?P<year>\d{4}))?(?:-(?P<dup>\d{1,2}))?$")


def parse_wikiart_name(name: str) -> tuple[str | None, str | None, int | None]:
    """(artist, title, year) from a WikiArt benchmark file name:
    "rembrandt_self-portrait-1630-1.jpg" -> ("Rembrandt", "Self portrait", 1630);
    "caravaggio_amor-victorious-1602(1).jpg" -> ("Caravaggio", "Amor victorious", 1602);
    "guido-reni_not_detected_232244-1635.jpg" -> ("Guido Reni", None, 1635)."""
    stem = Path(name).stem if Path(name).suffix.lower() in IMAGE_EXTENSIONS else name
    stem = nz.fix_text(stem)
    stem = re.sub(r"\(\d+\)$", "", stem)
    if "_" not in stem:
        return None, None, None
    artist_slug, rest = stem.split("_", 1)
    m = _WIKIART_STEM.match(rest)
    title_slug, year = (m.group("title"), m.group("year")) if m else (rest, None)
    if year is None:
        m2 = re.match(r"^(?P<title>.*?)-(?P<year>\d{4})$", rest)
        if m2:
            title_slug, year = m2.group("title"), m2.group("year")
    title = None if re.match(r"^not[_-]detected", title_slug) or not title_slug else nz.slug_to_title(title_slug)
    artist = nz.display_artist(nz.slug_to_name(artist_slug)) if artist_slug else None
    return artist, title, int(year) if year else None


def _read_label_csv(csv_path: Path) -> dict[str, str]:
    """path -> label from a WikiArt ``path,label`` CSV (header optional; integer labels are
    resolved through ``<name>_class.txt`` beside it, as the ArtGAN lists do)."""
    text = _read_text(csv_path)
    labels: dict[str, str] = {}
    classes: dict[str, str] = {}
    stem = csv_path.stem.split("_")[0]
    for class_file in (csv_path.parent / f"{stem}_class.txt", csv_path.parent / f"{stem}_classes.txt"):
        if class_file.is_file():
            for line in _read_text(class_file).splitlines():
                parts = line.strip().split(None, 1)
                if len(parts) == 2:
                    classes[parts[0]] = parts[1]
    reader = csv.reader(io.StringIO(text), delimiter=_sniff_delimiter(text.splitlines()[0]))
    for i, values in enumerate(reader, start=1):
        if len(values) < 2:
            continue
        rel, label = values[0].strip(), values[1].strip()
        if i == 1 and not _is_image(Path(rel)):
            continue  # header
        labels[rel.replace("\\", "/")] = classes.get(label, label)
    return labels


def read_wikiart(
    path: str | Path,
    *,
    source: str | None = None,
    genre: str | Path | None = None,
    style_csv: str | Path | None = None,
    artist_csv: str | Path | None = None,
) -> Catalog:
    """Read the WikiArt benchmark layout (ArtGAN): ``<root>/<Style>/<artist-slug>_<title-slug>-<year>.jpg``.

    style = the folder (mapped: "Mannerism_Late_Renaissance" -> "Mannerism"); artist, title
    and year from the file name (year -> timeframe); type from a ``path,genre`` CSV
    (``genre``; ``<root>/genre.csv`` or ``genre_*.csv`` by default; genres mapped:
    "religious_painting" -> "religious", "sketch_and_study" unmapped). ``style_csv`` /
    ``artist_csv`` override the folder / file-name labels when given.
    """
    path = Path(path)
    root = path.parent if path.is_file() else path
    if not root.is_dir():
        raise CatalogError(path, "not a folder (expected <root>/<Style>/<artist>_<title>-<year>.jpg)")
    source = source or root.name or "wikiart"

    def find_csv(option, prefix: str) -> dict[str, str]:
        if option:
            p = Path(option)
            p = p if p.is_absolute() or p.exists() else root / p
            if not p.is_file():
                raise CatalogError(p, f"the {prefix} CSV does not exist")
            return _read_label_csv(p)
        labels: dict[str, str] = {}
        for p in sorted(root.glob(f"{prefix}*.csv")):
            labels.update(_read_label_csv(p))
        return labels

    genres = find_csv(genre if not (path.is_file() and genre is None) else path, "genre")
    styles = find_csv(style_csv, "style") if style_csv else {}
    artists = find_csv(artist_csv, "artist") if artist_csv else {}
    report = ParseReport(source)
    artworks: list[Artwork] = []
    for style_dir in sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")):
        for image in sorted(p for p in style_dir.iterdir() if p.is_file() and _is_image(p)):
            report.rows += 1
            rel = f"{style_dir.name}/{image.name}"
            artist, title, year = parse_wikiart_name(image.name)
            if rel in artists:
                artist = nz.display_artist(nz.slug_to_name(artists[rel]))
            report.count("artist", True, artist is not None)
            report.count("year", True, year is not None)
            timeframe = timeframe_of(year)
            _count_timeframe(report, "", None, year, timeframe)
            style_raw = styles.get(rel, style_dir.name)
            style = _set_label(report, "style", style_raw, nz.map_style(style_raw))
            genre_raw = genres.get(rel)
            kind = _set_label(report, "type", genre_raw, nz.map_type(genre_raw)) if genre_raw else None
            extra = {"folder": style_dir.name}
            if genre_raw:
                extra["genre"] = genre_raw
            artworks.append(
                Artwork(
                    artwork_id=f"{source}:{Path(rel).with_suffix('').as_posix()}",
                    source=source,
                    image=_abs(image),
                    title=title,
                    artist=artist,
                    year=year,
                    timeframe=timeframe,
                    type=kind,
                    style=style,
                    extra=extra,
                )
            )
    _no_images(root, artworks, "no images found (expected <root>/<Style>/<artist>_<title>-<year>.jpg)")
    return Catalog(artworks, report)


# ----------------------------------------------------------------------------- specs

READERS = {
    "wga": read_wga,
    "kaggle": read_kaggle,
    "folder": read_folder,
    "manifest": read_manifest,
    "wikiart": read_wikiart,
}


def _coerce(value: str):
    low = value.lower()
    if low in {"true", "yes", "on", "1"}:
        return True
    if low in {"false", "no", "off", "0"}:
        return False
    if low in {"none", "null"}:
        return None
    return value


def sniff_kind(path: str | Path) -> str:
    """Which reader a bare path needs ("wga", "kaggle", "folder", "manifest", "wikiart")."""
    path = Path(path)
    if path.is_file():
        header, _ = _peek_header(path)
        lower = {h.lower() for h in header}
        if "author" in lower and lower & {"url", "jpg_link", "file"}:
            return "wga"
        if {"name", "nationality"} <= lower or {"name", "years"} <= lower:
            return "kaggle"
        if len(header) == 2 and _is_image(Path(header[0])):
            return "wikiart"
        return "manifest"
    if not path.is_dir():
        raise CatalogError(path, "no such file or folder")
    if (path / "artists.csv").is_file() and (path / "images").is_dir():
        return "kaggle"
    for name in ("catalog.csv",):
        if (path / name).is_file():
            return "wga"
    if (path / "metadata.csv").is_file():
        return "manifest"
    subdirs = [p for p in path.iterdir() if p.is_dir() and not p.name.startswith(".")]
    if list(path.glob("genre*.csv")) or list(path.glob("style*.csv")):
        return "wikiart"
    sample = [f.name for d in subdirs[:5] for f in list(d.iterdir())[:20] if f.is_file() and _is_image(f)]
    if sample and sum(bool(re.match(r"^[a-z0-9.\-]+_.+-\d{4}", n)) for n in sample) >= 0.8 * len(sample):
        return "wikiart"
    if subdirs:
        return "folder"
    raise CatalogError(
        path, "cannot tell the catalog kind (no catalog.csv, metadata.csv, artists.csv or class folders)"
    )


def _peek_header(path: Path) -> tuple[list[str], str]:
    text = _read_text(path)
    first = text.lstrip().splitlines()[0]
    return next(csv.reader([first], delimiter=_sniff_delimiter(first))), first


#: "kind:" at the start of a catalog spec (not a Windows drive: "C:\\...")
_KIND_PREFIX = re.compile(r"^([a-z_]+):(?!\\)(.*)$")


def parse_spec(spec: str | Path) -> tuple[str | None, str, dict[str, object]]:
    """ "kind:path?opt=val&opt2=val" -> (kind or None, path, options)."""
    text = str(spec)
    kind = None
    m = _KIND_PREFIX.match(text)
    if m and m.group(1) in READERS:
        kind, text = m.group(1), m.group(2)
    options: dict[str, object] = {}
    if "?" in text:
        text, query = text.split("?", 1)
        options = {k: _coerce(v) for k, v in parse_qsl(query, keep_blank_values=True)}
    return kind, text, options


def read_catalog(spec: str | Path, kind: str | None = None, **options) -> Catalog:
    """Read any catalog from a spec "kind:path?opt=val", e.g.
    "wga:../shared/data/wga/catalog.csv", "folder:../shared/data/louvre/train?task=type",
    "kaggle:../shared/data/artists7", "manifest:../shared/data/aic/metadata.csv",
    "wikiart:../shared/data/wikiart"; a bare path is sniffed (``sniff_kind``).
    Keyword ``options`` override the spec's."""
    spec_kind, path_text, spec_options = parse_spec(spec)
    kind = kind or spec_kind
    path = Path(path_text).expanduser()
    prefix = _KIND_PREFIX.match(path_text)
    if kind is None and prefix and not path.exists():  # "bogus:x" is a misspelt kind, not a file name
        raise CatalogError(prefix.group(2), f"unknown catalog kind {prefix.group(1)!r}; kinds are {', '.join(READERS)}")
    if not path.exists():
        raise CatalogError(path, "no such file or folder")
    if kind is None:
        kind = sniff_kind(path)
    if kind not in READERS:
        raise CatalogError(path, f"unknown catalog kind {kind!r}; kinds are {', '.join(READERS)}")
    merged = {**spec_options, **options}
    if kind == "wga" and path.is_dir():
        path = path / "catalog.csv"
    if kind == "manifest" and path.is_dir():
        path = path / "metadata.csv"
    if kind == "wikiart" and "genre_csv" in merged:
        merged["genre"] = merged.pop("genre_csv")
    try:
        return READERS[kind](path, **merged)
    except TypeError as exc:
        if "unexpected keyword" in str(exc):
            raise CatalogError(path, f"unknown option for {kind}: {exc}") from exc
        raise


# ----------------------------------------------------------------------------- shared data


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
