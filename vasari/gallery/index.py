"""Gallery index: similar paintings, artist affinity and novelty ("is this a known kind of
picture at all?") from the backbone embeddings of a catalog.

An index is a folder::

    index.json       format, backbone spec, projection, calibration (temperature, novelty
                     threshold), counts; written last, so a folder without it is not an index
    vectors.npy      (N, d) float16/float32, projected and L2-normalised
    explained.npy    (N,) share of each work's raw vector inside the PCA subspace
    projection.npz   mean, scale and optional PCA components (plain arrays, no pickle)
    metadata.csv     one row per vector: artwork_id, title, artist, year, school, type, ...
    thumbs/          optional small JPEG thumbnails, ``<row>.jpg``

Vectors are compared by cosine similarity after an uncentred PCA fitted on the gallery (128
dimensions by default: 23x smaller than the 2912-d "stats" features, with the same
nearest-neighbour artist accuracy on artists7, .82 vs .81 raw). Not centring matters:
centred on the gallery mean, a blank or noise picture (whose features are small) points
"away from the average painting" just like a dull painting does, and novelty detection of
generated junk fell from 100% to 0%; per-dimension scaling also lowered artist accuracy
(.76). Search is exact (batched matrix products with numpy) and uses FAISS
(``IndexFlatIP``, the same exact results) when it is installed and the gallery is large.

Artist affinity: per artist with works in the gallery, the mean of the query's top-m
similarities to that artist's works, turned into probabilities by a softmax whose
temperature is fitted by leaving each gallery work's near-duplicate group out (or on a
validation split); optionally pooled (log-linear) with the artist head's probabilities.
The evidence is the nearest works by that artist.

Novelty: ``1 - max cosine similarity * explained fraction`` (the share of the query's norm
inside the gallery's PCA subspace; together about the raw-space cosine); the threshold is a high quantile
(default 99th percentile) of the same distance for held-out paintings (leave-group-out on
the gallery itself unless a held-out set is given), so about 1% of new paintings are
flagged and most non-paintings are.
"""

from __future__ import annotations

import csv
import io
import json
import math
import os
import shutil
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterable, Sequence

import numpy as np

from vasari.gallery.labels import display_labels

from vasari.core.fileio import atomic_directory, atomic_write_bytes
from vasari.errors import ModelError

if TYPE_CHECKING:
    from vasari.catalog.readers import Artwork
    from vasari.features.backbones import BackboneSpec

INDEX_FORMAT = 1
INDEX_FILE = "index.json"
META_FIELDS = ("artwork_id", "title", "artist", "year", "school", "type", "timeframe", "style",
               "source", "group", "image", "url")


class GalleryIndexError(ModelError):
    """A missing, corrupt or incompatible index folder (the message names the file)."""


class IndexSpecError(GalleryIndexError):
    """The index was built with another backbone spec than the one asked for."""


@dataclass(frozen=True)
class IndexConfig:
    """How an index is built and calibrated."""

    dtype: str = "float16"            # storage of the projected vectors: float16 | float32
    pca_dim: int | None = 128         # reduce to this many dimensions (None: keep all)
    center: bool = False              # subtract the gallery mean first (ruins novelty: see above)
    scale: bool = False               # divide each dimension by its spread (worse on artists7)
    thumbnails: bool = True           # write thumbs/<row>.jpg when the images are local
    thumb_size: int = 160             # long side of a thumbnail (pixels)
    top_m: int = 3                    # affinity: mean of the m best similarities per artist
    min_artist_works: int = 2         # artists with fewer works in the gallery get no affinity
    novelty_quantile: float = 0.99    # threshold = this quantile of held-out paintings' distance
    negative_fpr: float = 0.01        # non-painting references: paintings they may wrongly flag
    faiss_min_size: int = 100_000     # use FAISS (when installed) from this many vectors on
    head_weight: float = 0.5          # affinity: weight of the artist head in the log-linear pool

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "IndexConfig":
        known = {f for f in cls.__dataclass_fields__}
        return cls(**{k: v for k, v in data.items() if k in known})


@dataclass
class Hit:
    """One gallery work found for a query."""

    row: int
    score: float
    artwork_id: str
    title: str | None = None
    artist: str | None = None
    year: int | None = None
    school: str | None = None
    type: str | None = None
    source: str | None = None
    image: str | None = None
    thumbnail: str | None = None

    def to_dict(self, full: bool = False) -> dict[str, Any]:
        """The ``similar`` entry of the prediction object (CONTRACTS.md)."""
        d: dict[str, Any] = {"artwork_id": self.artwork_id, "title": self.title, "artist": self.artist,
                             "year": self.year, "score": round(float(self.score), 4)}
        if self.thumbnail:
            d["thumbnail"] = self.thumbnail
        if full:
            d.update({"school": self.school, "type": self.type, "source": self.source, "image": self.image})
        return d


# ----------------------------------------------------------------------------- helpers


def l2_normalize(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, dtype=np.float32)
    norms = np.linalg.norm(x, axis=-1, keepdims=True)
    return x / np.maximum(norms, 1e-12)


def _softmax(z: np.ndarray, axis: int = -1) -> np.ndarray:
    z = z - z.max(axis=axis, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=axis, keepdims=True)


def _clamped(score: float) -> float:
    """A cosine similarity as a float in [-1, 1] (float16 storage can overshoot 1 by 1e-4)."""
    return float(min(1.0, max(-1.0, float(score))))


