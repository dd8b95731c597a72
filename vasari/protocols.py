"""Evaluation protocols that measure a model the way a new collection sees it (issue #14).

Vasari's own splits draw test paintings from the same sources as training, so they never
show how answers hold on a collection the model has not seen. These protocols score what a
user gets, i.e. the prediction objects of ``Predictor.predict_features`` (verdicts after the
one-answer rule, the year shown), per source and task:

* ``grouped``: the given heads on the given rows (e.g. the test split);
* ``leave-source-out``: for each source, heads refit on the train/val rows of the *other*
  sources and scored on it; per task also which of its labels the others support
  (``vasari.heads.abstention.supported_labels``: at least 30 training examples) and how often unsupported labels are answered (the honest
  answer there is "unknown");
* ``leave-artists-out``: about 20% of the artists with at least 10 works held out with all
  their works; false attribution (share of their paintings given an artist verdict) and the
  known artists' answered share and precision.

Plain numpy in, plain dicts out: ``vasari evaluate --protocol`` prints and writes them.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import replace
from typing import Any, Mapping, Sequence

import numpy as np

from vasari.heads import trust as tr
from vasari.heads.abstention import Rows, supported_labels
PROTOCOLS = ("grouped", "leave-source-out", "leave-artists-out")


def user_answers(heads: Any, X: np.ndarray, spans: Mapping[str, tuple[int, int]]) -> list[dict]:
    """The prediction objects a user would get from these heads (no gallery index)."""
    from vasari.bundle import Bundle
    from vasari.inference.predictor import Predictor

    predictor = Predictor(Bundle(heads, None, {}, {}), None, None)
    predictor._spans = dict(spans)
    top = max(len(h.classes) for h in heads.classifiers.values())
    return predictor.predict_features(X, top_k=top)


def score(answers: list[dict], rows: Rows, spans: Mapping[str, tuple[int, int]],
          supported: Mapping[str, np.ndarray] | None = None) -> dict[str, Any]:
    """Per task x (pooled and each source): top-1, ECE, answered share and precision (and,
    given ``supported`` (task -> per-row flag: the row's label has training support), on
    supported / unsupported labels); contradictions per source. A label the heads do not
    know counts as wrong, as it would for a user."""
    out: dict[str, Any] = {"tasks": {}, "contradictions": {}}
    names = ["pooled"] + sorted(set(rows.sources.tolist()))
    for task in sorted({t for a in answers for t in a["verdict"]}):
        truth = list(rows.labels.get(task, [None] * len(answers)))
        lab = np.array([t is not None for t in truth])
        top = [(a["predictions"][task] or [{"label": None, "score": 0.0}])[0] for a in answers]
        conf = np.array([t["score"] for t in top])
        correct = np.array([t["label"] == y for t, y in zip(top, truth)])
        answered = np.array([a["verdict"][task] != "unknown" for a in answers])
        right = np.array([a["verdict"][task] == y for a, y in zip(answers, truth)])
        sup = None if supported is None else np.asarray(supported.get(task, np.zeros(len(answers), bool)))
        per = {}
        for name in names:
            m = lab & (True if name == "pooled" else rows.sources == name)
            if m.any():
                per[name] = _cell(conf, correct, answered, right, m, sup)
        out["tasks"][task] = per
    flags = _flags(answers, spans)
    for name in names:
        m = np.ones(len(answers), bool) if name == "pooled" else rows.sources == name
        out["contradictions"][name] = tr.contradiction_rates(flags, m)["any"]
    return out


def _cell(conf, correct, answered, right, m, sup) -> dict[str, Any]:
    """One source x task cell; answered precision counts the *shown* verdict (after the
    one-answer rule it may differ from the top score)."""
    entry = tr.answer_metrics(conf[m], correct[m], answered[m])
    kept = m & answered
    entry["answered_precision"] = round(float(right[kept].mean()), 4) if kept.any() else None
    if sup is not None:
        s, u = m & sup, m & ~sup
        entry["supported_answered_precision"] = round(float(right[s & answered].mean()), 4) if (s & answered).any() else None
        entry["supported_answered"] = round(float(answered[s].mean()), 4) if s.any() else None
        entry["unsupported_n"] = int(u.sum())
        entry["unsupported_answered"] = round(float(answered[u].mean()), 4) if u.any() else None
    return entry


def _flags(answers: list[dict], spans: Mapping[str, tuple[int, int]]) -> dict[str, np.ndarray]:
    def shown(task: str) -> list[str | None]:
        return [None if a["verdict"].get(task, "unknown") == "unknown" else a["verdict"][task] for a in answers]

    year = np.array([(a.get("year") or {}).get("estimate", np.nan) for a in answers], float)
    has = ~np.isnan(year)
    flags = tr.contradiction_flags(shown("timeframe"), shown("style"), shown("artist"), np.nan_to_num(year, nan=1650), spans)
    return {k: v & has for k, v in flags.items()}


def leave_source_out(rows: Rows, config: Any, spans: Mapping[str, tuple[int, int]],
                     progress: bool = False) -> dict[str, Any]:
    """Heads refit without each source and scored on it (all of that source's rows)."""
    from vasari.core.progress import tracked

    folds, supported = [], {}  # supported: per source, the labels its fold's training set supports
    never: dict[str, list[str]] = {}  # per source, the fold's tasks that never answer (single-source labels)
    for source in tracked(sorted(set(rows.sources.tolist())), "leave-source-out folds", progress):
        fit = rows.take(np.flatnonzero((rows.sources != source) & (rows.splits == "train")))
        val = rows.take(np.flatnonzero((rows.sources != source) & (rows.splits == "val")))
        held = rows.take(np.flatnonzero(rows.sources == source))
        if len(fit.X) == 0 or len(val.X) == 0:
            continue
        heads = _train_like_the_bundle(fit, val, rows.take(np.flatnonzero(rows.sources != source)), config)
        support = {t: supported_labels(fit.labels.get(t, [])) for t in heads.tasks}
        supported[source] = {t: sorted(v) for t, v in support.items()}
        never[source] = never_answering(heads)
        flags = {t: np.array([y in support.get(t, ()) for y in held.labels.get(t, [None] * len(held.X))]) for t in heads.tasks}
        folds.append((held, user_answers(heads, held.X, spans), flags))
    held_all = _concat_rows([f[0] for f in folds])
    answers = [a for f in folds for a in f[1]]
    tasks = {t for f in folds for t in f[2]}
    row_support = {t: np.concatenate([f[2].get(t, np.zeros(len(f[0].X), bool)) for f in folds]) for t in tasks}
    out = score(answers, held_all, spans, row_support)
    out["supported_labels"] = supported
    out["never_answer"] = {source: tasks for source, tasks in never.items() if tasks}
    return out


def never_answering(heads: Any) -> list[str]:
    """Tasks whose out-of-source threshold choice found too few labelled predictions, so they
    never give a verdict (``vasari.heads.abstention.MIN_OUT_OF_SOURCE``)."""
    return sorted(t for t, h in heads.classifiers.items() if "abstains" in h.info.get("threshold_out_of_source", {}))


def _train_like_the_bundle(fit: Rows, val: Rows, seen: Rows, config: Any, progress: bool = False) -> Any:
    """Heads for one fold, trained the way the bundle was: with ``abstention="out-of-source"``
    the fold's thresholds are re-chosen out of source on the rows the fold may see (``seen``),
    so a protocol scores the shipped rule, never thresholds chosen on the held-out rows."""
    from vasari.heads.abstention import out_of_source_abstention, training_views
    from vasari.heads.train import train_heads

    labels = {t: fit.labels[t] for t in config.tasks if t in fit.labels}
    val_labels = {t: val.labels[t] for t in config.tasks if t in val.labels}
    heads = train_heads(fit.X, labels, fit.years if config.year else None, val.X, val_labels,
                        val.years if config.year else None, config=config, views_train=training_views(fit, config))
    if config.abstention == "out-of-source":
        out_of_source_abstention(heads, seen, config, progress)
    return heads


def _concat_rows(parts: list[Rows]) -> Rows:
    tasks = {t for p in parts for t in p.labels}
    views = np.concatenate([p.views for p in parts]) if all(p.views is not None for p in parts) else None
    return Rows(np.concatenate([p.X for p in parts]), {t: [v for p in parts for v in p.labels.get(t, [None] * len(p.X))] for t in tasks},
                [y for p in parts for y in p.years], np.concatenate([p.sources for p in parts]),
                np.concatenate([p.splits for p in parts]), views)


def leave_artists_out(rows: Rows, config: Any, spans: Mapping[str, tuple[int, int]], fraction: float = 0.2,
                      min_works: int = 10, seed: int = 0, progress: bool = False) -> dict[str, Any]:
    """Open-set artists: ``fraction`` of the artists with ``min_works`` works held out."""
    artists = rows.labels.get("artist") or [None] * len(rows.X)
    counts = Counter(a for a in artists if a)
    eligible = sorted(a for a, n in counts.items() if n >= min_works)
    rng = np.random.default_rng(seed)
    held = set(rng.choice(eligible, size=max(1, round(fraction * len(eligible))), replace=False).tolist()) if eligible else set()
    unknown = np.array([a in held for a in artists])
    fit = rows.take(np.flatnonzero(~unknown & (rows.splits == "train")))
    val = rows.take(np.flatnonzero(~unknown & (rows.splits == "val")))
    config = replace(config, tasks=("artist",), year=False)
    heads = _train_like_the_bundle(fit, val, rows.take(np.flatnonzero(~unknown)), config, progress)
    test = np.flatnonzero(unknown | ((rows.splits == "test") & np.array([a is not None for a in artists])))
    answers = user_answers(heads, rows.X[test], spans)
    verdict = np.array([a["verdict"]["artist"] for a in answers])
    truth = np.array([artists[i] for i in test])
    is_unknown, answered = unknown[test], verdict != "unknown"
    known_kept = answered & ~is_unknown
    return {"held_out_artists": sorted(held), "n_unknown": int(is_unknown.sum()), "n_known": int((~is_unknown).sum()),
            "false_attribution": round(float(answered[is_unknown].mean()), 4) if is_unknown.any() else None,
            "known_answered": round(float(answered[~is_unknown].mean()), 4) if (~is_unknown).any() else None,
            "known_precision": round(float((verdict == truth)[known_kept].mean()), 4) if known_kept.any() else None}


def evaluate_protocol(protocol: str, bundle: Any, artworks: Sequence[Any], split_of: Sequence[str],
                      features: np.ndarray, spans: Mapping[str, tuple[int, int]], split: str = "test",
                      views: np.ndarray | None = None, progress: bool = False) -> dict[str, Any]:
    """``vasari evaluate --protocol``: ``grouped`` scores the bundle's heads on ``split``;
    the other protocols refit heads with the bundle's head config on the dataset's splits
    (``views``: the train pictures' augmented views, needed when that config has
    ``augment_views``, so the refits train the way the bundle did); ``progress``: a bar (or
    plain lines) per refit loop."""
    from vasari.heads.train import HeadConfig, TrainError

    _check_protocol(protocol)
    ok = np.isfinite(np.asarray(features, np.float32)).all(axis=1)
    tasks = list(bundle.heads.tasks)
    config = HeadConfig.from_dict({**bundle.card.get("head_config", {}), "tasks": tasks})
    if config.augment_views and views is None and protocol != "grouped":
        raise TrainError(f"this bundle's heads trained on {config.augment_views} augmented view(s) per train picture: "
                         f"{protocol} needs those views to refit the way it was trained")
    rows = Rows(np.asarray(features, np.float32), {t: [a.label(t) for a in artworks] for t in tasks},
                [a.year for a in artworks], np.array([a.source for a in artworks]), np.asarray(split_of, dtype=object),
                views if config.augment_views else None)
    rows = rows.take(np.flatnonzero(ok))
    if protocol == "grouped":
        test = rows.take(np.flatnonzero(rows.splits == split)) if split != "all" else rows
        result = score(user_answers(bundle.heads, test.X, spans), test, spans)
    elif protocol == "leave-source-out":
        result = leave_source_out(rows, config, spans, progress)
    else:
        result = leave_artists_out(rows, config, spans, progress=progress)
    return {"protocol": protocol, **result}


def protocol_summary(result: Mapping[str, Any]) -> dict[str, Any]:
    """The pooled figures of a protocol result, small enough for a model card: per task
    top-1, answered share and precision (leave-source-out: also on the labels the other
    sources support, and how often unsupported labels are answered); leave-artists-out as is,
    with the held-out artists counted rather than listed."""
    if "false_attribution" in result:
        return {**{k: v for k, v in result.items() if k != "held_out_artists"},
                "held_out_artists": len(result["held_out_artists"])}
    keys = ("n", "top1", "answered", "answered_precision", "supported_answered", "supported_answered_precision",
            "unsupported_answered")
    tasks = {task: {k: per["pooled"][k] for k in keys if k in per["pooled"]}
             for task, per in result["tasks"].items() if "pooled" in per}
    return {"protocol": result["protocol"], "tasks": tasks, "contradictions": result["contradictions"].get("pooled"),
            "never_answer": result.get("never_answer", {})}


def _check_protocol(protocol: str) -> None:
    if protocol not in PROTOCOLS:
        raise ValueError(f"--protocol must be one of {', '.join(PROTOCOLS)}, got {protocol!r}")


def protocol_markdown(result: Mapping[str, Any]) -> str:
    """The per source x task table of a protocol result (the report's markdown)."""
    if "false_attribution" in result:
        return (f"## {result['protocol']}\n\nheld-out artists: {len(result['held_out_artists'])}; false attribution "
                f"{result['false_attribution']}; known artists answered {result['known_answered']} at precision "
                f"{result['known_precision']}\n")
    lines = [f"## {result['protocol']}", "", "cells: top-1 / ECE / answered @ answered precision"
             + (" (supported labels: answered @ precision; unsupported answered)" if "supported_labels" in result else ""),
             "", "| source | " + " | ".join(result["tasks"]) + " | contradictions |", "|---" * (len(result["tasks"]) + 2) + "|"]
    for source, rate in result["contradictions"].items():
        cells = []
        for per in result["tasks"].values():
            m = per.get(source)
            cells.append("-" if m is None else _cell_text(m))
        lines.append(f"| {source} | " + " | ".join(cells) + f" | {rate} |")
    return "\n".join(lines) + "\n"


def _cell_text(m: Mapping[str, Any]) -> str:
    text = f"{m['top1']} / {m['ece']} / {m['answered']} @ {m['answered_precision']}"
    if "unsupported_answered" in m:
        text += f" (sup. {m['supported_answered']} @ {m['supported_answered_precision']}; unsup. {m['unsupported_answered']})"
    return text


def run_protocol(protocol: str, bundle: Any, embedder: Any, dataset: Any, split: str, out: Any, cache: Any,
                 model_dir: Any) -> str:
    """``vasari evaluate --protocol``: embed the dataset, run the protocol, write
    ``protocol.json`` and ``protocol.md`` into ``out``; returns the markdown."""
    _check_protocol(protocol)  # before embedding: fail fast
    arts = [a for a in dataset.artworks if a.image]
    split_of = [dataset.splits.get(a.artwork_id, "") for a in arts]
    result = embedder.embed_paths([a.image for a in arts], cache=cache, progress=True)
    k = int(bundle.card.get("head_config", {}).get("augment_views") or 0)
    views = None
    if k and protocol != "grouped":  # refit the way the bundle was trained: with its train pictures' views
        from vasari.features.augment import views_of_rows

        views = views_of_rows(embedder, [a.image for a in arts], np.asarray(split_of) == "train", k, cache, progress=True)
    return write_protocol(protocol, bundle, arts, split_of, result.features, model_dir, split, out, views=views,
                          progress=True)


def write_protocol(protocol: str, bundle: Any, artworks: Sequence[Any], split_of: Sequence[str],
                   features: np.ndarray, model_dir: Any, split: str, out: Any, stem: str = "protocol",
                   views: np.ndarray | None = None, progress: bool = False) -> str:
    """Run ``protocol`` on embedded artworks and write ``<stem>.json`` and ``<stem>.md`` into
    ``out`` (plain ``vasari evaluate`` writes its per-source table as ``by_source``); returns
    the markdown."""
    import json
    from pathlib import Path

    from vasari.core.fileio import atomic_write_text
    from vasari.inference.consistency import load_artist_spans

    report = evaluate_protocol(protocol, bundle, artworks, split_of, features, load_artist_spans(model_dir), split,
                               views=views, progress=progress)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    text = protocol_markdown(report)
    atomic_write_text(out / f"{stem}.json", json.dumps(report, indent=1, default=str))
    atomic_write_text(out / f"{stem}.md", text)
    return text
