"""Do other heads get more out of the frozen features? Grouped CV on artists7, never the test split.

    python benchmarks/head_variants.py [DATA_DIR] [--views multicrop] [--seeds 5] [--folds 5]

For each split seed of benchmarks/accuracy.py, the train+val pictures (test is never read) are
cut into ``--folds`` grouped folds (copies of one painting stay in one fold). In each fold,
20% of the training groups choose C and the temperature, the head is refit on all the fold's
training rows (as ``+refit``) and scored on the held-out fold. Variants: the default heads;
signed square root of the features ("power"); power then L2 row normalisation; a wider C grid;
no class weights. Writes benchmarks/results/head_variants.json.
"""

from __future__ import annotations

import argparse
import json
from dataclasses import replace
from pathlib import Path

import numpy as np
from rich.console import Console
from sklearn.model_selection import GroupKFold, GroupShuffleSplit

from accuracy import dataset_arrays, grouped_dataset
from vasari.catalog import read_kaggle
from vasari.features import Embedder, EmbeddingCache
from vasari.fileio import atomic_write_text
from vasari.shared import shared_data_dir
from vasari.train import HeadConfig, train_heads

BASE = HeadConfig(tasks=("artist",), year=False, novelty=False, refit_on_val=True)


def power(X: np.ndarray) -> np.ndarray:
    return np.sign(X) * np.sqrt(np.abs(X))


def power_l2(X: np.ndarray) -> np.ndarray:
    Z = power(X)
    return Z / np.linalg.norm(Z, axis=1, keepdims=True)


VARIANTS = {
    "default": (None, BASE),
    "power": (power, BASE),
    "power+l2": (power_l2, BASE),
    "wide C grid": (None, replace(BASE, c_grid=(0.0005, 0.002, 0.01, 0.05, 0.25, 1.0))),
    "no class weights": (None, replace(BASE, class_weight=None)),
}


def fold_accuracy(Z, y, train_rows, test_rows, groups, config, seed) -> float:
    """Choose C on 20% of the training groups, refit on all of them, score the held-out fold."""
    fit, val = next(GroupShuffleSplit(1, test_size=0.2, random_state=seed).split(train_rows, groups=groups[train_rows]))
    fit, val = train_rows[fit], train_rows[val]
    heads = train_heads(Z[fit], {"artist": list(y[fit])}, None, Z[val], {"artist": list(y[val])}, None, config)
    proba = heads.predict_proba(Z[test_rows])["artist"]
    predicted = np.asarray(heads.classifiers["artist"].classes)[proba.argmax(1)]
    return float((predicted == y[test_rows]).mean())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("data", nargs="?", type=Path, default=None)
    parser.add_argument("--views", default="multicrop")
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--folds", type=int, default=5)
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "head_variants.json")
    args = parser.parse_args(argv)
    console = Console(highlight=False)
    data = args.data or shared_data_dir()
    if data is None:
        console.print("../shared/data is absent (pass DATA_DIR or set VASARI_DATA)")
        return 2
    embedder = Embedder(views=args.views)
    cache = EmbeddingCache.default(embedder.spec)
    catalog = read_kaggle(Path(data) / "artists7", source="artists7")
    phash_dir = Path.home() / ".cache" / "vasari" / "phash"
    scores: dict[str, list[float]] = {name: [] for name in VARIANTS}
    for seed in range(args.seeds):
        ds = grouped_dataset([catalog], "artist", phash_dir, seed=seed, split="grouped", min_per_class=5)
        X, arts, split = dataset_arrays(ds, embedder, cache)
        rows = np.flatnonzero(np.asarray(split) != "test")
        y = np.array([arts[i].artist for i in rows])
        groups = np.array([arts[i].group or arts[i].artwork_id for i in rows])
        for name, (transform, config) in VARIANTS.items():
            Z = X[rows] if transform is None else transform(X[rows])
            for fold, (tr, te) in enumerate(GroupKFold(args.folds).split(Z, y, groups)):
                scores[name].append(fold_accuracy(Z, y, tr, te, groups, config, seed=fold))
        console.print(f"seed {seed}: " + ", ".join(f"{n} {np.mean(v[-args.folds:]):.3f}" for n, v in scores.items()))
    summary = {name: {"cv_top1": float(np.mean(v)), "std_over_folds": float(np.std(v)), "folds": len(v)}
               for name, v in scores.items()}
    for name, row in summary.items():
        console.print(f"{name:>18}: grouped-CV artist top-1 {row['cv_top1']:.4f} (fold std {row['std_over_folds']:.3f})")
    atomic_write_text(args.out, json.dumps({"benchmark": "head_variants", "views": args.views, "seeds": args.seeds,
                                            "folds": args.folds, "summary": summary, "scores": scores}, indent=2) + "\n")
    console.print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
