"""Teach it an artist (issue #16), measured on ../shared/data, leave-artists-out:

    python benchmarks/enrol.py                 # writes benchmarks/results/enrol.json

Five artists with at least 20 works, drawn at random (seed), and ten more with at least 10
works ("still unknown") are removed from the training data; artist heads (C, temperature and
threshold chosen on val, target precision .9) and their enrolment reference (``enrol.npz``)
are trained on the rest. Then each of the five is enrolled, one after the other, from 10 of
its works drawn at random, and the final bundle is measured:

* top-1 and answered share (verdict = the artist) on each enrolled artist's OTHER works;
* false attribution (``vasari.heads.trust.false_attribution``: the share of the still-unknown
  artists' paintings given any artist verdict) before and after the five enrolments;
* top-1 of the known artists on the grouped test split, before and after;
* seconds per enrolment (refit + write of a new bundle, features cached), and the seconds
  to embed 10 new images without the cache;
* the same numbers for heads retrained from scratch with the 50 enrolment images added to
  the training split (what enrolment avoids: minutes instead of seconds; ``--no-retrain``).

Nothing is chosen on a test split or on the held-out artists' test works: C, temperature and
threshold come from val; the enrolment's own choices use only its 10 images and the reference.
Embeddings come from the default cache (``vasari embed`` / the default bundle build fill it).
"""

from __future__ import annotations

import argparse
import csv
import os
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "benchmarks"))
from _provenance import write_result

WORK = ROOT / "runs" / "enrol"
RESULTS = ROOT / "benchmarks" / "results" / "enrol.json"


def load_rows(data_dir: Path) -> tuple[list[dict], np.ndarray, object]:
    """The grouped dataset of every shared source (as the default bundle's) and its features."""
    from vasari.features import Embedder, EmbeddingCache

    ds_dir = WORK / "dataset"
    if not (ds_dir / "dataset.csv").is_file():
        subprocess.run(["vasari", "dataset", "build", "--shared", "--data-dir", str(data_dir), "--split", "grouped",
                        "--artist-scope", "--out", str(ds_dir)], check=True)
    rows = list(csv.DictReader((ds_dir / "dataset.csv").open(encoding="utf-8")))
    embedder = Embedder(threads=1)
    with EmbeddingCache.default(embedder.spec) as cache:
        result = embedder.embed_paths([r["image"] for r in rows], cache=cache, progress=True)
    keep = [i for i in range(len(rows)) if i not in result.errors]
    return [rows[i] for i in keep], result.features[keep], embedder


def choose_artists(rows: list[dict], seed: int, enrol: int, unknown: int) -> tuple[list[str], list[str]]:
    counts = Counter(r["artist"] for r in rows if r["artist"])
    rng = np.random.default_rng(seed)
    big = sorted(a for a, n in counts.items() if n >= 20)
    chosen = rng.choice(big, size=enrol, replace=False).tolist()
    rest = sorted(a for a, n in counts.items() if n >= 10 and a not in chosen)
    return chosen, rng.choice(rest, size=unknown, replace=False).tolist()


def train_base(rows: list[dict], X: np.ndarray, held: set[str], spec, out: Path, rank: int,
               taught: frozenset[int] = frozenset()):
    """Artist heads and their reference on every row whose artist is not held out; the rows
    in ``taught`` (enrolment images) join the training split: the full-retrain comparison."""
    from vasari.bundle import Bundle, save_bundle
    from vasari.enrol import ReferenceConfig, write_reference
    from vasari.heads.train import HeadConfig, train_heads

    def part(split: str) -> np.ndarray:
        return np.array([i for i, r in enumerate(rows) if (r["split"] == split and r["artist"] not in held)
                         or (split == "train" and i in taught)])

    tr, va = part("train"), part("val")
    label = lambda idx: {"artist": [rows[i]["artist"] or None for i in idx]}
    t0 = time.perf_counter()
    heads = train_heads(X[tr], label(tr), None, X[va], label(va), None,
                        HeadConfig(tasks=("artist",), year=False, target_precision=0.9))
    seconds = time.perf_counter() - t0
    path = save_bundle(Bundle(heads, spec, {"name": "enrol benchmark base"}), out)
    both = np.r_[tr, va]
    write_reference(path, heads, X[both], [rows[i]["artist"] or None for i in both], ReferenceConfig(rank=rank))
    return path, seconds


