"""Do other heads, or other test-time views, get more out of the frozen features? Grouped CV
inside train+val, never the test split.

    python benchmarks/head_variants.py [DATA_DIR] [--experiment artists7|wikiart]
                                       [--views multicrop[,center]] [--heads NAME,...] [--seeds 5] [--folds 5]

For each split seed of benchmarks/accuracy.py, the train+val pictures (test is never read) are
cut into ``--folds`` grouped folds (copies of one painting stay in one fold). In each fold,
20% of the training groups choose C and the temperature, the head is refit on all the fold's
training rows (as ``+refit``) and scored on the held-out fold. Head variants: the default
heads; signed square root of the features ("power"); power then L2 row normalisation; a wider
C grid; no class weights. Every views setting listed is tried with every head listed; this
is how accuracy.py's views were chosen. Writes benchmarks/results/head_variants-<experiment>.json.
"""

from __future__ import annotations

import argparse
from dataclasses import replace
from pathlib import Path

import numpy as np
from rich.console import Console
from sklearn.model_selection import GroupKFold, GroupShuffleSplit

from accuracy import dataset_arrays, grouped_dataset, phash_cache_dir
import vasari.catalog as catalog_module
from vasari.features import Embedder, EmbeddingCache
from _provenance import write_result
from vasari.core.paths import shared_data_dir
from vasari.heads.train import HeadConfig, train_heads

BASE = HeadConfig(year=False, novelty=False, refit_on_val=True)

#: experiment -> (catalog reader name, folder, task)
EXPERIMENTS = {"artists7": ("read_kaggle", "artists7", "artist"), "wikiart": ("read_wikiart", "wikiart", "style")}


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


def fold_accuracy(Z, y, task, train_rows, test_rows, groups, config, seed) -> float:
    """Choose C on 20% of the training groups, refit on all of them, score the held-out fold."""
    fit, val = next(GroupShuffleSplit(1, test_size=0.2, random_state=seed).split(train_rows, groups=groups[train_rows]))
    fit, val = train_rows[fit], train_rows[val]
    config = replace(config, tasks=(task,))
    heads = train_heads(Z[fit], {task: list(y[fit])}, None, Z[val], {task: list(y[val])}, None, config)
    proba = heads.predict_proba(Z[test_rows])[task]
    predicted = np.asarray(heads.classifiers[task].classes)[proba.argmax(1)]
    return float((predicted == y[test_rows]).mean())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("data", nargs="?", type=Path, default=None)
    parser.add_argument("--experiment", default="artists7", choices=sorted(EXPERIMENTS))
    parser.add_argument("--views", default="multicrop", help="comma-separated views settings to compare")
    parser.add_argument("--heads", default=",".join(VARIANTS), help=f"comma-separated of: {', '.join(VARIANTS)}")
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--folds", type=int, default=5)
    parser.add_argument("--out", type=Path, default=None, help="default: results/head_variants-<experiment>.json")
    args = parser.parse_args(argv)
    console = Console(highlight=False)
    data = args.data or shared_data_dir()
    if data is None:
        console.print("../shared/data is absent (pass DATA_DIR or set VASARI_DATA)")
        return 2
    heads = [h.strip() for h in args.heads.split(",") if h.strip()]
    if unknown := [h for h in heads if h not in VARIANTS]:
        parser.error(f"unknown head variant(s) {unknown}; choose from {list(VARIANTS)}")
    reader, folder, task = EXPERIMENTS[args.experiment]
    catalog = getattr(catalog_module, reader)(Path(data) / folder, source=folder)
    sources = {}
    for views in [v.strip() for v in args.views.split(",") if v.strip()]:
        embedder = Embedder(views=views)
        sources[views] = (embedder, EmbeddingCache.default(embedder.spec))
    phash_dir = phash_cache_dir()
    names = [f"{views} / {head}" for views in sources for head in heads]
    scores: dict[str, list[float]] = {name: [] for name in names}
    for seed in range(args.seeds):
        ds = grouped_dataset([catalog], task, phash_dir, seed=seed, split="grouped", min_per_class=5)
        for views, (embedder, cache) in sources.items():
            X, arts, split = dataset_arrays(ds, embedder, cache)
            labelled = [i for i, name in enumerate(split) if name != "test" and arts[i].label(task) is not None]
            y = np.array([arts[i].label(task) for i in labelled])
            groups = np.array([arts[i].group or arts[i].artwork_id for i in labelled])
            for head in heads:
                transform, config = VARIANTS[head]
                Z = X[labelled] if transform is None else transform(X[labelled])
                for fold, (tr, te) in enumerate(GroupKFold(args.folds).split(Z, y, groups)):
                    scores[f"{views} / {head}"].append(fold_accuracy(Z, y, task, tr, te, groups, config, seed=fold))
        console.print(f"seed {seed}: " + ", ".join(f"{n} {np.mean(v[-args.folds:]):.3f}" for n, v in scores.items()))
    summary = {name: {"cv_top1": float(np.mean(v)), "std_over_folds": float(np.std(v)), "folds": len(v)}
               for name, v in scores.items()}
    for name, row in summary.items():
        console.print(f"{name:>30}: grouped-CV {task} top-1 {row['cv_top1']:.4f} (fold std {row['std_over_folds']:.3f})")
    out = args.out or Path(__file__).parent / "results" / f"head_variants-{args.experiment}.json"
    write_result(out, {"benchmark": "head_variants", "experiment": args.experiment, "task": task,
                       "views": list(sources), "seeds": args.seeds, "folds": args.folds,
                       "summary": summary, "scores": scores})
    console.print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
