"""Heads: one linear classifier per task and a year regressor on frozen backbone features.

Everything here works on plain numpy arrays (features from ``vasari.features.embedder``), so the
heads can be trained, tested and benchmarked without touching images:

* features are standardised once (mean/std of the train rows, optional PCA);
* each task (type, school, timeframe, style, artist) gets a multinomial logistic
  regression with class weights ("balanced" from the train split unless given), trained
  only on the rows that carry a label for that task; the regularisation ``C`` is chosen on
  the validation split from a small grid, walking from strong to weak regularisation with
  warm starts so that the whole grid costs little more than one fit;
* a temperature is fitted on the validation split (calibration);
* an abstention threshold per task is chosen on the validation split for a target
  precision: predictions whose calibrated top-1 probability falls below it are answered
  ``"unknown"``;
* the year is a ridge regression (alpha on validation) with an interval from the
  validation residual quantiles, clipped to 1401-1900;
* a novelty detector (Mahalanobis distance in a PCA space plus the PCA residual) flags
  inputs unlike anything seen in training (a cat photo, a blank image): every task then
  answers "unknown".

Heads serialise to plain arrays plus JSON (``Heads.to_arrays`` / ``Heads.from_arrays``);
no pickle anywhere.
"""

from __future__ import annotations

import math
import time
from collections import Counter
from dataclasses import asdict, dataclass, field
from typing import Any, Mapping, Sequence

import numpy as np

from vasari.core.labels import FIRST_YEAR, LAST_YEAR, TASKS
from vasari.errors import InputError


class TrainError(InputError):
    """Training inputs that cannot give a model (no rows, mismatched lengths...)."""


@dataclass(frozen=True)
class HeadConfig:
    """How heads are trained. The defaults train ~10k x 2k features in seconds on 2 cores."""

    tasks: tuple[str, ...] = TASKS
    #: Inverse regularisation strengths tried (on standardised features), weakest last.
    #: The search stops early once validation accuracy has dropped twice in a row.
    c_grid: tuple[float, ...] = (0.002, 0.01, 0.05, 0.25)
    max_iter: int = 300
    #: L-BFGS stops when the objective improves by less than this (relative) per step.
    tol: float = 1e-5
    #: "balanced" (weights n / (k * count) from the train split) or None.
    class_weight: str | None = "balanced"
    #: A label seen fewer times than this in train is treated as missing (not a class).
    min_class_count: int = 2
    #: Reduce the standardised features to this many principal components (None = keep all).
    pca_dim: int | None = None
    calibrate: bool = True
    #: Abstention: the lowest confidence threshold whose kept validation predictions reach
    #: this precision. When no threshold reaches it, the most precise threshold is kept
    #: (see ``choose_threshold``) and ``target_met`` is recorded as False.
    target_precision: float = 0.9
    #: A threshold must keep at least this many validation rows to count.
    min_kept: int = 10
    year: bool = True
    #: Ridge penalties (mean squared error + alpha |w|^2 on standardised features).
    year_alphas: tuple[float, ...] = (0.3, 1.0, 3.0, 10.0, 30.0, 100.0, 300.0, 1000.0)
    year_quantiles: tuple[float, float] = (0.1, 0.9)
    novelty: bool = True
    novelty_components: int = 32
    #: Fraction of validation rows allowed to be flagged novel (sets the threshold).
    novelty_false_alarm: float = 0.01
    seed: int = 0
    #: BLAS/LAPACK threads while training. 1 by default: these matrices are small enough that
    #: multi-threaded OpenBLAS mostly waits on itself, and on a busy 2-core machine an
    #: eigendecomposition took 105 s with 2 threads vs 18 s with one (None = library default).
    threads: int | None = 1
    #: After choosing C, temperature and threshold on val, refit each classifier on
    #: train + val with that C (more data; the temperature and threshold stay those fitted
    #: for the train-only model, so calibration is then approximate).
    refit_on_val: bool = False
    #: "val" (thresholds for target_precision on val) or "out-of-source" (re-chosen on
    #: leave-source-out predictions, artist also on held-out artists; issue #14 hook,
    #: ``vasari.heads.protocols.out_of_source_abstention``).
    abstention: str = "val"

    def to_dict(self) -> dict[str, Any]:
        return {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(self).items()}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "HeadConfig":
        known = set(cls.__dataclass_fields__)
        values = {k: tuple(v) if isinstance(v, list) else v for k, v in data.items() if k in known}
        return cls(**values)


