"""Dataset configuration: the split names and strategies, ``DatasetConfig`` (validated on creation) and ``DatasetError``."""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from typing import TYPE_CHECKING, Any

from vasari.core.labels import TASKS
from vasari.errors import InputError

if TYPE_CHECKING:  # pragma: no cover
    pass


SPLITS: tuple[str, ...] = ("train", "val", "test")
SPLIT_STRATEGIES: tuple[str, ...] = ("grouped", "random")
FORMAT = "vasari-dataset/1"
#: ``Artwork.extra`` keys that readers may fill with the source's own object kind (WGA FORM).
FORM_KEYS: tuple[str, ...] = ("form", "FORM")


class DatasetError(InputError):
    """Bad dataset input or configuration; the message names the file (and row) at fault."""


@dataclass(frozen=True)
class DatasetConfig:
    """How a dataset is filtered, deduplicated and split (saved in ``dataset.json``).

    ``types``: keep only works whose (known) type is one of these; works without a type
    label are kept. ``min_per_class``: per task, classes with fewer training examples lose
    their label. ``stratify_on``: the task whose class balance the split preserves
    (records lacking it are spread like a class of their own). ``group_details``: a detail
    ("Last Supper (detail)") joins the group of the same artist's work of that title.

    Near-duplicates: two images are copies of one artwork when their 64-bit perceptual hashes
    differ in at most ``phash_distance`` bits *and* their 256-bit perceptual hashes (16x16
    DCT) in at most ``confirm_distance`` bits. On ../shared/data the 64-bit hash alone
    is not precise (dark portraits and framed Louvre landscapes collide from 4-6 bits up)
    while every pair it finds up to 18 bits that the 256-bit hash confirms (<= 64) is a
    copy, a version or a re-photograph of one work. ``confirm_distance=None`` uses the
    64-bit hash alone (then keep ``phash_distance`` <= 6).
    """

    first_year: int = 1401
    last_year: int = 1900
    keep_undated: bool = True
    paintings_only: bool = True
    types: tuple[str, ...] | None = None
    min_per_class: int = 10
    split: str = "grouped"
    group_by_artist: bool = False
    stratify_on: str | None = "type"
    val_fraction: float = 0.1
    test_fraction: float = 0.1
    seed: int = 0
    group_details: bool = True
    phash_distance: int = 18
    confirm_distance: int | None = 64
    #: Artist vocabulary = painters active 1401-1900: sculptors and 20th-century artists lose their
    #: artist label (the table in ``vasari.core.scope``, applied by ``vasari.dataset.clean``).
    artist_scope: bool = False

    def __post_init__(self) -> None:
        if self.split not in SPLIT_STRATEGIES:
            raise DatasetError(f"unknown split strategy {self.split!r}; use one of {', '.join(SPLIT_STRATEGIES)}")
        if self.stratify_on is not None and self.stratify_on not in TASKS:
            raise DatasetError(f"unknown task {self.stratify_on!r} to stratify on; tasks are {', '.join(TASKS)}")
        for name in ("val_fraction", "test_fraction"):
            value = getattr(self, name)
            if not 0.0 <= value < 1.0:
                raise DatasetError(f"{name} must be in [0, 1), got {value}")
        if self.val_fraction + self.test_fraction >= 1.0:
            raise DatasetError("val_fraction + test_fraction must leave some training data (< 1)")
        if self.first_year > self.last_year:
            raise DatasetError(f"first_year {self.first_year} is after last_year {self.last_year}")
        if self.min_per_class < 0:
            raise DatasetError(f"min_per_class must be >= 0, got {self.min_per_class}")
        if not 0 <= self.phash_distance <= 64:
            raise DatasetError(f"phash_distance must be in 0..64 bits, got {self.phash_distance}")
        if self.confirm_distance is not None and not 0 <= self.confirm_distance <= 256:
            raise DatasetError(f"confirm_distance must be in 0..256 bits, got {self.confirm_distance}")
        if self.types is not None and not isinstance(self.types, tuple):
            object.__setattr__(self, "types", tuple(self.types))

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["types"] = list(self.types) if self.types is not None else None
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "DatasetConfig":
        names = {f.name for f in fields(cls)}
        values = {k: v for k, v in data.items() if k in names}
        if values.get("types") is not None:
            values["types"] = tuple(values["types"])
        return cls(**values)
