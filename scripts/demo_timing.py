"""Time `vasari demo` cold (fresh ONNX export, empty embedding and hash caches) and warm
(the same caches again), print the figures and write them as JSON.

    python scripts/demo_timing.py --out runs/demo-timing.json

The goal is under 60 s cold on 2 cores. The load average is recorded beside each run:
figures taken on a busy machine are not comparable with a quiet one.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from vasari.core.fileio import atomic_write_text


def run_demo(out: Path, cache: Path) -> dict:
    """One `vasari demo` run writing into ``out`` with ``cache`` as $VASARI_CACHE; wall seconds,
    load average before, and the demo's held-out top-1 per task."""
    env = dict(os.environ, VASARI_CACHE=str(cache))
    load = os.getloadavg()[0]
    started = time.perf_counter()
    proc = subprocess.run([sys.executable, "-c", "from vasari.cli import app; app()", "demo", "--out", str(out)], env=env,
                          capture_output=True, text=True)
    seconds = time.perf_counter() - started
    if proc.returncode != 0:
        raise SystemExit(f"vasari demo failed ({proc.returncode}):\n{proc.stderr[-2000:]}")
    metrics = json.loads((out / "report" / "metrics.json").read_text())
    top1 = {split: {task: round(m["top1"], 3) for task, m in v["tasks"].items()} for split, v in metrics.items() if isinstance(v, dict) and "tasks" in v}
    return {"seconds": round(seconds, 1), "load_before": round(load, 2), "top1": top1,
            "year_mae": round(metrics["test"]["year"]["mae"], 1) if "year" in metrics.get("test", {}) else None}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("runs/demo-timing.json"))
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="vasari-demo-timing-") as tmp:
        cache, out = Path(tmp) / "cache", Path(tmp) / "demo"
        result = {"cold": run_demo(out, cache), "warm": run_demo(out, cache), "cpus": os.cpu_count()}
    text = json.dumps(result, indent=2)
    print(text)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(args.out, text + "\n")


if __name__ == "__main__":
    main()