# --------------------------------------------------------------------------- numerics


def softmax(logits: np.ndarray) -> np.ndarray:
    z = logits - logits.max(axis=1, keepdims=True)
    np.exp(z, out=z)
    z /= z.sum(axis=1, keepdims=True)
    return z


def _nll(logits: np.ndarray, y: np.ndarray, temperature: float) -> float:
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
        lambda lt: _nll(logits, y, math.exp(lt)), bounds=(math.log(0.05), math.log(20.0)), method="bounded"
    )
    temperature = float(math.exp(res.x))
    # never make things worse than no calibration (the bounded search can stop early)
    return temperature if _nll(logits, y, temperature) <= _nll(logits, y, 1.0) else 1.0


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


# --------------------------------------------------------------------------- heads


@dataclass
class Transform:
    """Standardisation (and optional PCA projection) shared by all heads."""

    mean: np.ndarray
    scale: np.ndarray
    projection: np.ndarray | None = None  # (dim, pca_dim)

    @classmethod
    def fit(cls, X: np.ndarray, pca_dim: int | None = None) -> "Transform":
        mean = X.mean(axis=0, dtype=np.float64).astype(np.float32)
        std = X.std(axis=0, dtype=np.float64).astype(np.float32)
        scale = np.where(std > 1e-6, std, 1.0).astype(np.float32)
        projection = None
        if pca_dim is not None and pca_dim < X.shape[1]:
            Z = (X - mean) / scale
            _, vecs = principal_axes(Z[: min(len(Z), 20000)])
            projection = np.ascontiguousarray(vecs[:, :pca_dim].astype(np.float32))
        return cls(mean, scale, projection)

    def __call__(self, X: np.ndarray) -> np.ndarray:
        Z = (np.asarray(X, dtype=np.float32) - self.mean) / self.scale
        return Z @ self.projection if self.projection is not None else Z

    @property
    def in_dim(self) -> int:
        return int(self.mean.shape[0])


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


@dataclass
class NoveltyDetector:
    """How unlike the training features an input is: 1 is typical, large is foreign.

    score = (Mahalanobis^2 in the top PCA components / k + residual^2 / mean train residual^2) / 2
    """

    components: np.ndarray  # (k, D)
    variances: np.ndarray  # (k,)
    residual_scale: float
    threshold: float

    @classmethod
    def from_basis(cls, Z: np.ndarray, rotation: np.ndarray, variances: np.ndarray, k: int) -> "NoveltyDetector":
        """From the principal axes of the train features (``rotation`` columns, by variance)."""
        k = max(1, min(k, rotation.shape[1]))
        comps = np.ascontiguousarray(rotation[:, :k].T.astype(np.float32))
        var = (np.asarray(variances[:k], dtype=np.float32) + 1e-6)
        proj = Z @ comps.T
        resid = (Z**2).sum(axis=1) - (proj**2).sum(axis=1)
        residual_scale = float(max(np.mean(np.maximum(resid, 0.0)), 1e-6))
        return cls(comps, var, residual_scale, threshold=float("inf"))

    def score(self, Z: np.ndarray) -> np.ndarray:
        proj = Z @ self.components.T
        maha = ((proj**2) / self.variances).sum(axis=1) / len(self.variances)
        resid = np.maximum((Z**2).sum(axis=1) - (proj**2).sum(axis=1), 0.0) / self.residual_scale
        return (maha + resid) / 2.0

    def is_novel(self, Z: np.ndarray) -> np.ndarray:
        return self.score(Z) > self.threshold


