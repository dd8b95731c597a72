"""Trust on paintings from anywhere (issue #14): measure, per source and pooled, how far the
answers can be believed, before and after each candidate fix.

    python benchmarks/trust.py                      # everything, writes results/trust.json
    python benchmarks/trust.py --quick              # one leave-artists-out seed

Protocols (every one per source and pooled, per task: top-1, ECE, answered share, answered
precision; contradictions between verdicts and the year estimate):

* ``grouped``: today's default split (train / val / test, near-duplicates kept together);
* ``leave_source_out``: for each source, heads refit on the other sources' train (+ val for
  C, temperature, today's thresholds), tested on every row of the held-out source; labels of
  the held-out source with >= 30 training rows in the others are "supported";
* ``leave_artists_out``: 20% of the artists with >= 10 works held out (all their works),
  3 seeds: false attribution, known-artist answered share and precision, AUROC.

Approaches (nothing is chosen on a test split or a held-out source/artist set):

* ``today``: val thresholds (target precision .9), novelty -> unknown;
* ``oos_thresholds``: thresholds chosen on pooled out-of-source predictions of the *other*
  leave-source-out folds (for the grouped split: of the non-test rows of every fold);
* ``consistent``: the year estimate clipped into an answered period's bin; style and artist
  verdicts outside their span / active years become "unknown";
* ``source_capped`` / ``source_projected``: heads on source-balanced (capped) training rows /
  on features with the source-mean directions projected out;
* ``evidence_oos`` / ``evidence_mixed``: source-aware abstention, a logistic "is this answer
  right" model per task on p1, p1 - p2, log novelty score and cosine to the nearest training
  work, fitted (and thresholded for precision TARGET) on the other folds' out-of-source
  predictions, alone or with the folds' in-distribution val predictions;
* open-set artists: a logistic "is the top artist right" model on head confidence + gallery
  evidence, fitted and thresholded on an inner leave-artists-out split of the training artists;
* scope + placeholders: out-of-scope artists and placeholder cards dropped from training.

Embeddings are cached in ``runs/trust/cache`` (the first run embeds ~8.7k images).
"""

from __future__ import annotations

import argparse
import csv
import datetime as dt
import subprocess
import sys
import time
from collections import Counter, defaultdict
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

from vasari.core.labels import TASKS
from vasari.core.scope import OUT_OF_SCOPE
from vasari.dataset.clean import cross_artist_duplicates
from vasari.features.augment import AugmentConfig
from vasari.heads import HeadConfig, choose_threshold, train_heads
from vasari.heads import trust as tr
from vasari.heads.abstention import SUPPORT, supported_labels

ROOT = Path(__file__).resolve().parent.parent
WORK = ROOT / "runs" / "trust"
RESULTS = ROOT / "benchmarks" / "results" / "trust.json"
SOURCES = ("louvre", "aic", "wga", "wga_thumbs", "artists7", "wikiart")
TARGET = 0.9


@dataclass
class Data:
    """Every dataset row with its embedding, labels, year, source and split."""

    ids: list[str]
    X: np.ndarray
    source: np.ndarray
    split: np.ndarray
    labels: dict[str, list[str | None]]
    years: list[int | None]
    group: list[str]
    spans: dict[str, tuple[int, int]] = field(default_factory=dict)
    images: list[str] = field(default_factory=list)
    #: ``(N, k, dim)`` embeddings of k augmented views of each train-split row (NaN elsewhere;
    #: ``attach_augmented``), or None.
    aug: np.ndarray | None = None

    def take_labels(self, rows: np.ndarray, tasks=TASKS, drop_artists: set[str] = frozenset()) -> dict:
        out = {t: [self.labels[t][i] for i in rows] for t in tasks}
        if "artist" in out and drop_artists:
            out["artist"] = [a if a not in drop_artists else None for a in out["artist"]]
        return out


# ----------------------------------------------------------------------------- data


def load_data(data_dir: Path) -> Data:
    """The grouped dataset of every shared source, embedded once with the default backbone."""
    from vasari.features import Embedder, EmbeddingCache

    ds_dir = WORK / "dataset"
    if not (ds_dir / "dataset.csv").is_file():
        subprocess.run(["vasari", "dataset", "build", "--shared", "--data-dir", str(data_dir), "--split", "grouped",
                        "--out", str(ds_dir)], check=True)
    rows = list(csv.DictReader((ds_dir / "dataset.csv").open(encoding="utf-8")))
    embedder = Embedder(threads=1)
    with EmbeddingCache(WORK / "cache", embedder.spec) as cache:
        result = embedder.embed_paths([r["image"] for r in rows], cache=cache, progress=True)
    if result.errors:
        print(f"{len(result.errors)} images failed to embed; their rows are dropped", file=sys.stderr)
    keep = [i for i in range(len(rows)) if i not in result.errors]
    rows = [rows[i] for i in keep]
    data = Data(
        ids=[r["artwork_id"] for r in rows], X=result.features[keep].astype(np.float32),
        source=np.array([r["source"] for r in rows]), split=np.array([r["split"] for r in rows]),
        labels={t: [r[t] or None for r in rows] for t in TASKS},
        years=[int(r["year"]) if r["year"] else None for r in rows], group=[r["group"] for r in rows],
        images=[r["image"] for r in rows])
    data.spans = tr.artist_spans(life_years(data_dir), dated_works(data))
    return data


