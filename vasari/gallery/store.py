"""Gallery index storage: the folder layout, load and save, metadata rows, thumbnails.

An index is a folder::

    index.json       format, backbone spec, projection, calibration (temperature, novelty
                     threshold), counts; written last, so a folder without it is not an index
    vectors.npy      (N, d) float16/float32, projected and L2-normalised (memory-mapped
                     read-only when the index is an IVF one)
    ann.faiss        IVF kinds only: the FAISS index (memory-mapped read-only when served)
    explained.npy    (N,) share of each work's raw vector inside the PCA subspace
    projection.npz   mean, scale and optional PCA components (plain arrays, no pickle)
    negatives.npy    optional projected vectors of known non-paintings (negatives.json: labels)
    metadata.csv     one row per vector: artwork_id, title, artist, year, school, type, ...
    thumbs/          optional small JPEG thumbnails, ``<row>.jpg``
"""

from __future__ import annotations

import csv
import io
import json
import os
import shutil
import time
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any, Self

import numpy as np

from vasari.core.fileio import atomic_directory, atomic_open, atomic_write_bytes
from vasari.dataset.clean import CATALOG_ARTIST
from vasari.gallery.ann import ANN_FILE, AnnIndex
from vasari.gallery.config import (
    INDEX_FILE,
    INDEX_FORMAT,
    META_FIELDS,
    GalleryIndexError,
    IndexConfig,
    IndexSpecError,
)
from vasari.gallery.projection import Projection, _float_array

if TYPE_CHECKING:
    from vasari.catalog import Artwork
    from vasari.features import BackboneSpec


def _meta_row(art: Artwork | dict[str, Any]) -> dict[str, Any]:
    if isinstance(art, dict):
        row = {k: art.get(k) for k in META_FIELDS}
    else:
        row = {k: getattr(art, k, None) for k in META_FIELDS}
        row["catalog_artist"] = (getattr(art, "extra", None) or {}).get(CATALOG_ARTIST)
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


def _read_info(path: Path, spec: BackboneSpec | None) -> tuple[dict[str, Any], BackboneSpec | None]:
    """index.json of an index folder and its backbone spec, checked against ``spec``."""
    from vasari.features import BackboneSpec

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


def _save_npy(path: Path, array: np.ndarray) -> None:
    """``np.save`` streamed into an atomic file: a memory-mapped store of millions of rows is
    never held twice in memory."""
    with atomic_open(path, "wb", fsync=True) as fh:
        np.save(fh, array, allow_pickle=False)


def _load_ann(path: Path, kind: str, config: IndexConfig, count: int) -> AnnIndex | None:
    """The IVF index of an index folder (memory-mapped), None for an exact one."""
    if kind == "exact":
        return None
    if kind not in ("ivf-flat", "ivf-pq"):
        raise GalleryIndexError(f"{path / INDEX_FILE}: unknown index kind {kind!r}")
    ann = AnnIndex.load(path / ANN_FILE, kind, config)
    if len(ann) != count:
        raise GalleryIndexError(f"{path / ANN_FILE}: {len(ann)} vectors, the index has {count}")
    return ann


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



class StoreMixin:
    """Load and save of ``GalleryIndex`` (see the folder layout above) and its thumbnails."""

    def save(self, out_dir: str | Path, images_for_thumbnails: bool | None = None, progress: bool = False) -> Path:
        """Write the index folder atomically (a sibling temp folder swapped in at the end).

        Thumbnails are written when ``config.thumbnails`` (or ``images_for_thumbnails``) and
        the images are on disk; an existing ``thumbs/`` of the same rows is kept otherwise.
        """
        out = Path(out_dir)
        with atomic_directory(out) as tmp:
            _save_npy(tmp / "vectors.npy", self.vectors)
            _save_npy(tmp / "explained.npy", self.explained.astype(np.float16))
            if self.ann is not None:
                self.ann.save(tmp / ANN_FILE)
            if self.negatives is not None:
                _save_npy(tmp / "negatives.npy", np.asarray(self.negatives))
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
                "kind": self.kind,
                "ann": None if self.ann is None else self.ann.describe(),
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
    def load(cls, path: str | Path, spec: BackboneSpec | None = None) -> Self:
        """Open an index folder; with ``spec``, refuse one built with another backbone spec
        (or one whose index.json records no spec, which could not be checked)."""
        path = Path(path)
        info, stored = _read_info(path, spec)
        kind = info.get("kind") or "exact"  # indexes written before IVF kinds existed are exact
        try:
            # an IVF index is for millions of vectors: they stay on disk, read-only, paged in on use
            mmap_mode = None if kind == "exact" else "r"
            vectors = _float_array(path / "vectors.npy",
                                   np.load(path / "vectors.npy", mmap_mode=mmap_mode, allow_pickle=False))
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
        ann = _load_ann(path, kind, config, len(vectors))
        return cls(vectors, rows, projection, stored, config, info.get("calibration"), path, explained,
                   negatives, neg_labels, ann)

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

