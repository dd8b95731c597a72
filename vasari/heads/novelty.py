"""The novelty detector: how unlike the training features an input is (a cat photo, a blank
image), so that every task can answer "unknown" for it."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


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