@dataclass
class Heads:
    """Everything trained on top of the backbone: transform, classifiers, year, novelty."""

    transform: Transform
    classifiers: dict[str, LinearHead]
    year: YearHead | None = None
    novelty: NoveltyDetector | None = None
    config: HeadConfig = field(default_factory=HeadConfig)
    info: dict[str, Any] = field(default_factory=dict)

    @property
    def thresholds(self) -> dict[str, float]:
        return {task: head.threshold for task, head in self.classifiers.items()}

    @property
    def tasks(self) -> list[str]:
        return [t for t in TASKS if t in self.classifiers] + [t for t in self.classifiers if t not in TASKS]

    @property
    def vocabularies(self) -> dict[str, list[str]]:
        return {task: list(self.classifiers[task].classes) for task in self.tasks}

    @property
    def in_dim(self) -> int:
        return self.transform.in_dim

    def _check(self, X: np.ndarray) -> np.ndarray:
        X = np.asarray(X, dtype=np.float32)
        if X.ndim != 2 or X.shape[1] != self.in_dim:
            raise ValueError(f"features have shape {X.shape}; these heads expect (N, {self.in_dim})")
        return X

    def predict_proba(self, X: np.ndarray, calibrated: bool = True) -> dict[str, np.ndarray]:
        """Class probabilities per task, columns in ``classifiers[task].classes`` order."""
        Z = self.transform(self._check(X))
        return {task: self.classifiers[task].proba(Z, calibrated) for task in self.tasks}

    def predict_year(self, X: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray] | None:
        if self.year is None:
            return None
        return self.year.predict(self.transform(self._check(X)))

    def novelty_score(self, X: np.ndarray) -> np.ndarray | None:
        if self.novelty is None:
            return None
        return self.novelty.score(self.transform(self._check(X)))

    # ----------------------------------------------------------------- serialisation
    def to_arrays(self) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
        """Plain float arrays (for npz/safetensors) and a JSON-able description."""
        arrays: dict[str, np.ndarray] = {
            "transform.mean": self.transform.mean,
            "transform.scale": self.transform.scale,
        }
        if self.transform.projection is not None:
            arrays["transform.projection"] = self.transform.projection
        meta: dict[str, Any] = {"config": self.config.to_dict(), "info": self.info, "tasks": {}}
        for task, head in self.classifiers.items():
            arrays[f"{task}.coef"] = head.coef
            arrays[f"{task}.intercept"] = head.intercept
            meta["tasks"][task] = {
                "classes": head.classes,
                "temperature": head.temperature,
                "threshold": head.threshold,
                "info": head.info,
            }
        if self.year is not None:
            arrays["year.coef"] = self.year.coef
            meta["year"] = {
                "intercept": self.year.intercept,
                "low_offset": self.year.low_offset,
                "high_offset": self.year.high_offset,
                "median_year": self.year.median_year,
                "info": self.year.info,
            }
        if self.novelty is not None:
            arrays["novelty.components"] = self.novelty.components
            arrays["novelty.variances"] = self.novelty.variances
            meta["novelty"] = {"residual_scale": self.novelty.residual_scale, "threshold": self.novelty.threshold}
        return {k: np.ascontiguousarray(v, dtype=np.float32) for k, v in arrays.items()}, meta

    @classmethod
    def from_arrays(cls, arrays: Mapping[str, np.ndarray], meta: Mapping[str, Any]) -> "Heads":
        """Inverse of ``to_arrays``; raises KeyError/ValueError on missing or misshapen parts."""

        def arr(name: str) -> np.ndarray:
            if name not in arrays:
                raise KeyError(f"missing array {name!r}")
            return np.asarray(arrays[name], dtype=np.float32)

        transform = Transform(arr("transform.mean"), arr("transform.scale"),
                              arr("transform.projection") if "transform.projection" in arrays else None)
        dim = transform.projection.shape[1] if transform.projection is not None else transform.in_dim
        classifiers = {}
        for task, tmeta in meta["tasks"].items():
            coef, intercept = arr(f"{task}.coef"), arr(f"{task}.intercept")
            classes = list(tmeta["classes"])
            if coef.shape != (len(classes), dim) or intercept.shape != (len(classes),):
                raise ValueError(f"head {task!r}: coefficients {coef.shape} do not match {len(classes)} classes x {dim}")
            classifiers[task] = LinearHead(task, classes, coef, intercept, float(tmeta["temperature"]),
                                           float(tmeta["threshold"]), dict(tmeta.get("info", {})))
        year = None
        if "year" in meta and meta["year"] is not None:
            y = meta["year"]
            coef = arr("year.coef")
            if coef.shape != (dim,):
                raise ValueError(f"year head: coefficients {coef.shape} do not match {dim} features")
            year = YearHead(coef, float(y["intercept"]), float(y["low_offset"]), float(y["high_offset"]),
                            float(y["median_year"]), dict(y.get("info", {})))
        novelty = None
        if "novelty" in meta and meta["novelty"] is not None:
            novelty = NoveltyDetector(arr("novelty.components"), arr("novelty.variances"),
                                      float(meta["novelty"]["residual_scale"]), float(meta["novelty"]["threshold"]))
        return cls(transform, classifiers, year, novelty, HeadConfig.from_dict(meta.get("config", {})),
                   dict(meta.get("info", {})))


# --------------------------------------------------------------------------- training


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


