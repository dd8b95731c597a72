"""Artist affinity: which gallery artists a picture resembles.

Per artist with works in the gallery, the mean of the query's top-m similarities to that
artist's works, turned into probabilities by a softmax whose temperature is fitted by leaving
each gallery work's near-duplicate group out (or on a validation split; see
``vasari.gallery.calibrate``); optionally pooled (log-linear) with the artist head's
probabilities. The evidence is the nearest works by that artist.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np


def _softmax(z: np.ndarray, axis: int = -1) -> np.ndarray:
    z = z - z.max(axis=axis, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=axis, keepdims=True)



class AffinityMixin:
    """Artist affinity of ``GalleryIndex`` queries."""

    @property
    def artists(self) -> list[str]:
        """Artists with at least ``config.min_artist_works`` works in the gallery (sorted)."""
        if self._artists is None:
            by: dict[str, list[int]] = {}
            for i, r in enumerate(self.metadata):
                if r.get("artist"):
                    by.setdefault(r["artist"], []).append(i)
            names = sorted(a for a, rows in by.items() if len(rows) >= self.config.min_artist_works)
            self._artists = names
            self._artist_rows = [np.asarray(by[a], np.int64) for a in names]
        return self._artists

    def _artist_score_buckets(self) -> list[tuple[np.ndarray, np.ndarray, np.ndarray]]:
        """Artists grouped by work count (powers of two), each group as (artist columns,
        gallery rows padded to the group's largest artist, which of them are real): one
        gather and one partition per group instead of per artist (~95 artists here)."""
        if self._artist_buckets is None:
            self.artists  # fills _artist_rows
            assert self._artist_rows is not None
            sizes = np.array([len(rows) for rows in self._artist_rows])
            levels = np.ceil(np.log2(np.maximum(sizes, 1))).astype(int)
            buckets = []
            for level in np.unique(levels):
                columns = np.flatnonzero(levels == level)
                width = int(sizes[columns].max())
                rows = np.zeros((len(columns), width), np.int64)
                real = np.zeros((len(columns), width), bool)
                for i, j in enumerate(columns):
                    rows[i, :sizes[j]] = self._artist_rows[j]
                    real[i, :sizes[j]] = True
                buckets.append((columns, rows, real))
            self._artist_buckets = buckets
        return self._artist_buckets

    def _artist_scores(self, sims: np.ndarray, exclude: np.ndarray | None = None) -> np.ndarray:
        """(n, A) mean of the top-m similarities to each artist's works.

        ``exclude``: boolean ``(n, N)`` of gallery rows a query may not use (its own group).
        """
        buckets = self._artist_score_buckets()
        m = self.config.top_m
        out = np.full((len(sims), len(self.artists)), -1.0, np.float32)
        masked = sims if exclude is None else np.where(exclude, -np.inf, sims)
        for columns, rows, real in buckets:
            s = np.where(real, masked[:, rows], -np.inf)  # (n, artists, width)
            mm = min(m, rows.shape[1])
            top = -np.partition(-s, mm - 1, axis=2)[:, :, :mm]
            finite = np.isfinite(top)
            count = finite.sum(axis=2)
            total = np.where(finite, top, 0.0).sum(axis=2)
            # an artist whose works all sit in the query's own group gets no evidence (-1)
            out[:, columns] = np.where(count > 0, total / np.maximum(count, 1), -1.0)
        return out

    def affinity(self, vec: np.ndarray, artist_probs: dict[str, float] | None = None, k: int = 5,
                 evidence: int = 3) -> list[dict[str, Any]]:
        """Top-``k`` artists for one query: calibrated score and the nearest works by each.

        ``artist_probs`` (the artist head's probabilities, label -> p) are pooled
        log-linearly with the similarity-based probabilities (``config.head_weight``).
        """
        q = self.project(np.asarray(vec))[:1]
        if not self.artists:
            return []
        sims = self.similarities(q, projected=True)
        return self._affinity_many(sims, [artist_probs], k, evidence)[0]

    def _affinity_probabilities(self, scores: np.ndarray, artist_probs: Sequence[dict[str, float] | None]) -> np.ndarray:
        """(n, A) artist probabilities: the softmax of each query's similarity scores, pooled
        log-linearly with that query's artist-head probabilities when it has any."""
        temperature = float(self.calibration.get("temperature", 0.05))
        similarity_p = _softmax(scores / temperature, axis=1)
        p = similarity_p.astype(np.float64)
        column = {a: j for j, a in enumerate(self.artists)}
        head = np.zeros(p.shape, np.float64)
        for i, probs in enumerate(artist_probs):
            for label, value in (probs or {}).items():
                if label in column:
                    head[i, column[label]] = value
        covered = head.sum(axis=1, keepdims=True)
        pooled = covered[:, 0] > 0
        if pooled.any():
            w = float(self.config.head_weight)
            # artists the head does not know keep their similarity probability's share
            eps = 1e-4
            known = np.where(head[pooled] > 0, head[pooled], eps * covered[pooled])
            p[pooled] = _softmax((1 - w) * np.log(similarity_p[pooled] + 1e-12) + w * np.log(known), axis=1)
        return p

    def _affinity_many(self, sims: np.ndarray, artist_probs: Sequence[dict[str, float] | None], k: int,
                       evidence: int, memo: dict | None = None) -> list[list[dict[str, Any]]]:
        """Affinity lists for a batch of queries from their similarities ``(n, N)``: one matrix
        pass for all (per-query loops cost ~5 ms a picture with a 100-artist gallery)."""
        scores = self._artist_scores(sims)
        p = self._affinity_probabilities(scores, artist_probs)
        order = np.argsort(-p, axis=1)[:, :k]
        names = self.artists
        assert self._artist_rows is not None
        keep = ("artwork_id", "title", "year", "score", "thumbnail")
        memo = {} if memo is None else memo
        out = []
        for i in range(len(sims)):
            entries = []
            for j in order[i]:
                rows = self._artist_rows[j]
                best = rows[np.argsort(-sims[i, rows])[:evidence]]
                entries.append({
                    "artist": names[j],
                    "score": math.floor(float(p[i, j]) * 1e4) / 1e4,  # rounded down: the scores sum to <= 1
                    "similarity": round(float(scores[i, j]), 4),
                    "evidence": [self._hit_dict(r, sims[i, r], memo, keep) for r in best],
                })
            out.append(entries)
        return out

