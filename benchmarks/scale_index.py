"""Gallery indexes for millions: build time, peak memory, size on disk, recall@10 against
exact search, and single-query latency (1 and 2 threads) of IVF-Flat and IVF-PQ.

    python benchmarks/scale_index.py [--sizes 100000,1000000] [--kinds ivf-flat,ivf-pq]
        [--nprobe 32,64,128,256] [--synthetic gaussian,augmented] [--shards-rows N] [--out FILE]

Quick run: ``--sizes 100000 --synthetic augmented``. Vectors live in the index's space (the
default bundle's 128-d PCA projection, unit length): the default bundle's 8,697 real gallery
vectors, less 500 held out, plus synthetic ones drawn to match them, never uniform random
vectors (see ``Synth``: a Gaussian with their mean and PCA spectrum, or augmented copies of
real vectors). Queries are held out (never in the index): the 500 real vectors and as many
fresh synthetic ones. Ground truth is exact cosine search over the same float16 vectors.
``--shards-rows N`` also times `vasari index build --from-embeddings` on N raw 2,912-d
vectors written as Parquet shards (the streaming build: PCA, projection, IVF).

Each build runs in a fresh process (peak RSS is that process's VmHWM), trains on a
sample, adds in batches from a memory-mapped float16 store and writes the FAISS file;
searches open it memory-mapped read-only, as `vasari serve` does. Latency is one
projected query at a time through ``AnnIndex.search`` (IVF probe + exact re-scoring on the
memory-mapped vectors), after 20 warm-up queries. Writes benchmarks/results/scale_index.json.
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from rich.console import Console
from rich.table import Table

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _provenance import write_result  # noqa: E402

from vasari.gallery.ann import ANN_FILE, AnnIndex  # noqa: E402
from vasari.gallery.config import IndexConfig  # noqa: E402
from vasari.gallery.store import find_index  # noqa: E402

RESULT = Path(__file__).resolve().parent / "results" / "scale_index.json"
K = 10


def real_vectors() -> np.ndarray:
    """The default bundle's gallery vectors (projected, unit length) as float32."""
    where = find_index(None)
    if where is None:
        raise SystemExit("the default bundle has no gallery index (bash scripts/build-default-bundle.sh)")
    return np.load(where / "vectors.npy").astype(np.float32)


@dataclass(frozen=True)
class Synth:
    """How synthetic vectors are drawn from the real ones (``kept``: the real vectors in the
    gallery, never the held-out queries). ``gaussian``: their mean plus Gaussian noise with
    their eigenvalues in their PCA basis (one smooth cloud: the hard case for IVF).
    ``augmented``: a random kept vector plus that noise scaled down (``scale``) so that a copy
    lies as far from its source as a real painting from its nearest neighbour (clustered,
    like a real collection's many works per artist, school and manner)."""

    mode: str
    kept: np.ndarray
    mean: np.ndarray
    values: np.ndarray
    basis: np.ndarray
    scale: float = 1.0


def make_synth(mode: str, kept: np.ndarray) -> Synth:
    mean = kept.mean(axis=0)
    values, basis = np.linalg.eigh(np.cov(kept - mean, rowvar=False))
    values = np.clip(values, 0.0, None)
    scale = 1.0
    if mode == "augmented":
        sims = kept @ kept.T
        np.fill_diagonal(sims, -1.0)
        nearest = float(np.median(1.0 - sims.max(axis=1)))  # cosine distance to the nearest other work
        scale = float(np.sqrt(2.0 * nearest / values.sum()))  # |noise|^2 / 2 = that distance
    elif mode != "gaussian":
        raise SystemExit(f"--synthetic {mode!r}: choose gaussian or augmented")
    return Synth(mode, kept, mean, values, basis, scale)


def synthetic(n: int, synth: Synth, rng: np.random.Generator) -> np.ndarray:
    """``n`` synthetic unit vectors (see ``Synth``)."""
    z = rng.standard_normal((n, len(synth.mean))).astype(np.float32) * np.sqrt(synth.values).astype(np.float32)
    noise = synth.scale * (z @ synth.basis.T.astype(np.float32))
    centre = synth.mean if synth.mode == "gaussian" else synth.kept[rng.integers(0, len(synth.kept), n)]
    x = centre + noise
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