def principal_axes(Z: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Eigenvalues (descending) and eigenvectors (columns) of Z^T Z / n, via the smaller of
    the primal (D x D) and dual (n x n) Gram matrices. Uses LAPACK's divide-and-conquer
    driver in float32, which is ~20x faster than numpy's eigh for D ~ 3000."""
    from scipy.linalg import eigh

    n, d = Z.shape
    Z = np.asarray(Z, dtype=np.float32)
    if n >= d:
        lam, vecs = eigh(Z.T @ Z / np.float32(n), driver="evd", overwrite_a=True, check_finite=False)
        order = np.argsort(-lam)
        return lam[order].astype(np.float64), vecs[:, order]
    lam, u = eigh(Z @ Z.T / np.float32(n), driver="evd", overwrite_a=True, check_finite=False)
    order = np.argsort(-lam)
    lam, u = lam[order].astype(np.float64), u[:, order]
    pos = lam > 0
    vecs = (Z.T @ u[:, pos]) / np.sqrt(n * lam[pos]).astype(np.float32)
    return lam[pos], vecs


class _Basis:
    """Principal axes of the standardised train features: a rotation that preconditions the
    logistic-regression solver (L-BFGS then needs ~20 iterations instead of ~100) without
    changing the problem it solves (an orthonormal rotation preserves the L2 penalty).
    Directions with no variance are dropped; the penalty puts zero weight on them anyway."""

    def __init__(self, Z: np.ndarray):
        lam, vecs = principal_axes(Z)
        keep = lam > max(lam[0], 1e-12) * 1e-7 if len(lam) else np.zeros(0, dtype=bool)
        self.variances = lam[keep]
        self.rotation = np.ascontiguousarray(vecs[:, keep].astype(np.float32))  # (D, r)

    def __call__(self, Z: np.ndarray) -> np.ndarray:
        return Z @ self.rotation


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


def _fit_classifier(task: str, Zr: np.ndarray, labels: Sequence[str | None], Zvr: np.ndarray | None,
                    labels_val: Sequence[str | None] | None, basis: _Basis, config: HeadConfig,
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
        key = (acc, -_nll(logits, yvv, 1.0))
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


def _fit_year(Z: np.ndarray, years: Sequence[int | None], Zv: np.ndarray | None,
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


def _drop_failed_rows(
    X: np.ndarray, labels: Mapping[str, Sequence[str | None]], years: Sequence[int | None] | None
) -> tuple[np.ndarray, Mapping[str, Sequence[str | None]], Sequence[int | None] | None]:
    """Rows whose features contain NaN (images that failed to embed) removed from all three."""
    ok = np.isfinite(X).all(axis=1)
    if ok.all():
        return X, labels, years
    keep = np.flatnonzero(ok)
    return (X[keep], {t: [labs[i] for i in keep] for t, labs in labels.items()},
            [years[i] for i in keep] if years is not None else None)


def train_heads(
    X_train: np.ndarray,
    labels_train: Mapping[str, Sequence[str | None]],
    years_train: Sequence[int | None] | None,
    X_val: np.ndarray | None = None,
    labels_val: Mapping[str, Sequence[str | None]] | None = None,
    years_val: Sequence[int | None] | None = None,
    config: HeadConfig = HeadConfig(),
    class_weights: Mapping[str, Mapping[str, float]] | None = None,
    progress: bool = False,
) -> Heads:
    """Train every head the labels allow (see ``_train_heads``)."""
    from threadpoolctl import threadpool_limits

    if config.threads is None:
        return _train_heads(X_train, labels_train, years_train, X_val, labels_val, years_val, config,
                            class_weights, progress)
    with threadpool_limits(limits=config.threads):
        return _train_heads(X_train, labels_train, years_train, X_val, labels_val, years_val, config,
                            class_weights, progress)


def _train_heads(
    X_train: np.ndarray,
    labels_train: Mapping[str, Sequence[str | None]],
    years_train: Sequence[int | None] | None,
    X_val: np.ndarray | None,
    labels_val: Mapping[str, Sequence[str | None]] | None,
    years_val: Sequence[int | None] | None,
    config: HeadConfig,
    class_weights: Mapping[str, Mapping[str, float]] | None,
    progress: bool,
) -> Heads:
    """Train every head the labels allow.

    ``labels_train[task]`` is one label (or None) per row of ``X_train``; tasks missing from
    the mapping or with fewer than two classes get no head (the reason is in
    ``heads.info["skipped"]``). ``X_val`` (optional, but needed for the choice of C, the
    temperature and the abstention threshold) follows the same layout. ``class_weights``
    optionally gives per-task label weights (e.g. ``Dataset.class_weights(task)``);
    otherwise ``config.class_weight`` applies. Rows whose features contain NaN (failed
    images) are ignored.
    """
    started = time.perf_counter()
    X_train = np.asarray(X_train, dtype=np.float32)
    if X_train.ndim != 2 or len(X_train) == 0:
        raise TrainError(f"X_train must be a non-empty (N, D) array, got shape {X_train.shape}")
    n = len(X_train)
    for task, labs in labels_train.items():
        if len(labs) != n:
            raise TrainError(f"labels for {task!r} have {len(labs)} rows, features have {n}")
    if years_train is not None and len(years_train) != n:
        raise TrainError(f"years_train has {len(years_train)} rows, features have {n}")
    X_train, labels_train, years_train = _drop_failed_rows(X_train, labels_train, years_train)
    if X_val is not None:
        X_val = np.asarray(X_val, dtype=np.float32)
        if X_val.ndim != 2 or X_val.shape[1] != X_train.shape[1]:
            raise TrainError(f"X_val has shape {X_val.shape}, X_train {X_train.shape}")
        labels_val = labels_val or {}
        for task, labs in labels_val.items():
            if len(labs) != len(X_val):
                raise TrainError(f"validation labels for {task!r} have {len(labs)} rows, X_val has {len(X_val)}")
        X_val, labels_val, years_val = _drop_failed_rows(X_val, labels_val, years_val)
        if len(X_val) == 0:
            X_val = None

    transform = Transform.fit(X_train, config.pca_dim)
    Z = transform(X_train)
    Zv = transform(X_val) if X_val is not None else None
    basis = _Basis(Z)
    Zr = basis(Z)
    Zvr = basis(Zv) if Zv is not None else None

    classifiers: dict[str, LinearHead] = {}
    skipped: dict[str, str] = {}
    for task in config.tasks:
        if task not in labels_train:
            skipped[task] = "no labels given"
            continue
        val_labels = (labels_val or {}).get(task) if Zvr is not None else None
        result = _fit_classifier(task, Zr, labels_train[task], Zvr, val_labels, basis, config,
                                 (class_weights or {}).get(task), Zv)
        if isinstance(result, str):
            skipped[task] = result
        else:
            classifiers[task] = result
        if progress:
            _say(task, result)
    del Zr, Zvr
    year = None
    if config.year and years_train is not None:
        result = _fit_year(Z, years_train, Zv, years_val if Zv is not None else None, config)
        if isinstance(result, str):
            skipped["year"] = result
        else:
            year = result
        if progress:
            _say("year", result)
    novelty = None
    if config.novelty and len(Z) >= 10 and basis.rotation.shape[1] > 0 and (classifiers or year is not None):
        novelty = NoveltyDetector.from_basis(Z, basis.rotation, basis.variances, config.novelty_components)
        ref = Zv if Zv is not None and len(Zv) >= 20 else Z
        novelty.threshold = float(np.quantile(novelty.score(ref), 1.0 - config.novelty_false_alarm))
    if not classifiers and year is None:
        raise TrainError("no head could be trained: " + "; ".join(f"{t}: {r}" for t, r in skipped.items()))
    info = {
        "train_rows": int(len(X_train)),
        "val_rows": int(len(X_val)) if X_val is not None else 0,
        "feature_dim": int(X_train.shape[1]),
        "skipped": skipped,
        "seconds": round(time.perf_counter() - started, 3),
    }
    return Heads(transform, classifiers, year, novelty, config, info)


def _say(task: str, result: Any) -> None:
    from rich.console import Console

    console = Console(stderr=True)
    if isinstance(result, str):
        console.print(f"[yellow]{task}: skipped ({result})")
    elif isinstance(result, LinearHead):
        ab = result.info["abstention"]
        console.print(f"{task}: {len(result.classes)} classes, {result.info['train_rows']} rows, C={result.info['C']}, "
                      f"T={result.temperature:.2f}, threshold={result.threshold:.2f} "
                      f"(val coverage {ab['coverage']:.2f}), {result.info['seconds']:.1f}s")
    else:
        console.print(f"year: {result.info['train_rows']} rows, alpha={result.info['alpha']}, {result.info['seconds']:.1f}s")


# --------------------------------------------------------------------------- datasets -> bundles
