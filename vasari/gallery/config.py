"""The gallery index's file names, format version, errors and build configuration."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from vasari.errors import InputError, ModelError

INDEX_FORMAT = 1
INDEX_FILE = "index.json"
#: ``artist`` is the artist *vocabulary* label (it drives affinity); ``catalog_artist`` the name
#: a catalog gives a work whose label the dataset removed (an artist outside the vocabulary),
#: shown for similar paintings only (issue #14: "Pond in the Woods" is by Diaz de la Peña).
META_FIELDS = ("artwork_id", "title", "artist", "year", "school", "type", "timeframe", "style",
               "source", "group", "image", "url", "catalog_artist")


class GalleryIndexError(ModelError):
    """A missing, corrupt or incompatible index folder (the message names the file)."""


class IndexSpecError(GalleryIndexError):
    """The index was built with another backbone spec than the one asked for."""


class IndexConfigError(InputError):
    """An ``IndexConfig`` value out of range (the message names the field)."""


#: What ``IndexConfig.kind`` may ask for; "auto" resolves by size (``vasari.gallery.ann.resolve_kind``).
INDEX_KINDS = ("auto", "exact", "ivf-flat", "ivf-pq")


@dataclass(frozen=True)
class IndexConfig:
    """How an index is built and calibrated.

    Search kinds (``kind``; docs/scale.md, "Index" has the measurements): ``exact`` compares a
    query with every vector (numpy, or FAISS ``IndexFlatIP`` from ``faiss_min_size`` on:
    the same answers); ``ivf-flat`` and ``ivf-pq`` are FAISS inverted-file indexes that look
    only in the ``nprobe`` of ``nlist`` clusters nearest the query, then score the
    ``k * rerank_factor`` candidates exactly on the stored vectors (``ivf-pq`` ranks them
    by 8-bit product-quantised codes, ``pq_m`` bytes a vector).
    "auto" is exact below ``faiss_min_size`` (100k: small galleries keep exact answers, and
    exact search there is a few ms), IVF-Flat up to ``ivf_pq_min_size`` and IVF-PQ from it.
    Why 1M (benchmarks/scale_index.py, 1M vectors, 2 busy cores, 1,000 held-out queries,
    2,048 lists, nprobe 128): IVF-PQ with re-ranking reached recall@10 .992 on augmented
    copies of real vectors and .944 on a Gaussian with their spectrum (the hard case; .970 at
    nprobe 256) at a p50 of 2.8-4.5 ms with 39 MB of codes; IVF-Flat .993 / .963 at 7.5-7.9
    ms with 497 MB of float32 lists. Both meet the target (.95, 10 ms) on realistic vectors;
    from 1M the 12x smaller, 2x faster codes win, below it IVF-Flat's lists still fit
    comfortably in memory, it builds faster (no codebooks: 9 vs 32 s at 100k) and finds a
    little more. Default ``nprobe`` 128; raise it for collections without clusters.
    """

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
    kind: str = "auto"                # auto | exact | ivf-flat | ivf-pq (see above)
    ivf_pq_min_size: int = 1_000_000  # auto: IVF-PQ from this many vectors on
    nlist: int | None = None          # IVF clusters (None: about 2 sqrt(N), a power of two)
    nprobe: int = 128                 # clusters searched per query (recall vs latency; see above)
    pq_m: int = 32                    # IVF-PQ: bytes per vector (sub-quantizers; divides the dim)
    rerank_factor: int = 10           # IVF: candidates scored exactly per result wanted
    train_size: int = 100_000         # IVF: vectors sampled to train the clusters and codebooks

    def __post_init__(self) -> None:
        if self.kind not in INDEX_KINDS:
            raise IndexConfigError(f"index kind {self.kind!r}: choose one of {', '.join(INDEX_KINDS)}")
        if self.dtype not in ("float16", "float32"):
            raise IndexConfigError(f"dtype {self.dtype!r}: choose float16 or float32")
        positive = {"nprobe": self.nprobe, "pq_m": self.pq_m, "rerank_factor": self.rerank_factor,
                    "train_size": self.train_size, "faiss_min_size": self.faiss_min_size,
                    "ivf_pq_min_size": self.ivf_pq_min_size, "nlist": 1 if self.nlist is None else self.nlist}
        for name, value in positive.items():
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise IndexConfigError(f"{name} must be a positive integer, got {value!r}")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> IndexConfig:
        known = {f for f in cls.__dataclass_fields__}
        return cls(**{k: v for k, v in data.items() if k in known})