def make_gallery(folder: Path, size: int, held: np.ndarray, synth: Synth, seed: int = 0) -> tuple[Path, np.ndarray]:
    """A float16 ``vectors.npy`` of ``size`` rows (the kept real ones first) and held-out
    queries (the held-out real vectors, then as many fresh synthetic ones)."""
    rng = np.random.default_rng(seed)
    kept = synth.kept
    path = folder / f"vectors-{size}.npy"
    store = np.lib.format.open_memmap(path, mode="w+", dtype=np.float16, shape=(size, kept.shape[1]))
    store[:len(kept)] = kept
    for start in range(len(kept), size, 100_000):
        end = min(size, start + 100_000)
        store[start:end] = synthetic(end - start, synth, rng)
    store.flush()
    del store
    return path, np.concatenate([held, synthetic(len(held), synth, rng)])


def exact_top(vectors: np.ndarray, queries: np.ndarray, k: int = K, chunk: int = 50_000) -> np.ndarray:
    """Exact top-k rows by cosine similarity, streaming the gallery in chunks."""
    best_s = np.full((len(queries), 0), -np.inf, np.float32)
    best_r = np.zeros((len(queries), 0), np.int64)
    for start in range(0, len(vectors), chunk):
        sims = queries @ np.asarray(vectors[start:start + chunk], np.float32).T
        s = np.concatenate([best_s, sims], axis=1)
        r = np.concatenate([best_r, np.broadcast_to(np.arange(start, start + sims.shape[1]), sims.shape)], axis=1)
        top = np.argpartition(-s, k - 1, axis=1)[:, :k]  # a full sort of every chunk cost 17 min at 1M
        best_s, best_r = np.take_along_axis(s, top, axis=1), np.take_along_axis(r, top, axis=1)
    return best_r


def _build_child(kind: str, vectors_path: str, out_path: str, config: IndexConfig, queue: Any) -> None:
    """Runs in a fresh process: build + save one IVF index; reports seconds and peak RSS."""
    t0 = time.perf_counter()
    vectors = np.load(vectors_path, mmap_mode="r")
    ann = AnnIndex.build(kind, vectors, config)
    ann.save(Path(out_path))
    queue.put({"build_s": time.perf_counter() - t0, "build_peak_rss_mb": proc_status_mb("VmHWM"),
               "nlist": int(ann.index.nlist)})


def build(kind: str, vectors_path: Path, out_path: Path, config: IndexConfig) -> dict[str, Any]:
    ctx = mp.get_context("spawn")
    queue = ctx.Queue()
    child = ctx.Process(target=_build_child, args=(kind, str(vectors_path), str(out_path), config, queue))
    child.start()
    result = queue.get()
    child.join()
    return result


def proc_status_mb(field: str = "VmRSS") -> float:
    """This process's resident memory (VmRSS) or its high-water mark (VmHWM) in MiB; unlike
    ``ru_maxrss``, VmHWM starts afresh in a spawned process (Linux keeps ``ru_maxrss``
    across exec, so a child would report the parent's peak)."""
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024
    return float("nan")


def latency(ann: AnnIndex, vectors: np.ndarray, queries: np.ndarray, threads: int) -> dict[str, float]:
    import faiss

    faiss.omp_set_num_threads(threads)
    for q in queries[:20]:
        ann.search(q[None], K, vectors)
    times = []
    for q in queries:
        t0 = time.perf_counter()
        ann.search(q[None], K, vectors)
        times.append(time.perf_counter() - t0)
    ms = np.asarray(times) * 1e3
    return {f"p50_ms_{threads}t": float(np.percentile(ms, 50)), f"p99_ms_{threads}t": float(np.percentile(ms, 99))}


def exact_latency(vectors32: np.ndarray, queries: np.ndarray, n: int = 50) -> float:
    """p50 ms of one exact numpy query (the matrix product and the top-10 selection)."""
    times = []
    for q in queries[:n]:
        t0 = time.perf_counter()
        sims = vectors32 @ q
        np.argpartition(-sims, K)[:K]
        times.append(time.perf_counter() - t0)
    return float(np.percentile(np.asarray(times) * 1e3, 50))


