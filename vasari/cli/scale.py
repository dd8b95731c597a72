"""The collection side of `vasari embed` and `vasari predict`: Parquet shards (``--format
parquet``, ``predict --out DIR``) and the Ray engine (``--engine ray``). The verbs keep their
small-job path (an ``.npz``, a table) and call here when asked for either."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import typer
from rich.console import Console

from vasari.cli.common import fail


def collection_config(engine: str, ray_address: str | None, ray_workers: int | None, shard_size: int,
                      batch_size: int = 32, workers: int | None = None) -> Any:
    """The ``CollectionConfig`` of the CLI options (bad values: one line, exit 2)."""
    from vasari.features.collection import CollectionConfig
    from vasari.features.ray_engine import RayConfig

    if engine != "ray" and (ray_address or ray_workers):
        fail("--ray-address and --ray-workers need --engine ray")
    try:
        return CollectionConfig(engine=engine, ray=RayConfig(address=ray_address, workers=ray_workers),
                                shard_size=shard_size, batch_size=batch_size, workers=workers)
    except ValueError as exc:
        fail(str(exc))


def embed_collection(embedder: Any, paths: list[str], ids: list[str], out: Path, fmt: str, store: Any,
                     config: Any, console: Console) -> tuple[int, int]:
    """Embed into shards (``fmt`` "parquet") or an .npz with the configured engine; returns
    (pictures embedded, pictures failed)."""
    from rich.markup import escape

    from vasari.features.collection import embed_to_result, embed_to_shards
    from vasari.features.embedder import save_embeddings

    t0 = time.perf_counter()
    if fmt == "parquet":
        try:
            manifest = embed_to_shards(embedder, paths, ids, out, cache=store, config=config)
        except KeyboardInterrupt:
            console.print(f"[yellow]interrupted[/]: the finished shards are in {out}; rerun to resume")
            raise typer.Exit(code=130) from None
        entries = manifest["shards"]
        ok = sum(e["rows"] for e in entries)
        errors = [m for e in entries for m in e["errors"].values()]
        nodes = {n for e in entries for n in e["nodes"]}
        where = f"{out}/ ({len(entries)} shards{f', rows from {len(nodes)} Ray node(s)' if nodes else ''})"
    else:
        result = embed_to_result(embedder, paths, cache=store, config=config)
        save_embeddings(out, result, paths, ids)
        ok, errors, where = len(paths) - len(result.errors), list(result.errors.values()), str(out)
    dt = time.perf_counter() - t0
    console.print(f"wrote {where} · {ok} ok, {len(errors)} failed · {dt:.1f}s ({len(paths) / max(dt, 1e-9):.1f} img/s)")
    for msg in errors[:10]:
        console.print(f"  [red]failed[/] {escape(msg)}")
    return ok, len(errors)


def predict_collection(bundle_dir: Path | None, paths: list[str], ids: list[str], out: Path, top_k: int,
                       config: Any, crop: bool) -> tuple[int, int]:
    """Predictions of ``paths`` as Parquet shards in ``out``; returns (predicted, failed)."""
    from vasari.inference.predictor import Predictor
    from vasari.inference.ray_predict import predict_to_shards

    console = Console(stderr=True, highlight=False)
    t0 = time.perf_counter()
    predictor = Predictor.load(bundle_dir, engine=config.local_engine, crop=crop)
    manifest, failed = predict_to_shards(predictor, paths, ids, out, top_k=top_k, config=config)
    rows = sum(e["rows"] for e in manifest["shards"])
    dt = time.perf_counter() - t0
    console.print(f"wrote {out}/ ({len(manifest['shards'])} shards, {rows} rows; {failed} unreadable in this run) · "
                  f"{dt:.1f}s ({len(paths) / max(dt, 1e-9):.1f} img/s)")
    return rows - failed, failed