def answers(bundle_dir: Path, X: np.ndarray) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """(top class, answered, classes) of the artist head: answered = calibrated top probability
    at or above the head's threshold (the trust module's false-attribution rule)."""
    from vasari.bundle import load_bundle

    heads = load_bundle(bundle_dir).heads
    proba = heads.predict_proba(X)["artist"]
    head = heads.classifiers["artist"]
    return proba.argmax(axis=1), proba.max(axis=1) >= head.threshold, list(head.classes)


def measure(rows, X, bundle_dir, enrolled, unknown, taught, base_classes: list[str]) -> dict:
    """Enrolled artists on their other works; false attribution on the still-unknown artists;
    the base model's artists on the test split (the same rows before and after)."""
    from vasari.heads import trust as tr

    top, answered, classes = answers(bundle_dir, X)
    label = np.array([r["artist"] or "" for r in rows])
    out: dict = {"enrolled": {}}
    for name in enrolled:
        rows_other = np.array([i for i in np.flatnonzero(label == name) if i not in taught.get(name, set())])
        hit = np.array([classes[k] == name for k in top[rows_other]])
        out["enrolled"][name] = {"n": len(rows_other), "top1": round(float(hit.mean()), 4),
                                 "named": round(float((hit & answered[rows_other]).mean()), 4)}
    unk = np.isin(label, unknown)
    known = np.array([r["split"] == "test" and r["artist"] in base_classes for r in rows])
    correct = np.array([classes[k] == lab for k, lab in zip(top, label)])
    score = np.where(answered, 1.0, 0.0)
    fa = tr.false_attribution(score[unk | known], known[unk | known], correct[unk | known], 0.5)
    out["false_attribution"] = fa["false_attribution"]
    out["known_test_top1"] = round(float(correct[known].mean()), 4)
    out["known_test_answered"] = fa["known_answered"]
    out["known_test_answered_precision"] = fa["known_precision"]
    return out


def enrol_all(rows, X, base: Path, enrolled: list[str], seed: int, spec) -> tuple[Path, dict, list[dict]]:
    from vasari.bundle import load_bundle
    from vasari.enrol import ImageSource, enrol_features
    from vasari.enrol.run import sha256_file

    rng = np.random.default_rng(seed + 1)
    current, taught, runs = base, {}, []
    for n, name in enumerate(enrolled, 1):
        idx = rng.choice([i for i, r in enumerate(rows) if r["artist"] == name], size=10, replace=False)
        taught[name] = set(idx.tolist())
        out = WORK / "bench" / f"plus{n}"
        t0 = time.perf_counter()
        result = enrol_features(load_bundle(current), name, X[idx],
                                [ImageSource(rows[i]["image"], sha256_file(rows[i]["image"])) for i in idx], out)
        seconds = time.perf_counter() - t0
        runs.append({"artist": name, "seconds": round(seconds, 2), "cv_answered": result.info["fit"]["cv_answered"],
                     "C": result.info["fit"]["C"], "intercept_lowered_by": result.info["fit"]["intercept_lowered_by"],
                     "images_novel": result.info["images_novel"]})
        current = result.path
    return current, taught, runs


def embed_seconds(rows: list[dict], name: str) -> float:
    """Seconds to embed 10 of an artist's images with the default backbone, no cache."""
    from vasari.features import Embedder

    paths = [r["image"] for r in rows if r["artist"] == name][:10]
    embedder = Embedder(threads=1)
    embedder.embed_paths(paths[:1], progress=False)  # the network's lazy set-up is not enrolment's
    t0 = time.perf_counter()
    embedder.embed_paths(paths, progress=False)
    return round(time.perf_counter() - t0, 2)


