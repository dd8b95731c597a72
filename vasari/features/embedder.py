"""Embeddings: pictures -> feature vectors, fast, cached and resumable.

``Embedder`` runs a backbone (see ``vasari.features.backbones``) with onnxruntime (the exported graph
is cached once per backbone + feature + preprocessing in the user cache dir) or with torch
(the fallback, and the CUDA path). ``embed_paths`` decodes pictures in a thread pool while
the network runs on the previous batch, so decoding hides behind inference.

``EmbeddingCache`` keeps vectors keyed by the image *content* (blake2b of the file bytes)
for one ``BackboneSpec``:

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
import shutil
import time
import uuid
import warnings
from collections import deque
from collections.abc import Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageOps

from vasari.core.fileio import atomic_write_bytes
from vasari.core.images import ImageError, load_image
from vasari.errors import CacheError
from vasari.features.backbones import (
    DEFAULT_BACKBONE,
    DEFAULT_FEATURE,
    BackboneError,
    BackboneSpec,
    Preprocess,
    backbone_spec,
    default_cache_dir,
    export_onnx,
    onnx_path,
)

__all__ = [
    "BackboneSpec",
    "CacheCorruptError",
    "CacheMismatchError",
    "CacheWarning",
    "EmbedResult",
    "Embedder",
    "EmbeddingCache",
    "Preprocess",
    "content_key",
    "default_cache_dir",
    "embed_paths",
    "load_embeddings",
    "multicrops",
    "save_embeddings",
]

log = logging.getLogger(__name__)


def _cpu_count() -> int:
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not Linux
        return max(1, os.cpu_count() or 1)


# --------------------------------------------------------------------------- engines


class OnnxEngine:
    """onnxruntime over the exported graph: ``(N, H, W, 3)`` uint8 -> ``(N, dim)`` float32.

    On CPU the batch is cut into micro-batches (``micro_batch``, default 1: small batches keep
    the activations in cache; measured on the 2-core EPYC here, batch 1 costs ~12.5 ms of CPU
    per picture, batch 32 ~20 ms) that run on ``streams`` concurrent single-threaded calls of
    one session (no intra-op barriers: each core runs its own picture). ``streams=1`` with
    ``threads>1`` uses onnxruntime's intra-op thread pool instead. Thread spinning is off
    by default: on a shared machine spinning threads burn the CPU that decoding needs.
    """

    name = "onnx"

    def __init__(self, path: Path, threads: int | None = None, device: str | None = None,
                 streams: int | None = None, micro_batch: int | None = None, spinning: bool = False):
        import onnxruntime as ort

        threads = threads or _cpu_count()
        use_cuda = device != "cpu" and "CUDAExecutionProvider" in ort.get_available_providers()
        if streams is None:
            streams = 1 if use_cuda else threads
        streams = max(1, min(int(streams), threads))
        opts = ort.SessionOptions()
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        opts.intra_op_num_threads = max(1, threads // streams)
        opts.inter_op_num_threads = 1
        opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        opts.log_severity_level = 3
        opts.add_session_config_entry("session.intra_op.allow_spinning", "1" if spinning else "0")
        providers = ["CUDAExecutionProvider", "CPUExecutionProvider"] if use_cuda else ["CPUExecutionProvider"]
        self.session = ort.InferenceSession(str(path), opts, providers=providers)
        self.providers = self.session.get_providers()
        self.device = "cuda" if self.providers[0] == "CUDAExecutionProvider" else "cpu"
        self.input_name = self.session.get_inputs()[0].name
        self.threads = threads
        self.streams = streams if self.device == "cpu" else 1
        self.micro_batch = int(micro_batch or (1 if self.device == "cpu" else 64))
        self._pool = ThreadPoolExecutor(self.streams, thread_name_prefix="vasari-ort") if self.streams > 1 else None

    def _run(self, x: np.ndarray) -> np.ndarray:
        return self.session.run(None, {self.input_name: x})[0]

    def __call__(self, x: np.ndarray) -> np.ndarray:
        mb = self.micro_batch
        if len(x) <= mb:
            return self._run(x)
        parts = [x[i:i + mb] for i in range(0, len(x), mb)]
        outs = list(self._pool.map(self._run, parts)) if self._pool else [self._run(p) for p in parts]
        return np.concatenate(outs, axis=0)

    def describe(self) -> str:
        if self.device != "cpu":
            return f"onnxruntime {self.providers[0]}"
        return (f"onnxruntime CPU, {self.streams} stream(s) x {self.threads // self.streams} thread(s), "
                f"micro-batch {self.micro_batch}")


class TorchEngine:
    """torch module (``inference_module``: uint8 NHWC in) on cpu or cuda."""

    name = "torch"

    def __init__(self, net: Any, device: str | None = None, threads: int | None = None):
        import torch

        if device is None:
            device = "cuda" if torch.cuda.is_available() else "cpu"
        self.device = device
        self.net = net.to(device).eval()
        self.threads = threads
        if threads and device == "cpu":
            torch.set_num_threads(threads)

    def describe(self) -> str:
        return f"torch {self.device}"

    def __call__(self, x: np.ndarray) -> np.ndarray:
        import torch

        with torch.inference_mode():
            out = self.net(torch.from_numpy(x).to(self.device, non_blocking=True))
        return out.float().cpu().numpy()


def _has_nvidia() -> bool:
    return Path("/proc/driver/nvidia").exists() or shutil.which("nvidia-smi") is not None


# --------------------------------------------------------------------------- results


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


# --------------------------------------------------------------------------- embedder


class Embedder:
    """Backbone features for pictures.

    ``engine``: ``"onnx"`` (onnxruntime; CUDA provider when available), ``"torch"``, or
    ``"auto"`` (onnxruntime unless only torch can use an NVIDIA GPU here; torch if the ONNX
    export or onnxruntime fails). ``device``: ``None`` (auto), ``"cpu"`` or ``"cuda"``.
    ``threads``: inference threads (default: all usable cores); ``streams`` and
    ``micro_batch``: see ``OnnxEngine``. ``cache_dir``: where the ONNX export is cached
    (default ``default_cache_dir()``). ``views``: the test-time views averaged into each
    picture's vector (``vasari.features.backbones.VIEWS``: "center", "flip" or "multicrop"); they are
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
            if device == "cuda" or (device is None and _has_nvidia()):
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
        from onnxruntime.capi.onnxruntime_pybind11_state import Fail, InvalidGraph, InvalidProtobuf

        path = onnx_path(self.spec, self._cache_dir)
        if not path.is_file():
            return OnnxEngine(export_onnx(self.spec, path), threads=self.threads, device=device, **self._engine_options)
        try:
            return OnnxEngine(path, threads=self.threads, device=device, **self._engine_options)
        except (InvalidProtobuf, InvalidGraph, Fail) as exc:
            warnings.warn(f"{path}: cached ONNX export cannot be loaded ({exc}); exporting it again",
                          CacheWarning, stacklevel=4)
        path = export_onnx(self.spec, path, replace=True)
        return OnnxEngine(path, threads=self.threads, device=device, **self._engine_options)

    def _torch_engine(self, device: str | None) -> TorchEngine:
        from vasari.features.backbones import inference_module

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
            arrays = [self.prepare_views(_rgb(img)) for img in chunk]
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
        workers = workers or max(2, _cpu_count())
        n_cached = 0
        pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="vasari-decode")
        try:
            # Which pictures need the network? (cache lookup by content hash)
            groups: dict[str, list[int]] = {}
            if cache is not None:
                cache.check(self.spec)
                keys = list(pool.map(_safe_content_key, paths))
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


