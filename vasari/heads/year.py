"""The year head: ridge regression on standardised features (alpha chosen on val) with an
interval from the validation residual quantiles, clipped to the years Vasari knows."""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import Any, Sequence

import numpy as np

from vasari.core.labels import FIRST_YEAR, LAST_YEAR
from vasari.heads.config import HeadConfig
from vasari.heads.transform import principal_axes


@dataclass
class YearHead:
    """Ridge regression of the year, with an interval from validation residual quantiles."""

    coef: np.ndarray  # (D,)
    intercept: float
    low_offset: float  # added to the estimate for the interval's low end (<= 0)
    high_offset: float
    median_year: float  # train median: the baseline every estimate should beat
    info: dict[str, Any] = field(default_factory=dict)

    def predict(self, Z: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        est = Z @ self.coef + self.intercept
        low = np.clip(est + self.low_offset, FIRST_YEAR, LAST_YEAR)
        high = np.clip(est + self.high_offset, FIRST_YEAR, LAST_YEAR)
        return np.clip(est, FIRST_YEAR, LAST_YEAR), low, high


def fit_year(Z: np.ndarray, years: Sequence[int | None], Zv: np.ndarray | None,
              years_val: Sequence[int | None] | None, config: HeadConfig) -> YearHead | str:
    started = time.perf_counter()
    rows = np.array([i for i, y in enumerate(years) if y is not None], dtype=np.int64)
    if len(rows) < 10:
        return "fewer than 10 train rows with a year"
    X = Z[rows]
    y = np.array([years[i] for i in rows], dtype=np.float64)
    x_mean, y_mean = X.mean(axis=0, dtype=np.float64), y.mean()
    Xc = (X - x_mean.astype(np.float32)).astype(np.float32)
    n = len(Xc)
    # one eigendecomposition serves every alpha: w = V diag(1 / (n (lam + alpha))) V^T Xc^T y
    lam, vecs = principal_axes(Xc)
    vecs = vecs.astype(np.float64)
    proj = vecs.T @ (Xc.T.astype(np.float64) @ (y - y_mean))
    solve = lambda a: vecs @ (proj / (n * (np.maximum(lam, 0.0) + a)))  # noqa: E731
    vrows = np.array([i for i, yv in enumerate(years_val or []) if yv is not None], dtype=np.int64)
    has_val = Zv is not None and len(vrows) >= 5
    if has_val:
        Xv = Zv[vrows].astype(np.float64)
        yv = np.array([years_val[i] for i in vrows], dtype=np.float64)
    maes: dict[str, float] = {}
    best_alpha, best_mae, best_w = None, math.inf, None
    alphas = config.year_alphas if has_val else (sorted(config.year_alphas)[len(config.year_alphas) // 2],)
    for alpha in alphas:
        w = solve(alpha)  # penalty alpha * n |w|^2: comparable across dataset sizes
        if not has_val:
            best_alpha, best_w = alpha, w
            break
        pred = np.clip((Xv - x_mean) @ w + y_mean, FIRST_YEAR, LAST_YEAR)
        mae = float(np.mean(np.abs(pred - yv)))
        maes[repr(alpha)] = mae
        if mae < best_mae:
            best_alpha, best_mae, best_w = alpha, mae, w
    assert best_w is not None
    intercept = float(y_mean - x_mean @ best_w)
    if has_val:
        resid = yv - np.clip(Xv @ best_w + intercept, FIRST_YEAR, LAST_YEAR)
        source = "val"
    else:
        resid = y - (X @ best_w + intercept)
        source = "train (no validation years: optimistic)"
    lo_q, hi_q = config.year_quantiles
    low, high = float(np.quantile(resid, lo_q)), float(np.quantile(resid, hi_q))
    return YearHead(
        best_w.astype(np.float32), intercept, min(low, 0.0), max(high, 0.0), float(np.median(y)),
        info={
            "alpha": best_alpha,
            "val_mae_by_alpha": maes,
            "train_rows": int(len(rows)),
            "val_rows": int(len(vrows)),
            "interval_quantiles": [lo_q, hi_q],
            "interval_from": source,
            "seconds": round(time.perf_counter() - started, 3),
        },
    )
