"""Embeddings: pictures -> feature vectors, fast, cached and resumable.

``Embedder`` runs a backbone (see ``vasari.features.spec``) with onnxruntime (the exported graph
is cached once per backbone + feature + preprocessing in the user cache dir) or with torch
(the fallback, and the CUDA path); the engines are in ``vasari.features.engines``.
``embed_paths`` decodes pictures in a thread pool while the network runs on the previous batch,
so decoding hides behind inference. Vectors are kept across runs by ``EmbeddingCache``
(``vasari.features.cache``).
"""

from __future__ import annotations

import io
import json
import time
import warnings
from collections import deque
from collections.abc import Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from vasari.core.fileio import atomic_write_bytes
from vasari.core.images import ImageError, load_image
from vasari.features.cache import CacheWarning, EmbeddingCache, safe_content_key
from vasari.features.engines import OnnxEngine, TorchEngine, has_nvidia, usable_cpus
from vasari.features.defaults import DEFAULT_BACKBONE, DEFAULT_FEATURE
from vasari.features.resolve import backbone_spec
from vasari.features.spec import BackboneError, BackboneSpec, Preprocess, onnx_path
from vasari.features.transforms import multicrops, upright_rgb

__all__ = ["EmbedResult", "Embedder", "embed_paths", "load_embeddings", "save_embeddings"]


@dataclass
class EmbedResult:
    """``features[i]`` is the vector of ``paths[i]``; a failed picture gives a NaN row and
    ``errors[i]`` (a message naming the file)."""

    features: np.ndarray
    errors: dict[int, str] = field(default_factory=dict)
    spec: BackboneSpec | None = None
    #: per failed picture, the ``ImageError`` code ("unreadable" for anything else)
    codes: dict[int, str] = field(default_factory=dict)
    n_cached: int = 0
    n_computed: int = 0
    seconds: float = 0.0

    @property
    def ok(self) -> np.ndarray:
        """Boolean mask of the rows that were embedded."""
        mask = np.ones(len(self.features), dtype=bool)
        mask[list(self.errors)] = False
        return mask


def _export_onnx(spec: BackboneSpec, path: Path, replace: bool = False) -> Path:
    """``nets.export_onnx``, importing torch only when a graph must actually be exported."""
    from vasari.features.nets import export_onnx

    return export_onnx(spec, path, replace=replace)


# --------------------------------------------------------------------------- embedder


