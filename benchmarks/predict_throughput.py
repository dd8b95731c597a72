"""`vasari predict` vs `vasari embed` on the same pictures, through the CLI, start-up included.

Issue 11 (finding 3): predict ran at 74% of embed on 800 pictures (45.7 vs 61.5 img/s on a
2-core box). Predict does everything embed does (decode, backbone) plus the heads and the
gallery index (load, similar works, artist affinity, novelty); the goal is predict >= 90%
of embed. Both commands run as a user runs them (a fresh process each, the default bundle,
no embedding cache), alternating round by round so that load from other processes hits
both alike; the ratio of the medians is the figure to read.

    python benchmarks/predict_throughput.py [--images 800] [--rounds 3]

Prints a table and writes benchmarks/results/predict_throughput.json.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from _provenance import write_result  # noqa: E402
from vasari.core.images import is_image_file  # noqa: E402
from vasari.core.paths import shared_data_dir  # noqa: E402


def pictures(count: int) -> list[str]:
    """The first ``count`` Louvre train + val pictures in name order (the same every run)."""
    data = shared_data_dir()
    if data is None:
        sys.exit("../shared/data is absent: this benchmark needs its Louvre pictures")
    found = sorted(str(p) for split in ("train", "val") for p in (data / "louvre" / split).rglob("*")
                   if p.is_file() and is_image_file(p))
    if len(found) < count:
        sys.exit(f"only {len(found)} Louvre pictures, {count} asked for")
    return found[:count]


def timed(command: list[str]) -> float:
    """Seconds one CLI run takes (the process's whole life); a failing run stops the benchmark."""
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    started = time.perf_counter()
    done = subprocess.run(command, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    seconds = time.perf_counter() - started
    if done.returncode != 0:
        sys.exit(f"{' '.join(command[:4])} ... failed ({done.returncode}): {done.stderr[-2000:]}")
    return seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--images", type=int, default=800)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "predict_throughput.json")
    args = parser.parse_args()
    paths = pictures(args.images)
    # what the `vasari` entry point runs, with this checkout's code first on the path
    cli = [sys.executable, "-c", "from vasari.cli import app; app(prog_name='vasari')"]
    seconds: dict[str, list[float]] = {"embed": [], "predict": []}
    with tempfile.TemporaryDirectory(prefix="vasari-bench-") as tmp:
        commands = {"embed": cli + ["embed", *paths, "--out", str(Path(tmp) / "x.npz"), "--no-cache"],
                    "predict": cli + ["predict", *paths, "--json"]}
        for r in range(args.rounds):
            for name, command in commands.items():
                seconds[name].append(timed(command))
                print(f"round {r + 1}/{args.rounds} {name:8s} {seconds[name][-1]:6.1f} s "
                      f"({len(paths) / seconds[name][-1]:5.1f} img/s)", flush=True)
    rate = {name: len(paths) / statistics.median(s) for name, s in seconds.items()}
    # each round's two runs are back to back: their ratio cancels load that drifts between rounds
    per_round = [e / p for e, p in zip(seconds["embed"], seconds["predict"])]
    result = {
        "images": len(paths), "rounds": args.rounds, "seconds": seconds,
        "images_per_second": {k: round(v, 2) for k, v in rate.items()},
        "predict_over_embed_per_round": [round(r, 3) for r in per_round],
        "predict_over_embed": round(statistics.median(per_round), 3), "goal": 0.90,
        "machine": {"cpus": os.cpu_count(), "load_average": os.getloadavg(), "python": platform.python_version()},
        "how": "both through the `vasari` CLI (vasari.cli:app) in fresh processes, start-up included, default bundle, "
               "embed --no-cache; rounds alternate; the ratio is the median of the per-round ratios",
    }
    print(f"embed {rate['embed']:.1f} img/s, predict {rate['predict']:.1f} img/s (medians); predict/embed per round "
          f"{', '.join(f'{r:.2f}' for r in per_round)}: median {result['predict_over_embed']:.2f} (goal >= 0.90)")
    write_result(args.out, result)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
