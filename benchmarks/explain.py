"""Seconds per explanation ("Why this answer?", issue 16) and the quadrant sanity figure.

Speed: the default bundle explains ``--images`` real paintings from ../shared/data (every
artists7 painter in turn, the same pictures every run) for two tasks (artist and style), one
explanation per task as ``POST /api/v1/explain`` and ``vasari explain`` make them (the overlay
PNG is timed apart); median and p90 seconds per explanation, goal <= 1.5 s on 2 cores.

Sanity: a bundle trained on generated pictures whose label is a coloured square in one
quadrant (``vasari.explain.sanity``) explains 12 pictures it never saw; the figure is the
mean (and min) share of the explanation's mass in the square's quadrant, goal >= 0.7.

Each occlusion setting of ``--settings`` (GRIDxPATCH: cells per side x occluder side in
cells) is measured side by side on the same pictures, taking turns picture by picture, so
the choice of the default (7x2) can be read off one run.

    python benchmarks/explain.py [--images 20] [--settings 7x2,8x2,6x2,8x1]

Prints a table and writes benchmarks/results/explain.json.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from _provenance import write_result  # noqa: E402
from vasari.core.images import load_image  # noqa: E402
from vasari.core.paths import shared_data_dir  # noqa: E402

TASKS = ("artist", "style")
GOAL_SECONDS, GOAL_SHARE = 1.5, 0.7


def paintings(count: int) -> list[Path]:
    """``count`` artists7 paintings, one painter after the other, in name order."""
    data = shared_data_dir()
    if data is None:
        sys.exit("../shared/data is absent: this benchmark needs its artists7 paintings")
    folders = sorted(p for p in (data / "artists7" / "images" / "images").iterdir() if p.is_dir())
    per_painter = [sorted(f.glob("*.jpg")) for f in folders]
    picked = [files[i] for i in range(count) for files in per_painter if i < len(files)]
    return picked[:count]


def parse_settings(text: str) -> list[tuple[int, int]]:
    return [tuple(int(v) for v in item.lower().split("x")) for item in text.split(",") if item]


def percentile(values: list[float], q: float) -> float:
    return float(np.percentile(np.asarray(values), q))


def speed(predictor, files: list[Path], settings: list[tuple[int, int]]) -> list[dict]:
    """Seconds per explanation (and per overlay) of each setting, on the same pictures; the
    settings take turns on each (picture, task), so that load from other processes hits them
    alike and their ratios can be read from one run."""
    from vasari.explain import ExplainConfig, Explainer, overlay_png

    pictures = [load_image(f, min_side=predictor.bundle.spec.draft_min_side) for f in files]
    Explainer(predictor).explain(pictures[0], [TASKS[0]])  # first run: engine and index set-up
    explainers = [Explainer(predictor, ExplainConfig(grid, patch)) for grid, patch in settings]
    seconds: list[list[float]] = [[] for _ in settings]
    drawing: list[list[float]] = [[] for _ in settings]
    for picture in pictures:
        for task in TASKS:
            for i, explainer in enumerate(explainers):
                start = time.perf_counter()
                result = explainer.explain(picture, [task])[0]
                seconds[i].append(time.perf_counter() - start)
                start = time.perf_counter()
                overlay_png(picture, result)
                drawing[i].append(time.perf_counter() - start)
    return [{"setting": f"{e.config.grid}x{e.config.patch}", "copies": e.config.copies, "explanations": len(s),
             "median_s": statistics.median(s), "p90_s": percentile(s, 90), "overlay_median_s": statistics.median(d)}
            for e, s, d in zip(explainers, seconds, drawing)]


def sanity(settings: list[tuple[int, int]]) -> list[dict]:
    """Share of each explanation's mass in its picture's quadrant, per setting."""
    from vasari.explain import ExplainConfig, Explainer
    from vasari.explain.sanity import quadrant_set, quadrant_shares, train_quadrant_bundle
    from vasari.features import Embedder
    from vasari.inference.predictor import Predictor

    bundle = train_quadrant_bundle(Embedder(), Path(tempfile.mkdtemp(prefix="vasari-explain-bench-")) / "bundle")
    predictor = Predictor.load(bundle, with_index=False)
    pictures = quadrant_set(4, seed=7, plain=False)
    rows = []
    for grid, patch in settings:
        shares = quadrant_shares(Explainer(predictor, ExplainConfig(grid, patch)), pictures)
        rows.append({"setting": f"{grid}x{patch}", "pictures": len(shares), "mean_share": float(np.mean(shares)),
                     "min_share": float(np.min(shares)), "shares": [round(s, 3) for s in shares]})
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--images", type=int, default=20, help="real paintings explained (x2 tasks)")
    parser.add_argument("--settings", default="7x2,8x2,6x2,8x1", help="GRIDxPATCH settings compared")
    parser.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "explain.json"))
    args = parser.parse_args()
    from vasari.inference.predictor import Predictor

    settings = parse_settings(args.settings)
    load_before = os.getloadavg()
    rows = speed(Predictor.load(), paintings(args.images), settings)
    checks = sanity(settings)
    print(f"{'setting':>8} {'copies':>6} {'median s':>9} {'p90 s':>7} {'overlay s':>9} {'mean share':>10} {'min share':>9}")
    for row, check in zip(rows, checks):
        print(f"{row['setting']:>8} {row['copies']:>6} {row['median_s']:>9.2f} {row['p90_s']:>7.2f} "
              f"{row['overlay_median_s']:>9.3f} {check['mean_share']:>10.2f} {check['min_share']:>9.2f}")
    print(f"goals: <= {GOAL_SECONDS} s per explanation, >= {GOAL_SHARE} of the mass in the quadrant; "
          f"load average {load_before[0]:.1f} -> {os.getloadavg()[0]:.1f} on {os.cpu_count()} cpus")
    write_result(args.out, {
        "tasks": list(TASKS), "images": args.images, "speed": rows, "sanity": checks,
        "goals": {"seconds_per_explanation": GOAL_SECONDS, "quadrant_share": GOAL_SHARE},
        "machine": {"cpus": os.cpu_count(), "load_average_before": load_before,
                    "load_average_after": os.getloadavg(), "python": platform.python_version()},
        "how": "default bundle, one explanation per (picture, task) like the API; warm engine; overlay timed apart",
    })


if __name__ == "__main__":
    main()
