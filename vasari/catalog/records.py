"""Catalog records: the ``Artwork`` a reader yields, the ``ParseReport`` that counts what it parsed, and ``Catalog`` (both together); ``CatalogError`` names the file and row."""

from __future__ import annotations

import collections
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

from vasari.core.labels import TASKS
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
