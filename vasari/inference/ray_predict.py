"""Predictions for a whole collection as Parquet shards (`vasari predict SOURCE... --out DIR`),
with the local engine or in Ray actors (`--engine ray`).

Each actor (``PredictActor``) holds one onnxruntime session over the graph the driver exported
(``vasari.features.ray_engine``) and a ``Predictor`` loaded from the bundle folder (cropping museum photos when asked), which every
worker must see at the same path (the default bundle ships inside the package). It runs
``Predictor.predict_paths``, the local predictor's own path, so each row is the object the local
predictor gives for that picture. Shards are written by the driver as for embeddings
(``vasari.features.shards``): one row per picture, contract fields as JSON strings; a picture
that cannot be read is a row whose ``error`` is set.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from vasari.features.collection import CollectionConfig, artwork_ids
from vasari.features.shards import RowBatch, ShardPlan, ShardSet, prediction_table
from vasari.inference.predictor import Predictor


def prediction_identity(predictor: Predictor, top_k: int) -> dict[str, Any]:
    """What makes two prediction shard folders comparable: the bundle (its backbone spec and
    creation time) and ``top_k``."""
    bundle = predictor.bundle
    spec = bundle.spec
    return {"kind": "predictions", "key": f"{spec.key()}@{bundle.created}/top{top_k}", "backbone": spec.name,
            "feature": spec.feature, "dim": int(spec.dim), "views": spec.views,
            "bundle": str(bundle.path) if bundle.path else None, "created": bundle.created, "top_k": top_k}


class PredictActor:
    """One onnxruntime session and one ``Predictor`` per actor: ``{"row", "image"}`` batches ->
    the prediction objects as JSON strings, and the node that computed them."""

    def __init__(self, model: list[Any], spec: dict[str, Any], threads: int, bundle: str, top_k: int,
                 crop: bool = False):
        import ray

        from vasari.features.ray_engine import actor_embedder

        self.predictor = Predictor.load(bundle, embedder=actor_embedder(model, spec, threads), crop=crop)
        self.top_k = top_k
        self.node = ray.get_runtime_context().get_node_id()

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        objects = self.predictor.predict_paths([str(p) for p in batch["image"]], top_k=self.top_k)
        return {"row": batch["row"],
                "prediction": np.asarray([json.dumps(o, ensure_ascii=False) for o in objects], dtype=object),
                "node": np.asarray([self.node] * len(objects), dtype=object)}


def predict_to_shards(predictor: Predictor, paths: Sequence[str], ids: Sequence[str] | None, out_dir: str | Path,
                      top_k: int = 3, config: CollectionConfig | None = None) -> tuple[dict[str, Any], int]:
    """Predict ``paths`` into prediction shards in ``out_dir`` (skipping the shards a previous
    run completed); returns (the manifest, pictures that could not be read in this run)."""
    from vasari.features.embedder import _progress

    config = config or CollectionConfig()
    paths = [str(p) for p in paths]
    shards = ShardSet(out_dir, prediction_identity(predictor, top_k), paths, artwork_ids(paths, ids),
                      config.shard_size, prediction_table)
    pending = shards.pending()
    failed = 0
    with _progress(True, total=sum(p.stop - p.start for p in pending), cached=shards.n_done_inputs) as advance:
        for batch in _prediction_batches(predictor, paths, pending, top_k, config):
            shards.add(batch)
            failed += sum(1 for o in batch.values if "error" in o)
            advance(len(batch.rows))
    return shards.finish(), failed


def _prediction_batches(predictor: Predictor, paths: list[str], plans: Sequence[ShardPlan], top_k: int,
                        config: CollectionConfig) -> Iterator[RowBatch]:
    if config.engine != "ray":
        for plan in plans:
            objects = predictor.predict_paths(paths[plan.start:plan.stop], top_k=top_k)
            yield RowBatch(rows=list(range(plan.start, plan.stop)), values=objects)
        return
    from vasari.features.ray_engine import actor_kwargs, ray_session, run_actor_pool, split_by_node

    rows = [i for plan in plans for i in range(plan.start, plan.stop)]
    with ray_session(config.ray) as ray:
        kwargs = {**actor_kwargs(ray, predictor.embedder, config.ray), "bundle": str(predictor.bundle.path),
                  "top_k": top_k, "crop": predictor.crop}
        for out in run_actor_pool(ray, PredictActor, kwargs, paths, rows, config.ray):
            for batch in split_by_node(out, values="prediction"):
                batch.values = [json.loads(s) for s in batch.values]
                yield batch
