"""Enrichment: a gallery index adds ``similar``, ``affinity`` and ``novelty`` to predictions.

The whole batch is handled at once (one similarity matrix; the rows of a gallery work are
built once per batch), and each picture gets exactly what the per-query API of
``GalleryIndex`` (``similar``, ``affinity``, ``novelty``) says about it.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from vasari.gallery.index import GalleryIndex
from vasari.gallery.search import _top_rows
from vasari.inference.schema import (
    ArtistAffinity,
    FailedPrediction,
    Novelty,
    Prediction,
    SimilarWork,
)


def enrich_predictions(
    predictions: Sequence[Prediction | FailedPrediction],
    index: GalleryIndex,
    features: np.ndarray,
    k_similar: int = 5,
    k_affinity: int = 5,
    evidence: int = 3,
    abstain_on_novelty: bool = True,
) -> Sequence[Prediction | FailedPrediction]:
    """Add ``similar``, ``affinity`` and ``novelty`` to predictions (docs/contract.md), in place.

    ``features[i]`` is the raw backbone vector of ``predictions[i]`` (failed predictions are
    skipped). The artist head's scores in ``predictions[i].predictions["artist"]`` (when
    the model has that task) are pooled into the affinity. With ``abstain_on_novelty``, a
    picture farther from every known work than the index's threshold gets "unknown" for every
    task in its ``verdict`` (a non-painting should not be labelled).
    """
    x = np.asarray(features, np.float32)
    if x.ndim == 1:
        x = x[None]
    live = [i for i, p in enumerate(predictions) if isinstance(p, Prediction) and np.isfinite(x[i]).all()]
    if not live:
        return predictions
    q, frac = index.transform(x[live])
    memo = index.hit_memo  # a gallery row's hit is built once per index, not once per request
    affinity = None
    if index.ann is not None and not index.artists:
        # an IVF index of millions without artists: its search, never a (n, N) similarity matrix
        top_scores, top = index.search_rows(q, max(1, min(k_similar, len(index))), projected=True)
        best = top_scores[:, 0]
        top_scores, top = top_scores[:, :k_similar], top[:, :k_similar]
    else:
        sims = index.similarities(q, projected=True)
        top = _top_rows(sims, min(k_similar, len(index)))
        top_scores, best = np.take_along_axis(sims, top, axis=1), sims.max(axis=1)
        if index.artists:
            heads = [_head_artist_probs(predictions[i]) for i in live]
            affinity = index._affinity_many(sims, heads, k_affinity, evidence, memo)
    novelty = index._novelty_rows(best, frac, q)
    for j, i in enumerate(live):
        pred = predictions[i]
        assert isinstance(pred, Prediction)
        pred.similar = [SimilarWork.model_validate(index._hit_dict(r, s, memo))
                        for r, s in zip(top[j], top_scores[j]) if r >= 0]
        if affinity is not None:
            pred.affinity = [ArtistAffinity.model_validate(a) for a in affinity[j]]
        pred.novelty = Novelty.model_validate(novelty[j])
        if pred.novelty.novel and abstain_on_novelty:
            pred.verdict = {task: "unknown" for task in pred.verdict}
    return predictions


def _head_artist_probs(prediction: Prediction) -> dict[str, float] | None:
    """The artist head's scores in a prediction (label -> p), None without any."""
    rows = prediction.predictions.get("artist") or []
    head = {r.label: float(r.score) for r in rows if r.label != "unknown"}
    return head or None
