"""Novelty: is a picture a known kind of painting at all?

``1 - max cosine similarity * explained fraction`` (the share of the query's norm inside the
gallery's PCA subspace; together about the raw-space cosine); the threshold is a high quantile
(default 99th percentile) of the same distance for held-out paintings (leave-group-out on the
gallery itself unless a held-out set is given; see ``vasari.gallery.calibrate``), so about 1%
of new paintings are flagged and most non-paintings are. A query nearer to a known
non-painting (architecture, sculpture...) than to any painting by more than a fitted margin
is novel too.
"""

from __future__ import annotations

from typing import Any

import numpy as np


class NoveltyMixin:
    """Novelty verdicts of ``GalleryIndex`` queries."""

    def nearest_distance(self, queries: np.ndarray, projected: bool = False) -> np.ndarray:
        """Distance to the nearest gallery work, per query: ``1 - cos * explained``.

        ``cos`` is the best cosine similarity in the PCA space and ``explained`` the fraction
        of the query inside that space, so the product approximates the cosine of the raw
        vectors (without PCA it is exactly that). Projected queries count as fully explained.
        """
        if projected:
            q, frac = np.asarray(queries, np.float32), np.ones(len(queries), np.float32)
        else:
            q, frac = self.transform(queries)
        scores, _ = self.search_rows(q, 1, projected=True)
        return 1.0 - scores[:, 0] * frac

    def _negative_sims(self, q: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(best similarity, its row) of projected queries to the known non-paintings."""
        if self.negatives is None:
            return np.full(len(q), -np.inf, np.float32), np.full(len(q), -1)
        sims = np.asarray(q, np.float32) @ np.asarray(self.negatives, np.float32).T
        rows = sims.argmax(axis=1)
        return sims[np.arange(len(q)), rows], rows

    def _novelty_rows(self, best_sim: np.ndarray, frac: np.ndarray, q: np.ndarray) -> list[dict[str, Any]]:
        """Novelty verdicts from each query's best painting similarity and explained fraction."""
        thr = self.calibration.get("novelty_threshold")
        margin = self.calibration.get("negative_margin")
        neg_sim, neg_row = self._negative_sims(q)
        out = []
        for i in range(len(best_sim)):
            d = float(1.0 - best_sim[i] * frac[i])
            # the shape of ``vasari.inference.schema.Novelty``: ``score`` is the distance
            row: dict[str, Any] = {"novel": False, "score": round(d, 4),
                                   "threshold": None if thr is None else round(float(thr), 4),
                                   "reason": None, "detector": "gallery"}
            if thr is not None and d > float(thr):
                row.update(novel=True, reason="far from every known painting")
            elif margin is not None and neg_row[i] >= 0 and neg_sim[i] > best_sim[i] + float(margin):
                label = self.negative_labels[neg_row[i]] if neg_row[i] < len(self.negative_labels) else ""
                row.update(novel=True, reason=f"closer to a known non-painting{f' ({label})' if label else ''} than to any painting")
            out.append(row)
        return out

    def novelty(self, vec: np.ndarray) -> dict[str, Any]:
        """Whether a picture is unlike the gallery's paintings: ``score``, the distance to the
        nearest known work (vs. the fitted ``threshold``), or nearer to a known non-painting."""
        return self.novelty_many(np.asarray(vec))[0]

    def novelty_many(self, features: np.ndarray) -> list[dict[str, Any]]:
        q, frac = self.transform(features)
        best, _ = self.search_rows(q, 1, projected=True)
        return self._novelty_rows(best[:, 0], frac, q)

    def is_novel(self, features: np.ndarray) -> np.ndarray:
        return np.array([r["novel"] for r in self.novelty_many(features)], bool)

