"""Approximate nearest neighbours for galleries of millions: FAISS inverted-file indexes.

Exact search reads every vector for every query: 1M x 128 float32 is 512 MB per query
batch and ~40 ms a query on 2 cores. An inverted-file (IVF) index clusters the vectors
(k-means, ``nlist`` clusters trained on a sample) and looks only in the ``nprobe`` clusters
nearest the query. Two kinds:

- ``ivf-flat``: the clusters hold the vectors themselves (float32); the ``k * rerank_factor``
  nearest in the probed clusters are re-scored, so only the clustering can miss a neighbour.
- ``ivf-pq``: the clusters hold ``pq_m``-byte product-quantised codes of each vector's
  residual; the ``k * rerank_factor`` best candidates by code are re-scored exactly on the
  stored vectors (``vectors.npy``, memory-mapped), so the scores a user sees are the same
  cosines exact search gives.

Both are re-scored on the stored vectors, so a hit's score never depends on the kind. The
FAISS file is memory-mapped read-only when served (``faiss.IO_FLAG_MMAP``): replicas on one
machine share its pages through the OS page cache. FAISS is optional; asking for an IVF
kind without it raises ``GalleryIndexError`` naming ``pip install -e '.[faiss]'``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from vasari.core.fileio import atomic_open
from vasari.gallery.config import GalleryIndexError, IndexConfig, IndexConfigError

#: The FAISS file of an IVF index inside the index folder.
ANN_FILE = "ann.faiss"
#: Vectors added to FAISS per call (bounded float32 copies of a memory-mapped store).
ADD_BATCH = 65_536


def faiss_available() -> bool:
    try:
        import faiss  # type: ignore[import-not-found]  # noqa: F401
    except ImportError:
        return False
    return True


def require_faiss(what: str) -> Any:
    """The ``faiss`` module, or a ``GalleryIndexError`` saying how to install it."""
    try:
        import faiss  # type: ignore[import-not-found]
    except ImportError as exc:
        raise GalleryIndexError(f"{what} needs FAISS, which is not installed: pip install -e '.[faiss]' "
                                "(or build an exact index with --kind exact)") from exc
    return faiss


def resolve_kind(config: IndexConfig, n: int) -> str:
    """The search kind an index of ``n`` vectors gets: ``config.kind`` unless it is "auto"
    (exact below ``faiss_min_size``, IVF-Flat below ``ivf_pq_min_size``, IVF-PQ above;
    exact when FAISS is not installed, since "auto" promised no particular kind)."""
    if config.kind != "auto":
        return config.kind
    if n < config.faiss_min_size or not faiss_available():
        return "exact"
    return "ivf-pq" if n >= config.ivf_pq_min_size else "ivf-flat"


def default_nlist(n: int) -> int:
    """About ``2 sqrt(n)`` clusters as a power of two (512 at 100k, 2,048 at 1M), and at
    least 39 training vectors per cluster (FAISS's own floor for a stable k-means): fewer,
    larger clusters than the usual 4 sqrt(n) train in half the time on 2 cores, and a query
    still scans only ~1.5% of 1M vectors at nprobe 32."""
    target = max(1, 2 ** round(math.log2(max(1.0, 2 * math.sqrt(n)))))
    return int(max(1, min(target, n // 39)))


@dataclass
class AnnIndex:
    """A trained FAISS IVF index over a gallery's projected unit vectors (L2 metric: on unit
    vectors the same order as cosine similarity) and how it is searched."""

    kind: str
    index: Any
    nprobe: int
    rerank_factor: int

    @classmethod
    def train(cls, kind: str, sample: np.ndarray, n_total: int, config: IndexConfig) -> AnnIndex:
        """An empty index of ``kind`` with clusters (and codebooks) trained on ``sample``."""
        faiss = require_faiss(f"a {kind} index")
        sample = np.ascontiguousarray(sample, dtype=np.float32)
        dim = sample.shape[1]
        nlist = int(min(config.nlist or default_nlist(n_total), len(sample)))
        quantizer = faiss.IndexFlatL2(dim)
        if kind == "ivf-flat":
            index = faiss.IndexIVFFlat(quantizer, dim, nlist, faiss.METRIC_L2)
        elif kind == "ivf-pq":
            if dim % config.pq_m:
                raise IndexConfigError(f"pq_m {config.pq_m} does not divide the index's {dim} dimensions")
            if len(sample) < 256:
                raise IndexConfigError(f"ivf-pq needs at least 256 vectors to train its codebooks, got {len(sample)}")
            index = faiss.IndexIVFPQ(quantizer, dim, nlist, config.pq_m, 8, faiss.METRIC_L2)
            # a small gallery trains its 256 codes per sub-quantizer on fewer points than FAISS
            # asks for; re-ranking on the stored vectors makes up for coarse codes (no warning)
            index.pq.cp.min_points_per_centroid = min(39, max(1, len(sample) // 256))
        else:
            raise IndexConfigError(f"{kind!r} is not an approximate index kind (ivf-flat or ivf-pq)")
        index.train(sample)
        index.nprobe = min(config.nprobe, nlist)
        return cls(kind, index, config.nprobe, config.rerank_factor)

    @classmethod
    def build(cls, kind: str, vectors: np.ndarray, config: IndexConfig, seed: int = 0,
              progress: bool = False) -> AnnIndex:
        """Train on a sample of ``vectors`` (``config.train_size`` rows) and add them all in
        batches: a memory-mapped store is never copied whole to float32."""
        n = len(vectors)
        rng = np.random.default_rng(seed)
        pick = np.sort(rng.choice(n, min(n, config.train_size), replace=False))
        ann = cls.train(kind, np.asarray(vectors[pick], np.float32), n, config)
        from vasari.core.progress import make_progress

        with make_progress(transient=True, disable=not progress) as bar:
            task = bar.add_task(f"{kind} index", total=n)
            for start in range(0, n, ADD_BATCH):
                ann.index.add(np.ascontiguousarray(vectors[start:start + ADD_BATCH], dtype=np.float32))
                bar.update(task, completed=min(n, start + ADD_BATCH))
        return ann

    def __len__(self) -> int:
        return int(self.index.ntotal)

    def set_nprobe(self, nprobe: int) -> None:
        """Search this many clusters per query from now on (more: higher recall, slower)."""
        self.nprobe = int(nprobe)
        self.index.nprobe = int(min(nprobe, self.index.nlist))

    def search(self, queries: np.ndarray, k: int, vectors: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(scores, rows), each ``(n, k)``, best first: candidates from the IVF lists scored
        exactly (cosine) on ``vectors``; rows are -1 (score -inf) where fewer were found."""
        q = np.ascontiguousarray(queries, dtype=np.float32)
        # both kinds over-fetch: float16 storage leaves norms off 1 by ~1e-3, so FAISS's L2
        # order differs from the cosine order among near-equal neighbours (IVF-Flat recall@10
        # at 1M rose from .972 to .99+ once its candidates were re-scored like IVF-PQ's)
        wanted = k * self.rerank_factor
        _, cand = self.index.search(q, int(min(wanted, len(self))))
        found = cand >= 0
        rows = np.where(found, cand, 0)
        cand_vecs = np.asarray(vectors[rows.ravel()], np.float32).reshape(*rows.shape, -1)
        scores = np.where(found, np.einsum("qcd,qd->qc", cand_vecs, q), -np.inf).astype(np.float32)
        best = np.argsort(-scores, axis=1, kind="stable")[:, :k]
        top_scores = np.take_along_axis(scores, best, axis=1)
        top_rows = np.where(np.isfinite(top_scores), np.take_along_axis(rows, best, axis=1), -1)
        return top_scores, top_rows.astype(np.int64)

    def describe(self) -> dict[str, Any]:
        """What index.json records about the IVF index (the FAISS file holds the rest)."""
        out = {"kind": self.kind, "file": ANN_FILE, "nlist": int(self.index.nlist), "nprobe": self.nprobe,
               "count": len(self)}
        out["rerank_factor"] = self.rerank_factor
        if self.kind == "ivf-pq":
            out["pq_m"] = int(self.index.pq.M)
        return out

    def save(self, path: Path) -> None:
        faiss = require_faiss(f"saving a {self.kind} index")
        with atomic_open(path, "wb", fsync=True) as fh:
            faiss.write_index(self.index, faiss.PyCallbackIOWriter(fh.write))

    @classmethod
    def load(cls, path: Path, kind: str, config: IndexConfig, mmap: bool = True) -> AnnIndex:
        """Open a saved IVF index; ``mmap``: its lists stay in the file (read-only pages
        the OS shares between processes) instead of being read into memory."""
        faiss = require_faiss(f"the {kind} index {path}")
        flags = faiss.IO_FLAG_MMAP | faiss.IO_FLAG_READ_ONLY if mmap else 0
        try:
            index = faiss.read_index(str(path), flags)
        except RuntimeError as exc:  # FAISS reports a missing or corrupt file this way
            raise GalleryIndexError(f"{path}: unreadable FAISS index ({str(exc).splitlines()[0]})") from exc
        ann = cls(kind, index, config.nprobe, config.rerank_factor)
        ann.set_nprobe(config.nprobe)
        return ann
