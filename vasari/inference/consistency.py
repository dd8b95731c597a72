"""One answer that agrees with itself (issue #14), applied to prediction objects in place.

The heads answer each task separately, so before this step a prediction could say "Baroque,
painted 1451-1500" beside "About 1659", and a picture that the novelty detectors call
"not a painting we know" still carried a year and an artist resemblance. ``make_consistent``
is the last step of ``Predictor.predict_features``; it enforces the contract documented in
docs/contract.md:

* A novel picture makes no claims: every verdict "unknown", ``year`` null, ``affinity`` empty
  (the top-k scores stay, as best guesses; the page and the CLI hide those of the dating and
  resemblance tasks, ``CLAIM_TASKS``). ``similar`` stays: it is a search result, not a claim.
* Otherwise year, period and style come from one joint decode (``vasari.heads.trust.joint_decode``):
  styles restricted to those whose span meets the answered period (else the year interval;
  the others' scores become 0, so style scores may sum to < 1); the year estimate clipped into
  the period and the answered style's span.
* An artist verdict whose active years (``artist_spans``) do not contain the shown year becomes
  "unknown".
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np

from vasari.heads.trust import artist_fits, artist_spans, joint_decode
from vasari.inference.schema import LabelScore, Prediction, YearEstimate

#: Prediction tasks whose scores are claims about when a picture was painted or whom it resembles.
CLAIM_TASKS = ("timeframe", "style", "artist")

#: File in a bundle directory with each artist's active years ``{"name": [first, last]}``.
SPANS_FILE = "artist_spans.json"


def withhold_claims(prediction: Prediction) -> None:
    """A novel picture: no verdict, no year, no resemblance. The top-k scores stay (the API's
    top-k contract); they are best guesses under "unknown", and the page and the CLI do not
    show those of ``CLAIM_TASKS`` for a novel picture."""
    prediction.verdict = {task: "unknown" for task in prediction.verdict}
    prediction.year = None
    if prediction.affinity is not None:
        prediction.affinity = []


def _top_k(proba: np.ndarray, classes: Sequence[str], k: int) -> list[LabelScore]:
    order = np.argsort(-proba, kind="stable")[:k]
    return [LabelScore(label=classes[j], score=float(round(float(proba[j]), 4))) for j in order]


def _decode_dating(prediction: Prediction, style_proba: np.ndarray | None, heads: Any) -> float | None:
    """Joint year/period/style decode of one prediction; returns the year shown."""
    verdict = prediction.verdict
    year = prediction.year
    interval = (year.estimate, year.low, year.high) if year else None
    head = heads.classifiers.get("style") if style_proba is not None else None
    answer = joint_decode(style_proba, head.classes if head else (), head.threshold if head else 1.0,
                          verdict.get("timeframe"), interval)
    if head is not None:
        k = len(prediction.predictions.get("style") or []) or 1
        prediction.predictions["style"] = _top_k(answer.style_proba, head.classes, k)
        verdict["style"] = answer.style or "unknown"
    if year and answer.year is not None:
        est = round(answer.year)
        prediction.year = YearEstimate(estimate=est, low=min(year.low, est), high=max(year.high, est))
        return float(est)
    return None


def make_consistent(predictions: list[Prediction], proba: Mapping[str, np.ndarray], heads: Any,
                    spans: Mapping[str, tuple[int, int]]) -> list[Prediction]:
    """Apply the module's rules to predictions built from ``proba`` (row i of each task's
    calibrated probabilities belongs to ``predictions[i]``)."""
    style = proba.get("style")
    for i, pred in enumerate(predictions):
        if pred.novelty is not None and pred.novelty.novel:
            withhold_claims(pred)
            continue
        shown = _decode_dating(pred, None if style is None else style[i], heads)
        artist = pred.verdict.get("artist")
        if artist not in (None, "unknown") and not artist_fits(artist, shown, spans):
            pred.verdict["artist"] = "unknown"
    return predictions


def spans_from_artworks(artworks: Sequence[Any]) -> dict[str, list[int]]:
    """Training hook: each artist's active years, for the model card's ``artist_spans`` (JSON
    lists): from the catalog's life years (``vasari.dataset.lives``: born + 15 to death) where
    it gives them, else from the dated training works (at least 3, widened by 10 years)."""
    from vasari.dataset.lives import life_years

    dated: dict[str, list[int]] = {}
    lives: dict[str, tuple[int, int]] = {}
    for art in artworks:
        if art.artist and art.year is not None:
            dated.setdefault(art.artist, []).append(int(art.year))
        if art.artist and art.artist not in lives and (years := life_years(art)) is not None:
            lives[art.artist] = years
    return {name: [lo, hi] for name, (lo, hi) in sorted(artist_spans(lives, dated).items())}


def load_artist_spans(bundle_dir: str | Path | None, index: Any = None,
                      card: Mapping[str, Any] | None = None) -> dict[str, tuple[int, int]]:
    """Artists' active years for a bundle: its ``artist_spans.json`` (e.g. from the catalogs'
    birth/death years) when present, else the model card's ``artist_spans`` (recorded at
    training), else the dated works of the gallery index (at least 3 per artist, widened by 10
    years), else none (no artist veto)."""
    path = Path(bundle_dir) / SPANS_FILE if bundle_dir is not None else None
    if path is not None and path.is_file():
        return {name: (int(lo), int(hi)) for name, (lo, hi) in json.loads(path.read_text("utf-8")).items()}
    if card and card.get("artist_spans"):
        return {name: (int(lo), int(hi)) for name, (lo, hi) in card["artist_spans"].items()}
    if index is None:
        return {}
    dated: dict[str, list[int]] = {}
    for row in index.metadata:
        year = row.get("year")
        if row.get("artist") and year not in (None, ""):
            dated.setdefault(row["artist"], []).append(int(year))
    return artist_spans({}, dated)
