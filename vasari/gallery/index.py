"""Gallery index: similar paintings, artist affinity and novelty ("is this a known kind of
picture at all?") from the backbone embeddings of a catalog.

``GalleryIndex`` is a thin facade over one module per job: ``store`` (the folder layout, load,
save, thumbnails), ``projection`` (uncentred PCA), ``search`` (nearest neighbours, exact or
FAISS), ``affinity`` (artists), ``novelty`` and ``calibrate`` (temperature and thresholds).
Adding these to prediction objects is ``vasari.inference.enrich``.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from vasari.gallery.affinity import AffinityMixin
from vasari.gallery.ann import AnnIndex, resolve_kind
from vasari.gallery.calibrate import CalibrateMixin
from vasari.gallery.config import GalleryIndexError, IndexConfig, IndexSpecError
from vasari.gallery.novelty import NoveltyMixin
from vasari.gallery.projection import Projection
from vasari.gallery.search import SearchMixin
from vasari.gallery.store import StoreMixin, _counts, _meta_row, find_index

if TYPE_CHECKING:
    from vasari.catalog import Artwork
    from vasari.features import BackboneSpec


class GalleryIndex(StoreMixin, SearchMixin, AffinityMixin, NoveltyMixin, CalibrateMixin):
    """Embeddings of known works with their metadata; similar works, affinity, novelty.

    Build with ``GalleryIndex.build(features, artworks, spec)``; open a saved one with
    ``GalleryIndex.load(folder, spec=...)``. Queries take raw backbone features (the same
    ``BackboneSpec``), one vector ``(dim,)`` or a batch ``(n, dim)``.
    """

    def __init__(
        self,
        vectors: np.ndarray,
        metadata: list[dict[str, Any]],
        projection: Projection,
        spec: BackboneSpec | None = None,
        config: IndexConfig = IndexConfig(),
        calibration: dict[str, Any] | None = None,
        path: Path | None = None,
        explained: np.ndarray | None = None,
        negatives: np.ndarray | None = None,
        negative_labels: Sequence[str] | None = None,
        ann: AnnIndex | None = None,
    ):
        if len(vectors) != len(metadata):
            raise GalleryIndexError(f"{len(vectors)} vectors but {len(metadata)} metadata rows")
        # a memory map (IVF indexes) stays one: read-only pages shared by every process
        self.vectors = vectors if isinstance(vectors, np.memmap) else np.ascontiguousarray(vectors)
        self.metadata = metadata
        self.projection = projection
        self.spec = spec
        self.config = config
        self.calibration: dict[str, Any] = dict(calibration or {})
        self.path = Path(path) if path else None
        #: per gallery row, the fraction of its raw vector inside the PCA subspace
        self.explained = (np.ones(len(metadata), np.float32) if explained is None
                          else np.asarray(explained, np.float32))
        self._vectors32: np.ndarray | None = None
        self._columns32: np.ndarray | None = None
        #: projected unit vectors of known non-paintings (architecture, sculpture...) and what
        #: each is; a query nearer to one of them than to any painting is not a painting
        self.negatives = None if negatives is None or len(negatives) == 0 else np.asarray(negatives)
        self.negative_labels = list(negative_labels or ([""] * (0 if self.negatives is None else len(self.negatives))))
        self._faiss_index = None
        #: the approximate (IVF) search structure; None: exact search
        self.ann = ann
        #: hit dicts per (row, fields), kept across queries: a row's labels and thumbnail do not change
        self.hit_memo: dict = {}
        self._artists: list[str] | None = None
        self._artist_rows: list[np.ndarray] | None = None
        self._artist_buckets: list[tuple[np.ndarray, np.ndarray, np.ndarray]] | None = None

    # -- construction ------------------------------------------------------------------
    @classmethod
    def build(
        cls,
        features: np.ndarray,
        artworks: Sequence[Artwork | dict[str, Any]],
        spec: BackboneSpec | None = None,
        config: IndexConfig = IndexConfig(),
        calibrate: bool = True,
        negatives: np.ndarray | None = None,
        negative_labels: Sequence[str] | None = None,
    ) -> GalleryIndex:
        """An index of ``artworks`` from their raw features (NaN rows are dropped).

        ``negatives``: raw features of known non-paintings (photos of buildings, sculpture,
        prints...) with a label each; they are never returned as similar works, they only
        sharpen novelty: a query closer to them than to every painting counts as novel.
        """
        features = np.asarray(features, dtype=np.float32)
        if features.ndim != 2 or len(features) != len(artworks):
            raise GalleryIndexError(f"features {features.shape} do not match {len(artworks)} artworks")
        if spec is not None and features.shape[1] != spec.dim:
            raise IndexSpecError(f"features have {features.shape[1]} dims but {spec.name}/{spec.feature} gives {spec.dim}")
        ok = np.isfinite(features).all(axis=1)
        features = features[ok]
        rows = [_meta_row(a) for a, keep in zip(artworks, ok) if keep]
        if len(rows) == 0:
            raise GalleryIndexError("no embedded artworks to index")
        projection = Projection.fit(features, config.center, config.scale, config.pca_dim)
        vectors, explained = projection.transform(features)
        neg = labels = None
        if negatives is not None and len(negatives):
            negatives = np.asarray(negatives, np.float32)
            keep = np.isfinite(negatives).all(axis=1)
            neg = projection.transform(negatives[keep])[0].astype(config.dtype)
            given = list(negative_labels) if negative_labels is not None else [""] * len(keep)
            labels = [str(lab or "") for lab, k in zip(given, keep) if k]
        index = cls(vectors.astype(config.dtype), rows, projection, spec, config, explained=explained,
                    negatives=neg, negative_labels=labels)
        kind = resolve_kind(config, len(rows))
        if kind != "exact":
            index.ann = AnnIndex.build(kind, index.vectors, config)
        if calibrate and len(rows) >= 10:
            index.calibrate()
        return index

    def __len__(self) -> int:
        return len(self.metadata)

    @property
    def kind(self) -> str:
        """How queries are answered: "exact", "ivf-flat" or "ivf-pq" (``vasari.gallery.ann``)."""
        return "exact" if self.ann is None else self.ann.kind

    @property
    def dim(self) -> int:
        return int(self.vectors.shape[1])

    def info(self) -> dict[str, Any]:
        return {
            "count": len(self), "dim": self.dim, "dtype": str(self.vectors.dtype), "kind": self.kind,
            "ann": None if self.ann is None else self.ann.describe(),
            "spec": self.spec.key() if self.spec is not None else None,
            "artists": len(self.artists), "calibration": self.calibration,
            "sources": _counts(r.get("source") for r in self.metadata),
            "path": str(self.path) if self.path else None,
        }



def load_bundle_index(bundle_dir: str | Path | None, spec: BackboneSpec | None = None) -> GalleryIndex | None:
    """The gallery index inside a bundle (``<bundle>/index/``), or None when it has none.

    Raises ``IndexSpecError`` when the index was built with another backbone than ``spec``.
    """
    where = find_index(bundle_dir)
    return None if where is None else GalleryIndex.load(where, spec=spec)
