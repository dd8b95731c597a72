"""The embedding cache: vectors keyed by the image *content* (blake2b of the file bytes)
for one ``BackboneSpec``.

- layout: ``cache.json`` (the spec; a directory written with another spec raises
  ``CacheMismatchError``), ``chunk-*.npz`` (``keys`` + ``features``, each written to a temp
  file then renamed, so a killed run leaves whole chunks only) and ``index.json`` (chunk ->
  rows + blake2b checksum of its bytes).
- resume: vectors are flushed every ``chunk_size`` rows and on Ctrl-C, so a rerun embeds
  only what is missing. A chunk written just before a kill but absent from ``index.json``
  is validated and adopted.
- corruption: a chunk whose bytes no longer match its checksum, or that cannot be read, is
  moved to ``corrupt/`` with a ``CacheWarning`` naming it and its pictures are recomputed
  (``on_corrupt="recompute"``, the default), or raises ``CacheCorruptError``
  (``on_corrupt="error"``).
- failed pictures are never cached (the error may be transient).
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
import os
import time
import uuid
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from vasari.core.fileio import atomic_write_bytes
from vasari.errors import CacheError
from vasari.features.spec import BackboneSpec, default_cache_dir

log = logging.getLogger(__name__)


class CacheMismatchError(CacheError):
    """The cache directory holds embeddings of another backbone, feature or preprocessing."""


class CacheLocationError(CacheMismatchError):
    """The cache path cannot be a cache directory (it is a file, or cannot be created);
    a ``CacheMismatchError`` so that every caller reporting a wrong cache reports this too."""


class CacheCorruptError(CacheError):
    """A cache chunk is unreadable or does not match its checksum (``on_corrupt="error"``)."""


class CacheWarning(UserWarning):
    """Something in the cache was discarded and will be recomputed."""


def content_key(path: str | Path) -> str:
    """blake2b-160 of the file bytes: the cache key of a picture (independent of its name)."""
    h = hashlib.blake2b(digest_size=20)
    with open(path, "rb") as fh:
        while chunk := fh.read(1 << 20):
            h.update(chunk)
    return h.hexdigest()


def safe_content_key(path: str) -> str:
    """``content_key``, or for an unreadable file a ``"!"``-prefixed error message (never a key)."""
    try:
        return content_key(path)
    except OSError as exc:
        return f"!{path}: cannot read file ({exc.strerror or exc}) [not_an_image]"


CACHE_FORMAT = 1


class EmbeddingCache:
    """Content-addressed, chunked, resumable store of embeddings for one ``BackboneSpec``.

    ``EmbeddingCache(dir, spec)`` creates the directory or opens it; another spec's directory
    raises ``CacheMismatchError``. Use ``get_many(keys)``, ``put(keys, vectors)`` and
    ``flush()`` (also done by ``Embedder.embed_paths``), or as a context manager.
    """

    def __init__(self, directory: str | Path, spec: BackboneSpec, chunk_size: int = 256, on_corrupt: str = "recompute"):
        if on_corrupt not in ("recompute", "error"):
            raise ValueError("on_corrupt must be 'recompute' or 'error'")
        self.dir = Path(directory)
        self.spec = spec
        self.chunk_size = int(chunk_size)
        self.on_corrupt = on_corrupt
        self._where: dict[str, tuple[str, int]] = {}  # key -> (chunk file name, row)
        self._chunks: dict[str, dict[str, Any]] = {}  # chunk name -> {"rows", "checksum"}
        self._loaded: dict[str, np.ndarray] = {}  # small LRU of chunk features
        self._buf_keys: list[str] = []
        self._buf_vecs: list[np.ndarray] = []
        self._open()

    @classmethod
    def default(cls, spec: BackboneSpec, **kwargs: Any) -> "EmbeddingCache":
        """The per-spec cache under the user cache dir (``default_dir``)."""
        return cls(cls.default_dir(spec), spec, **kwargs)

    @staticmethod
    def default_dir(spec: BackboneSpec) -> Path:
        """Where ``default`` keeps ``spec``'s vectors (``<cache>/embeddings/<spec key>``), for
        readers that must not create it."""
        return default_cache_dir() / "embeddings" / spec.key()

    # -- opening
    def _open(self) -> None:
        if self.dir.exists() and not self.dir.is_dir():
            raise CacheLocationError(f"{self.dir}: is a file, not an embedding cache directory; "
                                     "pass a folder (--cache DIR) or --no-cache")
        try:
            self.dir.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise CacheLocationError(f"{self.dir}: cannot create the embedding cache directory ({exc.strerror})") from exc
        manifest = self.dir / "cache.json"
        if manifest.is_file():
            try:
                info = json.loads(manifest.read_text())
                other = BackboneSpec.from_dict(info["spec"])
            except Exception as exc:
                raise CacheCorruptError(f"{manifest}: unreadable cache manifest ({exc}); delete {self.dir} to rebuild") from exc
            if other.key() != self.spec.key():
                raise CacheMismatchError(
                    f"{self.dir} is an embedding cache for backbone {other.name!r} feature {other.feature!r} "
                    f"{other.preprocess.size}px (key {other.key()}), not for {self.spec.name!r} feature "
                    f"{self.spec.feature!r} {self.spec.preprocess.size}px (key {self.spec.key()}). "
                    f"Use another cache directory (one per backbone) or delete this one."
                )
        else:
            payload = {"format": CACHE_FORMAT, "key": self.spec.key(), "spec": self.spec.to_dict()}
            atomic_write_bytes(manifest, json.dumps(payload, indent=1).encode())
        self._clean_tmp()
        index = self._read_index()
        for name, meta in index.items():
            if not (self.dir / name).is_file():
                warnings.warn(f"{self.dir / name}: listed in index.json but missing; its pictures will be recomputed",
                              CacheWarning, stacklevel=3)
                continue
            self._chunks[name] = meta
        for path in sorted(self.dir.glob("chunk-*.npz")):
            if path.name not in self._chunks:  # written just before an interruption: adopt it
                try:
                    data = path.read_bytes()
                    keys, vecs = self._decode_chunk(path, data)
                except CacheCorruptError as exc:
                    self._corrupt(path, str(exc))
                    continue
                self._chunks[path.name] = {"rows": len(keys), "checksum": _checksum(data)}
                self._write_index()
        for name in list(self._chunks):
            path = self.dir / name
            try:
                with np.load(path, allow_pickle=False) as z:
                    keys = z["keys"]
                if len(keys) != self._chunks[name]["rows"]:
                    raise ValueError(f"{len(keys)} keys, index says {self._chunks[name]['rows']}")
            except Exception as exc:
                self._corrupt(path, f"{path}: unreadable chunk ({exc})")
                continue
            for row, key in enumerate(keys.tolist()):
                self._where[key] = (name, row)

    def _clean_tmp(self) -> None:
        now = time.time()
        for tmp in self.dir.glob("*.tmp-*"):
            try:
                if now - tmp.stat().st_mtime > 600:
                    tmp.unlink()
            except OSError:
                pass

    def _read_index(self) -> dict[str, dict[str, Any]]:
        path = self.dir / "index.json"
        if not path.is_file():
            return {}
        try:
            data = json.loads(path.read_text())
            return dict(data["chunks"])
        except Exception as exc:
            warnings.warn(f"{path}: unreadable index ({exc}); rebuilding it from the chunk files", CacheWarning, stacklevel=4)
            return {}

    def _write_index(self) -> None:
        merged = self._read_index()  # keep chunks another process added meanwhile
        merged = {k: v for k, v in merged.items() if (self.dir / k).is_file()}
        merged.update(self._chunks)
        payload = {"format": CACHE_FORMAT, "key": self.spec.key(), "chunks": merged}
        atomic_write_bytes(self.dir / "index.json", json.dumps(payload, indent=0).encode())

    def _decode_chunk(self, path: Path, data: bytes) -> tuple[np.ndarray, np.ndarray]:
        try:
            with np.load(io.BytesIO(data), allow_pickle=False) as z:
                keys, vecs = z["keys"], z["features"]
        except Exception as exc:
            raise CacheCorruptError(f"{path}: unreadable chunk ({type(exc).__name__}: {exc})") from exc
        if vecs.ndim != 2 or vecs.shape[1] != self.spec.dim or len(keys) != len(vecs):
            raise CacheCorruptError(f"{path}: chunk holds {vecs.shape} features for {len(keys)} keys, expected dim {self.spec.dim}")
        return keys, vecs

    def _corrupt(self, path: Path, message: str) -> None:
        if self.on_corrupt == "error":
            raise CacheCorruptError(f"{message}. Delete the file (its pictures are then recomputed) or the cache {self.dir}.")
        bad = self.dir / "corrupt"
        bad.mkdir(exist_ok=True)
        try:
            os.replace(path, bad / path.name)
        except OSError:
            pass
        self._chunks.pop(path.name, None)
        self._loaded.pop(path.name, None)
        self._where = {k: v for k, v in self._where.items() if v[0] != path.name}
        self._write_index()
        warnings.warn(f"{message}; moved to {bad / path.name}, its pictures will be recomputed", CacheWarning, stacklevel=4)
        log.warning("%s; moved to %s", message, bad / path.name)

    # -- queries
    def check(self, spec: BackboneSpec) -> None:
        if spec.key() != self.spec.key():
            raise CacheMismatchError(
                f"{self.dir} caches {self.spec.name!r}/{self.spec.feature!r} (key {self.spec.key()}), "
                f"but the embedder is {spec.name!r}/{spec.feature!r} (key {spec.key()})"
            )

    def __len__(self) -> int:
        return len(self._where) + len(self._buf_keys)

    def __contains__(self, key: str) -> bool:
        return key in self._where or key in self._buf_keys

    def _chunk_features(self, name: str) -> np.ndarray | None:
        if name in self._loaded:
            return self._loaded[name]
        path = self.dir / name
        try:
            data = path.read_bytes()
        except OSError as exc:
            self._corrupt(path, f"{path}: cannot read chunk ({exc})")
            return None
        if _checksum(data) != self._chunks[name]["checksum"]:
            self._corrupt(path, f"{path}: chunk checksum mismatch (file modified or truncated)")
            return None
        try:
            keys, vecs = self._decode_chunk(path, data)
        except CacheCorruptError as exc:
            self._corrupt(path, str(exc))
            return None
        if len(self._loaded) >= 8:
            self._loaded.pop(next(iter(self._loaded)))
        self._loaded[name] = vecs
        return vecs

    def get_many(self, keys: Sequence[str]) -> dict[str, np.ndarray]:
        """The cached vectors among ``keys`` (missing ones are absent from the result)."""
        found: dict[str, np.ndarray] = {}
        by_chunk: dict[str, list[tuple[str, int]]] = {}
        for key in keys:
            if key in self._where:
                name, row = self._where[key]
                by_chunk.setdefault(name, []).append((key, row))
        for name, items in by_chunk.items():
            vecs = self._chunk_features(name)
            if vecs is None:
                continue
            for key, row in items:
                found[key] = vecs[row]
        buf = dict(zip(self._buf_keys, self._buf_vecs))
        for key in keys:
            if key not in found and key in buf:
                found[key] = buf[key]
        return found

    def get(self, key: str) -> np.ndarray | None:
        return self.get_many([key]).get(key)

    # -- updates
    def put(self, keys: Sequence[str], vectors: np.ndarray) -> None:
        vectors = np.asarray(vectors, dtype=np.float32)
        if vectors.ndim != 2 or vectors.shape[1] != self.spec.dim or len(vectors) != len(keys):
            raise ValueError(f"expected ({len(keys)}, {self.spec.dim}) vectors, got {vectors.shape}")
        for key, vec in zip(keys, vectors):
            if key is None or not np.all(np.isfinite(vec)):
                continue
            self._buf_keys.append(str(key))
            self._buf_vecs.append(vec)
        if len(self._buf_keys) >= self.chunk_size:
            self.flush()

    def flush(self) -> None:
        """Write buffered vectors as one chunk (atomic) and record it in the index."""
        if not self._buf_keys:
            return
        keys = np.asarray(self._buf_keys)
        vecs = np.stack(self._buf_vecs).astype(np.float32)
        bio = io.BytesIO()
        np.savez(bio, keys=keys, features=vecs)
        data = bio.getvalue()
        name = f"chunk-{time.strftime('%Y%m%d%H%M%S')}-{os.getpid()}-{uuid.uuid4().hex[:8]}.npz"
        atomic_write_bytes(self.dir / name, data)
        self._chunks[name] = {"rows": len(keys), "checksum": _checksum(data)}
        for row, key in enumerate(self._buf_keys):
            self._where[key] = (name, row)
        self._buf_keys, self._buf_vecs = [], []
        self._write_index()

    def close(self) -> None:
        self.flush()

    def __enter__(self) -> "EmbeddingCache":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


def _checksum(data: bytes) -> str:
    return hashlib.blake2b(data, digest_size=16).hexdigest()