class Embedder:
    """Backbone features for pictures.

    ``engine``: ``"onnx"`` (onnxruntime; CUDA provider when available), ``"torch"``, or
    ``"auto"`` (onnxruntime unless only torch can use an NVIDIA GPU here; torch if the ONNX
    export or onnxruntime fails). ``device``: ``None`` (auto), ``"cpu"`` or ``"cuda"``.
    ``threads``: inference threads (default: all usable cores); ``streams`` and
    ``micro_batch``: see ``OnnxEngine``. ``cache_dir``: where the ONNX export is cached
    (default ``default_cache_dir()``). ``views``: the test-time views averaged into each
    picture's vector (``vasari.features.spec.VIEWS``: "center", "flip" or "multicrop"); they are
    part of ``spec`` (and so of its cache key and of a bundle trained on these features).
    """

    def __init__(
        self,
        backbone: str = DEFAULT_BACKBONE,
        feature: str = DEFAULT_FEATURE,
        engine: str = "auto",
        device: str | None = None,
        threads: int | None = None,
        cache_dir: Path | None = None,
        streams: int | None = None,
        micro_batch: int | None = None,
        views: str = "center",
    ):
        if engine not in ("auto", "onnx", "torch"):
            raise ValueError(f"engine must be 'auto', 'onnx' or 'torch', got {engine!r}")
        self.spec = backbone_spec(backbone, feature).with_views(views)
        self.preprocess: Preprocess = self.spec.preprocess
        self.threads = threads
        self._engine_options = {"streams": streams, "micro_batch": micro_batch}
        self._cache_dir = Path(cache_dir) if cache_dir else None
        self.engine = self._make_engine(engine, device)

    # -- engines
    def _make_engine(self, engine: str, device: str | None) -> OnnxEngine | TorchEngine:
        if engine == "torch":
            return self._torch_engine(device)
        if engine == "auto":
            if device == "cuda" or (device is None and has_nvidia()):
                try:
                    import onnxruntime as ort

                    ort_cuda = "CUDAExecutionProvider" in ort.get_available_providers()
                except ImportError:
                    ort_cuda = False
                if not ort_cuda:
                    import torch

                    if torch.cuda.is_available():
                        return self._torch_engine("cuda")
            try:
                return self._onnx_engine(device)
            except BackboneError:
                raise
            except Exception as exc:  # onnxruntime missing or export failure
                warnings.warn(f"onnxruntime unavailable ({exc}); falling back to torch", RuntimeWarning, stacklevel=3)
                return self._torch_engine(device)
        return self._onnx_engine(device)

    def _onnx_engine(self, device: str | None) -> OnnxEngine:
        """The cached ONNX export (made on first use). A cached file onnxruntime cannot load
        (truncated, damaged) is exported again in place: otherwise "auto" would quietly fall
        back to torch for good (slower, twice the memory)."""
        from onnxruntime.capi.onnxruntime_pybind11_state import (
            Fail,
            InvalidGraph,
            InvalidProtobuf,
        )


        path = onnx_path(self.spec, self._cache_dir)
        if not path.is_file():
            return OnnxEngine(_export_onnx(self.spec, path), threads=self.threads, device=device, **self._engine_options)
        try:
            return OnnxEngine(path, threads=self.threads, device=device, **self._engine_options)
        except (InvalidProtobuf, InvalidGraph, Fail) as exc:
            warnings.warn(f"{path}: cached ONNX export cannot be loaded ({exc}); exporting it again",
                          CacheWarning, stacklevel=4)
        path = _export_onnx(self.spec, path, replace=True)
        return OnnxEngine(path, threads=self.threads, device=device, **self._engine_options)

    def _torch_engine(self, device: str | None) -> TorchEngine:
        from vasari.features.nets import inference_module

        return TorchEngine(inference_module(self.spec), device=device, threads=self.threads)

    @property
    def dim(self) -> int:
        return self.spec.dim

    @property
    def views(self) -> str:
        return self.spec.views

    # -- arrays
    def prepare(self, img: Image.Image) -> np.ndarray:
        """A decoded RGB picture -> ``(size, size, 3)`` uint8 network-size centre crop."""
        return self.preprocess.to_uint8(img)

    def prepare_views(self, img: Image.Image) -> np.ndarray:
        """A decoded RGB picture -> ``(k, size, size, 3)`` uint8: the ``views`` of it (the
        centre crop; + its mirror for "flip"; + ``multicrops`` for "multicrop")."""
        center = self.prepare(img)
        if self.views == "center":
            return center[None]
        both = np.stack([center, center[:, ::-1]])
        if self.views == "flip":
            return both
        size = self.preprocess.size
        return np.concatenate([both, multicrops(img, 2 * size, size)])

    def load(self, source: str | Path | bytes) -> np.ndarray:
        """Decode a file or bytes (reduced-size JPEG decoding, ``BackboneSpec.draft_min_side``)
        into its ``(k, size, size, 3)`` views: exactly the pixels ``embed_paths`` uses."""
        return self.prepare_views(load_image(source, min_side=self.spec.draft_min_side))

    def embed_sources(self, sources: Sequence[str | Path | bytes]) -> np.ndarray:
        """Files or raw bytes -> features, decoded like ``embed_paths`` (raises ImageError)."""
        if not sources:
            return np.zeros((0, self.dim), dtype=np.float32)
        return self.forward_views(np.stack([self.load(s) for s in sources]))

    def forward(self, batch: np.ndarray) -> np.ndarray:
        """``(N, size, size, 3)`` uint8 crops -> ``(N, dim)`` float32 features (one view each)."""
        x = np.ascontiguousarray(batch, dtype=np.uint8)
        if len(x) == 0:
            return np.zeros((0, self.dim), dtype=np.float32)
        return np.asarray(self.engine(x), dtype=np.float32)

    def forward_views(self, batch: np.ndarray) -> np.ndarray:
        """``(N, k, size, size, 3)`` uint8 views -> ``(N, dim)`` float32: the mean of each
        picture's ``k`` view features (for "multicrop" 2/7 of the centre/mirror mean plus 5/7
        of the five crops' mean)."""
        n, k = batch.shape[:2]
        if n == 0:
            return np.zeros((0, self.dim), dtype=np.float32)
        feats = self.forward(batch.reshape(n * k, *batch.shape[2:]))
        if k == 1:
            return feats
        return feats.reshape(n, k, -1).mean(axis=1, dtype=np.float32)

    def embed_images(self, images: Sequence[Image.Image], batch_size: int = 32) -> np.ndarray:
        """Already-open pictures (any mode, EXIF orientation applied) -> ``(N, dim)`` float32."""
        out = np.zeros((len(images), self.dim), dtype=np.float32)
        for start in range(0, len(images), batch_size):
            chunk = images[start:start + batch_size]
            arrays = [self.prepare_views(upright_rgb(img)) for img in chunk]
            out[start:start + len(chunk)] = self.forward_views(np.stack(arrays))
        return out

    # -- files
    def embed_paths(
        self,
        paths: Sequence[str | Path],
        cache: "EmbeddingCache | None" = None,
        batch_size: int = 32,
        progress: bool = True,
        workers: int | None = None,
        prefetch: int = 2,
    ) -> EmbedResult:
        """Embed image files; never aborts on a bad picture (NaN row + ``errors[i]``).

        Decoding runs in ``workers`` threads, ``prefetch`` batches ahead of inference. With a
        ``cache``, pictures already embedded (same bytes, same spec: the views included) are
        not decoded again,
        new vectors are saved every ``cache.chunk_size`` rows and on interruption.
        """
        start_time = time.perf_counter()
        paths = [str(p) for p in paths]
        n = len(paths)
        features = np.full((n, self.dim), np.nan, dtype=np.float32)
        errors: dict[int, str] = {}
        codes: dict[int, str] = {}
        workers = workers or max(2, usable_cpus())
        n_cached = 0
        pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="vasari-decode")
        try:
            # Which pictures need the network? (cache lookup by content hash)
            groups: dict[str, list[int]] = {}
            if cache is not None:
                cache.check(self.spec)
                keys = list(pool.map(safe_content_key, paths))
                for i, key in enumerate(keys):
                    if key.startswith("!"):
                        codes[i], errors[i] = "unreadable", key[1:]
                    else:
                        groups.setdefault(key, []).append(i)
                hits = cache.get_many(list(groups))
                for key, vec in hits.items():
                    for i in groups.pop(key):
                        features[i] = vec
                        n_cached += 1
                todo = [(key, idx) for key, idx in groups.items()]
            else:
                todo = [(None, [i]) for i in range(n)]

            with _progress(progress, total=len(todo), cached=n_cached) as advance:
                n_done = self._run_pipeline(todo, paths, features, errors, codes, cache, pool, batch_size, prefetch,
                                            advance)
        finally:
            pool.shutdown(wait=False, cancel_futures=True)
            if cache is not None:
                cache.flush()
        return EmbedResult(
            features=features, errors=dict(sorted(errors.items())), spec=self.spec, codes=codes,
            n_cached=n_cached, n_computed=n_done, seconds=time.perf_counter() - start_time,
        )

    def _run_pipeline(self, todo, paths, features, errors, codes, cache, pool, batch_size, prefetch, advance) -> int:
        window = max(batch_size, batch_size * (prefetch + 1))
        pending: deque[tuple[str | None, list[int], Future]] = deque()
        it: Iterator[tuple[str | None, list[int]]] = iter(todo)

        def fill() -> None:
            while len(pending) < window:
                try:
                    key, idx = next(it)
                except StopIteration:
                    return
                pending.append((key, idx, pool.submit(self._load_safe, paths[idx[0]])))

        n_done = 0
        fill()
        while pending:
            batch, batch_keys, batch_idx = [], [], []
            while pending and len(batch) < batch_size:
                key, idx, fut = pending.popleft()
                arr, err = fut.result()
                if err is not None:
                    for i in idx:
                        codes[i], errors[i] = err
                    advance(1)
                    continue
                batch.append(arr)
                batch_keys.append(key)
                batch_idx.append(idx)
            fill()  # keep the decoders busy while the network runs
            if not batch:
                continue
            vecs = self.forward_views(np.stack(batch))
            for vec, idx in zip(vecs, batch_idx):
                features[idx] = vec
            if cache is not None:
                cache.put(batch_keys, vecs)
            n_done += len(batch)
            advance(len(batch))
        return n_done

    def _load_safe(self, path: str) -> tuple[np.ndarray | None, tuple[str, str] | None]:
        """(views, None), or (None, (error code, message naming the file))."""
        try:
            return self.load(path), None
        except ImageError as exc:
            return None, (exc.code, f"{exc} [{exc.code}]")
        except Exception as exc:  # never abort a run for one picture
            return None, ("unreadable", f"{path}: {type(exc).__name__}: {exc}")



