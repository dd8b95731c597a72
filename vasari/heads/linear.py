"""The per-task classifier: ``LinearHead`` (a calibrated softmax over standardised features)
and how it is fitted: multinomial logistic regression solved by L-BFGS in the principal
basis, C chosen on val with warm starts, then temperature and abstention threshold."""

from __future__ import annotations

import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Mapping, Sequence

import numpy as np

from vasari.heads.calibration import nll, choose_threshold, fit_temperature, softmax
from vasari.heads.config import HeadConfig
from vasari.heads.transform import PrincipalBasis


@dataclass
class LinearHead:
    """A softmax classifier on transformed features: p = softmax((Z W^T + b) / T)."""

    task: str
    classes: list[str]
    coef: np.ndarray  # (K, D) float32
    intercept: np.ndarray  # (K,) float32
    temperature: float = 1.0
    threshold: float = 0.0
    info: dict[str, Any] = field(default_factory=dict)

    def logits(self, Z: np.ndarray) -> np.ndarray:
        return Z @ self.coef.T + self.intercept

    def proba(self, Z: np.ndarray, calibrated: bool = True) -> np.ndarray:
        logits = self.logits(Z).astype(np.float64)
        return softmax(logits / (self.temperature if calibrated else 1.0))


def _encode(labels: Sequence[str | None], classes: list[str]) -> np.ndarray:
    """Label indices; -1 for missing labels and labels that are not classes."""
    index = {c: i for i, c in enumerate(classes)}
    return np.array([index.get(lab, -1) if lab is not None else -1 for lab in labels], dtype=np.int64)


def _row_weights(y: np.ndarray, classes: list[str], config: HeadConfig,
                 given: Mapping[str, float] | None) -> np.ndarray | None:
    if given:
        w = np.array([float(given.get(c, 1.0)) for c in classes])
        return w[y]
    if config.class_weight == "balanced":
        counts = np.bincount(y, minlength=len(classes)).astype(np.float64)
        w = len(y) / (len(classes) * np.maximum(counts, 1.0))
        return w[y]
    return None


def _softmax_regression(Zr: np.ndarray, y: np.ndarray, k: int, weights: np.ndarray, C: float,
                        variances: np.ndarray, start: tuple[np.ndarray, np.ndarray] | None,
                        config: HeadConfig) -> tuple[np.ndarray, np.ndarray, int]:
    """Minimise mean_i w_i CE_i + |W|^2 / (2 C n) (sklearn's objective divided by C n) in the
    rotated basis, with the variables rescaled by sqrt(curvature) so that L-BFGS sees a
    well-conditioned problem. Returns (W (k, r), b (k,), iterations)."""
    from scipy.optimize import minimize

    n, r = Zr.shape
    curvature = variances / k + 1.0 / (C * n)
    root = np.sqrt(curvature).astype(np.float32)
    Zs = Zr / root
    reg = (1.0 / (C * n)) / curvature  # penalty on the rescaled variables
    Y = np.zeros((n, k), dtype=np.float32)
    Y[np.arange(n), y] = 1.0
    w = (weights / weights.mean()).astype(np.float32)[:, None]

    def loss_grad(p: np.ndarray) -> tuple[float, np.ndarray]:
        U64 = p[: k * r].reshape(k, r)
        U = U64.astype(np.float32)
        logits = Zs @ U.T + p[k * r:].astype(np.float32)
        logits -= logits.max(axis=1, keepdims=True)
        e = np.exp(logits)
        s = e.sum(axis=1, keepdims=True)
        ce = np.log(s[:, 0]) - (logits * Y).sum(axis=1)
        loss = float((w[:, 0] * ce).sum(dtype=np.float64) / n + 0.5 * ((U64**2) * reg).sum())
        g = (e / s - Y) * (w / n)
        # (Zs^T g)^T, not g^T Zs: OpenBLAS is erratic (10x slower) with a 7-row left operand
        gU = (Zs.T @ g).T.astype(np.float64) + U64 * reg
        return loss, np.concatenate([gU.ravel(), g.sum(axis=0, dtype=np.float64)])

    p0 = np.zeros(k * r + k)
    if start is not None:
        p0[: k * r] = (start[0] * root).ravel()
        p0[k * r:] = start[1]
    res = minimize(loss_grad, p0, jac=True, method="L-BFGS-B",
                   options={"maxiter": config.max_iter, "ftol": config.tol, "gtol": 1e-6})
    W = res.x[: k * r].reshape(k, r) / root
    return W, res.x[k * r:].copy(), int(res.nit)


