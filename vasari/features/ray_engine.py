"""The Ray engine (`--engine ray`): the same embeddings as the local engine, computed by
onnxruntime sessions in Ray actors, on one machine or a cluster.

Ray Data runs the job: ``from_items`` of the input paths, ``map_batches`` with a callable class
(``EmbedActor``: one onnxruntime session per actor, built from the ONNX graph exported once on
the driver and shipped as bytes through the object store) on an actor pool
(``ActorPoolStrategy(size=workers)``), and the results stream back to the driver, which writes
them as Parquet shards (``vasari.features.shards``) or an ``.npz``. The driver writes so that
shards keep the input ranges that make a killed run resumable shard by shard; Ray's own
``write_parquet`` names files by task and cannot resume.

Workers need only onnxruntime, Pillow and vasari (no torch): each actor runs
``FinetunedEmbedder`` (an ``Embedder`` over a given ONNX file), so decoding and preprocessing
are exactly the local engine's and the vectors agree to float rounding.

Pitfalls measured here, and what this module does about them:
- an actor pool that takes every CPU starves Ray Data's other tasks and the job hangs
  (ray-project/ray#44687): actors ask for ``actor_cpus`` = 0.5 CPU each;
- ``map_batches(concurrency=)`` is deprecated since Ray 2.51: ``compute=ActorPoolStrategy``;
- Ray turns token authentication on by default: the local Ray this module starts sets
  ``RAY_AUTH_MODE=disabled`` unless the user set it (a cluster's address uses its own setting);
- ``ray.init`` costs seconds: the CLI uses this engine only when asked (``--engine ray``).

Ray is imported inside the functions: ``import vasari`` never loads it.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from vasari.errors import ModelError
from vasari.features.engines import usable_cpus
from vasari.features.shards import RowBatch
from vasari.features.spec import BackboneSpec, onnx_path

#: rows per Ray Data block handed to the actor pool at most (a million paths stay ~2,000 blocks)
MAX_BLOCKS = 2000


@dataclass
class RayConfig:
    """How the Ray engine runs.

    ``address``: an existing cluster (``ray start --head`` prints it; ``"auto"`` finds a local
    one); None starts a local Ray for this run and stops it after. ``workers``: actors (one
    onnxruntime session each; default: the cluster's CPUs). ``actor_cpus``: CPUs each actor
    reserves, below 1 so Ray Data's own tasks always find a CPU (see the module notes).
    ``threads``: inference threads per actor (default: the cluster's CPUs / workers, at least
    1, so the actors together do not oversubscribe the cores). ``batch_size``: pictures per
    actor call.
    """

    address: str | None = None
    workers: int | None = None
    actor_cpus: float = 0.5
    threads: int | None = None
    batch_size: int = 32

    def __post_init__(self) -> None:
        if self.workers is not None and self.workers < 1:
            raise ValueError(f"Ray workers must be at least 1, got {self.workers}")
        if not 0 < self.actor_cpus <= 64:
            raise ValueError(f"actor CPUs must be in (0, 64], got {self.actor_cpus}")
        if self.batch_size < 1:
            raise ValueError(f"batch size must be at least 1, got {self.batch_size}")


def require_ray() -> Any:
    """``ray`` with Ray Data, or a ModelError saying which extra installs it."""
    try:
        import ray
        import ray.data  # noqa: F401
    except ImportError as exc:
        raise ModelError("--engine ray needs Ray Data: pip install 'vasari-art[ray]'") from exc
    return ray


@contextmanager
def ray_session(config: RayConfig) -> Iterator[Any]:
    """Ray, connected: the running one (left running), the cluster at ``config.address``, or
    a local Ray started for this block (no dashboard, token auth off unless the user set
    ``RAY_AUTH_MODE``) and shut down after it."""
    ray = require_ray()
    _quiet_ray_data()
    if ray.is_initialized():
        yield ray
        return
    if config.address:
        ray.init(address=config.address, log_to_driver=False)
    else:
        os.environ.setdefault("RAY_AUTH_MODE", "disabled")
        ray.init(num_cpus=usable_cpus(), include_dashboard=False, log_to_driver=False)
    try:
        yield ray
    finally:
        ray.shutdown()


def _quiet_ray_data() -> None:
    """Ray Data's own progress bars and INFO lines would interleave with Vasari's progress bar."""
    import logging

    from ray.data import DataContext

    DataContext.get_current().enable_progress_bars = False
    logging.getLogger("ray.data").setLevel(logging.WARNING)


def onnx_file_of(embedder: Any) -> Path:
    """The ONNX graph an (onnxruntime) embedder runs: a fine-tuned bundle's own file, or the
    stock backbone's export cached when the embedder was built."""
    if getattr(embedder.engine, "name", None) != "onnx":
        raise ModelError("--engine ray ships the ONNX graph to the workers; the local embedder runs torch")
    own = getattr(embedder, "onnx_file", None)
    return Path(own) if own is not None else onnx_path(embedder.spec)


def actor_embedder(model: list[Any], spec: dict[str, Any], threads: int) -> Any:
    """The embedder an actor runs: the driver's ONNX bytes written to a private temp file,
    opened with the local engine's preprocessing (``FinetunedEmbedder`` takes any graph file)."""
    import ray

    from vasari.features.finetuned import FinetunedEmbedder

    folder = Path(tempfile.mkdtemp(prefix="vasari-ray-"))
    try:
        path = folder / "backbone.onnx"
        path.write_bytes(ray.get(model[0]))
        return FinetunedEmbedder(path, BackboneSpec.from_dict(spec), threads=threads)
    finally:  # the session holds the graph in memory: no file left behind per job
        shutil.rmtree(folder, ignore_errors=True)


class EmbedActor:
    """One onnxruntime session per actor: ``{"row", "image"}`` batches -> vectors (NaN rows for
    pictures that failed, with their message and code) and the node that computed them."""

    def __init__(self, model: list[Any], spec: dict[str, Any], threads: int):
        import ray

        self.embedder = actor_embedder(model, spec, threads)
        self.decoders = max(2, threads)
        self.node = ray.get_runtime_context().get_node_id()

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        paths = [str(p) for p in batch["image"]]
        result = self.embedder.embed_paths(paths, progress=False, workers=self.decoders)
        n = len(paths)
        return {
            "row": batch["row"],
            "vector": result.features,
            "error": np.asarray([result.errors.get(i, "") for i in range(n)], dtype=object),
            "code": np.asarray([result.codes.get(i, "") for i in range(n)], dtype=object),
            "node": np.asarray([self.node] * n, dtype=object),
        }


def pool_size(ray: Any, config: RayConfig) -> tuple[int, int]:
    """(actors, inference threads per actor) for this cluster and config."""
    cpus = max(1, int(ray.cluster_resources().get("CPU", 1)))
    workers = config.workers or cpus
    if workers * config.actor_cpus > cpus:  # the pool would wait for actors that never start
        raise ModelError(f"{workers} Ray actors of {config.actor_cpus} CPU each do not fit the cluster's {cpus} CPUs; "
                         f"use --ray-workers {int(cpus / config.actor_cpus)} or fewer")
    threads = config.threads or max(1, cpus // workers)
    return workers, threads


def actor_kwargs(ray: Any, embedder: Any, config: RayConfig) -> dict[str, Any]:
    """What every actor is built from: the driver's ONNX graph (put in the object store once),
    the embedder's spec and the inference threads per actor."""
    _, threads = pool_size(ray, config)
    return {"model": [ray.put(onnx_file_of(embedder).read_bytes())], "spec": embedder.spec.to_dict(),
            "threads": threads}


def run_actor_pool(ray: Any, actor: type, kwargs: dict[str, Any], paths: Sequence[str], rows: Sequence[int],
                   config: RayConfig) -> Iterator[dict[str, np.ndarray]]:
    """Stream ``actor``'s output batches over the inputs ``rows`` of ``paths`` (any order).

    ``kwargs`` are the actor's constructor arguments (``actor_kwargs``: the model is an object
    reference inside a list, so Ray hands the reference itself to each actor, which fetches the
    bytes once, instead of inlining them in every actor's creation)."""
    if not rows:
        return
    import ray.data
    from ray.data import ActorPoolStrategy

    workers, _ = pool_size(ray, config)
    items = [{"row": int(i), "image": str(paths[i])} for i in rows]
    blocks = max(1, min(MAX_BLOCKS, -(-len(items) // config.batch_size)))
    ds = ray.data.from_items(items, override_num_blocks=blocks)
    ds = ds.map_batches(
        actor, fn_constructor_kwargs=kwargs, batch_size=config.batch_size, batch_format="numpy",
        compute=ActorPoolStrategy(size=workers), num_cpus=config.actor_cpus, scheduling_strategy="SPREAD",
    )
    yield from ds.iter_batches(batch_size=None, batch_format="numpy")


def ray_embedding_batches(ray: Any, embedder: Any, paths: Sequence[str], rows: Sequence[int],
                          config: RayConfig) -> Iterator[RowBatch]:
    """The vectors of inputs ``rows`` computed on the actor pool, as ``RowBatch``es (an output
    batch may hold rows of several nodes: it is split by node, so shards can count rows per node)."""
    kwargs = actor_kwargs(ray, embedder, config)
    for out in run_actor_pool(ray, EmbedActor, kwargs, paths, rows, config):
        yield from split_by_node(out)


def split_by_node(out: dict[str, np.ndarray], values: str = "vector") -> Iterator[RowBatch]:
    """An actor pool output batch -> ``RowBatch``es, one per node that computed rows of it
    (``values``: the column of results; rows with a non-empty ``error``, when the actor
    reports one, become errors)."""
    nodes = out["node"]
    for node in dict.fromkeys(nodes.tolist()):
        mask = nodes == node
        rows = out["row"][mask].astype(int).tolist()
        errs = out["error"][mask].tolist() if "error" in out else [""] * len(rows)
        codes = out["code"][mask].tolist() if "code" in out else [""] * len(rows)
        ok = [j for j, e in enumerate(errs) if not e]
        yield RowBatch(rows=[rows[j] for j in ok], values=out[values][mask][ok],
                       errors={rows[j]: e for j, e in enumerate(errs) if e},
                       codes={rows[j]: c for j, (e, c) in enumerate(zip(errs, codes)) if e}, node=node)
