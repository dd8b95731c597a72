"""Metrics for trained heads on any split (the reports drawn from them are in ``vasari.report``).

``evaluate_heads(heads, X, labels, years, split)`` gives an ``Evaluation``: JSON-able
``metrics`` (per task: top-1, top-3, per-class accuracy, precision/recall/F1, weighted F1,
confusion matrix, expected calibration error before/after temperature, coverage-vs-accuracy
curve with the abstention threshold; year: MAE beside the always-the-median baseline and
how often the interval holds the truth) plus the arrays the plots need.

Rows whose true label is not one of the head's classes (a class never seen in training)
count as errors and are reported as ``n_unseen``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Mapping, Sequence

import numpy as np

from vasari.heads.calibration import coverage_curve
from vasari.heads.train import Heads


def _confidence_bins(confidence: np.ndarray, bins: int) -> tuple[np.ndarray, np.ndarray]:
    """The bin edges and each row's bin among ``bins`` equal-width confidence bins (a
    confidence on an edge goes to the lower bin; 0 to the first)."""
    edges = np.linspace(0.0, 1.0, bins + 1)
    return edges, np.clip(np.digitize(confidence, edges[1:-1], right=True), 0, bins - 1)


def calibration_error(confidence: np.ndarray, correct: np.ndarray, bins: int = 15) -> float:
    """ECE from top-1 confidences and hits: mean |accuracy - confidence| over equal-width
    confidence bins, weighted by size. Taking confidences rather than probabilities lets
    the trust metrics pool rows across folds whose heads differ; NaN without rows."""
    if len(confidence) == 0:
        return float("nan")
    _, idx = _confidence_bins(confidence, bins)
    ece = 0.0
    for b in range(bins):
        m = idx == b
        if m.any():
            ece += m.mean() * abs(correct[m].mean() - confidence[m].mean())
    return float(ece)


def expected_calibration_error(proba: np.ndarray, y: np.ndarray, bins: int = 15) -> float:
    """``calibration_error`` of the top-1 answers of ``proba``. ``y`` holds class indices;
    -1 (a label the model does not know) counts as wrong."""
    return calibration_error(proba.max(axis=1), proba.argmax(axis=1) == y, bins)


def reliability(proba: np.ndarray, y: np.ndarray, bins: int = 10) -> list[dict[str, float]]:
    conf = proba.max(axis=1)
    correct = proba.argmax(axis=1) == y
    edges, idx = _confidence_bins(conf, bins)
    out = []
    for b in range(bins):
        m = idx == b
        out.append({"low": float(edges[b]), "high": float(edges[b + 1]), "n": int(m.sum()),
                    "confidence": float(conf[m].mean()) if m.any() else None,
                    "accuracy": float(correct[m].mean()) if m.any() else None})
    return out


@dataclass
class TaskArrays:
    classes: list[str]
    labels: list[str]  # true labels of the evaluated rows
    y: np.ndarray  # class index, -1 when unseen
    proba: np.ndarray
    proba_raw: np.ndarray
    threshold: float


@dataclass
class Evaluation:
    split: str
    metrics: dict[str, Any]
    tasks: dict[str, TaskArrays] = field(default_factory=dict)
    year: dict[str, np.ndarray] | None = None


#: The numbers benchmarks and summaries quote for one task.
HEADLINE_KEYS = ("n", "top1", "top3", "macro_f1", "weighted_f1", "ece")


def headline(evaluations: Sequence[Evaluation], task: str) -> dict[str, dict[str, Any]]:
    """``{split: {n, top1, top3, macro_f1, weighted_f1, ece}}`` of one task: what a benchmark
    records of a run without the bulky parts (per-class tables, confusion, curves)."""
    out = {}
    for ev in evaluations:
        t = ev.metrics["tasks"].get(task, {})
        out[ev.split] = {k: t.get(k) for k in HEADLINE_KEYS}
    return out


def _task_metrics(arr: TaskArrays) -> dict[str, Any]:
    from sklearn.metrics import classification_report, confusion_matrix, f1_score

    n = len(arr.y)
    order = np.argsort(-arr.proba, axis=1)
    top1 = order[:, 0] == arr.y
    k3 = min(3, len(arr.classes))
    top3 = (order[:, :k3] == arr.y[:, None]).any(axis=1)
    pred_labels = [arr.classes[i] for i in order[:, 0]]
    labels_all = list(arr.classes) + sorted(set(arr.labels) - set(arr.classes))
    report = classification_report(arr.labels, pred_labels, labels=labels_all, output_dict=True, zero_division=0)
    per_class = {}
    for lab in labels_all:
        r = report.get(lab, {})
        per_class[lab] = {"accuracy": r.get("recall", 0.0), "precision": r.get("precision", 0.0),
                          "recall": r.get("recall", 0.0), "f1": r.get("f1-score", 0.0), "support": int(r.get("support", 0))}
    present = [lab for lab in labels_all if per_class[lab]["support"] > 0]
    conf = arr.proba.max(axis=1)
    kept = conf >= arr.threshold
    cm = confusion_matrix(arr.labels, pred_labels, labels=labels_all)
    return {
        "n": int(n),
        "n_unseen": int((arr.y < 0).sum()),
        "classes": len(arr.classes),
        "top1": float(top1.mean()) if n else float("nan"),
        "top3": float(top3.mean()) if n else float("nan"),
        "top3_k": k3,
        "weighted_f1": float(f1_score(arr.labels, pred_labels, labels=present, average="weighted", zero_division=0)) if n else float("nan"),
        "macro_f1": float(f1_score(arr.labels, pred_labels, labels=present, average="macro", zero_division=0)) if n else float("nan"),
        "balanced_accuracy": float(np.mean([per_class[lab]["accuracy"] for lab in present])) if present else float("nan"),
        "ece": expected_calibration_error(arr.proba, arr.y),
        "ece_uncalibrated": expected_calibration_error(arr.proba_raw, arr.y),
        "per_class": per_class,
        "confusion": {"labels": labels_all, "matrix": cm.tolist()},
        "reliability": reliability(arr.proba, arr.y),
        "selective": {
            "threshold": float(arr.threshold),
            "coverage": float(kept.mean()) if n else float("nan"),
            "accuracy": float(top1[kept].mean()) if kept.any() else float("nan"),
        },
        "coverage_curve": coverage_curve(conf, top1),
    }


def evaluate_heads(
    heads: Heads,
    X: np.ndarray,
    labels: Mapping[str, Sequence[str | None]],
    years: Sequence[int | None] | None = None,
    split: str = "test",
) -> Evaluation:
    """Evaluate every head that has labelled rows in ``labels``; rows with NaN features
    (failed images) are left out and counted in ``metrics['failed_rows']``."""
    X = np.asarray(X, dtype=np.float32)
    ok = np.isfinite(X).all(axis=1) if len(X) else np.zeros(0, dtype=bool)
    metrics: dict[str, Any] = {"split": split, "rows": int(len(X)), "failed_rows": int((~ok).sum()), "tasks": {}}
    ev = Evaluation(split, metrics)
    if not ok.any():
        return ev
    Xo = X[ok]
    idx = np.flatnonzero(ok)
    proba_cal = heads.predict_proba(Xo, calibrated=True)
    proba_raw = heads.predict_proba(Xo, calibrated=False)
    for task in heads.tasks:
        labs = labels.get(task)
        if labs is None:
            continue
        rows = [j for j, i in enumerate(idx) if labs[i] is not None]
        if not rows:
            continue
        head = heads.classifiers[task]
        true = [labs[idx[j]] for j in rows]
        index = {c: i for i, c in enumerate(head.classes)}
        arr = TaskArrays(head.classes, true, np.array([index.get(t, -1) for t in true]),
                         proba_cal[task][rows], proba_raw[task][rows], head.threshold)
        ev.tasks[task] = arr
        metrics["tasks"][task] = _task_metrics(arr)
    if heads.year is not None and years is not None:
        rows = [j for j, i in enumerate(idx) if years[i] is not None]
        if rows:
            est, low, high = heads.predict_year(Xo[rows])
            truth = np.array([years[idx[j]] for j in rows], dtype=np.float64)
            err = np.abs(est - truth)
            metrics["year"] = {
                "n": len(rows),
                "mae": float(err.mean()),
                "median_ae": float(np.median(err)),
                "baseline_mae": float(np.abs(heads.year.median_year - truth).mean()),
                "baseline": "always the train median year",
                "interval_coverage": float(np.mean((truth >= low) & (truth <= high))),
                "interval_mean_width": float(np.mean(high - low)),
            }
            ev.year = {"truth": truth, "estimate": est, "low": low, "high": high}
    if heads.novelty is not None:
        metrics["novel_fraction"] = float(heads.novelty.is_novel(heads.transform(Xo)).mean())
    return ev