def _faiss():
    try:
        import faiss  # type: ignore[import-not-found]
    except Exception:  # not installed (optional)
        return None
    return faiss


@dataclass
class Projection:
    """x -> ((x - mean) / scale) @ components.T, then L2-normalised."""

    mean: np.ndarray
    scale: np.ndarray
    components: np.ndarray | None = None

    @classmethod
    def fit(cls, x: np.ndarray, center: bool = False, scale: bool = False, pca_dim: int | None = None) -> "Projection":
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
    def from_file(cls, path: Path) -> "Projection":
        with np.load(path, allow_pickle=False) as z:
            arrays = {name: _float_array(path, z[name]) for name in z.files}
        return cls(arrays["mean"], arrays["scale"], arrays.get("components"))


def _meta_row(art: "Artwork | dict[str, Any]") -> dict[str, Any]:
    if isinstance(art, dict):
        row = {k: art.get(k) for k in META_FIELDS}
    else:
        row = {k: getattr(art, k, None) for k in META_FIELDS}
    row["artwork_id"] = str(row["artwork_id"]) if row.get("artwork_id") is not None else None
    if row.get("year") not in (None, ""):
        try:
            row["year"] = int(row["year"])
        except (TypeError, ValueError):
            row["year"] = None
    return {k: (None if v == "" else v) for k, v in row.items()}


SHARED_PREFIX = "shared-data:"


def _portable_image(path: str | None) -> str | None:
    """An image path under ../shared/data is stored relative to it ("shared-data:wga/x.jpg"),
    so that an index shipped in a bundle finds the pictures on any machine that has them."""
    if not path:
        return path
    from vasari.core.paths import shared_data_dir

    data = shared_data_dir()
    if data is not None:
        try:
            return SHARED_PREFIX + Path(path).resolve().relative_to(data).as_posix()
        except ValueError:
            pass
    return path


def _local_images(paths: Iterable[str | None]) -> list[str | None]:
    """Inverse of ``_portable_image`` on this machine (unchanged when no shared data is here).

    Takes every row at once: the shared data folder is looked up once per index, not once
    per row (8,697 look-ups cost about 2 s of every `vasari predict` start-up)."""
    paths = list(paths)
    if not any(p and p.startswith(SHARED_PREFIX) for p in paths):
        return paths
    from vasari.core.paths import shared_data_dir

    data = shared_data_dir()
    if data is None:
        return paths
    return [_inside(data, p[len(SHARED_PREFIX):]) if p and p.startswith(SHARED_PREFIX) else p for p in paths]


def _inside(data: Path, rel: str) -> str | None:
    """``data/rel``, or None when a tampered row ("shared-data:../../etc/passwd") would leave
    the data folder (normpath, not resolve: no system call per row of a large index)."""
    root = os.path.normpath(data)
    path = os.path.normpath(os.path.join(root, rel))
    return path if path.startswith(root + os.sep) else None


def _thumbnail_bytes(path: str, size: int) -> bytes | None:
    from PIL import Image

    from vasari.core.images import ImageError, load_image

    try:
        img = load_image(path, min_side=size)
    except (ImageError, OSError):
        return None
    img.thumbnail((size, size), Image.Resampling.LANCZOS)
    bio = io.BytesIO()
    img.save(bio, format="JPEG", quality=82, optimize=True)
    return bio.getvalue()


def _float_array(path: Path, arr: np.ndarray) -> np.ndarray:
    """``arr`` when it holds real floats; a complex or integer array in an index file is
    corruption (numpy would silently drop the imaginary part when casting)."""
    if arr.dtype.kind != "f":
        raise GalleryIndexError(f"{path}: {arr.dtype} values, expected float16 or float32")
    return arr


def _read_info(path: Path, spec: "BackboneSpec | None") -> tuple[dict[str, Any], "BackboneSpec | None"]:
    """index.json of an index folder and its backbone spec, checked against ``spec``."""
    from vasari.features.backbones import BackboneSpec

    info_path = path / INDEX_FILE
    if not info_path.is_file():
        raise GalleryIndexError(f"{path}: not a Vasari index (no {INDEX_FILE})")
    try:
        info = json.loads(info_path.read_text())
    except (OSError, ValueError) as exc:
        raise GalleryIndexError(f"{info_path}: unreadable index description ({exc})") from exc
    if not isinstance(info, dict) or info.get("format") != INDEX_FORMAT:
        found = info.get("format") if isinstance(info, dict) else info
        raise GalleryIndexError(f"{info_path}: index format {found!r}, this Vasari reads {INDEX_FORMAT}")
    if spec is not None and not info.get("spec"):
        raise IndexSpecError(f"{info_path}: records no backbone spec, so it cannot be checked against "
                             f"{spec.key()}; rebuild it with `vasari index build`")
    try:
        stored = BackboneSpec.from_dict(info["spec"]) if info.get("spec") else None
    except (KeyError, TypeError, ValueError) as exc:
        raise GalleryIndexError(f"{info_path}: bad backbone spec ({exc})") from exc
    if spec is not None and stored is not None and stored.key() != spec.key():
        raise IndexSpecError(
            f"{path}: index built with backbone {stored.key()}, but the model uses {spec.key()}; "
            "rebuild it with `vasari index build`"
        )
    return info, stored


