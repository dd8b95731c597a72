"""Calibration and abstention on validation confidences: softmax with a temperature fitted
by NLL, the abstention threshold for a target precision, and the coverage-accuracy curve."""

from __future__ import annotations

import math
from typing import Any

import numpy as np


def softmax(logits: np.ndarray) -> np.ndarray:
    z = logits - logits.max(axis=1, keepdims=True)
    np.exp(z, out=z)
    z /= z.sum(axis=1, keepdims=True)
    return z


def nll(logits: np.ndarray, y: np.ndarray, temperature: float) -> float:
    z = logits / temperature
    z = z - z.max(axis=1, keepdims=True)
    logz = np.log(np.exp(z).sum(axis=1))
    return float(np.mean(logz - z[np.arange(len(y)), y]))


def fit_temperature(logits: np.ndarray, y: np.ndarray) -> float:
    """The temperature T minimising the NLL of softmax(logits / T) (bounded to [0.05, 20])."""
    from scipy.optimize import minimize_scalar

    if len(y) == 0:
        return 1.0
    logits = logits.astype(np.float64)
    res = minimize_scalar(
        lambda lt: nll(logits, y, math.exp(lt)), bounds=(math.log(0.05), math.log(20.0)), method="bounded"
    )
    temperature = float(math.exp(res.x))
    # never make things worse than no calibration (the bounded search can stop early)
    return temperature if nll(logits, y, temperature) <= nll(logits, y, 1.0) else 1.0


def choose_threshold(
    confidence: np.ndarray, correct: np.ndarray, target_precision: float, min_kept: int = 10
) -> dict[str, Any]:
    """Abstention threshold on confidences for a target precision.

    Sort by confidence; precision(k) is the accuracy of the k most confident predictions.
    The cut keeps the largest k with precision(k) >= target (and k >= ``min_kept``, or all
    rows when fewer), i.e. the most coverage that still reaches the target. The threshold sits
    halfway between the k-th confidence and the next lower one, never on a validation row:
    a row exactly at the threshold would be kept or dropped depending on the last bit of
    the CPU's float path (a red test on some machines). When no k reaches it, the target is unreachable and the threshold is the one
    with the highest precision (ties: most coverage), so the head abstains as much as it
    needs to be as right as it can be; ``target_met`` says which case happened.
    """
    n = len(confidence)
    if n == 0:
        return {"threshold": 0.0, "target_met": False, "coverage": 1.0, "precision": None, "n": 0}
    order = np.argsort(-confidence, kind="stable")
    conf = confidence[order]
    hits = np.cumsum(correct[order].astype(np.float64))
    kept = np.arange(1, n + 1)
    precision = hits / kept
    # a threshold can only cut between distinct confidences: use the last index of each run
    last_of_run = np.r_[conf[1:] != conf[:-1], True]
    floor = min(min_kept, n)
    valid = last_of_run & (kept >= floor)
    ok = valid & (precision >= target_precision)
    if ok.any():
        k = int(np.flatnonzero(ok)[-1])
        met = True
    else:
        cand = np.flatnonzero(valid)
        best = precision[cand].max()
        k = int(cand[precision[cand] >= best - 1e-12][-1])
        met = False
    # keeping every row means never abstaining: threshold 0 (also for confidences unseen in val)
    threshold = 0.0 if k == n - 1 else float((conf[k] + conf[k + 1]) / 2.0)
    return {
        "threshold": threshold,
        "target_met": met,
        "coverage": float(kept[k] / n),
        "precision": float(precision[k]),
        "n": int(n),
    }


def coverage_curve(confidence: np.ndarray, correct: np.ndarray, points: int = 21) -> list[dict[str, float]]:
    """Coverage and accuracy of the kept predictions for thresholds at confidence quantiles."""
    if len(confidence) == 0:
        return []
    out = []
    for q in np.linspace(0.0, 1.0, points):
        t = float(np.quantile(confidence, q)) if q > 0 else 0.0
        keep = confidence >= t
        cov = float(keep.mean())
        acc = float(correct[keep].mean()) if keep.any() else float("nan")
        out.append({"threshold": t, "coverage": cov, "accuracy": acc})
    return out