#: Which changes a view makes: all of them, or only the geometric + JPEG / photometric ones
#: (the other ranges set to zero), to see which part helps and which one costs.
AUGMENT_KINDS = {
    "all": lambda views, strength: AugmentConfig(views=views, strength=strength),
    "geometric": lambda views, strength: AugmentConfig.geometric(views, strength=strength),
    "photometric": lambda views, strength: AugmentConfig(views=views, strength=strength, crop=0.0, aspect=0.0,
                                                         downscale=0.0, jpeg_quality=(95, 95)),
}


def attach_augmented(data: Data, views: int, strength: float = 1.0, kind: str = "all") -> None:
    """Embed ``views`` augmented views of every train-split row (``vasari.features.augment``;
    cached in ``runs/trust/augment-cache`` by picture, view and config, so a crash resumes)
    into ``data.aug``. Only train rows: val, test and held-out rows stay un-augmented."""
    from vasari.features import Embedder, EmbeddingCache
    from vasari.features.augment import embed_augmented

    train = np.flatnonzero(data.split == "train")
    embedder = Embedder(threads=2)
    config = AUGMENT_KINDS[kind](views, strength)
    with EmbeddingCache(WORK / "augment-cache", embedder.spec) as cache:
        vecs = embed_augmented(embedder, [data.images[i] for i in train], config, cache=cache)
    data.aug = np.full((len(data.ids), views, vecs.shape[2]), np.nan, dtype=np.float32)
    data.aug[train] = vecs


def reduce_dim(data: Data, dim: int) -> None:
    """Project the embeddings (and augmented views) on their top ``dim`` principal components
    (randomized PCA fitted on the grouped train split's rows, no labels): every fold then
    trains in seconds instead of minutes on the shared machine. 0 keeps the full features."""
    from sklearn.decomposition import PCA

    if dim and dim < data.X.shape[1]:
        pca = PCA(n_components=dim, svd_solver="randomized", random_state=0)
        pca.fit(data.X[data.split == "train"])
        data.X = pca.transform(data.X).astype(np.float32)
        if data.aug is not None:
            n, k, d = data.aug.shape
            flat = data.aug.reshape(n * k, d)
            ok = np.isfinite(flat).all(axis=1)
            out = np.full((n * k, dim), np.nan, dtype=np.float32)
            out[ok] = pca.transform(flat[ok])
            data.aug = out.reshape(n, k, dim)


def life_years(data_dir: Path) -> dict[str, tuple[int | None, int | None]]:
    """Birth and death years from the Kaggle artists tables (artists7 and the 50-artist list)."""
    from vasari.catalog.kaggle import _kaggle_years
    from vasari.catalog.normalize import parse_artist

    out = {}
    for path in (data_dir / "artists7" / "artists.csv", data_dir / "catalogs" / "best_artworks_artists.csv"):
        if path.is_file():
            for row in csv.DictReader(path.open(encoding="utf-8")):
                name = parse_artist(row["name"]) or row["name"]
                out[name] = _kaggle_years(row["years"])
    return out


def dated_works(data: Data) -> dict[str, list[int]]:
    out: dict[str, list[int]] = defaultdict(list)
    for artist, year in zip(data.labels["artist"], data.years):
        if artist and year:
            out[artist].append(year)
    return out


# ----------------------------------------------------------------------------- models


def fit(data: Data, X: np.ndarray, train: np.ndarray, val: np.ndarray, tasks=TASKS, year: bool = True,
        novelty: bool = True, drop_artists: set[str] = frozenset(), augment: int = 0, originals: int = 1,
        augment_tasks: tuple[str, ...] | None = None):
    """Heads as today (C, temperature and thresholds on val) on the given rows; with
    ``augment`` k, each train row comes ``originals`` times and brings its first k augmented
    views (same labels and year; the views then weigh k / (k + originals) of each painting),
    and the C grid is divided by the copies, so that every painting weighs what it did
    without views (the penalty is |W|^2 / (2 C n) over n rows). ``augment_tasks``: only these
    tasks see the views (the views carry no other label and no year; C is then chosen from the
    usual grid, the views doubling a task's rows)."""
    config = HeadConfig(tasks=tuple(tasks), year=year, novelty=novelty, target_precision=TARGET)
    labels, years, X_train = data.take_labels(train, tasks, drop_artists), [data.years[i] for i in train], X[train]
    if augment:
        copies = augment + originals
        X_train = np.concatenate([X_train] * originals + [data.aug[train, v] for v in range(augment)])
        if augment_tasks is None:
            labels = {t: list(v) * copies for t, v in labels.items()}
            years = years * copies
            config = replace(config, c_grid=tuple(c / copies for c in config.c_grid))
        else:
            labels = {t: list(v) * originals + (list(v) if t in augment_tasks else [None] * len(v)) * augment
                      for t, v in labels.items()}
            years = years * originals + [None] * (len(train) * augment)
    return train_heads(X_train, labels, years, X[val], data.take_labels(val, tasks, drop_artists),
                       [data.years[i] for i in val], config=config)