def embed_paths(paths: Sequence[str | Path], backbone: str = DEFAULT_BACKBONE, feature: str = DEFAULT_FEATURE,
                cache: "EmbeddingCache | Path | str | None" = None, views: str = "center", **kwargs: Any) -> EmbedResult:
    """Convenience: ``Embedder(backbone, feature, views=views).embed_paths(paths, cache)``;
    ``cache`` may be a dir."""
    embedder = Embedder(backbone, feature, views=views)
    if cache is not None and not isinstance(cache, EmbeddingCache):
        cache = EmbeddingCache(Path(cache), embedder.spec)
    return embedder.embed_paths(paths, cache=cache, **kwargs)


def save_embeddings(out: str | Path, result: EmbedResult, paths: Sequence[str | Path],
                    ids: Sequence[str] | None = None) -> Path:
    """Write an ``EmbedResult`` as the ``vasari embed`` .npz (atomic): ``features``, ``paths``,
    ``ids``, ``ok``, ``errors`` (JSON index -> message) and ``spec`` (JSON)."""
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    bio = io.BytesIO()
    np.savez(
        bio,
        features=result.features,
        paths=np.asarray([str(p) for p in paths]),
        ids=np.asarray(list(ids) if ids is not None else [str(p) for p in paths]),
        ok=result.ok,
        errors=np.asarray(json.dumps({str(k): v for k, v in result.errors.items()})),
        spec=np.asarray(json.dumps(result.spec.to_dict() if result.spec else {})),
    )
    atomic_write_bytes(out, bio.getvalue())
    return out