def measure(kind: str, size: int, folder: Path, vectors_path: Path, queries: np.ndarray, truth: np.ndarray,
            nprobes: list[int], config: IndexConfig, n_real: int) -> list[dict[str, Any]]:
    """Rows (one per nprobe) for one kind at one size."""
    out_path = folder / f"{kind}-{size}.faiss"
    built = build(kind, vectors_path, out_path, config)
    before = proc_status_mb()
    ann = AnnIndex.load(out_path, kind, config, mmap=True)
    vectors = np.load(vectors_path, mmap_mode="r")
    rows = []
    for nprobe in nprobes:
        ann.set_nprobe(nprobe)
        _, found = ann.search(queries, K, vectors)
        hits = [len(set(a) & set(b)) / K for a, b in zip(found, truth)]
        row = {"kind": kind, "size": size, "nprobe": nprobe, **built,
               "rerank_factor": config.rerank_factor,
               "pq_m": config.pq_m if kind == "ivf-pq" else None,
               "recall_at_10": float(np.mean(hits)),
               "recall_at_10_real": float(np.mean(hits[:n_real])),
               "recall_at_10_synthetic": float(np.mean(hits[n_real:])),
               "index_file_mb": out_path.stat().st_size / 2**20,
               "vectors_file_mb": vectors_path.stat().st_size / 2**20,
               "rss_after_open_mb": proc_status_mb() - before}
        for threads in (1, 2):
            row.update(latency(ann, vectors, queries, threads))
        rows.append(row)
    out_path.unlink()
    return rows


def write_raw_shards(folder: Path, rows: int, synth: Synth, seed: int = 1, per_shard: int = 50_000) -> Path:
    """Shards as `vasari embed --format parquet` writes them, of ``rows`` raw backbone-sized
    vectors: synthetic index-space vectors lifted back through the default projection's
    axes, plus 10% noise outside them (so PCA has something to discard)."""
    import json

    import pyarrow as pa
    import pyarrow.parquet as pq

    from vasari.gallery.projection import Projection

    where = find_index(None)
    components = Projection.from_file(where / "projection.npz").components
    spec = json.loads((where / "index.json").read_text())["spec"]
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    for part, start in enumerate(range(0, rows, per_shard)):
        n = min(per_shard, rows - start)
        raw = synthetic(n, synth, rng) @ components
        raw += rng.standard_normal(raw.shape).astype(np.float32) * (0.1 / np.sqrt(raw.shape[1]))
        vectors = pa.FixedSizeListArray.from_arrays(pa.array(raw.astype(np.float32).ravel()), raw.shape[1])
        table = pa.table({"image": [f"/collection/{start + i}.jpg" for i in range(n)],
                          "artwork_id": pa.nulls(n, pa.string()),
                          "vector": vectors.cast(pa.list_(pa.float32()))})
        pq.write_table(table, folder / f"part-{part:05d}.parquet")
    (folder / "manifest.json").write_text(json.dumps({"spec": spec, "dim": spec["dim"]}))
    return folder


def _shards_child(folder: str, out: str, queue: Any) -> None:
    """Runs in a fresh process: `vasari index build --from-embeddings` as a library call."""
    from vasari.features import BackboneSpec
    from vasari.gallery.shards import build_from_shards

    spec = BackboneSpec.from_dict(json_spec(Path(folder)))
    t0 = time.perf_counter()
    index = build_from_shards(folder, out, spec, IndexConfig(faiss_min_size=10_000))
    queue.put({"kind": index.kind, "build_s": time.perf_counter() - t0, "build_peak_rss_mb": proc_status_mb("VmHWM")})


def json_spec(folder: Path) -> dict[str, Any]:
    import json

    return json.loads((folder / "manifest.json").read_text())["spec"]


def shards_build(folder: Path, rows: int, synth: Synth) -> dict[str, Any]:
    """Time and peak memory of an index build streamed from ``rows`` raw vectors in shards."""
    shards = write_raw_shards(folder / "shards", rows, synth)
    ctx = mp.get_context("spawn")
    queue = ctx.Queue()
    child = ctx.Process(target=_shards_child, args=(str(shards), str(folder / "shards-index"), queue))
    child.start()
    result = queue.get()
    child.join()
    raw_mb = sum(p.stat().st_size for p in shards.glob("*.parquet")) / 2**20
    return {**result, "kind": f"from shards ({result['kind']})", "size": rows, "shards_mb": raw_mb,
            "rows_per_s": rows / result["build_s"]}