def predict(heads, X: np.ndarray, X_train: np.ndarray) -> dict:
    """Probabilities, classes, val thresholds, year estimate and novelty per row, and the
    context of each row (log novelty score, cosine to the nearest training work)."""
    proba = heads.predict_proba(X)
    Zq, Zt = heads.transform(X), heads.transform(X_train)
    Zq /= np.linalg.norm(Zq, axis=1, keepdims=True)
    Zt /= np.linalg.norm(Zt, axis=1, keepdims=True)
    nearest = np.concatenate([(Zq[i:i + 1024] @ Zt.T).max(axis=1) for i in range(0, len(Zq), 1024)])
    context = np.column_stack([np.log(heads.novelty_score(X)), nearest])
    yr = heads.predict_year(X)
    novel = heads.novelty.is_novel(heads.transform(X)) if heads.novelty is not None else np.zeros(len(X), bool)
    return {"proba": proba, "classes": heads.vocabularies, "thresholds": heads.thresholds,
            "year": yr[0] if yr is not None else None, "year_interval": yr[1:] if yr is not None else None,
            "novel": novel, "context": context,
            "train_counts": {t: h.info["train_counts"] for t, h in heads.classifiers.items()}}


def decide(pred: dict, thresholds: dict[str, float], spans, consistent: bool, keep: dict | None = None) -> dict:
    """Verdicts per task (None = unknown) and the year shown; ``consistent`` applies the
    one-answer rule (year clipped into the period verdict, style/artist veto). ``keep``
    (task -> bool per row) replaces the confidence threshold where given."""
    answered, verdict = {}, {}
    for task, p in pred["proba"].items():
        confident = keep[task] if keep and task in keep else p.max(axis=1) >= thresholds[task]
        answered[task] = confident & ~pred["novel"]
        verdict[task] = tr.verdicts(p, pred["classes"][task], answered[task])
    year = pred["year"]
    if consistent and year is not None:
        year = tr.year_in_bin(year, verdict.get("timeframe", [None] * len(year)))
        style, artist = tr.veto_inconsistent(verdict.get("style", [None] * len(year)),
                                             verdict.get("artist", [None] * len(year)), year, spans)
        for task, v in (("style", style), ("artist", artist)):
            if task in verdict:
                verdict[task] = v
                answered[task] = np.array([x is not None for x in v])
    return {"answered": answered, "verdict": verdict, "year": year}


def decide_joint(pred: dict, thresholds: dict[str, float], spans) -> dict:
    """The rule the predictor applies (``vasari.inference.consistency``): styles restricted to
    the answered period or year interval and re-normalised, the year moved into period and
    style span, an artist outside its active years "unknown"; novel rows make no claims."""
    out = decide(pred, thresholds, spans, False)
    year, verdict, answered = pred["year"], out["verdict"], out["answered"]
    if year is None or "style" not in pred["proba"]:
        return out
    n, none = len(year), [None] * len(year)
    style_p = pred["proba"]["style"].copy()
    shown, styles = np.asarray(year, float).copy(), list(none)
    for i in range(n):
        if pred["novel"][i]:
            continue
        a = tr.joint_decode(style_p[i], pred["classes"]["style"], thresholds["style"], verdict.get("timeframe", none)[i],
                            (year[i], pred["year_interval"][0][i], pred["year_interval"][1][i]))
        style_p[i], styles[i], shown[i] = a.style_proba, a.style, a.year
    verdict["style"] = styles
    verdict["artist"] = [a if tr.artist_fits(a, y, spans) else None for a, y in zip(verdict.get("artist", none), shown)]
    for task in ("style", "artist"):
        answered[task] = np.array([v is not None for v in verdict[task]])
    return {**out, "year": shown, "proba": {"style": style_p}}


# ----------------------------------------------------------------------------- reports


def outcomes(data: Data, rows: np.ndarray, pred: dict, decision: dict, support: dict | None = None) -> dict:
    """Per-row results that pool across folds: per task the labelled rows' confidence,
    correctness, answered flag and support; contradiction flags; year error."""
    out = {"source": data.source[rows], "tasks": {}, "flags": None, "year_err": None}
    for task, p in pred["proba"].items():
        p = decision.get("proba", {}).get(task, p)
        y = tr.encode([data.labels[task][i] for i in rows], pred["classes"][task])
        m = y >= -1
        sup = np.array([data.labels[task][i] in (support or {}).get(task, ()) for i in rows])
        out["tasks"][task] = {"mask": m, "conf": p.max(axis=1)[m], "correct": (p.argmax(axis=1) == y)[m],
                              "answered": decision["answered"][task][m], "supported": sup[m]}
    if decision["year"] is not None:
        v, none = decision["verdict"], [None] * len(rows)
        out["flags"] = tr.contradiction_flags(v.get("timeframe", none), v.get("style", none),
                                              v.get("artist", none), decision["year"], data.spans)
        truth = np.array([data.years[i] or np.nan for i in rows], dtype=float)
        out["year_err"] = np.abs(decision["year"] - truth)
    return out