def load_embeddings(path: str | Path) -> dict[str, Any]:
    """Read a ``vasari embed`` .npz: ``features``, ``paths``, ``ids``, ``ok``, ``errors``
    (dict index -> message) and ``spec`` (``BackboneSpec`` or None)."""
    with np.load(path, allow_pickle=False) as z:
        spec = json.loads(str(z["spec"]))
        return {
            "features": z["features"],
            "paths": [str(p) for p in z["paths"]],
            "ids": [str(p) for p in z["ids"]],
            "ok": z["ok"],
            "errors": {int(k): v for k, v in json.loads(str(z["errors"])).items()},
            "spec": BackboneSpec.from_dict(spec) if spec else None,
        }


class _progress:
    """A rich progress bar with img/s, or a no-op."""

    def __init__(self, enabled: bool, total: int, cached: int = 0):
        self.enabled = enabled and total > 0
        self.total = total
        self.cached = cached

    def __enter__(self):
        if not self.enabled:
            return lambda k: None
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            TextColumn,
            TimeElapsedColumn,
            TimeRemainingColumn,
        )

        from vasari.core.progress import make_progress

        self._t0 = time.perf_counter()
        self.progress = make_progress(
            TextColumn("[bold]embedding[/]"), BarColumn(), MofNCompleteColumn(),
            TextColumn("{task.fields[rate]} img/s"), TimeElapsedColumn(), TextColumn("eta"), TimeRemainingColumn(),
            TextColumn("{task.fields[note]}"),
            transient=False,
        )
        note = f"({self.cached} cached)" if self.cached else ""
        self.task = self.progress.add_task("embed", total=self.total, rate="-", note=note)
        self.progress.start()
        done = [0]

        def advance(k: int) -> None:
            done[0] += k
            dt = time.perf_counter() - self._t0
            self.progress.update(self.task, advance=k, rate=f"{done[0] / dt:.1f}" if dt > 0 else "-")

        return advance

    def __exit__(self, *exc) -> None:
        if self.enabled:
            self.progress.stop()