def multicrops(img: Image.Image, side: int, size: int) -> np.ndarray:
    """Four corner and one centre ``size`` x ``size`` crops of an RGB picture resized (bicubic)
    so that its shorter side is ``side``: ``(5, size, size, 3)`` uint8. At ``side = 2 * size``
    each crop sees a quarter of the picture at twice the centre crop's resolution."""
    w, h = img.size
    scale = side / min(w, h)
    img = img.resize((max(side, round(w * scale)), max(side, round(h * scale))), Image.BICUBIC)
    a = np.asarray(img)
    H, W = a.shape[:2]
    boxes = [(0, 0), (0, W - size), (H - size, 0), (H - size, W - size), ((H - size) // 2, (W - size) // 2)]
    return np.stack([a[y:y + size, x:x + size] for y, x in boxes])


def _rgb(img: Image.Image) -> Image.Image:
    from vasari.core.images import _to_rgb

    try:
        img = ImageOps.exif_transpose(img)
    except Exception:
        pass
    return _to_rgb(img)


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
        from rich.progress import BarColumn, MofNCompleteColumn, TextColumn, TimeElapsedColumn, TimeRemainingColumn

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


# --------------------------------------------------------------------------- cache


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


def _safe_content_key(path: str) -> str:
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
        """The per-spec cache under the user cache dir (``<cache>/embeddings/<spec key>``)."""
        return cls(default_cache_dir() / "embeddings" / spec.key(), spec, **kwargs)

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