def _concat(parts: list[dict]) -> dict:
    joined = {"source": np.concatenate([p["source"] for p in parts]), "tasks": {}}
    for task in {t for p in parts for t in p["tasks"]}:
        have = [p for p in parts if task in p["tasks"]]
        joined["tasks"][task] = {k: np.concatenate([p["tasks"][task][k] for p in have])
                                 for k in ("conf", "correct", "answered", "supported")}
        joined["tasks"][task]["source"] = np.concatenate([p["source"][p["tasks"][task]["mask"]] for p in have])
    with_year = [p for p in parts if p["flags"] is not None]
    joined["flags"] = ({k: np.concatenate([p["flags"][k] for p in parts]) for k in parts[0]["flags"]}
                       if len(with_year) == len(parts) else None)
    joined["year_err"] = np.concatenate([p["year_err"] for p in parts]) if joined["flags"] is not None else None
    return joined


def summarize(parts: list[dict], with_support: bool = False) -> dict:
    """Per task x (pooled + each source): top-1, ECE, answered share and precision (and on
    supported / unsupported labels); contradictions and year MAE per source."""
    o = _concat(parts)
    out: dict = {"tasks": {}, "contradictions": {}, "year_mae": {}}
    for task in [t for t in TASKS if t in o["tasks"]]:
        r = o["tasks"][task]
        per = {}
        for name in ("pooled",) + SOURCES:
            m = np.ones(len(r["conf"]), bool) if name == "pooled" else r["source"] == name
            if not m.any():
                continue
            entry = tr.answer_metrics(r["conf"][m], r["correct"][m], r["answered"][m])
            if with_support:
                s, u = m & r["supported"], m & ~r["supported"]
                entry["supported"] = tr.answer_metrics(r["conf"][s], r["correct"][s], r["answered"][s])
                entry["unsupported_n"] = int(u.sum())
                entry["unsupported_answered"] = round(float(r["answered"][u].mean()), 4) if u.any() else None
            per[name] = entry
        out["tasks"][task] = per
    if o["flags"] is not None:
        for name in ("pooled",) + SOURCES:
            m = np.ones(len(o["source"]), bool) if name == "pooled" else o["source"] == name
            if m.any():
                out["contradictions"][name] = tr.contradiction_rates(o["flags"], m)
                err = o["year_err"][m]
                if (~np.isnan(err)).any():
                    out["year_mae"][name] = round(float(np.nanmean(err)), 2)
    return out


def oos_thresholds(folds: list[dict], exclude: str | None, test_rows: set[int] = frozenset(),
                   supported_only: bool = False) -> dict[str, float]:
    """Per task, the threshold for precision TARGET on the pooled out-of-source predictions of
    every fold but ``exclude``, leaving out ``test_rows`` (labels a fold's head does not know
    count as wrong; ``supported_only`` keeps only labels with SUPPORT training rows)."""
    out = {}
    for task in TASKS:
        conf, correct = [], []
        for f in folds:
            if f["source"] == exclude or task not in f["outcome"]["tasks"]:
                continue
            r = f["outcome"]["tasks"][task]
            keep = np.array([i not in test_rows for i in f["rows"][r["mask"]]], bool)
            if supported_only:
                keep &= r["supported"]
            conf.append(r["conf"][keep])
            correct.append(r["correct"][keep])
        if conf:
            out[task] = choose_threshold(np.concatenate(conf), np.concatenate(correct), TARGET)["threshold"]
    return out


def answer_features(pred: dict, task: str) -> np.ndarray:
    """What the "is this answer right" model sees: p1, p1 - p2, log novelty, nearest cosine."""
    top = np.sort(pred["proba"][task], axis=1)
    return np.column_stack([top[:, -1], top[:, -1] - top[:, -2], pred["context"]])


def evidence_answers(folds: list[dict], exclude: str | None, pred: dict, data_source,
                     test_rows: set[int] = frozenset(), with_val: bool = True) -> dict:
    """Source-aware abstention: per task a logistic model of "the answer is right" on
    ``answer_features``, fitted on the pooled out-of-source predictions of every fold but
    ``exclude`` and on each fold's in-distribution val predictions (rows of ``exclude`` and
    ``test_rows`` left out), thresholded there for precision TARGET; returns task -> answered
    flags for ``pred``'s rows."""
    keep = {}
    parts = [f for f in folds if f["source"] != exclude] + ([f["val"] for f in folds] if with_val else [])
    for task in pred["proba"]:
        feats, right = [], []
        for f in parts:
            if task not in f["outcome"]["tasks"]:
                continue
            r = f["outcome"]["tasks"][task]
            picked = f["rows"][r["mask"]]
            rows = np.array([i not in test_rows and data_source(i) != exclude for i in picked], bool)
            feats.append(answer_features(f["pred"], task)[r["mask"]][rows])
            right.append(r["correct"][rows])
        y = np.concatenate(right) if right else np.zeros(0, bool)
        if len(np.unique(y)) < 2:
            continue
        model = _evidence_model(np.vstack(feats), y.astype(float))
        threshold = choose_threshold(model.predict_proba(np.vstack(feats))[:, 1], y, TARGET)["threshold"]
        keep[task] = model.predict_proba(answer_features(pred, task))[:, 1] >= threshold
    return keep


