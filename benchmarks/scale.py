"""Issue 15: Vasari beyond one process. One script, two subcommands.

``embed``: embedding throughput of the local engine against the Ray engine with 1 and 2
actors, on the same >= 2,000 real pictures (Louvre + WikiArt + artists7 from ../shared/data),
in one run so that the load from other processes hits all alike, plus Ray's fixed overhead:
``ray.init`` of a local Ray, and the time from a job's start to its first batch of vectors
(the actor pool starting and opening its onnxruntime sessions). The throughputs are end to end
(reading, decoding, network; no embedding cache) over the whole job, start-up included, and in
steady state (from the first batch on). The Ray vectors are checked against the local ones.

``index``: the FAISS index half of the issue, in ``benchmarks/scale_index.py`` (``main(argv)``),
run from here when that file exists.

    python benchmarks/scale.py embed [--images 2000] [--rounds 1] [--batch-size 32]
    python benchmarks/scale.py index ...

Prints a table and writes benchmarks/results/scale_embed.json.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from _provenance import write_result  # noqa: E402
from vasari.core.images import is_image_file  # noqa: E402
from vasari.core.paths import shared_data_dir  # noqa: E402

SOURCES = ("louvre", "wikiart", "artists7")


def pictures(n: int) -> list[str]:
    """``n`` real pictures from ../shared/data, taken from each source in turn (224 to 500 px);
    none when the folder is absent."""
    data = shared_data_dir()
    if data is None:
        return []
    per_source = [sorted(str(p) for p in (data / s).rglob("*") if p.is_file() and is_image_file(p)) for s in SOURCES]
    out: list[str] = []
    for k in range(max(len(files) for files in per_source)):
        out += [files[k] for files in per_source if k < len(files)]
    return out[:n]


def _median(values: list) -> float | None:
    values = [v for v in values if v is not None]
    return round(float(np.median(values)), 2) if values else None


def _load() -> str:
    return "/".join(f"{v:.1f}" for v in os.getloadavg())


def run_engine(embedder, paths: list[str], config) -> dict:
    """One job: wall time, time to the first batch, steady-state rate, vectors."""
    from vasari.features.collection import engine_batches
    from vasari.features.shards import ShardPlan

    features = np.full((len(paths), embedder.dim), np.nan, dtype=np.float32)
    load_before = _load()
    t0 = time.perf_counter()
    first = None
    plans = [ShardPlan(k, s, min(s + 256, len(paths)), "") for k, s in enumerate(range(0, len(paths), 256))]
    for batch in engine_batches(embedder, paths, plans, None, config):
        if first is None:
            first = time.perf_counter() - t0
            n_first = len(batch.rows) + len(batch.errors)
        if batch.rows:
            features[batch.rows] = batch.values
    wall = time.perf_counter() - t0
    rest = len(paths) - n_first  # steady state: meaningful when many batches follow the first
    steady = round(rest / (wall - first), 1) if rest >= len(paths) // 2 and wall > first else None
    return {"wall_s": round(wall, 2), "img_s": round(len(paths) / wall, 1), "first_batch_s": round(first, 2),
            "steady_img_s": steady, "load_before": load_before, "load_after": _load(), "features": features}


def embed_main(argv: list[str]) -> int:
    ap = argparse.ArgumentParser(prog="scale.py embed", description="local vs Ray embedding throughput")
    ap.add_argument("--images", type=int, default=2000)
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--rounds", type=int, default=1, help="passes over every engine, in a turning order")
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "scale_embed.json")
    args = ap.parse_args(argv)
    paths = pictures(args.images)
    if not paths:
        print("no pictures: ../shared/data is absent (set VASARI_DATA)", file=sys.stderr)
        return 2
    for p in paths:  # warm the page cache: every engine then measures decoding, not the disk
        Path(p).read_bytes()

    import ray

    from vasari.features import Embedder
    from vasari.features.collection import CollectionConfig
    from vasari.features.ray_engine import RayConfig, ray_session

    embedder = Embedder(engine="onnx")
    engines = {"local": CollectionConfig(engine="onnx", batch_size=args.batch_size)}
    engines.update({f"ray, {w} actor(s)": CollectionConfig(engine="ray", ray=RayConfig(workers=w, batch_size=args.batch_size))
                    for w in (1, 2)})
    t0 = time.perf_counter()
    with ray_session(RayConfig()) as ray_:
        init_s = time.perf_counter() - t0
        cpus = int(ray_.cluster_resources().get("CPU", 0))
        rows, local = [], None
        for r in range(args.rounds):  # the order turns each round: background load hits all alike
            names = list(engines)[r % len(engines):] + list(engines)[:r % len(engines)]
            for name in names:
                row = {"engine": name, "round": r, **run_engine(embedder, paths, engines[name])}
                if name == "local":
                    local = row["features"]
                rows.append(row)
    assert not ray.is_initialized()
    for row in rows:
        row["max_abs_diff_vs_local"] = float(np.nanmax(np.abs(row.pop("features") - local)))
    summary = [{"engine": name, **{f"median_{key}": _median([r[key] for r in rows if r["engine"] == name])
                                   for key in ("img_s", "steady_img_s", "first_batch_s")}} for name in engines]
    for row in summary:
        row["ratio_vs_local"] = round(row["median_img_s"] / summary[0]["median_img_s"], 3)
    payload = {"images": len(paths), "sources": list(SOURCES), "ray_cpus": cpus, "ray_init_s": round(init_s, 2),
               "machine": f"{platform.machine()}, {os.cpu_count()} cores, {platform.processor() or platform.platform()}",
               "ray_version": ray.__version__, "rounds": args.rounds, "summary": summary, "rows": rows}
    write_result(args.out, payload)
    _print(payload)
    return 0


def _print(payload: dict) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"{payload['images']} pictures · ray.init {payload['ray_init_s']} s · {payload['machine']}")
    for col in ("engine", "round", "img/s (job)", "steady img/s", "first batch s", "max |Δ| vs local", "load before/after"):
        table.add_column(col)
    for r in payload["rows"]:
        table.add_row(r["engine"], str(r["round"]), f"{r['img_s']}", f"{r['steady_img_s']}", f"{r['first_batch_s']}",
                      f"{r['max_abs_diff_vs_local']:.1e}", f"{r['load_before']} / {r['load_after']}")
    for r in payload["summary"]:
        table.add_row(f"[bold]{r['engine']}[/] median", "", f"{r['median_img_s']}", f"{r['median_steady_img_s']}",
                      f"{r['median_first_batch_s']}", f"x local {r['ratio_vs_local']}", "")
    Console(width=140).print(table)


def index_main(argv: list[str]) -> int:
    """``benchmarks/scale_index.py``'s ``main(argv)`` (the FAISS index half of issue 15)."""
    path = Path(__file__).with_name("scale_index.py")
    if not path.is_file():
        print(f"{path.name} is not here yet (the index half of issue 15)", file=sys.stderr)
        return 2
    spec = importlib.util.spec_from_file_location("scale_index", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return int(module.main(argv) or 0)


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    commands = {"embed": embed_main, "index": index_main}
    if not argv or argv[0] not in commands:
        print(__doc__, file=sys.stderr)
        return 2
    return commands[argv[0]](argv[1:])


if __name__ == "__main__":
    raise SystemExit(main())
