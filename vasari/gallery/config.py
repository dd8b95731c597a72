"""The gallery index's file names, format version, errors and build configuration."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from vasari.errors import ModelError

INDEX_FORMAT = 1
INDEX_FILE = "index.json"
META_FIELDS = ("artwork_id", "title", "artist", "year", "school", "type", "timeframe", "style",
               "source", "group", "image", "url")


class GalleryIndexError(ModelError):
    """A missing, corrupt or incompatible index folder (the message names the file)."""


class IndexSpecError(GalleryIndexError):
    """The index was built with another backbone spec than the one asked for."""


@dataclass(frozen=True)
class IndexConfig:
    """How an index is built and calibrated."""

    dtype: str = "float16"            # storage of the projected vectors: float16 | float32
    pca_dim: int | None = 128         # reduce to this many dimensions (None: keep all)
    center: bool = False              # subtract the gallery mean first (ruins novelty: see above)
    scale: bool = False               # divide each dimension by its spread (worse on artists7)
    thumbnails: bool = True           # write thumbs/<row>.jpg when the images are local
    thumb_size: int = 160             # long side of a thumbnail (pixels)
    top_m: int = 3                    # affinity: mean of the m best similarities per artist
    min_artist_works: int = 2         # artists with fewer works in the gallery get no affinity
    novelty_quantile: float = 0.99    # threshold = this quantile of held-out paintings' distance
    negative_fpr: float = 0.01        # non-painting references: paintings they may wrongly flag
    faiss_min_size: int = 100_000     # use FAISS (when installed) from this many vectors on
    head_weight: float = 0.5          # affinity: weight of the artist head in the log-linear pool

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> IndexConfig:
        known = {f for f in cls.__dataclass_fields__}
        return cls(**{k: v for k, v in data.items() if k in known})