def evidence_rules(folds: list[dict], exclude: str | None, pred: dict, data: Data,
                   test_rows: set[int] = frozenset()) -> dict[str, dict]:
    """Source-aware abstention fitted on out-of-source rows only ("evidence_oos") or on those
    and in-distribution val rows ("evidence_mixed"), each plain and consistent."""
    rules = {}
    for name, with_val in (("evidence_oos", False), ("evidence_mixed", True)):
        keep = evidence_answers(folds, exclude, pred, data.source.__getitem__, test_rows, with_val)
        rules[name] = decide(pred, pred["thresholds"], data.spans, False, keep)
        rules[f"{name}_consistent"] = decide(pred, pred["thresholds"], data.spans, True, keep)
    return rules


# ----------------------------------------------------------------------------- variants


@dataclass(frozen=True)
class Variant:
    """How the heads are trained: ``cap`` source-balanced training (at most this many train
    rows per source), ``project`` source-mean directions removed from the features, ``clean``
    out-of-scope artists and placeholder cards out of training, ``augment`` k augmented views
    of each train row added (``attach_augmented``) beside ``originals`` copies of the row."""

    name: str
    cap: int | None = None
    project: bool = False
    clean: bool = False
    augment: int = 0
    originals: int = 1
    augment_tasks: tuple[str, ...] | None = None

    def __post_init__(self) -> None:
        if self.augment and self.project:
            raise ValueError("augmented views are not projected: use augment or project, not both")


VARIANTS = (Variant("base"), Variant("source_capped", cap=1200), Variant("source_projected", project=True),
            Variant("clean", clean=True), Variant("augment1", augment=1), Variant("augment2", augment=2),
            Variant("augment1_light", augment=1, originals=2), Variant("augment2_half", augment=2, originals=2),
            Variant("augment1_type", augment=1, augment_tasks=("type",)))


def prepare(data: Data, variant: Variant, train: np.ndarray, placeholders: set[int], seed: int = 0):
    """Features and train rows for a variant (the projection is fitted on ``train`` only)."""
    X = data.X
    if variant.clean:
        train = np.array([i for i in train if i not in placeholders])
    if variant.cap:
        rng = np.random.default_rng(seed)
        parts = [rng.permutation(train[data.source[train] == s])[: variant.cap] for s in SOURCES]
        train = np.sort(np.concatenate(parts))
    if variant.project:
        mu, sd = X[train].mean(axis=0), X[train].std(axis=0) + 1e-6
        Z = (X - mu) / sd
        centroids = np.stack([Z[train][data.source[train] == s].mean(axis=0)
                              for s in SOURCES if (data.source[train] == s).any()])
        basis, _ = np.linalg.qr((centroids - centroids.mean(axis=0)).T)
        X = ((Z - (Z @ basis) @ basis.T) * sd + mu).astype(np.float32)
    drop = set(OUT_OF_SCOPE) if variant.clean else set()
    return X, train, drop


# ----------------------------------------------------------------------------- protocols


def decisions(pred: dict, data: Data, thresholds: dict[str, dict[str, float]]) -> dict[str, dict]:
    """The decision rules compared: today's (val thresholds) and each set of ``thresholds``,
    each plain and with the one-answer rule ("_consistent")."""
    sets = {"today": pred["thresholds"]}
    for name, values in thresholds.items():
        sets[name] = {**pred["thresholds"], **{t: v for t, v in values.items() if t in pred["thresholds"]}}
    rules = {}
    for name, values in sets.items():
        rules[name] = decide(pred, values, data.spans, False)
        rules["consistent" if name == "today" else f"{name}_consistent"] = decide(pred, values, data.spans, True)
        rules["predictor" if name == "today" else f"{name}_predictor"] = decide_joint(pred, values, data.spans)
    return rules


