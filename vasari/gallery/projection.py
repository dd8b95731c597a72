"""The projection of raw backbone features into the index's space: an uncentred PCA fitted
on the gallery, then L2-normalised (why uncentred: see ``vasari.gallery.search``)."""

from __future__ import annotations

import io
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from vasari.gallery.config import GalleryIndexError


def l2_normalize(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, dtype=np.float32)
    norms = np.linalg.norm(x, axis=-1, keepdims=True)
    return x / np.maximum(norms, 1e-12)


def _float_array(path: Path, arr: np.ndarray) -> np.ndarray:
    """``arr`` when it holds real floats; a complex or integer array in an index file is
    corruption (numpy would silently drop the imaginary part when casting)."""
    if arr.dtype.kind != "f":
        raise GalleryIndexError(f"{path}: {arr.dtype} values, expected float16 or float32")
    return arr


@dataclass
class Projection:
    """x -> ((x - mean) / scale) @ components.T, then L2-normalised."""

    mean: np.ndarray
    scale: np.ndarray
    components: np.ndarray | None = None

    @classmethod
    def fit(cls, x: np.ndarray, center: bool = False, scale: bool = False, pca_dim: int | None = None) -> Projection:
        x = np.asarray(x, dtype=np.float64)
        dim = x.shape[1]
        mean = x.mean(axis=0) if center and len(x) >= 2 else np.zeros(dim)
        if scale and len(x) >= 2:
            std = x.std(axis=0)
            # floored, so that near-constant channels are not blown up
            spread = np.maximum(std, max(float(np.median(std)) * 0.1, 1e-6))
        else:
            spread = np.ones(dim)
        components = None
        if pca_dim is not None and pca_dim < dim and len(x) > 2:
            z = (x - mean) / spread
            k = int(min(pca_dim, len(x) - 1, dim))
            # economy SVD: the rows of vt are the principal axes (of the raw data when not
            # centring, so that the first axes keep the mean direction and cosines stay close)
            _, _, vt = np.linalg.svd(z, full_matrices=False)
            components = vt[:k]
        return cls(mean.astype(np.float32), spread.astype(np.float32),
                   None if components is None else components.astype(np.float32))

    @property
    def out_dim(self) -> int:
        return len(self.mean) if self.components is None else len(self.components)

    def __call__(self, x: np.ndarray) -> np.ndarray:
        return self.transform(x)[0]

    def transform(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(unit vectors, explained fraction): the fraction (0..1) of each vector's norm that
        lies in the PCA subspace (1 without PCA). A picture unlike the gallery has much of
        its norm outside the subspace the gallery spans."""
        z = (np.asarray(x, dtype=np.float32) - self.mean) / self.scale
        if self.components is None:
            return l2_normalize(z), np.ones(len(z), np.float32)
        p = z @ self.components.T
        frac = np.linalg.norm(p, axis=1) / np.maximum(np.linalg.norm(z, axis=1), 1e-12)
        return l2_normalize(p), np.clip(frac, 0.0, 1.0).astype(np.float32)

    def to_bytes(self) -> bytes:
        bio = io.BytesIO()
        arrays = {"mean": self.mean, "scale": self.scale}
        if self.components is not None:
            arrays["components"] = self.components
        np.savez(bio, **arrays)
        return bio.getvalue()

    @classmethod
    def from_file(cls, path: Path) -> Projection:
        with np.load(path, allow_pickle=False) as z:
            arrays = {name: _float_array(path, z[name]) for name in z.files}
        return cls(arrays["mean"], arrays["scale"], arrays.get("components"))

