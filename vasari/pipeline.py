"""Use cases that span the pipeline's stages: embed -> fit heads -> evaluate -> save the
bundle -> write the report.

The stages below (features, heads, bundle, report) know nothing of each other's workflow;
the commands that train (``vasari train``, ``vasari demo``, ``vasari finetune``) all run the
same sequence, so it lives here once instead of in each of them: ``train_bundle`` does the
whole of it, ``fit_dataset`` the part before anything is written.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from vasari.bundle import Bundle, save_bundle
from vasari.enrol.reference import write_reference
from vasari.features.embedder import Embedder, EmbeddingCache
from vasari.heads.config import HeadConfig, TrainError
from vasari.heads.metrics import Evaluation, evaluate_heads
from vasari.heads.train import train_heads
from vasari.report import write_report

if TYPE_CHECKING:
    from vasari.catalog import Artwork


@dataclass
class DatasetFit:
    """What ``fit_dataset`` produced: the bundle (not yet saved), evaluations, embeddings."""

    bundle: Bundle
    evaluations: list[Evaluation]  # one per evaluated split
    features: np.ndarray
    artworks: list[Artwork]
    split_of: list[str]
    embed_errors: dict[int, str]
    seconds: dict[str, float]
    #: ``(N, k, D)`` augmented views aligned with ``features`` (train rows; NaN elsewhere), or None
    views: np.ndarray | None = None


def fit_dataset(
    artworks: Sequence[Artwork],
    split_of: Sequence[str],
    embedder: Any = None,  # an Embedder, or any object with .spec and .embed_paths (a fine-tuned one)
    cache: EmbeddingCache | None = None,
    config: HeadConfig = HeadConfig(),
    evaluate_splits: Sequence[str] = ("val", "test"),
    card: Mapping[str, Any] | None = None,
    progress: bool = True,
    features: np.ndarray | None = None,
) -> DatasetFit:
    """Embed artworks (``Artwork`` records with local images), train heads on the "train"
    split, choose C/temperature/thresholds on "val", evaluate ``evaluate_splits``, and
    return an unsaved ``Bundle`` (save it with ``vasari.bundle.save_bundle``).

    ``split_of[i]`` is the split of ``artworks[i]`` ("train", "val", "test" or anything
    else to only embed). ``embedder`` defaults to the default backbone; its spec (test-time
    views included) is the bundle's, so prediction embeds the same way. ``cache`` is an
    ``EmbeddingCache`` (or None). ``features`` skips embedding (rows aligned with artworks).
    """
    seconds: dict[str, float] = {}
    t0 = time.perf_counter()
    if embedder is None:
        embedder = Embedder()
    if len(artworks) != len(split_of):
        raise TrainError(f"{len(artworks)} artworks but {len(split_of)} split names")
    errors: dict[int, str] = {}
    if features is None:
        paths = [a.image or "" for a in artworks]
        result = embedder.embed_paths(paths, cache=cache, progress=progress)
        features, errors = result.features, dict(result.errors)
    seconds["embed"] = round(time.perf_counter() - t0, 2)
    from vasari.dataset.clean import drop_placeholders  # issue #14 hook: no placeholder cards
    from vasari.inference.consistency import spans_from_artworks

    split_arr, placeholders = drop_placeholders(features, artworks, list(split_of))

    def part(name: str):
        rows = np.flatnonzero(split_arr == name)
        X = features[rows]
        labels = {task: [artworks[i].label(task) for i in rows] for task in config.tasks}
        years = [artworks[i].year for i in rows]
        return X, labels, years

    Xt, lt, yt = part("train")
    if len(Xt) == 0:
        raise TrainError("no artworks in the train split")
    Xv, lv, yv = part("val")
    views = None
    if config.augment_views:  # issue #14 hook: augmented views of the train pictures
        from vasari.features.augment import views_of_rows

        views = views_of_rows(embedder, [a.image or "" for a in artworks], split_arr == "train", config.augment_views,
                              cache, progress)
    t1 = time.perf_counter()
    heads = train_heads(Xt, lt, yt, Xv if len(Xv) else None, lv if len(Xv) else None, yv if len(Xv) else None,
                        config=config, progress=progress,
                        views_train=None if views is None else views[split_arr == "train"])
    if config.abstention == "out-of-source":  # issue #14 hook: thresholds for new collections
        from vasari.heads.abstention import Rows, out_of_source_abstention

        out_of_source_abstention(heads, Rows(features, {t: [a.label(t) for a in artworks] for t in config.tasks},
                                             [a.year for a in artworks], np.array([a.source for a in artworks]), split_arr,
                                             views), config, progress)
    seconds["train"] = round(time.perf_counter() - t1, 2)
    t2 = time.perf_counter()
    evaluations = []
    if config.refit_on_val:  # val trained the refit heads: its scores would flatter them
        evaluate_splits = [name for name in evaluate_splits if name != "val"]
    for name in evaluate_splits:
        X, labels, years = part(name)
        if len(X):
            evaluations.append(evaluate_heads(heads, X, labels, years, split=name))
    seconds["evaluate"] = round(time.perf_counter() - t2, 2)
    counts: dict[str, dict[str, int]] = {}
    for art, split in zip(artworks, split_of):
        counts.setdefault(art.source, Counter())[split] += 1  # type: ignore[arg-type]
    full_card = {
        "data": {src: dict(c) for src, c in counts.items()},
        "embedding_failures": len(errors),
        "placeholders_dropped": placeholders,
        "artist_spans": spans_from_artworks([a for a, s in zip(artworks, split_arr) if s == "train"]),
        "head_config": config.to_dict(),
        "timings_s": seconds,
    }
    full_card.update(dict(card or {}))
    metrics = {ev.split: ev.metrics for ev in evaluations}
    bundle = Bundle(heads, embedder.spec, full_card, metrics)
    return DatasetFit(bundle, evaluations, features, list(artworks), list(split_of), errors, seconds, views)


def cached_placeholders(artworks: Sequence[Artwork], cache: EmbeddingCache) -> tuple[list[str], int]:
    """The placeholder cards training and the gallery will drop (``drop_placeholders``: one
    picture filed under two artists), found among the artworks whose embeddings ``cache``
    already holds, without embedding anything: (their ids, how many artworks had a vector).
    Lets ``vasari dataset show`` count them before any model run (issue #14)."""
    from vasari.dataset.clean import catalog_artist, placeholder_rows
    from vasari.features.cache import safe_content_key

    keys = [safe_content_key(a.image) if a.image else "!" for a in artworks]
    found = cache.get_many([k for k in keys if not k.startswith("!")])
    features = np.full((len(artworks), cache.spec.dim), np.nan, dtype=np.float32)
    for i, key in enumerate(keys):
        if key in found:
            features[i] = found[key]
    rows = placeholder_rows(features, [catalog_artist(a) for a in artworks])
    return [artworks[i].artwork_id for i in rows], sum(1 for key in keys if key in found)


def compact_metrics(metrics: dict) -> dict:
    """Bundle metrics without the bulky parts (big confusion matrices) - the report has them."""
    out = {}
    for split, m in metrics.items():
        m = dict(m)
        tasks = {}
        for task, t in (m.get("tasks") or {}).items():
            t = dict(t)
            if len(t.get("confusion", {}).get("labels", [])) > 40:
                t.pop("confusion")
            tasks[task] = t
        m["tasks"] = tasks
        out[split] = m
    return out


def protocol_figures(fit: DatasetFit, protocols: Sequence[str], progress: bool = False) -> dict[str, dict[str, Any]]:
    """Each protocol's pooled figures on the fit's own features (no second embedding pass)."""
    from vasari.protocols import evaluate_protocol, protocol_summary

    spans = {a: tuple(s) for a, s in (fit.bundle.card.get("artist_spans") or {}).items()}
    return {name: protocol_summary(evaluate_protocol(name, fit.bundle, fit.artworks, fit.split_of, fit.features, spans,
                                                     views=fit.views, progress=progress))
            for name in protocols}


@dataclass
class TrainRun:
    """What ``train_bundle`` did: the fit (bundle, evaluations, features) and where the
    bundle and its report were written."""

    fit: DatasetFit
    bundle_dir: Path
    report_dir: Path

    @property
    def metrics_by_split(self) -> dict[str, dict[str, Any]]:
        """Full metrics per evaluated split (what ``vasari.report.summary_table`` prints)."""
        return {ev.split: ev.metrics for ev in self.fit.evaluations}


def train_bundle(
    artworks: Sequence[Artwork],
    split_of: Sequence[str],
    out: str | Path,
    *,
    embedder: Any = None,  # an Embedder, or any object with .spec and .embed_paths (a fine-tuned one)
    cache: EmbeddingCache | None = None,
    config: HeadConfig = HeadConfig(),
    evaluate_splits: Sequence[str] = ("val", "test"),
    card: Mapping[str, Any] | None = None,
    report_dir: str | Path | None = None,
    report_title: str | None = None,
    report_context: Mapping[str, Any] | None = None,
    extra_files: dict[str, Path] | None = None,
    progress: bool = True,
    protocols: Sequence[str] = (),
) -> TrainRun:
    """``fit_dataset`` (see there for the arguments it shares), then save the bundle to
    ``out`` with compact metrics (``extra_files`` copied in, e.g. a fine-tuned backbone) and
    write the evaluation report to ``report_dir`` (default ``<bundle>/report``).

    The one sequence behind ``vasari train``, ``vasari demo`` and ``vasari finetune``, so
    their bundles and reports cannot drift apart. ``protocols`` (e.g. "leave-source-out",
    "leave-artists-out") are run on the same features and their pooled figures go into the
    card, so a model card says how it holds on collections it never saw. ``report_title`` defaults to
    "Vasari evaluation: <bundle folder name>"; ``report_context`` defaults to the bundle path.
    """
    fit = fit_dataset(artworks, split_of, embedder, cache, config, evaluate_splits=evaluate_splits, card=card,
                      progress=progress)
    fit.bundle.metrics = compact_metrics(fit.bundle.metrics)
    if protocols:
        fit.bundle.card["protocols"] = protocol_figures(fit, protocols, progress)
    path = save_bundle(fit.bundle, out, extra_files=extra_files)
    seen = [i for i, s in enumerate(fit.split_of) if s in ("train", "val")]
    # issue #16: the reference rows `vasari enrol` refits a new artist against
    write_reference(path, fit.bundle.heads, fit.features[seen], [fit.artworks[i].label("artist") for i in seen])
    report = Path(report_dir) if report_dir is not None else path / "report"
    write_report(fit.evaluations, report, title=report_title or f"Vasari evaluation: {Path(out).name}",
                 context=dict(report_context) if report_context is not None else {"bundle": str(path)})
    return TrainRun(fit, path, report)
