"""Abstention thresholds for new collections (issue #14).

Thresholds chosen for a target precision on an in-distribution val split do not hold on a
collection the model has not seen (docs/trust-research.md: answers promised at .90 were right
40-60% of the time out of source). ``out_of_source_abstention`` re-chooses them on
leave-source-out predictions of the training rows, and the artist's also on an inner
leave-artists-out split (false attribution at most .05). The artist's out-of-source precision
is chosen on the artists another source knows (``SUPPORT`` rows): most artists come from one
source, so pooled over every row it mostly measured unknown artists, the open-set threshold's
job, and left the bundle answering 6% of known artists' paintings at 0.9% false attribution.
``Rows`` is the labelled-rows container the evaluation protocols (``vasari.protocols``) share.

**Single-source labels abstain.** A task with fewer than ``MIN_OUT_OF_SOURCE`` labelled
out-of-source predictions (its labels come from one source, or nearly: style is WikiArt's)
has no evidence that its answers hold on a new collection. Falling back to its val
threshold answered style 99.5% of the time at precision .64 on the collection held out in
leave-source-out (the first out-of-source bundle's card), so such a task gets
``NEVER_ANSWER``: a threshold above 1, no verdict ever, its top-3 still shown; the reason is
in ``threshold_out_of_source["abstains"]`` and the model card. The same rule runs in the
bundle's own choice and in every protocol fold.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, replace
from typing import Any, Mapping, Sequence

import numpy as np

from vasari.heads import trust as tr


@dataclass
class Rows:
    """Labelled rows to evaluate on: features, labels per task, years, source and split."""

    X: np.ndarray
    labels: Mapping[str, Sequence[str | None]]
    years: Sequence[int | None]
    sources: np.ndarray
    splits: np.ndarray
    #: ``(N, k, D)`` augmented views of each row's picture (``HeadConfig.augment_views``; NaN
    #: where a row has none, e.g. outside train), so refits train the way the bundle did
    views: np.ndarray | None = None

    def take(self, idx: np.ndarray) -> "Rows":
        return Rows(self.X[idx], {t: [v[i] for i in idx] for t, v in self.labels.items()},
                    [self.years[i] for i in idx], self.sources[idx], self.splits[idx],
                    None if self.views is None else self.views[idx])


def training_views(fit: Rows, config: Any) -> np.ndarray | None:
    """The views a refit trains on, as the bundle's own heads did: ``fit.views`` with
    ``config.augment_views``, else None (``train_heads(views_train=...)``)."""
    return fit.views if getattr(config, "augment_views", 0) else None


#: A label is "supported" by a training set with at least this many examples of it.
SUPPORT = 30


def supported_labels(labels: Sequence[str | None]) -> set[str]:
    """The labels a training set supports: at least ``SUPPORT`` rows of each (the rule the
    protocols report by and the artist's out-of-source precision is chosen on)."""
    return {label for label, n in Counter(v for v in labels if v).items() if n >= SUPPORT}


#: Open-set artists: at most this share of held-out artists' paintings may get an artist verdict,
FALSE_ATTRIBUTION = 0.05
#: ... with this confidence (a one-sided upper bound on the inner held-out artists' share: the
#: point estimate on ~900 paintings of ~19 artists promised .05 and gave .063 in leave-artists-out).
FALSE_ATTRIBUTION_CONFIDENCE = 0.95
#: Fewer labelled out-of-source predictions than this: the task never answers (module docstring).
MIN_OUT_OF_SOURCE = 30
#: A threshold no calibrated probability reaches: the head always abstains.
NEVER_ANSWER = 1.01


def _pooled_out_of_source(rows: Rows, config: Any,
                          progress: bool = False) -> dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """Per task, (top probability, correct, supported) of every labelled row predicted by
    heads that never saw its source (one refit per source; a label the fold does not know is
    wrong; ``supported``: the fold trained on at least ``SUPPORT`` rows of the row's label)."""
    from vasari.core.progress import tracked
    from vasari.heads.train import train_heads

    parts: dict[str, list[tuple[np.ndarray, np.ndarray, np.ndarray]]] = {}
    for source in tracked(sorted(set(rows.sources.tolist())), "out-of-source refits (one per source)", progress):
        fit = rows.take(np.flatnonzero((rows.sources != source) & (rows.splits == "train")))
        val = rows.take(np.flatnonzero((rows.sources != source) & (rows.splits == "val")))
        held = rows.take(np.flatnonzero((rows.sources == source) & np.isin(rows.splits, ("train", "val"))))
        if min(len(fit.X), len(val.X), len(held.X)) == 0:
            continue
        heads = train_heads(fit.X, fit.labels, fit.years, val.X, val.labels, val.years,
                            config=replace(config, year=False, novelty=False), views_train=training_views(fit, config))
        proba = heads.predict_proba(held.X)
        for task, p in proba.items():
            y = tr.encode(held.labels[task], heads.classifiers[task].classes)
            m = y >= -1
            support = supported_labels(fit.labels[task])
            supported = np.array([v in support for v in held.labels[task]])
            parts.setdefault(task, []).append((p.max(axis=1)[m], (p.argmax(axis=1) == y)[m], supported[m]))
    return {t: tuple(np.concatenate([part[i] for part in v]) for i in range(3)) for t, v in parts.items()}


def _open_set_threshold(rows: Rows, config: Any, seed: int = 0) -> float | None:
    """The artist threshold that gives at most ``FALSE_ATTRIBUTION`` on an inner
    leave-artists-out split of the training artists (None without enough artists)."""
    from vasari.heads.train import train_heads

    artists = rows.labels.get("artist")
    if not artists:
        return None
    counts = Counter(a for a in artists if a)
    eligible = sorted(a for a, n in counts.items() if n >= 10)
    if len(eligible) < 5:
        return None
    held = set(np.random.default_rng(seed).choice(eligible, size=max(1, len(eligible) // 5), replace=False).tolist())
    unknown = np.array([a in held for a in artists])
    fit = rows.take(np.flatnonzero(~unknown & (rows.splits == "train")))
    val = rows.take(np.flatnonzero(~unknown & (rows.splits == "val")))
    heads = train_heads(fit.X, {"artist": fit.labels["artist"]}, None, val.X, {"artist": val.labels["artist"]}, None,
                        config=replace(config, tasks=("artist",), year=False, novelty=False))
    scores = heads.predict_proba(rows.X[unknown])["artist"].max(axis=1)
    return tr.threshold_for_false_attribution(scores, FALSE_ATTRIBUTION, FALSE_ATTRIBUTION_CONFIDENCE)


def out_of_source_abstention(heads: Any, rows: Rows, config: Any, progress: bool = False) -> dict[str, dict[str, Any]]:
    """Training hook (``HeadConfig.abstention == "out-of-source"``): each head's threshold is
    re-chosen for ``config.target_precision`` on leave-source-out predictions of the train and
    val rows (so the promised precision holds on a collection the model never saw), the
    artist's the stricter of that (on the artists the other sources know: an unknown artist is
    what the open-set threshold is for) and 5% false attribution on held-out artists; a task with
    too few of those predictions never answers (``NEVER_ANSWER``). The val
    threshold stays in the head's info (``threshold_val``) beside it; heads changed in place."""
    from vasari.heads.calibration import choose_threshold

    pooled = _pooled_out_of_source(rows, config, progress)
    open_set = _open_set_threshold(rows, config) if "artist" in heads.classifiers else None
    chosen = {}
    for task, head in heads.classifiers.items():
        confidence, correct, supported = pooled.get(task, (np.zeros(0), np.zeros(0, bool), np.zeros(0, bool)))
        if task == "artist" and open_set is not None and supported.sum() >= MIN_OUT_OF_SOURCE:
            confidence, correct = confidence[supported], correct[supported]  # unknown artists: the open-set threshold's job
        if len(confidence) < MIN_OUT_OF_SOURCE:
            info = {"threshold": NEVER_ANSWER, "n": len(confidence), "target_met": False,
                    "abstains": f"{len(confidence)} labelled out-of-source predictions (fewer than "
                                f"{MIN_OUT_OF_SOURCE}): its labels come from one source, so no threshold "
                                "is known to hold on a new collection"}
        else:
            info = choose_threshold(confidence, correct, config.target_precision, config.min_kept)
        if task == "artist" and open_set is not None:
            info["open_set_threshold"] = float(open_set)
            info["threshold"] = max(info["threshold"], float(open_set))
        head.info["threshold_val"] = head.threshold
        head.info["threshold_out_of_source"] = info
        head.threshold = float(info["threshold"])
        chosen[task] = info
    return chosen