def fit_classifier(task: str, Zr: np.ndarray, labels: Sequence[str | None], Zvr: np.ndarray | None,
                    labels_val: Sequence[str | None] | None, basis: PrincipalBasis, config: HeadConfig,
                    class_weights: Mapping[str, float] | None, Zv: np.ndarray | None = None) -> LinearHead | str:
    """Train one task's head on rotated features; returns the reason (a string) when the
    task cannot be trained. ``Zv`` (the unrotated validation features) lets the abstention
    threshold be chosen on the confidences the finished head itself computes."""
    started = time.perf_counter()
    counts = Counter(lab for lab in labels if lab is not None)
    classes = sorted(c for c, n in counts.items() if n >= max(1, config.min_class_count))
    if len(classes) < 2:
        return f"fewer than 2 classes with >= {config.min_class_count} train rows"
    class_set = set(classes)
    y_all = _encode(labels, classes)
    rows = np.flatnonzero(y_all >= 0)
    Zt, yt = Zr[rows], y_all[rows]
    weights = _row_weights(yt, classes, config, class_weights)
    if weights is None:
        weights = np.ones(len(yt))
    yv = _encode(labels_val, classes) if labels_val is not None else np.zeros(0, dtype=np.int64)
    vrows = np.flatnonzero(yv >= 0)
    Zvv, yvv = (Zvr[vrows], yv[vrows]) if Zvr is not None and len(vrows) else (None, np.zeros(0, dtype=np.int64))
    n_val_unseen = int(sum(1 for lab in (labels_val or []) if lab is not None and lab not in class_set))

    k = len(classes)
    grid = sorted(config.c_grid) if Zvv is not None else [sorted(config.c_grid)[len(config.c_grid) // 2]]
    best: tuple[float, float] | None = None  # (val accuracy, -val NLL)
    best_params: tuple[np.ndarray, np.ndarray, float] | None = None
    scores: dict[str, float] = {}
    iterations: dict[str, int] = {}
    params: tuple[np.ndarray, np.ndarray] | None = None
    drops = 0
    for C in grid:
        W, b, nit = _softmax_regression(Zt, yt, k, weights, C, basis.variances, params, config)
        params = (W, b)
        iterations[repr(C)] = nit
        if Zvv is None:
            best_params = (W, b, C)
            break
        logits = (Zvv @ W.T.astype(np.float32) + b).astype(np.float64)
        acc = float((logits.argmax(axis=1) == yvv).mean())
        key = (acc, -nll(logits, yvv, 1.0))
        scores[repr(C)] = acc
        if best is None or key > best:
            best, best_params, drops = key, (W, b, C), 0
        else:
            drops += 1
            if drops >= 2:
                break
    assert best_params is not None
    W, b, C = best_params
    coef = (W @ basis.rotation.T.astype(np.float64)).astype(np.float32)  # back to standardised features
    head = LinearHead(task, classes, coef, b.astype(np.float32))
    temperature = 1.0
    threshold_info: dict[str, Any] = {"threshold": 0.0, "target_met": False, "coverage": 1.0, "precision": None, "n": 0}
    if Zvv is not None:
        logits = (Zvv @ W.T.astype(np.float32) + b).astype(np.float64)
        if config.calibrate:
            temperature = fit_temperature(logits, yvv)
        head.temperature = temperature
        # the same path as prediction (Heads.predict_proba), not the rotated one used to fit
        proba = head.proba(Zv[vrows]) if Zv is not None else softmax(logits / temperature)
        threshold_info = choose_threshold(proba.max(axis=1), proba.argmax(axis=1) == yvv,
                                          config.target_precision, config.min_kept)
        head.threshold = threshold_info["threshold"]
    refit = False
    if config.refit_on_val and Zvv is not None:
        Zall = np.concatenate([Zt, Zvv])
        yall = np.concatenate([yt, yvv])
        wall = _row_weights(yall, classes, config, class_weights)
        W, b, _ = _softmax_regression(Zall, yall, k, wall if wall is not None else np.ones(len(yall)), C,
                                      basis.variances, (W, b), config)
        head.coef = (W @ basis.rotation.T.astype(np.float64)).astype(np.float32)
        head.intercept = b.astype(np.float32)
        refit = True
    head.info = {
        "C": C,
        "refit_on_val": refit,
        "val_accuracy_by_C": scores,
        "iterations_by_C": iterations,
        "train_rows": int(len(rows)),
        "train_counts": {c: int(counts[c]) for c in classes},
        "dropped_rare_labels": int(sum(n for c, n in counts.items() if c not in class_set)),
        "val_rows": int(len(vrows)),
        "val_unseen_labels": n_val_unseen,
        "temperature": temperature,
        "abstention": threshold_info,
        "seconds": round(time.perf_counter() - started, 3),
    }
    return head
