"""What a bundle carries so that an artist can be enrolled later without its training data:
``enrol.npz``, a compact sample of the artist head's reference paintings.

Why this form: the enrolled class is a new row of the artist head, fitted while the old rows
stay fixed (the other artists' answers cannot change except where the new artist outscores
them). With the old rows fixed, the softmax loss of a reference painting depends on the new
row only through ``logaddexp(lse_i, s_i)``, where ``lse_i`` is the log-sum-exp of its old
logits and ``s_i`` the new logit. So each reference row needs its coordinates in a small
basis (the new row lives in that basis) and one number, ``lse``: float16 rows of ``r``
principal coordinates instead of the full training features. After an enrolment ``lse`` is
updated with the new class's logit, so enrolments can follow one another.

Layout (float arrays only, read with ``allow_pickle=False``):

    basis    (d, r) float16  principal axes of the head's transformed features
    coords   (n, r) float16  reference rows in that basis
    lse      (n,)   float32  log-sum-exp of the artist head's raw logits per row
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from vasari.bundle import BundleError
from vasari.core.fileio import atomic_write_bytes

REFERENCE_FILE = "enrol.npz"


@dataclass(frozen=True)
class ReferenceConfig:
    """How much of the training data a bundle keeps for enrolment (size vs. quality)."""

    #: Principal axes kept; the enrolled class's weights live in their span.
    rank: int = 128
    #: Reference rows per known artist (a random sample when there are more).
    per_artist: int = 30
    #: Reference rows of paintings without an artist label (other painters, unknown hands).
    unlabelled: int = 1000
    seed: int = 0


@dataclass
class EnrolReference:
    """Reference rows of a bundle's artist head (see the module docstring)."""

    basis: np.ndarray
    coords: np.ndarray
    lse: np.ndarray

    @property
    def rank(self) -> int:
        return int(self.basis.shape[1])

    def to_bytes(self) -> bytes:
        bio = io.BytesIO()
        np.savez_compressed(bio, basis=self.basis.astype(np.float16), coords=self.coords.astype(np.float16),
                            lse=self.lse.astype(np.float32))
        return bio.getvalue()

    def save(self, path: str | Path) -> Path:
        atomic_write_bytes(path, self.to_bytes())
        return Path(path)

    @classmethod
    def load(cls, path: str | Path, head_dim: int) -> EnrolReference:
        """The reference of a bundle; ``BundleError`` naming the file when it is missing,
        corrupt, or made for features of another size than the head's (``head_dim``)."""
        path = Path(path)
        if not path.is_file():
            raise BundleError(f"{path}: missing; this bundle cannot enrol artists (train it with this version of "
                              "vasari, which writes the reference rows enrolment needs)")
        try:
            with np.load(path, allow_pickle=False) as z:
                arrays = {k: np.asarray(z[k], np.float32) for k in ("basis", "coords", "lse")}
        except (OSError, ValueError, KeyError, EOFError) as exc:
            raise BundleError(f"{path}: corrupt enrolment reference ({exc})") from exc
        ref = cls(**arrays)
        n = len(ref.coords)
        if ref.basis.shape[0] != head_dim or ref.coords.shape[1:] != (ref.rank,) or ref.lse.shape != (n,):
            raise BundleError(f"{path}: reference of shape basis {ref.basis.shape}, rows {ref.coords.shape} does not "
                              f"fit an artist head on {head_dim} features (made for another backbone?)")
        if not all(np.isfinite(a).all() for a in arrays.values()):
            raise BundleError(f"{path}: reference contains NaN or infinity")
        return ref

    def with_class(self, row: np.ndarray, intercept: float, coords: np.ndarray, lse: np.ndarray) -> EnrolReference:
        """The reference after a class with weights ``basis @ row`` joined the head: every row's
        ``lse`` takes in the new logit, and the new class's own rows (``coords``, their
        ``lse`` over every class) are appended."""
        new_logit = self.coords @ row + intercept
        return EnrolReference(self.basis, np.concatenate([self.coords, coords]),
                              np.concatenate([np.logaddexp(self.lse, new_logit), lse]))


def logsumexp_rows(logits: np.ndarray) -> np.ndarray:
    top = logits.max(axis=1, keepdims=True)
    return (top[:, 0] + np.log(np.exp(logits - top).sum(axis=1))).astype(np.float32)


def sample_rows(artists: Sequence[str | None], config: ReferenceConfig) -> np.ndarray:
    """Indices kept as reference: up to ``per_artist`` per artist, ``unlabelled`` others."""
    rng = np.random.default_rng(config.seed)
    groups: dict[str | None, list[int]] = {}
    for i, artist in enumerate(artists):
        groups.setdefault(artist, []).append(i)
    keep: list[int] = []
    for artist, rows in sorted(groups.items(), key=lambda kv: (kv[0] is None, kv[0] or "")):
        cap = config.unlabelled if artist is None else config.per_artist
        keep.extend(rng.choice(rows, size=cap, replace=False).tolist() if len(rows) > cap else rows)
    return np.array(sorted(keep), dtype=np.int64)


def build_reference(heads, features: np.ndarray, artists: Sequence[str | None],
                    config: ReferenceConfig = ReferenceConfig()) -> EnrolReference:
    """The enrolment reference of ``heads`` (with an artist head) from raw backbone features
    of paintings (training and validation rows; NaN rows are skipped) and their artist labels
    (None: unlabelled)."""
    from vasari.heads.transform import principal_axes

    if "artist" not in heads.classifiers:
        raise BundleError("these heads have no artist head: nothing to enrol into")
    features = np.asarray(features, np.float32)
    ok = np.flatnonzero(np.isfinite(features).all(axis=1))
    rows = ok[sample_rows([artists[i] for i in ok], config)]
    Z = heads.transform(features[rows])
    _, axes = principal_axes(Z)
    basis = np.ascontiguousarray(axes[:, : min(config.rank, axes.shape[1])].astype(np.float16))
    coords = Z @ basis.astype(np.float32)
    lse = logsumexp_rows(heads.classifiers["artist"].logits(Z).astype(np.float64))
    return EnrolReference(basis, coords.astype(np.float16), lse)


def write_reference(bundle_dir: str | Path, heads, features: np.ndarray, artists: Sequence[str | None],
                    config: ReferenceConfig = ReferenceConfig()) -> Path | None:
    """Add ``enrol.npz`` to a saved bundle (atomically); None when its heads have no artist head."""
    from threadpoolctl import threadpool_limits

    if "artist" not in heads.classifiers:
        return None
    with threadpool_limits(limits=1):  # as train_heads: one BLAS thread is faster on a busy 2-core machine
        return build_reference(heads, features, artists, config).save(Path(bundle_dir) / REFERENCE_FILE)
