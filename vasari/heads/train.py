"""``train_heads``: every head the labels allow, trained on numpy features, as one ``Heads``
(transform, classifiers, year, novelty) that serialises to plain arrays plus JSON."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any, Mapping, Sequence

import numpy as np

from vasari.core.labels import TASKS
from vasari.heads.config import HeadConfig, TrainError
from vasari.heads.linear import LinearHead, fit_classifier
from vasari.heads.novelty import NoveltyDetector
from vasari.heads.transform import PrincipalBasis, Transform
from vasari.heads.year import YearHead, fit_year


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


def with_augmented_views(
    X_train: np.ndarray,
    labels_train: Mapping[str, Sequence[str | None]],
    years_train: Sequence[int | None] | None,
    views: np.ndarray,
    tasks: Sequence[str],
) -> tuple[np.ndarray, dict[str, list[str | None]], list[int | None] | None]:
    """Train rows followed by their augmented views (``views``: ``(N, k, D)``, view ``v`` of
    every row after view ``v - 1``), the views labelled for ``tasks`` only: no other label and
    no year, so only those heads learn from them (issue #14: views help the type head out of
    source and cost the others in distribution; docs/trust-research.md 3b). Views that failed
    to embed are NaN rows, which ``train_heads`` drops."""
    n, k = views.shape[:2]
    if n != len(X_train) or views.shape[2] != X_train.shape[1]:
        raise TrainError(f"views have shape {views.shape}, train features {X_train.shape}")
    X = np.concatenate([X_train] + [views[:, v] for v in range(k)])
    labels = {t: list(labs) + (list(labs) if t in tasks else [None] * n) * k for t, labs in labels_train.items()}
    years = list(years_train) + [None] * (n * k) if years_train is not None else None
    return X, labels, years


def _classifier_rows(
    X_train: np.ndarray, labels_train: Mapping[str, Sequence[str | None]], views_train: np.ndarray | None,
    tasks: Sequence[str],
) -> tuple[np.ndarray, Mapping[str, Sequence[str | None]]]:
    """The rows the classifiers learn from: the train rows, followed by their views (labelled
    for ``tasks`` only) when there are views; rows that failed to embed dropped. The views are
    aligned with the train rows before any row goes, so they are added first."""
    if views_train is not None:
        X_train, labels_train, _ = with_augmented_views(X_train, labels_train, None,
                                                        np.asarray(views_train, dtype=np.float32), tasks)
    return _drop_failed_rows(X_train, labels_train, None)[:2]


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
    views_train: np.ndarray | None = None,
) -> Heads:
    """Train every head the labels allow (see ``_train_heads``)."""
    from threadpoolctl import threadpool_limits

    args = (X_train, labels_train, years_train, X_val, labels_val, years_val, config, class_weights, progress,
            views_train)
    if config.threads is None:
        return _train_heads(*args)
    with threadpool_limits(limits=config.threads):
        return _train_heads(*args)


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
    views_train: np.ndarray | None,
) -> Heads:
    """Train every head the labels allow.

    ``labels_train[task]`` is one label (or None) per row of ``X_train``; tasks missing from
    the mapping or with fewer than two classes get no head (the reason is in
    ``heads.info["skipped"]``). ``X_val`` (optional, but needed for the choice of C, the
    temperature and the abstention threshold) follows the same layout. ``class_weights``
    optionally gives per-task label weights (e.g. ``Dataset.class_weights(task)``);
    otherwise ``config.class_weight`` applies. Rows whose features contain NaN (failed
    images) are ignored. ``views_train`` (``(N, k, D)``, optional) are augmented views of the
    train rows: the classifiers of ``config.augment_tasks`` also learn from them, while the
    shared transform, the year head and novelty are fitted on the original rows only, so the
    views cannot move the other heads (issue #14, docs/trust-research.md 3b).
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
    X_fit, labels_fit = _classifier_rows(X_train, labels_train, views_train, config.augment_tasks)
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
    basis = PrincipalBasis(Z)
    Zr = basis(Z if views_train is None else transform(X_fit))
    Zvr = basis(Zv) if Zv is not None else None

    classifiers: dict[str, LinearHead] = {}
    skipped: dict[str, str] = {}
    for task in config.tasks:
        if task not in labels_fit:
            skipped[task] = "no labels given"
            continue
        val_labels = (labels_val or {}).get(task) if Zvr is not None else None
        result = fit_classifier(task, Zr, labels_fit[task], Zvr, val_labels, basis, config,
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
        result = fit_year(Z, years_train, Zv, years_val if Zv is not None else None, config)
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