def main(argv: list[str] | None = None) -> int:
    import shutil

    from vasari.core.paths import shared_data_dir

    parser = argparse.ArgumentParser(description="Enrolment of held-out artists on ../shared/data.")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--rank", type=int, default=128, help="reference basis size (enrol.npz)")
    parser.add_argument("--out", type=Path, default=RESULTS)
    parser.add_argument("--no-retrain", action="store_true",
                        help="skip the comparison with heads retrained on the same 10 images per artist")
    args = parser.parse_args(argv)
    data_dir = shared_data_dir()
    if data_dir is None:
        print("../shared/data not found", file=sys.stderr)
        return 1
    t0 = time.perf_counter()
    rows, X, embedder = load_rows(data_dir)
    enrolled, unknown = choose_artists(rows, args.seed, 5, 10)
    shutil.rmtree(WORK / "bench", ignore_errors=True)
    base, train_s = train_base(rows, X, set(enrolled) | set(unknown), embedder.spec, WORK / "bench" / "base", args.rank)
    base_classes = answers(base, X[:1])[2]
    before = measure(rows, X, base, enrolled, unknown, {}, base_classes)
    final, taught, runs = enrol_all(rows, X, base, enrolled, args.seed, embedder.spec)
    after = measure(rows, X, final, enrolled, unknown, taught, base_classes)
    retrained = None
    if not args.no_retrain:
        images = frozenset(i for idx in taught.values() for i in idx)
        full, retrain_s = train_base(rows, X, set(enrolled) | set(unknown), embedder.spec, WORK / "bench" / "retrained",
                                     args.rank, images)
        retrained = dict(measure(rows, X, full, enrolled, unknown, taught, base_classes), seconds=round(retrain_s, 1))
    result = {
        "seed": args.seed, "rank": args.rank, "enrolled_artists": enrolled, "unknown_artists": unknown,
        "base_train_seconds": round(train_s, 1),
        "reference_kib": round((base / "enrol.npz").stat().st_size / 1024),
        "enrolments": runs, "before": before, "after": after, "retrained": retrained,
        "false_attribution_change_points": round(100 * (after["false_attribution"] - before["false_attribution"]), 2),
        "embed_10_images_seconds": embed_seconds(rows, enrolled[0]),
        "load": os.getloadavg(), "cpus": os.cpu_count(), "seconds": round(time.perf_counter() - t0, 1),
    }
    write_result(args.out, result)
    print_table(result)
    return 0


def print_table(result: dict) -> None:
    print(f"\nenrolment, leave-artists-out (seed {result['seed']}, reference rank {result['rank']}, "
          f"{result['reference_kib']} KiB), load {result['load'][0]:.1f} on {result['cpus']} CPUs")
    full = result.get("retrained") or {"enrolled": {}}
    print(f"{'artist':32s} {'works':>5s} {'top-1':>6s} {'named':>6s} {'cv':>5s} {'s':>6s}  retrained: top-1 named")
    for run in result["enrolments"]:
        m, f = result["after"]["enrolled"][run["artist"]], full["enrolled"].get(run["artist"], {})
        print(f"{run['artist'][:32]:32s} {m['n']:5d} {m['top1']:6.3f} {m['named']:6.3f} {run['cv_answered']:5.2f} "
              f"{run['seconds']:6.2f}  {_num(f.get('top1')):>16s} {_num(f.get('named')):>5s}")
    b, a = result["before"], result["after"]
    print(f"false attribution (still-unknown artists): {b['false_attribution']:.4f} -> {a['false_attribution']:.4f} "
          f"({result['false_attribution_change_points']:+.2f} points); retrained {_num(full.get('false_attribution'))}")
    print(f"base artists, test top-1: {b['known_test_top1']:.4f} -> {a['known_test_top1']:.4f} (retrained "
          f"{_num(full.get('known_test_top1'))}); answered {b['known_test_answered']} -> {a['known_test_answered']}")
    print(f"seconds per enrolment (refit + write): mean {np.mean([r['seconds'] for r in result['enrolments']]):.2f}; "
          f"embedding 10 images: {result['embed_10_images_seconds']:.2f} s")


def _num(value) -> str:
    return "-" if value is None else f"{value:.3f}"


if __name__ == "__main__":
    sys.exit(main())
