"""The enrolled class: one new row of the artist head, fitted in seconds while the old rows
stay fixed.

With the old rows fixed, the softmax cross-entropy of the enlarged head reduces to a weighted
binary logistic regression with per-row offsets (``vasari.enrol.reference`` explains why): a
new-artist image contributes ``softplus(lse_i - s_i)``, any other painting
``softplus(s_i - lse_i)``, where ``s_i`` is the new class's logit and ``lse_i`` the
log-sum-exp of the old ones. The regularisation is the artist head's own (its ``C`` on the
training set's size), scaled by a factor chosen by cross-validation on the new images and the
reference rows, and the class weights are balanced as they are for the other artists.

Open-set rule: the head keeps its temperature and abstention threshold, so the new artist is
answered under the same rule as every other one. Because adding a class only takes
probability away from the old ones, the only new false attributions are paintings where the
new artist's probability clears the threshold; the intercept is lowered until at most
``EnrolConfig.max_reference_share`` of the reference paintings (all by other hands) would do so.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from vasari.enrol.reference import EnrolReference


@dataclass(frozen=True)
class FitConfig:
    """How the new row is fitted (the regularisation grid and the open-set guard)."""

    #: Multipliers of the artist head's C tried by cross-validation.
    c_factors: tuple[float, ...] = (0.25, 1.0, 4.0)
    folds: int = 5
    #: At most this share of reference paintings (other hands) may be answered as the new artist.
    max_reference_share: float = 0.01
    #: Newton steps per fit (convergence takes ~10).
    max_iter: int = 50
    seed: int = 0


@dataclass
class ClassFit:
    """The fitted row (in the reference basis), its intercept and what was measured."""

    row: np.ndarray
    intercept: float
    info: dict[str, Any]


@dataclass
class _Problem:
    """Rows of the binary problem: coordinates, offsets (-lse), targets and weights."""

    U: np.ndarray
    offset: np.ndarray
    y: np.ndarray
    w: np.ndarray

    def take(self, idx: np.ndarray) -> _Problem:
        return _Problem(self.U[idx], self.offset[idx], self.y[idx], self.w[idx])


def _problem(pos: np.ndarray, pos_lse: np.ndarray, ref: EnrolReference, classes: int) -> _Problem:
    n_ref, n_pos = len(ref.coords), len(pos)
    U = np.concatenate([ref.coords, pos]).astype(np.float64)
    offset = -np.concatenate([ref.lse, pos_lse]).astype(np.float64)
    y = np.r_[np.zeros(n_ref), np.ones(n_pos)]
    # balanced as in the head: the new class weighs as much as one of the others on average
    w = np.r_[np.ones(n_ref), np.full(n_pos, n_ref / max(classes, 1) / n_pos)]
    return _Problem(U, offset, y, w / w.mean())


def _objective(p: _Problem, A: np.ndarray, x: np.ndarray, reg: np.ndarray) -> float:
    z = A @ x + p.offset
    return float((p.w * (np.logaddexp(0.0, z) - p.y * z)).sum() / len(p.y) + 0.5 * (reg * x * x).sum())


def _fit(p: _Problem, penalty: float, max_iter: int) -> tuple[np.ndarray, float]:
    """Minimise mean_i w_i logloss(y_i, sigmoid(U_i v + b + offset_i)) + penalty |v|^2 / 2 by
    Newton's method with a backtracking line search. Why Newton: ~130 unknowns, so the exact
    Hessian is a small matrix and ~10 steps converge, where L-BFGS took ~50 iterations per fit
    (the 16 fits of one enrolment went from ~9 s to well under one on a loaded machine)."""
    from scipy.special import expit

    n = len(p.y)
    A = np.hstack([p.U, np.ones((n, 1))])
    reg = np.r_[np.full(p.U.shape[1], penalty), 0.0]
    x = np.zeros(A.shape[1])
    value = _objective(p, A, x, reg)
    for _ in range(max_iter):
        q = expit(A @ x + p.offset)
        grad = A.T @ ((q - p.y) * p.w) / n + reg * x
        hess = (A.T * (p.w * q * (1.0 - q) / n)) @ A + np.diag(reg + 1e-9)
        step = np.linalg.solve(hess, grad)
        decrease = float(grad @ step)
        if decrease < 1e-12:
            break
        t = 1.0
        while t > 1e-6:
            candidate = _objective(p, A, x - t * step, reg)
            if candidate <= value - 1e-4 * t * decrease:
                break
            t /= 2.0
        x, value = x - t * step, candidate
    return x[:-1], float(x[-1])


def _heldout_loss(p: _Problem, row: np.ndarray, b: float) -> float:
    z = p.U @ row + b + p.offset
    return float((p.w * (np.logaddexp(0.0, z) - p.y * z)).sum() / p.w.sum())


def _folds(p: _Problem, k: int, seed: int) -> np.ndarray:
    """Fold of each row, positives and references spread evenly over the folds."""
    rng = np.random.default_rng(seed)
    fold = np.empty(len(p.y), np.int64)
    for target in (0.0, 1.0):
        rows = np.flatnonzero(p.y == target)
        fold[rng.permutation(rows)] = np.arange(len(rows)) % k
    return fold


def answered_as_new(z: np.ndarray, temperature: float, threshold: float) -> np.ndarray:
    """Whether the enlarged head answers the new artist: its calibrated probability (the
    logit margin over the old classes' log-sum-exp, divided by the temperature; exact at
    T = 1, close for the fitted T near 1) clears the threshold and so is the top class."""
    from scipy.special import expit

    p = expit(z / temperature)
    return (p >= threshold) & (p > 0.5)


def fit_class(pos: np.ndarray, pos_lse: np.ndarray, ref: EnrolReference, head: Any,
              train_rows: int, config: FitConfig = FitConfig()) -> ClassFit:
    """The new class for images with basis coordinates ``pos`` and old-logit log-sum-exp
    ``pos_lse``, against the reference rows of ``head`` (a ``LinearHead``, whose C,
    temperature and threshold apply; ``train_rows``: the size of its training set)."""
    from threadpoolctl import threadpool_limits

    # one BLAS thread, as for training the heads: these products are small, and on a busy
    # 2-core machine multi-threaded OpenBLAS spent ~60 ms spinning per 130 x 130 solve
    with threadpool_limits(limits=1):
        return _fit_class(pos, pos_lse, ref, head, train_rows, config)


def _fit_class(pos: np.ndarray, pos_lse: np.ndarray, ref: EnrolReference, head: Any,
               train_rows: int, config: FitConfig) -> ClassFit:
    p = _problem(pos, pos_lse, ref, len(head.classes))
    base_c = float(head.info.get("C") or 0.05)
    k = int(min(config.folds, len(pos)))
    fold = _folds(p, k, config.seed)
    losses: dict[str, float] = {}
    recall: dict[str, float] = {}
    for factor in config.c_factors:
        penalty = 1.0 / (base_c * factor * max(train_rows, 1))
        held_loss, hits = 0.0, []
        for f in range(k):
            row, b = _fit(p.take(np.flatnonzero(fold != f)), penalty, config.max_iter)
            held = p.take(np.flatnonzero(fold == f))
            held_loss += _heldout_loss(held, row, b) / k
            z = held.U[held.y == 1] @ row + b + held.offset[held.y == 1]
            hits.extend(answered_as_new(z, head.temperature, head.threshold).tolist())
        losses[repr(factor)], recall[repr(factor)] = round(held_loss, 5), round(float(np.mean(hits)), 4)
    factor = min(config.c_factors, key=lambda f: losses[repr(f)])
    row, b = _fit(p, 1.0 / (base_c * factor * max(train_rows, 1)), config.max_iter)
    b, lowered = _cap_intercept(ref, row, b, head, config.max_reference_share)
    info = {"C": base_c * factor, "cv_loss_by_factor": losses, "cv_answered_by_factor": recall,
            "cv_answered": recall[repr(factor)], "intercept_lowered_by": round(lowered, 4),
            "reference_rows": len(ref.coords), "images": len(pos)}
    return ClassFit(row.astype(np.float32), b, info)


def _cap_intercept(ref: EnrolReference, row: np.ndarray, b: float, head: Any, share: float) -> tuple[float, float]:
    """Lower ``b`` until at most ``share`` of the reference rows are answered as the new artist."""
    from scipy.special import logit

    margin = ref.coords @ row - ref.lse  # z - b for every reference row
    allowed = int(np.floor(share * len(margin)))
    ordered = np.sort(margin)[::-1]
    # answered iff (margin + b) / T >= logit(threshold'): the (allowed+1)-th highest must stay below
    need = float(logit(max(head.threshold, 0.5 + 1e-6))) * head.temperature
    if allowed >= len(ordered) or ordered[allowed] + b < need:
        return b, 0.0
    new_b = need - float(ordered[allowed]) - 1e-4
    return new_b, b - new_b