def leave_source_out(data: Data, variant: Variant, placeholders: set[int]) -> tuple[dict, list[dict]]:
    """Heads refit per held-out source; every rule summarised per source and pooled."""
    folds = []
    for s in SOURCES:
        others = data.source != s
        train = np.flatnonzero(others & (data.split == "train"))
        val = np.flatnonzero(others & (data.split == "val"))
        X, train, drop = prepare(data, variant, train, placeholders)
        t0 = time.perf_counter()
        heads = fit(data, X, train, val, drop_artists=drop, augment=variant.augment,
                    originals=variant.originals, augment_tasks=variant.augment_tasks)
        rows = np.flatnonzero(~others)
        pred = predict(heads, X[rows], X[train])
        support = {t: supported_labels(labels) for t, labels in data.take_labels(train, pred["train_counts"], drop).items()}
        base = decide(pred, pred["thresholds"], data.spans, False)
        val_pred = predict(heads, X[val], X[train])
        folds.append({"source": s, "rows": rows, "pred": pred, "support": support,
                      "outcome": outcomes(data, rows, pred, base, support),
                      "val": {"source": None, "rows": val, "pred": val_pred,
                              "outcome": outcomes(data, val, val_pred, decide(val_pred, val_pred["thresholds"],
                                                                              data.spans, False))}})
        print(f"  {variant.name} leave-out {s}: {len(train)} train rows, {time.perf_counter() - t0:.0f}s", flush=True)
    results = {}
    per_rule: dict[str, list[dict]] = defaultdict(list)
    for f in folds:
        sets = {"oos": oos_thresholds(folds, f["source"]),
                "oos_supported": oos_thresholds(folds, f["source"], supported_only=True)}
        rules = decisions(f["pred"], data, sets)
        rules.update(evidence_rules(folds, f["source"], f["pred"], data))
        for rule, dec in rules.items():
            per_rule[rule].append(outcomes(data, f["rows"], f["pred"], dec, f["support"]))
    for rule, parts in per_rule.items():
        results[rule] = summarize(parts, with_support=True)
    results["supported_labels"] = {f["source"]: {t: sorted(v) for t, v in f["support"].items()} for f in folds}
    results["held_out_labels"] = {f["source"]: {t: dict(Counter(l for l in (data.labels[t][i] for i in f["rows"]) if l))
                                                for t in TASKS} for f in folds}
    return results, folds


def grouped(data: Data, variant: Variant, placeholders: set[int], folds: list[dict]) -> dict:
    """Today's split: train -> heads, val -> C/temperature/thresholds, test -> numbers."""
    train = np.flatnonzero(data.split == "train")
    val = np.flatnonzero(data.split == "val")
    test = np.flatnonzero(data.split == "test")
    X, train, drop = prepare(data, variant, train, placeholders)
    heads = fit(data, X, train, val, drop_artists=drop, augment=variant.augment,
                originals=variant.originals, augment_tasks=variant.augment_tasks)
    pred = predict(heads, X[test], X[train])
    held = set(test.tolist())
    sets = {"oos": oos_thresholds(folds, None, held), "oos_supported": oos_thresholds(folds, None, held, True)}
    rules = decisions(pred, data, sets)
    rules.update(evidence_rules(folds, None, pred, data, held))
    out = {rule: summarize([outcomes(data, test, pred, dec)]) for rule, dec in rules.items()}
    out["thresholds"] = {"val": pred["thresholds"], **sets}
    out["val_top1"] = {t: h.info["val_accuracy_by_C"].get(repr(h.info["C"])) for t, h in heads.classifiers.items()}
    return out


# ----------------------------------------------------------------------------- open-set artists


