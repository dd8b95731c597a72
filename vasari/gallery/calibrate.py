"""Calibration of a gallery index: the affinity temperature and the novelty threshold,
fitted leave-group-out on the gallery itself (each work queried against the rest less its
near-duplicate group) or on held-out paintings."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

#: Cells of the (queries, gallery) similarity matrix leave-group-out calibration may hold (800 MB).
MATRIX_CELLS = 200_000_000


class CalibrateMixin:
    """Fits ``GalleryIndex.calibration`` (temperature, novelty threshold, non-painting margin)."""

    def _groups(self) -> np.ndarray:
        keys = [r.get("group") or r.get("artwork_id") for r in self.metadata]
        _, inv = np.unique(np.asarray(keys, dtype=object).astype(str), return_inverse=True)
        return inv

    def _query_rows(self, max_queries: int, seed: int) -> np.ndarray:
        """Gallery rows used as calibration queries: all, or ``max_queries`` drawn at random."""
        rng = np.random.default_rng(seed)
        rows = np.arange(len(self))
        if len(rows) > max_queries:
            rows = np.sort(rng.choice(rows, max_queries, replace=False))
        return rows

    def leave_group_out(self, max_queries: int = 4000, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
        """(query rows, similarities to the gallery with each query's own group masked -inf).

        The ``(queries, N)`` matrix is kept near 800 MB: fewer queries past 50k works."""
        rows = self._query_rows(min(max_queries, max(100, MATRIX_CELLS // max(1, len(self)))), seed)
        groups = self._groups()
        q = np.asarray(self.vectors[rows], dtype=np.float32)
        sims = self.similarities(q, projected=True)
        sims[groups[rows][:, None] == groups[None, :]] = -np.inf
        return rows, sims

    def nearest_other_group(self, max_queries: int = 4000, seed: int = 0, k: int = 10) -> tuple[np.ndarray, np.ndarray]:
        """(query rows, best similarity to a work outside each query's group) through the
        index's own search (IVF ones: no ``(queries, N)`` matrix; the threshold then also
        reflects the neighbours an approximate search misses, as served queries do)."""
        rows = self._query_rows(max_queries, seed)
        groups = self._groups()
        scores, hits = self.search_rows(np.asarray(self.vectors[rows], np.float32), k, projected=True)
        own = (hits < 0) | (groups[np.where(hits >= 0, hits, 0)] == groups[rows][:, None])
        return rows, np.where(own, -1.0, scores).max(axis=1)

    def calibrate(self, held_out: np.ndarray | None = None, held_out_artists: Sequence[str | None] | None = None,
                  quantile: float | None = None) -> dict[str, Any]:
        """Fit the affinity temperature and the novelty threshold.

        Without ``held_out`` features, each gallery work is a query against the rest of the
        gallery less its own near-duplicate group (leave-group-out); with them (raw features
        of paintings not in the gallery, and their artists), those are used instead.
        """
        quantile = self.config.novelty_quantile if quantile is None else quantile
        if held_out is not None:
            q, frac = self.transform(held_out)
            sims = self.similarities(q, projected=True)
            artists = list(held_out_artists) if held_out_artists is not None else [None] * len(q)
            how = "held-out"
        elif self.ann is not None and not self.artists:  # an IVF index without artists: novelty only
            rows, best = self.nearest_other_group()
            sims, frac, artists, how = None, self.explained[rows], [], "leave-group-out (index search)"
        else:
            rows, sims = self.leave_group_out()
            frac = self.explained[rows]
            artists = [self.metadata[r].get("artist") for r in rows]
            how = "leave-group-out"
        if sims is not None:
            best = np.max(np.where(np.isfinite(sims), sims, -1.0), axis=1)
        nearest = 1.0 - best * frac
        cal: dict[str, Any] = {
            "method": how,
            "novelty_quantile": quantile,
            "novelty_threshold": float(np.quantile(nearest, quantile)),
            "novelty_median": float(np.median(nearest)),
            "n_queries": int(len(nearest)),
        }
        if self.negatives is not None:
            q = np.asarray(self.vectors[rows], np.float32) if held_out is None else self.project(held_out)
            neg_sim, _ = self._negative_sims(q)
            # paintings closer to a non-painting than to any other painting by more than the
            # margin are at most ``negative_fpr`` of them
            cal["negative_margin"] = float(np.quantile(neg_sim - best, 1.0 - self.config.negative_fpr))
            cal["negative_fpr"] = self.config.negative_fpr
            cal["negatives"] = len(self.negatives)
        names = self.artists
        idx = {a: j for j, a in enumerate(names)}
        target = np.array([idx.get(a, -1) if a else -1 for a in artists])
        use = target >= 0
        if names and use.sum() >= 5 and len(names) >= 2:
            scores = self._artist_scores(sims[use])
            t = target[use]
            best_t, best_nll = 0.05, math.inf
            for temp in np.exp(np.linspace(np.log(0.002), np.log(1.0), 60)):
                logp = scores / temp
                logp = logp - logp.max(axis=1, keepdims=True)
                logp = logp - np.log(np.exp(logp).sum(axis=1, keepdims=True))
                nll = float(-logp[np.arange(len(t)), t].mean())
                if nll < best_nll:
                    best_t, best_nll = float(temp), nll
            acc = float((scores.argmax(axis=1) == t).mean())
            cal.update({"temperature": best_t, "affinity_nll": best_nll, "affinity_top1": acc,
                        "affinity_queries": int(use.sum()), "artists": len(names)})
        self.calibration = cal
        return cal

