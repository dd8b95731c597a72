"""Embedding a whole collection with either engine: into Parquet shards (resumable shard by
shard) or into one ``EmbedResult`` (the ``.npz``).

Both engines hand over results as ``RowBatch``es (input indices, vectors, errors), so one sink
writes the shards whichever engine computed them: the local engine embeds one pending shard at
a time with ``Embedder.embed_paths`` (threads decoding ahead of the network), the Ray engine
(``vasari.features.ray_engine``) streams every pending input through its actor pool at once
(``ray.init`` and the actors' start are paid once per run, not per shard).

The embedding cache behaves the same with either engine: the local engine reads and fills it
inside ``embed_paths``; for Ray the driver looks every picture up by content first, sends only
the misses to the actors and stores the vectors that come back.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from vasari.features.cache import EmbeddingCache, safe_content_key
from vasari.features.embedder import EmbedResult, Embedder, _progress
from vasari.features.ray_engine import RayConfig
from vasari.features.shards import RowBatch, ShardPlan, ShardSet, embedding_identity, embedding_table

#: ``--engine`` values that run locally (the inference engine of ``Embedder``) and the Ray one
ENGINES = ("auto", "onnx", "torch", "ray")
DEFAULT_SHARD_SIZE = 4096


@dataclass
class CollectionConfig:
    """How a collection is embedded: ``engine`` (``ENGINES``: "ray" runs onnxruntime in Ray
    actors, configured by ``ray``; the others run in this process), ``shard_size`` (inputs per
    Parquet shard: the unit of resumption), ``batch_size`` (pictures per forward pass) and
    ``workers`` (decoding threads of the local engine; None: its default)."""

    engine: str = "auto"
    ray: RayConfig = field(default_factory=RayConfig)
    shard_size: int = DEFAULT_SHARD_SIZE
    batch_size: int = 32
    workers: int | None = None

    def __post_init__(self) -> None:
        if self.engine not in ENGINES:
            raise ValueError(f"engine must be one of {', '.join(ENGINES)}, got {self.engine!r}")
        if self.shard_size < 1:
            raise ValueError(f"shard size must be at least 1, got {self.shard_size}")

    @property
    def local_engine(self) -> str:
        """The ``Embedder`` engine on the driver: the Ray engine ships the ONNX export."""
        return "onnx" if self.engine == "ray" else self.engine


def artwork_ids(paths: Sequence[str], ids: Sequence[str] | None) -> list[str | None]:
    """The ``artwork_id`` column: the catalog id, None where the source only knew the path."""
    if ids is None:
        return [None] * len(paths)
    return [None if ident == path else ident for path, ident in zip(paths, ids)]


def embed_to_shards(embedder: Embedder, paths: Sequence[str], ids: Sequence[str] | None, out_dir: str | Path,
                    cache: EmbeddingCache | None = None, config: CollectionConfig | None = None,
                    progress: bool = True) -> dict[str, Any]:
    """Embed ``paths`` into Parquet shards in ``out_dir`` (``vasari.features.shards``), skipping
    the shards a previous run completed; returns the manifest."""
    config = config or CollectionConfig()
    paths = [str(p) for p in paths]
    shards = ShardSet(out_dir, embedding_identity(embedder.spec), paths, artwork_ids(paths, ids),
                      config.shard_size, embedding_table)
    pending = shards.pending()
    with _progress(progress, total=sum(p.stop - p.start for p in pending), cached=shards.n_done_inputs) as advance:
        for batch in engine_batches(embedder, paths, pending, cache, config):
            shards.add(batch)
            advance(len(batch.rows) + len(batch.errors))
    return shards.finish()


def embed_to_result(embedder: Embedder, paths: Sequence[str], cache: EmbeddingCache | None = None,
                    config: CollectionConfig | None = None, progress: bool = True) -> EmbedResult:
    """Embed ``paths`` with either engine into one ``EmbedResult`` (what the ``.npz`` holds)."""
    config = config or CollectionConfig()
    paths = [str(p) for p in paths]
    features = np.full((len(paths), embedder.dim), np.nan, dtype=np.float32)
    errors: dict[int, str] = {}
    codes: dict[int, str] = {}
    whole = [ShardPlan(0, 0, len(paths), "")]
    with _progress(progress, total=len(paths)) as advance:
        for batch in engine_batches(embedder, paths, whole, cache, config):
            if batch.rows:
                features[batch.rows] = batch.values
            errors.update(batch.errors)
            codes.update(batch.codes)
            advance(len(batch.rows) + len(batch.errors))
    return EmbedResult(features=features, errors=dict(sorted(errors.items())), spec=embedder.spec, codes=codes,
                       n_computed=len(paths) - len(errors))


def engine_batches(embedder: Embedder, paths: list[str], plans: Sequence[ShardPlan],
                   cache: EmbeddingCache | None, config: CollectionConfig) -> Iterator[RowBatch]:
    """The results for the inputs of ``plans``, from the configured engine."""
    if config.engine != "ray":
        for plan in plans:
            result = embedder.embed_paths(paths[plan.start:plan.stop], cache=cache, batch_size=config.batch_size,
                                          progress=False, workers=config.workers)
            yield _local_batch(plan.start, result)
        return
    from vasari.features.ray_engine import ray_embedding_batches, ray_session

    rows = [i for plan in plans for i in range(plan.start, plan.stop)]
    keys: dict[int, str] = {}
    if cache is not None:
        cached, rows, keys = _split_cached(cache, embedder, paths, rows)
        yield cached
    if not rows:  # all cached: no Ray to start
        return
    try:
        with ray_session(config.ray) as ray:
            for batch in ray_embedding_batches(ray, embedder, paths, rows, config.ray):
                if cache is not None and batch.rows:
                    cache.put([keys[i] for i in batch.rows], np.asarray(batch.values))
                yield batch
    finally:  # interrupted too: keep what was computed
        if cache is not None:
            cache.flush()


def _local_batch(start: int, result: EmbedResult) -> RowBatch:
    ok = np.flatnonzero(result.ok)
    return RowBatch(rows=(ok + start).tolist(), values=result.features[ok],
                    errors={start + i: m for i, m in result.errors.items()},
                    codes={start + i: c for i, c in result.codes.items()})


def _split_cached(cache: EmbeddingCache, embedder: Embedder, paths: list[str],
                  rows: list[int]) -> tuple[RowBatch, list[int], dict[int, str]]:
    """(the cached vectors and unreadable files as one batch, the rows still to compute, each
    row's content key), looked up by content like ``Embedder.embed_paths`` does."""
    cache.check(embedder.spec)
    with ThreadPoolExecutor(max_workers=4, thread_name_prefix="vasari-hash") as pool:
        keys = dict(zip(rows, pool.map(safe_content_key, [paths[i] for i in rows])))
    errors = {i: k[1:] for i, k in keys.items() if k.startswith("!")}
    hits = cache.get_many([k for i, k in keys.items() if i not in errors])
    found = [i for i in rows if i not in errors and keys[i] in hits]
    todo = [i for i in rows if i not in errors and keys[i] not in hits]
    values = np.stack([hits[keys[i]] for i in found]) if found else np.zeros((0, embedder.dim), np.float32)
    batch = RowBatch(rows=found, values=values, errors=errors, codes=dict.fromkeys(errors, "unreadable"))
    return batch, todo, keys