def evidence(heads, X: np.ndarray, gallery: np.ndarray, gallery_artist: np.ndarray, query: np.ndarray,
             k: int = 10) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per query: top artist probability, its index, and the evidence features of the
    "is the top artist right" model: log p1, margin p1 - p2, cosine to the top artist's
    nearest gallery work, share of the k nearest gallery works by that artist, cosine to the
    nearest gallery work of anyone, and the difference of the two cosines."""
    proba = heads.predict_proba(X[query])["artist"]
    classes = np.array(heads.vocabularies["artist"])
    order = np.sort(proba, axis=1)
    top = classes[proba.argmax(axis=1)]
    Zg, Zq = heads.transform(X[gallery]), heads.transform(X[query])
    Zg /= np.linalg.norm(Zg, axis=1, keepdims=True)
    Zq /= np.linalg.norm(Zq, axis=1, keepdims=True)
    sim = Zq @ Zg.T
    nearest = np.argsort(-sim, axis=1)[:, :k]
    same = gallery_artist[None, :] == top[:, None]
    sim_top = np.where(same, sim, -1.0).max(axis=1)
    knn = (gallery_artist[nearest] == top[:, None]).mean(axis=1)
    sim_any = sim.max(axis=1)
    feats = np.column_stack([np.log(order[:, -1]), order[:, -1] - order[:, -2], sim_top, knn, sim_any,
                             sim_top - sim_any])
    return order[:, -1], top, feats


def open_set_threshold(score_unknown: np.ndarray, score_known: np.ndarray, correct_known: np.ndarray,
                       limit: float = 0.05) -> float:
    """The stricter of: false attribution <= ``limit`` on unknown artists; precision TARGET on
    known artists."""
    fa = tr.threshold_for_false_attribution(score_unknown, limit)
    prec = choose_threshold(score_known, correct_known, TARGET)["threshold"]
    return max(fa, prec)


def artist_split(data: Data, eligible: list[str], rng: np.random.Generator, frac: float = 0.2) -> set[str]:
    return set(rng.permutation(sorted(eligible))[: max(1, round(frac * len(eligible)))].tolist())


def lao_fit(data: Data, X: np.ndarray, held: set[str], drop: set[str], train_pool: np.ndarray, val_pool: np.ndarray):
    """Artist head (and year) on the pools without the held-out artists; the gallery is the
    training rows with an artist label."""
    artist = np.array([a or "" for a in data.labels["artist"]])
    train = train_pool[~np.isin(artist[train_pool], list(held))]
    val = val_pool[~np.isin(artist[val_pool], list(held))]
    heads = fit(data, X, train, val, tasks=("artist",), novelty=False, drop_artists=drop)
    known = set(heads.vocabularies["artist"])
    gallery = train[np.isin(artist[train], list(known))]
    return heads, gallery, artist[gallery]


def leave_artists_out(data: Data, seeds=(0, 1, 2), clean: bool = False, placeholders: set[int] = frozenset()) -> dict:
    """False attribution vs known-artist coverage; max-probability and evidence scores, with
    thresholds from val (today), from an inner leave-artists-out split, and the oracle point."""
    drop = set(OUT_OF_SCOPE) if clean else set()
    artist = np.array([a or "" for a in data.labels["artist"]])
    counts = Counter(a for a in artist if a and a not in drop)
    eligible = [a for a, n in counts.items() if n >= 10]
    usable = np.array([i not in placeholders for i in range(len(artist))]) if clean else np.ones(len(artist), bool)
    runs = []
    for seed in seeds:
        rng = np.random.default_rng(seed)
        held = artist_split(data, eligible, rng)
        inner_held = artist_split(data, [a for a in eligible if a not in held], rng)
        train_pool = np.flatnonzero((data.split == "train") & usable)
        val_pool = np.flatnonzero((data.split == "val") & usable)
        # inner split: fit the evidence model and every threshold on training artists only
        ih, ig, iga = lao_fit(data, data.X, held | inner_held, drop, train_pool, val_pool)
        inner_unknown = np.flatnonzero(np.isin(artist, list(inner_held)) & (data.split != "test"))
        inner_known = val_pool[np.isin(artist[val_pool], ih.vocabularies["artist"])]
        p_u, _, f_u = evidence(ih, data.X, ig, iga, inner_unknown)
        p_k, top_k, f_k = evidence(ih, data.X, ig, iga, inner_known)
        right_k = top_k == artist[inner_known]
        model = _evidence_model(np.vstack([f_u, f_k]), np.r_[np.zeros(len(f_u)), right_k.astype(float)])
        s_u, s_k = model.predict_proba(f_u)[:, 1], model.predict_proba(f_k)[:, 1]
        t_prob = open_set_threshold(p_u, p_k, right_k)
        t_evid = open_set_threshold(s_u, s_k, right_k)
        # outer: heads on every non-held artist, tested on held artists + known test rows
        heads, gallery, gallery_artist = lao_fit(data, data.X, held, drop, train_pool, val_pool)
        unknown = np.flatnonzero(np.isin(artist, list(held)))
        known_rows = np.flatnonzero((data.split == "test") & np.isin(artist, heads.vocabularies["artist"]))
        query = np.r_[known_rows, unknown]
        p, top, f = evidence(heads, data.X, gallery, gallery_artist, query)
        is_known = np.r_[np.ones(len(known_rows), bool), np.zeros(len(unknown), bool)]
        correct = top == artist[query]
        s = model.predict_proba(f)[:, 1]
        year = heads.predict_year(data.X[query])[0]
        runs.append({
            "seed": seed, "held_out_artists": len(held), "known_rows": int(len(known_rows)),
            "unknown_rows": int(len(unknown)),
            "max_prob_val_threshold": tr.false_attribution(p, is_known, correct, heads.thresholds["artist"]),
            "max_prob_oracle_fa05": tr.false_attribution(p, is_known, correct,
                                                         tr.threshold_for_false_attribution(p[~is_known])),
            "max_prob_inner_lao_threshold": tr.false_attribution(p, is_known, correct, t_prob),
            "evidence_inner_lao_threshold": tr.false_attribution(s, is_known, correct, t_evid),
            "evidence_oracle_fa05": tr.false_attribution(s, is_known, correct,
                                                         tr.threshold_for_false_attribution(s[~is_known])),
            "artist_year_contradiction_val_threshold": _artist_contradiction(data, top, p >= heads.thresholds["artist"], year),
            "artist_year_contradiction_evidence": _artist_contradiction(data, top, s >= t_evid, year),
        })
        print(f"  leave-artists-out seed {seed}{' clean' if clean else ''}: done", flush=True)
    return {"runs": runs, "mean": _mean_runs(runs)}


def _evidence_model(features: np.ndarray, target: np.ndarray):
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    return make_pipeline(StandardScaler(), LogisticRegression(C=1.0, max_iter=1000)).fit(features, target)


def _artist_contradiction(data: Data, top: np.ndarray, answered: np.ndarray, year: np.ndarray) -> float:
    verdict = [a if ok else None for a, ok in zip(top, answered)]
    none = [None] * len(verdict)
    return round(float(tr.contradiction_flags(none, none, verdict, year, data.spans)["artist"].mean()), 4)


def _mean_runs(runs: list[dict]) -> dict:
    out = {}
    for key, value in runs[0].items():
        if isinstance(value, dict):
            out[key] = {m: round(float(np.mean([r[key][m] for r in runs if r[key][m] is not None])), 4)
                        for m in value if any(r[key][m] is not None for r in runs)}
        elif isinstance(value, float):
            out[key] = round(float(np.mean([r[key] for r in runs])), 4)
    return out


# ----------------------------------------------------------------------------- main


def _commit() -> str:
    try:
        return subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"], capture_output=True,
                              text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data-dir", type=Path, default=ROOT.parent / "shared" / "data")
    parser.add_argument("--variants", default=",".join(v.name for v in VARIANTS if not v.augment),
                        help="comma-separated training variants (base first); e.g. base,clean (the augment* "
                             "ones: benchmarks/trust_augment.py)")
    parser.add_argument("--quick", action="store_true", help="one leave-artists-out seed")
    parser.add_argument("--dim", type=int, default=0, help="principal components kept (0 = all 2,912; 256 runs in seconds per fold)")
    parser.add_argument("--no-artists", action="store_true", help="skip leave-artists-out (e.g. a variants-only run)")
    parser.add_argument("--augment-strength", type=float, default=1.0,
                        help="strength of the augmented views (augment* variants; vasari.features.augment)")
    parser.add_argument("--augment-kind", choices=sorted(AUGMENT_KINDS), default="all",
                        help="which changes the augmented views make")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    started = time.perf_counter()
    data = load_data(args.data_dir)
    placeholders = set(cross_artist_duplicates(data.X, data.labels["artist"]))
    selected = [v for v in VARIANTS if v.name in args.variants.split(",")]
    views = max(v.augment for v in selected)
    if views:
        attach_augmented(data, views, args.augment_strength, args.augment_kind)
    reduce_dim(data, args.dim)
    result: dict = {
        "date": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"), "commit": _commit(),
        "rows": {s: int((data.source == s).sum()) for s in SOURCES}, "target_precision": TARGET, "dim": args.dim,
        "placeholders": sorted(data.ids[i] for i in placeholders), "variants": {},
        "augment_strength": args.augment_strength if views else None,
        "augment_kind": args.augment_kind if views else None,
    }
    for variant in selected:
        print(f"variant {variant.name}", flush=True)
        lso, folds = leave_source_out(data, variant, placeholders)
        result["variants"][variant.name] = {"leave_source_out": lso, "grouped": grouped(data, variant, placeholders, folds)}
        _save(result, args.out)
    if args.no_artists:
        result["seconds"] = round(time.perf_counter() - started, 1)
        _save(result, args.out)
        print("\n".join(summary_lines(result)))
        return result
    seeds = (0,) if args.quick else (0, 1, 2)
    result["leave_artists_out"] = {"base": leave_artists_out(data, seeds)}
    _save(result, args.out)
    result["leave_artists_out"]["clean"] = leave_artists_out(data, seeds, clean=True, placeholders=placeholders)
    result["seconds"] = round(time.perf_counter() - started, 1)
    _save(result, args.out)
    print("\n".join(summary_lines(result)))
    return result


def summary_lines(result: dict) -> list[str]:
    """Markdown tables of the headline numbers: per variant, protocol and rule, per task the
    pooled top-1 / answered share / answered precision (leave-source-out: on supported labels,
    and the answered share of unsupported ones) and the contradiction rate."""
    lines = []
    for name, protocols in result.get("variants", {}).items():
        for protocol in ("grouped", "leave_source_out"):
            lines += [f"\n{name} / {protocol}", "| rule | " + " | ".join(TASKS) + " | contradictions |",
                      "|---" * (len(TASKS) + 2) + "|"]
            for rule, rep in protocols[protocol].items():
                if "tasks" not in rep:
                    continue
                cells = []
                for task in TASKS:
                    m = rep["tasks"].get(task, {}).get("pooled")
                    if m is None:
                        cells.append("-")
                        continue
                    s = m.get("supported", m)
                    cell = f"{s['top1']:.3f} / {s['answered']:.2f} @ {_fmt(s['answered_precision'])}"
                    if "unsupported_answered" in m:
                        cell += f" (unsup. {_fmt(m['unsupported_answered'])})"
                    cells.append(cell)
                any_rate = rep["contradictions"].get("pooled", {}).get("any")
                lines.append(f"| {rule} | " + " | ".join(cells) + f" | {_fmt(any_rate)} |")
    for name, lao in result.get("leave_artists_out", {}).items():
        lines += [f"\nleave-artists-out / {name} (mean of seeds)", "| score / threshold | false attr. | known answered | "
                  "known precision | AUROC |", "|---|---|---|---|---|"]
        for key, m in lao["mean"].items():
            if isinstance(m, dict):
                lines.append(f"| {key} | {_fmt(m.get('false_attribution'))} | {_fmt(m.get('known_answered'))} | "
                             f"{_fmt(m.get('known_precision'))} | {_fmt(m.get('auroc'))} |")
    return lines


def _fmt(value) -> str:
    return "-" if value is None else f"{value:.3f}"


def _save(result: dict, out: Path) -> None:
    from _provenance import write_result

    write_result(out, result, indent=1, default=_json_default)


def _json_default(value):
    if isinstance(value, (np.integer, np.floating)):
        return value.item()
    if isinstance(value, (set, frozenset)):
        return sorted(value)
    raise TypeError(f"not JSON-serialisable: {type(value).__name__}")


if __name__ == "__main__":
    main()
