"""Catalog readers: turn a source's own table or folder layout into ``Artwork`` records."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields

from vasari.labels import TASKS


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
        """This artwork's label for a task (one of ``vasari.labels.TASKS``)."""
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