def _read_metadata(meta_path: Path) -> list[dict[str, Any]]:
    """metadata.csv rows; refused without its header row or with a row lacking an artwork_id
    (a headerless file would otherwise turn its first work into column names)."""
    try:
        with open(meta_path, newline="", encoding="utf-8") as fh:
            reader = csv.DictReader(fh)
            if not reader.fieldnames or reader.fieldnames[0] != "artwork_id":
                raise GalleryIndexError(
                    f"{meta_path}: no header row (the first line must be {','.join(META_FIELDS)})")
            rows = [_meta_row(r) for r in reader]
    except (OSError, csv.Error, UnicodeDecodeError) as exc:
        raise GalleryIndexError(f"{meta_path}: unreadable metadata ({exc})") from exc
    for number, r in enumerate(rows, start=2):
        if not r.get("artwork_id"):
            raise GalleryIndexError(f"{meta_path}: line {number} has no artwork_id")
    for r, image in zip(rows, _local_images(r.get("image") for r in rows)):
        r["image"] = image
    return rows


# ----------------------------------------------------------------------------- the index


class GalleryIndex:
    """Embeddings of known works with their metadata; similar works, affinity, novelty.

    Build with ``GalleryIndex.build(features, artworks, spec)``; open a saved one with
    ``GalleryIndex.load(folder, spec=...)``. Queries take raw backbone features (the same
    ``BackboneSpec``), one vector ``(dim,)`` or a batch ``(n, dim)``.
    """

    def __init__(
        self,
        vectors: np.ndarray,
        metadata: list[dict[str, Any]],
        projection: Projection,
        spec: "BackboneSpec | None" = None,
        config: IndexConfig = IndexConfig(),
        calibration: dict[str, Any] | None = None,
        path: Path | None = None,
        explained: np.ndarray | None = None,
        negatives: np.ndarray | None = None,
        negative_labels: Sequence[str] | None = None,
    ):
        if len(vectors) != len(metadata):
            raise GalleryIndexError(f"{len(vectors)} vectors but {len(metadata)} metadata rows")
        self.vectors = np.ascontiguousarray(vectors)
        self.metadata = metadata
        self.projection = projection
        self.spec = spec
        self.config = config
        self.calibration: dict[str, Any] = dict(calibration or {})
        self.path = Path(path) if path else None
        #: per gallery row, the fraction of its raw vector inside the PCA subspace
        self.explained = (np.ones(len(metadata), np.float32) if explained is None
                          else np.asarray(explained, np.float32))
        self._vectors32: np.ndarray | None = None
        #: projected unit vectors of known non-paintings (architecture, sculpture...) and what
        #: each is; a query nearer to one of them than to any painting is not a painting
        self.negatives = None if negatives is None or len(negatives) == 0 else np.asarray(negatives)
        self.negative_labels = list(negative_labels or ([""] * (0 if self.negatives is None else len(self.negatives))))
        self._faiss_index = None
        self._artists: list[str] | None = None
        self._artist_rows: list[np.ndarray] | None = None

    # -- construction ------------------------------------------------------------------
    @classmethod
    def build(
        cls,
        features: np.ndarray,
        artworks: Sequence["Artwork | dict[str, Any]"],
        spec: "BackboneSpec | None" = None,
        config: IndexConfig = IndexConfig(),
        calibrate: bool = True,
        negatives: np.ndarray | None = None,
        negative_labels: Sequence[str] | None = None,
    ) -> "GalleryIndex":
        """An index of ``artworks`` from their raw features (NaN rows are dropped).

        ``negatives``: raw features of known non-paintings (photos of buildings, sculpture,
        prints...) with a label each; they are never returned as similar works, they only
        sharpen novelty: a query closer to them than to every painting counts as novel.
        """
        features = np.asarray(features, dtype=np.float32)
        if features.ndim != 2 or len(features) != len(artworks):
            raise GalleryIndexError(f"features {features.shape} do not match {len(artworks)} artworks")
        if spec is not None and features.shape[1] != spec.dim:
            raise IndexSpecError(f"features have {features.shape[1]} dims but {spec.name}/{spec.feature} gives {spec.dim}")
        ok = np.isfinite(features).all(axis=1)
        features = features[ok]
        rows = [_meta_row(a) for a, keep in zip(artworks, ok) if keep]
        if len(rows) == 0:
            raise GalleryIndexError("no embedded artworks to index")
        projection = Projection.fit(features, config.center, config.scale, config.pca_dim)
        vectors, explained = projection.transform(features)
        neg = labels = None
        if negatives is not None and len(negatives):
            negatives = np.asarray(negatives, np.float32)
            keep = np.isfinite(negatives).all(axis=1)
            neg = projection.transform(negatives[keep])[0].astype(config.dtype)
            given = list(negative_labels) if negative_labels is not None else [""] * len(keep)
            labels = [str(lab or "") for lab, k in zip(given, keep) if k]
        index = cls(vectors.astype(config.dtype), rows, projection, spec, config, explained=explained,
                    negatives=neg, negative_labels=labels)
        if calibrate and len(rows) >= 10:
            index.calibrate()
        return index

    def __len__(self) -> int:
        return len(self.metadata)

    @property
    def dim(self) -> int:
        return int(self.vectors.shape[1])

    # -- persistence -------------------------------------------------------------------
    def save(self, out_dir: str | Path, images_for_thumbnails: bool | None = None, progress: bool = False) -> Path:
        """Write the index folder atomically (a sibling temp folder swapped in at the end).

        Thumbnails are written when ``config.thumbnails`` (or ``images_for_thumbnails``) and
        the images are on disk; an existing ``thumbs/`` of the same rows is kept otherwise.
        """
        out = Path(out_dir)
        with atomic_directory(out) as tmp:
            bio = io.BytesIO()
            np.save(bio, self.vectors, allow_pickle=False)
            atomic_write_bytes(tmp / "vectors.npy", bio.getvalue(), fsync=True)
            bio = io.BytesIO()
            np.save(bio, self.explained.astype(np.float16), allow_pickle=False)
            atomic_write_bytes(tmp / "explained.npy", bio.getvalue(), fsync=True)
            if self.negatives is not None:
                bio = io.BytesIO()
                np.save(bio, np.asarray(self.negatives), allow_pickle=False)
                atomic_write_bytes(tmp / "negatives.npy", bio.getvalue(), fsync=True)
                atomic_write_bytes(tmp / "negatives.json", json.dumps(self.negative_labels).encode(), fsync=True)
            atomic_write_bytes(tmp / "projection.npz", self.projection.to_bytes(), fsync=True)
            sio = io.StringIO()
            writer = csv.DictWriter(sio, fieldnames=list(META_FIELDS), lineterminator="\n")
            writer.writeheader()
            for row in self.metadata:
                out_row = dict(row, image=_portable_image(row.get("image")))
                writer.writerow({k: "" if out_row.get(k) is None else out_row.get(k) for k in META_FIELDS})
            atomic_write_bytes(tmp / "metadata.csv", sio.getvalue().encode("utf-8"), fsync=True)
            want_thumbs = self.config.thumbnails if images_for_thumbnails is None else images_for_thumbnails
            n_thumbs = 0
            if want_thumbs:
                n_thumbs = self._write_thumbnails(tmp / "thumbs", progress=progress)
            elif self.path is not None and (self.path / "thumbs").is_dir() and self.path.resolve() == out.resolve():
                shutil.copytree(self.path / "thumbs", tmp / "thumbs")
                n_thumbs = len(list((tmp / "thumbs").glob("*.jpg")))
            info = {
                "format": INDEX_FORMAT,
                "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                "count": len(self),
                "dim": self.dim,
                "dtype": str(self.vectors.dtype),
                "spec": self.spec.to_dict() if self.spec is not None else None,
                "spec_key": self.spec.key() if self.spec is not None else None,
                "config": self.config.to_dict(),
                "calibration": self.calibration,
                "thumbnails": n_thumbs,
                "sources": _counts(r.get("source") for r in self.metadata),
                "artists": len(self.artists),
                "negatives": 0 if self.negatives is None else len(self.negatives),
            }
            atomic_write_bytes(tmp / INDEX_FILE, json.dumps(info, indent=2, sort_keys=True).encode(), fsync=True)
        self.path = out
        return out

    def _write_thumbnails(self, folder: Path, progress: bool = False) -> int:
        from concurrent.futures import ThreadPoolExecutor

        folder.mkdir(exist_ok=True)
        todo = [(i, r["image"]) for i, r in enumerate(self.metadata) if r.get("image") and Path(r["image"]).is_file()]

        def one(item: tuple[int, str]) -> int:
            i, image = item
            data = _thumbnail_bytes(image, self.config.thumb_size)
            if data is None:
                return 0
            atomic_write_bytes(folder / f"{i}.jpg", data, fsync=True)
            return 1

        n = 0
        with ThreadPoolExecutor(max_workers=max(2, (os.cpu_count() or 2))) as pool:
            if progress:
                from vasari.core.progress import make_progress

                with make_progress(transient=True) as bar:
                    task = bar.add_task("thumbnails", total=len(todo))
                    for done in pool.map(one, todo):
                        n += done
                        bar.advance(task)
            else:
                n = sum(pool.map(one, todo))
        return n

    @classmethod
    def load(cls, path: str | Path, spec: "BackboneSpec | None" = None) -> "GalleryIndex":
        """Open an index folder; with ``spec``, refuse one built with another backbone spec
        (or one whose index.json records no spec, which could not be checked)."""
        path = Path(path)
        info, stored = _read_info(path, spec)
        try:
            vectors = _float_array(path / "vectors.npy", np.load(path / "vectors.npy", allow_pickle=False))
            projection = Projection.from_file(path / "projection.npz")
            explained = (_float_array(path / "explained.npy", np.load(path / "explained.npy", allow_pickle=False))
                         if (path / "explained.npy").is_file() else None)
            negatives = neg_labels = None
            if (path / "negatives.npy").is_file():
                negatives = _float_array(path / "negatives.npy", np.load(path / "negatives.npy", allow_pickle=False))
                neg_labels = json.loads((path / "negatives.json").read_text())
        except (OSError, ValueError) as exc:
            raise GalleryIndexError(f"{path}: cannot read vectors/projection ({exc})") from exc
        rows = _read_metadata(path / "metadata.csv")
        if len(rows) != len(vectors) or len(vectors) != info.get("count"):
            raise GalleryIndexError(
                f"{path}: {len(vectors)} vectors, {len(rows)} metadata rows, index.json says {info.get('count')}")
        if vectors.ndim != 2 or vectors.shape[1] != projection.out_dim:
            raise GalleryIndexError(f"{path}: vectors {vectors.shape} do not match the projection ({projection.out_dim})")
        if stored is not None and len(projection.mean) != stored.dim:
            raise GalleryIndexError(f"{path}: projection expects {len(projection.mean)} dims, spec says {stored.dim}")
        config = IndexConfig.from_dict(info.get("config", {}))
        if explained is not None and len(explained) != len(vectors):
            raise GalleryIndexError(f"{path}: explained.npy has {len(explained)} rows for {len(vectors)} vectors")
        if negatives is not None and (negatives.ndim != 2 or negatives.shape[1] != vectors.shape[1] or len(neg_labels) != len(negatives)):
            raise GalleryIndexError(f"{path}: negatives.npy / negatives.json do not match the index")
        return cls(vectors, rows, projection, stored, config, info.get("calibration"), path, explained,
                   negatives, neg_labels)

    # -- queries -----------------------------------------------------------------------
    def project(self, features: np.ndarray) -> np.ndarray:
        """Raw backbone features ``(n, dim)`` or ``(dim,)`` -> projected unit vectors ``(n, d)``."""
        return self.transform(features)[0]

    def transform(self, features: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(projected unit vectors, explained fractions) of raw backbone features."""
        x = np.asarray(features, dtype=np.float32)
        if x.ndim == 1:
            x = x[None]
        if x.shape[1] != len(self.projection.mean):
            raise IndexSpecError(f"query has {x.shape[1]} dims, the index expects {len(self.projection.mean)}")
        if not np.isfinite(x).all():
            raise ValueError("query features contain NaN or infinite values")
        return self.projection.transform(x)

    def _gallery32(self) -> np.ndarray:
        if self._vectors32 is None:
            self._vectors32 = np.ascontiguousarray(self.vectors, dtype=np.float32)
        return self._vectors32

    def similarities(self, queries: np.ndarray, projected: bool = False, chunk: int = 16384) -> np.ndarray:
        """Cosine similarities ``(n, N)`` of queries to every gallery work (exact)."""
        q = queries if projected else self.project(queries)
        q = np.asarray(q, dtype=np.float32)
        gallery = self._gallery32()
        out = np.empty((len(q), len(self)), dtype=np.float32)
        for start in range(0, len(self), chunk):
            out[:, start:start + chunk] = q @ gallery[start:start + chunk].T
        return out

    def _use_faiss(self) -> bool:
        return len(self) >= self.config.faiss_min_size and _faiss() is not None

    def _faiss_search(self, q: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        faiss = _faiss()
        if self._faiss_index is None:
            index = faiss.IndexFlatIP(self.dim)
            index.add(self._gallery32())
            self._faiss_index = index
        scores, rows = self._faiss_index.search(np.ascontiguousarray(q, dtype=np.float32), k)
        return scores, rows

    def search_rows(self, queries: np.ndarray, k: int = 5, projected: bool = False,
                    use_faiss: bool | None = None) -> tuple[np.ndarray, np.ndarray]:
        """(scores, rows), each ``(n, k)``, best first."""
        q = queries if projected else self.project(queries)
        k = int(max(0, min(k, len(self))))
        if k == 0:
            return np.zeros((len(q), 0), np.float32), np.zeros((len(q), 0), np.int64)
        if use_faiss if use_faiss is not None else self._use_faiss():
            if _faiss() is None:
                raise RuntimeError("FAISS is not installed (pip install faiss-cpu)")
            return self._faiss_search(q, k)
        scores_out = np.empty((len(q), k), np.float32)
        rows_out = np.empty((len(q), k), np.int64)
        for start in range(0, len(q), 256):
            sims = self.similarities(q[start:start + 256], projected=True)
            part = np.argpartition(-sims, k - 1, axis=1)[:, :k]
            part_scores = np.take_along_axis(sims, part, axis=1)
            order = np.argsort(-part_scores, axis=1, kind="stable")
            rows_out[start:start + len(sims)] = np.take_along_axis(part, order, axis=1)
            scores_out[start:start + len(sims)] = np.take_along_axis(part_scores, order, axis=1)
        return scores_out, rows_out

    def hit(self, row: int, score: float) -> Hit:
        r = self.metadata[row]
        shown = display_labels(r)  # issue #14 hook: catalog labels, never raw ids
        return Hit(row=int(row), score=_clamped(score), artwork_id=r["artwork_id"], title=shown["title"],
                   artist=shown["artist"], year=shown["year"], school=r.get("school"), type=r.get("type"),
                   source=r.get("source"), image=r.get("image"), thumbnail=self.thumbnail(row))

    def _hit_dict(self, row: int, score: float, memo: dict, fields: tuple[str, ...] | None = None) -> dict[str, Any]:
        """``hit(row, score).to_dict()`` (its ``fields`` only, when given), built once per row
        for a whole batch in ``memo``: only the score differs between queries, and building
        a hit looks its thumbnail up on disk."""
        key = (int(row), fields)
        if key not in memo:
            full = self.hit(row, 0.0).to_dict()
            memo[key] = full if fields is None else {k: v for k, v in full.items() if k in fields}
        out = dict(memo[key])
        out["score"] = round(_clamped(score), 4)
        return out

    def thumbnail(self, row: int) -> str | None:
        """A local picture for a gallery row: its thumbnail, else its image when present."""
        if self.path is not None:
            thumb = self.path / "thumbs" / f"{row}.jpg"
            if thumb.is_file():
                return str(thumb)
        image = self.metadata[row].get("image")
        if image and Path(image).is_file():
            return str(image)
        return None

    def search(self, queries: np.ndarray, k: int = 5, use_faiss: bool | None = None) -> list[list[Hit]]:
        """The ``k`` most similar gallery works for each query (raw backbone features)."""
        scores, rows = self.search_rows(queries, k, use_faiss=use_faiss)
        return [[self.hit(r, s) for s, r in zip(srow, rrow) if r >= 0] for srow, rrow in zip(scores, rows)]

    def similar(self, vec: np.ndarray, k: int = 5) -> list[dict[str, Any]]:
        """The prediction object's ``similar`` list for one query vector."""
        return [h.to_dict() for h in self.search(np.asarray(vec)[None] if np.ndim(vec) == 1 else vec, k)[0]]

    # -- artists -----------------------------------------------------------------------
    @property
    def artists(self) -> list[str]:
        """Artists with at least ``config.min_artist_works`` works in the gallery (sorted)."""
        if self._artists is None:
            by: dict[str, list[int]] = {}
            for i, r in enumerate(self.metadata):
                if r.get("artist"):
                    by.setdefault(r["artist"], []).append(i)
            names = sorted(a for a, rows in by.items() if len(rows) >= self.config.min_artist_works)
            self._artists = names
            self._artist_rows = [np.asarray(by[a], np.int64) for a in names]
        return self._artists

    def _artist_scores(self, sims: np.ndarray, exclude: np.ndarray | None = None) -> np.ndarray:
        """(n, A) mean of the top-m similarities to each artist's works.

        ``exclude``: boolean ``(n, N)`` of gallery rows a query may not use (its own group).
        """
        self.artists  # fills _artist_rows
        assert self._artist_rows is not None
        m = self.config.top_m
        out = np.full((len(sims), len(self._artist_rows)), -1.0, np.float32)
        masked = sims if exclude is None else np.where(exclude, -np.inf, sims)
        for j, rows in enumerate(self._artist_rows):
            s = masked[:, rows]
            mm = min(m, s.shape[1])
            top = -np.partition(-s, mm - 1, axis=1)[:, :mm]
            finite = np.isfinite(top)
            count = finite.sum(axis=1)
            total = np.where(finite, top, 0.0).sum(axis=1)
            # an artist whose works all sit in the query's own group gets no evidence (-1)
            out[:, j] = np.where(count > 0, total / np.maximum(count, 1), -1.0)
        return out

    def affinity(self, vec: np.ndarray, artist_probs: dict[str, float] | None = None, k: int = 5,
                 evidence: int = 3) -> list[dict[str, Any]]:
        """Top-``k`` artists for one query: calibrated score and the nearest works by each.

        ``artist_probs`` (the artist head's probabilities, label -> p) are pooled
        log-linearly with the similarity-based probabilities (``config.head_weight``).
        """
        q = self.project(np.asarray(vec))[:1]
        if not self.artists:
            return []
        sims = self.similarities(q, projected=True)
        return self._affinity_many(sims, [artist_probs], k, evidence)[0]

    def _affinity_probabilities(self, scores: np.ndarray, artist_probs: Sequence[dict[str, float] | None]) -> np.ndarray:
        """(n, A) artist probabilities: the softmax of each query's similarity scores, pooled
        log-linearly with that query's artist-head probabilities when it has any."""
        temperature = float(self.calibration.get("temperature", 0.05))
        similarity_p = _softmax(scores / temperature, axis=1)
        p = similarity_p.astype(np.float64)
        column = {a: j for j, a in enumerate(self.artists)}
        head = np.zeros(p.shape, np.float64)
        for i, probs in enumerate(artist_probs):
            for label, value in (probs or {}).items():
                if label in column:
                    head[i, column[label]] = value
        covered = head.sum(axis=1, keepdims=True)
        pooled = covered[:, 0] > 0
        if pooled.any():
            w = float(self.config.head_weight)
            # artists the head does not know keep their similarity probability's share
            eps = 1e-4
            known = np.where(head[pooled] > 0, head[pooled], eps * covered[pooled])
            p[pooled] = _softmax((1 - w) * np.log(similarity_p[pooled] + 1e-12) + w * np.log(known), axis=1)
        return p

    def _affinity_many(self, sims: np.ndarray, artist_probs: Sequence[dict[str, float] | None], k: int,
                       evidence: int, memo: dict | None = None) -> list[list[dict[str, Any]]]:
        """Affinity lists for a batch of queries from their similarities ``(n, N)``: one matrix
        pass for all (per-query loops cost ~5 ms a picture with a 100-artist gallery)."""
        scores = self._artist_scores(sims)
        p = self._affinity_probabilities(scores, artist_probs)
        order = np.argsort(-p, axis=1)[:, :k]
        names = self.artists
        assert self._artist_rows is not None
        keep = ("artwork_id", "title", "year", "score", "thumbnail")
        memo = {} if memo is None else memo
        out = []
        for i in range(len(sims)):
            entries = []
            for j in order[i]:
                rows = self._artist_rows[j]
                best = rows[np.argsort(-sims[i, rows])[:evidence]]
                entries.append({
                    "artist": names[j],
                    "score": math.floor(float(p[i, j]) * 1e4) / 1e4,  # rounded down: the scores sum to <= 1
                    "similarity": round(float(scores[i, j]), 4),
                    "evidence": [self._hit_dict(r, sims[i, r], memo, keep) for r in best],
                })
            out.append(entries)
        return out

    # -- novelty -----------------------------------------------------------------------
    def nearest_distance(self, queries: np.ndarray, projected: bool = False) -> np.ndarray:
        """Distance to the nearest gallery work, per query: ``1 - cos * explained``.

        ``cos`` is the best cosine similarity in the PCA space and ``explained`` the fraction
        of the query inside that space, so the product approximates the cosine of the raw
        vectors (without PCA it is exactly that). Projected queries count as fully explained.
        """
        if projected:
            q, frac = np.asarray(queries, np.float32), np.ones(len(queries), np.float32)
        else:
            q, frac = self.transform(queries)
        scores, _ = self.search_rows(q, 1, projected=True)
        return 1.0 - scores[:, 0] * frac

    def _negative_sims(self, q: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(best similarity, its row) of projected queries to the known non-paintings."""
        if self.negatives is None:
            return np.full(len(q), -np.inf, np.float32), np.full(len(q), -1)
        sims = np.asarray(q, np.float32) @ np.asarray(self.negatives, np.float32).T
        rows = sims.argmax(axis=1)
        return sims[np.arange(len(q)), rows], rows

    def _novelty_rows(self, best_sim: np.ndarray, frac: np.ndarray, q: np.ndarray) -> list[dict[str, Any]]:
        """Novelty verdicts from each query's best painting similarity and explained fraction."""
        thr = self.calibration.get("novelty_threshold")
        margin = self.calibration.get("negative_margin")
        neg_sim, neg_row = self._negative_sims(q)
        out = []
        for i in range(len(best_sim)):
            d = float(1.0 - best_sim[i] * frac[i])
            row: dict[str, Any] = {"distance": round(d, 4), "threshold": None if thr is None else round(float(thr), 4),
                                   "novel": False}
            if thr is not None and d > float(thr):
                row.update(novel=True, reason="far from every known painting")
            elif margin is not None and neg_row[i] >= 0 and neg_sim[i] > best_sim[i] + float(margin):
                label = self.negative_labels[neg_row[i]] if neg_row[i] < len(self.negative_labels) else ""
                row.update(novel=True, reason=f"closer to a known non-painting{f' ({label})' if label else ''} than to any painting")
            out.append(row)
        return out

    def novelty(self, vec: np.ndarray) -> dict[str, Any]:
        """Whether a picture is unlike the gallery's paintings: ``distance`` to the nearest
        known work (vs. the fitted ``threshold``), or nearer to a known non-painting."""
        return self.novelty_many(np.asarray(vec))[0]

    def novelty_many(self, features: np.ndarray) -> list[dict[str, Any]]:
        q, frac = self.transform(features)
        best, _ = self.search_rows(q, 1, projected=True)
        return self._novelty_rows(best[:, 0], frac, q)

    def is_novel(self, features: np.ndarray) -> np.ndarray:
        return np.array([r["novel"] for r in self.novelty_many(features)], bool)

    # -- calibration -------------------------------------------------------------------
    def _groups(self) -> np.ndarray:
        keys = [r.get("group") or r.get("artwork_id") for r in self.metadata]
        _, inv = np.unique(np.asarray(keys, dtype=object).astype(str), return_inverse=True)
        return inv

    def leave_group_out(self, max_queries: int = 4000, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
        """(query rows, similarities to the gallery with each query's own group masked -inf)."""
        rng = np.random.default_rng(seed)
        rows = np.arange(len(self))
        if len(rows) > max_queries:
            rows = np.sort(rng.choice(rows, max_queries, replace=False))
        groups = self._groups()
        q = np.asarray(self.vectors[rows], dtype=np.float32)
        sims = self.similarities(q, projected=True)
        sims[groups[rows][:, None] == groups[None, :]] = -np.inf
        return rows, sims

    def calibrate(self, held_out: np.ndarray | None = None, held_out_artists: Sequence[str | None] | None = None,
                  quantile: float | None = None) -> dict[str, Any]:
        """Fit the affinity temperature and the novelty threshold.

        Without ``held_out`` features, each gallery work is a query against the rest of the
        gallery less its own near-duplicate group (leave-group-out); with them (raw features
        of paintings not in the gallery, and their artists), those are used instead.
        """
        quantile = self.config.novelty_quantile if quantile is None else quantile
        if held_out is not None:
            q, frac = self.transform(held_out)
            sims = self.similarities(q, projected=True)
            artists = list(held_out_artists) if held_out_artists is not None else [None] * len(q)
            how = "held-out"
        else:
            rows, sims = self.leave_group_out()
            frac = self.explained[rows]
            artists = [self.metadata[r].get("artist") for r in rows]
            how = "leave-group-out"
        best = np.max(np.where(np.isfinite(sims), sims, -1.0), axis=1)
        nearest = 1.0 - best * frac
        cal: dict[str, Any] = {
            "method": how,
            "novelty_quantile": quantile,
            "novelty_threshold": float(np.quantile(nearest, quantile)),
            "novelty_median": float(np.median(nearest)),
            "n_queries": int(len(nearest)),
        }
        if self.negatives is not None:
            q = np.asarray(self.vectors[rows], np.float32) if held_out is None else self.project(held_out)
            neg_sim, _ = self._negative_sims(q)
            # paintings closer to a non-painting than to any other painting by more than the
            # margin are at most ``negative_fpr`` of them
            cal["negative_margin"] = float(np.quantile(neg_sim - best, 1.0 - self.config.negative_fpr))
            cal["negative_fpr"] = self.config.negative_fpr
            cal["negatives"] = len(self.negatives)
        names = self.artists
        idx = {a: j for j, a in enumerate(names)}
        target = np.array([idx.get(a, -1) if a else -1 for a in artists])
        use = target >= 0
        if names and use.sum() >= 5 and len(names) >= 2:
            scores = self._artist_scores(sims[use])
            t = target[use]
            best_t, best_nll = 0.05, math.inf
            for temp in np.exp(np.linspace(np.log(0.002), np.log(1.0), 60)):
                logp = scores / temp
                logp = logp - logp.max(axis=1, keepdims=True)
                logp = logp - np.log(np.exp(logp).sum(axis=1, keepdims=True))
                nll = float(-logp[np.arange(len(t)), t].mean())
                if nll < best_nll:
                    best_t, best_nll = float(temp), nll
            acc = float((scores.argmax(axis=1) == t).mean())
            cal.update({"temperature": best_t, "affinity_nll": best_nll, "affinity_top1": acc,
                        "affinity_queries": int(use.sum()), "artists": len(names)})
        self.calibration = cal
        return cal

    def info(self) -> dict[str, Any]:
        return {
            "count": len(self), "dim": self.dim, "dtype": str(self.vectors.dtype),
            "spec": self.spec.key() if self.spec is not None else None,
            "artists": len(self.artists), "calibration": self.calibration,
            "sources": _counts(r.get("source") for r in self.metadata),
            "path": str(self.path) if self.path else None,
        }


def _counts(values: Iterable[Any]) -> dict[str, int]:
    out: dict[str, int] = {}
    for v in values:
        key = str(v) if v else "?"
        out[key] = out.get(key, 0) + 1
    return dict(sorted(out.items()))


def find_index(model_dir: str | Path | None = None) -> Path | None:
    """The ``index/`` folder of a bundle (the default bundle when ``model_dir`` is None)."""
    if model_dir is None:
        model_dir = Path(__file__).resolve().parent.parent / "models" / "default"
    candidate = Path(model_dir) / "index"
    if (candidate / INDEX_FILE).is_file():
        return candidate
    if (Path(model_dir) / INDEX_FILE).is_file():
        return Path(model_dir)
    return None


# ----------------------------------------------------------------------------- predictor hook


def load_bundle_index(bundle_dir: str | Path | None, spec: "BackboneSpec | None" = None) -> GalleryIndex | None:
    """The gallery index inside a bundle (``<bundle>/index/``), or None when it has none.

    Raises ``IndexSpecError`` when the index was built with another backbone than ``spec``.
    """
    where = find_index(bundle_dir)
    return None if where is None else GalleryIndex.load(where, spec=spec)


def enrich_predictions(
    predictions: list[dict[str, Any]],
    index: GalleryIndex,
    features: np.ndarray,
    k_similar: int = 5,
    k_affinity: int = 5,
    evidence: int = 3,
    abstain_on_novelty: bool = True,
) -> list[dict[str, Any]]:
    """Add ``similar``, ``affinity`` and ``novelty`` to prediction objects (CONTRACTS.md), in place.

    ``features[i]`` is the raw backbone vector of ``predictions[i]`` (rows with an "error" are
    skipped). The artist head's scores in ``predictions[i]["predictions"]["artist"]`` (when
    the model has that task) are pooled into the affinity. With ``abstain_on_novelty``, a
    picture farther from every known work than the index's threshold gets "unknown" for every
    task in its ``verdict`` (a non-painting should not be labelled).
    """
    x = np.asarray(features, np.float32)
    if x.ndim == 1:
        x = x[None]
    live = [i for i, p in enumerate(predictions) if "error" not in p and np.isfinite(x[i]).all()]
    if not live:
        return predictions
    q, frac = index.transform(x[live])
    sims = index.similarities(q, projected=True)
    memo: dict = {}
    top = _top_rows(sims, min(k_similar, len(index)))
    affinity = None
    if index.artists:
        heads = [_head_artist_probs(predictions[i]) for i in live]
        affinity = index._affinity_many(sims, heads, k_affinity, evidence, memo)
    novelty = index._novelty_rows(sims.max(axis=1), frac, q)
    for j, i in enumerate(live):
        pred = predictions[i]
        pred["similar"] = [index._hit_dict(r, sims[j, r], memo) for r in top[j]]
        if affinity is not None:
            pred["affinity"] = affinity[j]
        pred["novelty"] = novelty[j]
        if novelty[j]["novel"] and abstain_on_novelty and isinstance(pred.get("verdict"), dict):
            pred["verdict"] = {task: "unknown" for task in pred["verdict"]}
    return predictions


def _top_rows(sims: np.ndarray, k: int) -> np.ndarray:
    """(n, k) gallery rows of the ``k`` highest similarities per query, best first."""
    if k == 0:
        return np.zeros((len(sims), 0), np.int64)
    part = np.argpartition(-sims, k - 1, axis=1)[:, :k]
    order = np.argsort(-np.take_along_axis(sims, part, axis=1), axis=1, kind="stable")
    return np.take_along_axis(part, order, axis=1)


def _head_artist_probs(prediction: dict[str, Any]) -> dict[str, float] | None:
    """The artist head's scores in a prediction object (label -> p), None without any."""
    rows = (prediction.get("predictions") or {}).get("artist") or []
    head = {r["label"]: float(r["score"]) for r in rows if r.get("label") not in (None, "unknown")}
    return head or None
