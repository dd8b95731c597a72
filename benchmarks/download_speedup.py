"""Speed-up of ``vasari download`` over one-at-a-time fetching, against a local server.

A server on 127.0.0.1 (its own process, so its threads do not share our interpreter lock)
answers every request after a simulated network latency (50 ms by default) with one of N
generated JPEGs (640x480, like the shared data), 200 by default. The full download path runs each time:
streaming to a temp file, validation by decoding, fsync, atomic rename and a fsync'ed
manifest line per image. Concurrency 1 is the one-at-a-time baseline; the rate limit is off.

    python benchmarks/download_speedup.py                  # N=200, 50 ms, concurrency 1 vs 16
    python benchmarks/download_speedup.py --levels 1 4 16 32 --n 400

Prints a table and writes benchmarks/results/download_speedup.json.
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import platform
import statistics
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

from _provenance import write_result

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]


def serve(n: int, latency: float, conn) -> None:
    """Child process: serve N images with ``latency`` per request until told to stop."""
    from fault_server import FaultServer, make_image

    with FaultServer(latency=latency, lifetime=3600) as server:
        urls = [server.add(f"/art/bench/img{i:04d}.jpg", make_image(640, 480, seed=i)) for i in range(n)]
        conn.send((urls, sum(len(r.body) for r in server.routes.values())))
        while (message := conn.recv()) != "stop":
            if message == "hits":
                conn.send(sum(server.hits.values()))
                server.hits.clear()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=200, help="images (default 200)")
    parser.add_argument("--latency", type=float, default=0.05, help="seconds per request (default 0.05)")
    parser.add_argument("--levels", type=int, nargs="+", default=[1, 16], help="concurrency levels (first = baseline)")
    parser.add_argument("--repeat", type=int, default=3, help="runs per level; the median is reported (default 3)")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "download_speedup.json")
    args = parser.parse_args()

    from rich.console import Console
    from rich.table import Table

    from vasari.download.downloader import DownloadConfig, download_images

    parent, child = mp.get_context("spawn").Pipe()
    server = mp.get_context("spawn").Process(target=serve, args=(args.n, args.latency, child), daemon=True)
    server.start()
    try:
        urls, total_bytes = parent.recv()
        rows = []
        for level in args.levels:
            runs = []
            for _ in range(args.repeat):
                with tempfile.TemporaryDirectory(prefix="vasari-bench-") as tmp:
                    config = DownloadConfig(concurrency=level, rate=None, trust_env=False)
                    start = time.perf_counter()
                    summary = download_images(urls, Path(tmp) / "out", config, progress=False)
                    runs.append(time.perf_counter() - start)
                parent.send("hits")
                requests = parent.recv()
                if summary.ok != args.n or requests != args.n:
                    raise SystemExit(f"concurrency {level}: {summary.ok} ok of {args.n}, {requests} requests: not a clean run")
            seconds = statistics.median(runs)
            rows.append({"concurrency": level, "seconds": round(seconds, 3), "runs_s": [round(r, 3) for r in runs],
                         "images_per_s": round(args.n / seconds, 1), "ms_per_image": round(1000 * seconds / args.n, 2)})
        parent.send("stop")
    finally:
        server.join(timeout=5)
        if server.is_alive():
            server.kill()
    base = rows[0]["seconds"]
    for row in rows:
        row["speedup"] = round(base / row["seconds"], 2)

    table = Table(title=f"download speed-up: {args.n} images, {args.latency * 1000:g} ms latency, local server, "
                        f"median of {args.repeat}")
    for column in ("concurrency", "seconds", "images/s", "ms/image", "speed-up"):
        table.add_column(column, justify="right")
    for row in rows:
        table.add_row(str(row["concurrency"]), f"{row['seconds']:.2f}", f"{row['images_per_s']:.1f}",
                      f"{row['ms_per_image']:.1f}", f"{row['speedup']:.1f}x")
    Console().print(table)

    result = {
        "benchmark": "download_speedup",
        "when": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "machine": {"platform": platform.platform(), "python": platform.python_version(), "cpus": os.cpu_count(),
                    "processor": platform.processor() or platform.machine(),
                    "load_average_1m": round(os.getloadavg()[0], 2)},
        "setup": {"images": args.n, "latency_s": args.latency, "image": "640x480 JPEG",
                  "mean_bytes": round(total_bytes / args.n), "rate_limit": None, "server": "127.0.0.1, own process"},
        "results": rows,
        "goal": "speed-up >= 10x at concurrency 16",
    }
    write_result(args.out, result)
    print(f"wrote {args.out.relative_to(ROOT) if args.out.is_relative_to(ROOT) else args.out}")


if __name__ == "__main__":
    main()