def print_table(rows: list[dict[str, Any]], console: Console) -> None:
    table = Table(title="Gallery index at scale (128-d unit vectors, k=10)", title_justify="left")
    for col in ("size", "kind", "nprobe", "build s", "peak RSS MB", "file MB", "recall@10", "p50 ms 1t",
                "p99 ms 1t", "p50 ms 2t", "p99 ms 2t"):
        table.add_column(col, justify="right")
    for r in rows:
        if r["kind"].startswith("from shards"):
            table.add_row(f"{r['size']:,}", r["kind"], "", f"{r['build_s']:.0f}", f"{r['build_peak_rss_mb']:.0f}",
                          f"{r['shards_mb']:.0f} in", "", "", "", "", "")
            continue
        if r["kind"] == "exact":
            table.add_row(f"{r['size']:,}", "exact (numpy)", "", "", "", f"{r['vectors_file_mb']:.0f}", "1.000",
                          f"{r['p50_ms_1t']:.2f}", "", "", "")
            continue
        table.add_row(f"{r['size']:,}", r["kind"], str(r["nprobe"]), f"{r['build_s']:.0f}",
                      f"{r['build_peak_rss_mb']:.0f}", f"{r['index_file_mb']:.0f}", f"{r['recall_at_10']:.3f}",
                      f"{r['p50_ms_1t']:.2f}", f"{r['p99_ms_1t']:.2f}", f"{r['p50_ms_2t']:.2f}", f"{r['p99_ms_2t']:.2f}")
    console.print(table)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", default="100000,1000000", help="comma-separated gallery sizes")
    ap.add_argument("--kinds", default="ivf-flat,ivf-pq", help="comma-separated IVF kinds")
    ap.add_argument("--nprobe", default="32,64,128,256", help="comma-separated nprobe values")
    ap.add_argument("--held-out", type=int, default=500, help="real vectors held out as queries (plus as many synthetic)")
    ap.add_argument("--synthetic", default="gaussian,augmented", help="how synthetic vectors are drawn: gaussian, augmented")
    ap.add_argument("--pq-m", type=int, default=IndexConfig.pq_m)
    ap.add_argument("--rerank-factor", type=int, default=IndexConfig.rerank_factor)
    ap.add_argument("--shards-rows", type=int, default=0,
                    help="also time an index build streamed from Parquet shards of this many raw vectors (0: skip)")
    ap.add_argument("--out", type=Path, default=RESULT)
    ap.add_argument("--workdir", type=Path, default=None, help="scratch folder (default: a temp folder)")
    return ap.parse_args(argv)


def run_size(size: int, synth: Synth, held: np.ndarray, folder: Path, args: argparse.Namespace,
             config: IndexConfig, console: Console) -> list[dict[str, Any]]:
    """Every kind at one gallery size and one way of drawing synthetic vectors."""
    vectors_path, queries = make_gallery(folder, size, held, synth)
    vectors = np.load(vectors_path, mmap_mode="r")
    t0 = time.perf_counter()
    truth = exact_top(vectors, queries)
    exact_s = time.perf_counter() - t0
    vectors32 = np.asarray(vectors, np.float32)
    rows = [{"kind": "exact", "size": size, "synthetic": synth.mode, "p50_ms_1t": exact_latency(vectors32, queries),
             "ground_truth_s": exact_s, "vectors_file_mb": vectors_path.stat().st_size / 2**20}]
    del vectors32
    nprobes = [int(v) for v in args.nprobe.split(",")]
    for kind in args.kinds.split(","):
        for row in measure(kind, size, folder, vectors_path, queries, truth, nprobes, config, len(held)):
            rows.append({**row, "synthetic": synth.mode})
        print_table(rows, console)
    vectors_path.unlink()
    return rows


def main(argv: list[str] | None = None) -> dict[str, Any]:
    args = parse_args(argv)
    load_start = list(os.getloadavg())
    console = Console(width=170)  # the table is wide; a log file is no terminal
    real = real_vectors()
    order = np.random.default_rng(0).permutation(len(real))
    held, kept = real[order[:args.held_out]], real[order[args.held_out:]]
    config = IndexConfig(pq_m=args.pq_m, rerank_factor=args.rerank_factor)
    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(dir=args.workdir) as scratch:
        for mode in args.synthetic.split(",") if args.sizes else []:
            synth = make_synth(mode, kept)
            for size in (int(v) for v in args.sizes.split(",") if v):  # --sizes "": shards only
                rows += run_size(size, synth, held, Path(scratch), args, config, console)
        if args.shards_rows:
            rows.append(shards_build(Path(scratch), args.shards_rows, make_synth("gaussian", kept)))
    payload = {"machine": {"cpus": os.cpu_count(), "load_average_at_start": load_start,
                           "load_average_at_end": list(os.getloadavg())},
               "queries": 2 * len(held), "k": K, "rows": rows}
    written = write_result(args.out, payload)
    print_table(rows, console)
    console.print(f"load average at the start: {load_start}, at the end: {list(os.getloadavg())}; wrote {args.out}")
    return written


if __name__ == "__main__":
    main()
