"""Fine-tuned vs frozen EfficientNet-Lite2 on artists7: issue 3's artist goal (top-1 >= .88).

    python benchmarks/finetune_artists7.py [DATA_DIR] [--configs all,last] [--seeds 5]
                                           [--splits FILE] [--out FILE]

Splits: the grouped splits of ``benchmarks/accuracy.py`` (near-duplicate copies of one
painting in one split, 70/15/15, split seeds 0..N-1). They are built once with the dataset
stage (perceptual hashes) and saved as image paths relative to DATA_DIR in
``benchmarks/results/artists7_splits.json``; ``--splits FILE`` reads such a file instead, so
a GPU machine reuses exactly the splits of the CPU runs.

For every fine-tuning recipe (``CONFIGS``) and split seed, ``vasari.finetune.finetune_artworks``
trains on "train" with early stopping on "val" loss, exports the backbone to ONNX and refits
the heads on its features (C and temperature on "val"); the fine-tuned backbone is then also
run with multi-crop views (the mean of 7 crops, as in accuracy.py) and heads fit again.

Honest selection: the recipe and views are chosen by the mean **val** top-1 over the seeds;
test numbers of every variant are printed, the chosen one is the headline. Heads refit on
train+val (``+refit``) have no val figure of their own; they follow the frozen pipeline's
choice (grouped 5-fold CV inside train+val, benchmarks/accuracy.py).

Meant for a CUDA GPU (about a minute per recipe and seed on an H100); on a CPU it runs, slowly.
Writes benchmarks/results/finetune_artists7.json (after every seed, atomically).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from dataclasses import asdict, replace
from pathlib import Path

import numpy as np
from rich.console import Console

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from vasari.bench import machine_info
from vasari.catalog import read_kaggle
from vasari.heads.metrics import headline
from vasari.core.fileio import atomic_write_text
from _provenance import write_result
from vasari.finetune import (
    BUNDLE_ONNX,
    FinetuneConfig,
    finetune_artworks,
    finetuned_embedder,
)
from vasari.core.paths import shared_data_dir
from vasari.heads.train import HeadConfig
from vasari.pipeline import fit_dataset

RESULTS = ROOT / "benchmarks" / "results"
SPLITS_FILE = RESULTS / "artists7_splits.json"

#: The fine-tuning recipes compared (on val), declared before the first run. Artist only: the
#: goal is the artist, and artists7 labels no per-painting year.
BASE = FinetuneConfig(tasks=("artist",), year_weight=0.0, epochs=15, patience=4, batch_size=32)
CONFIGS = {
    "last": replace(BASE, unfreeze="last"),
    "all": replace(BASE, unfreeze="all"),
}

console = Console(width=160, highlight=False)


def build_splits(data: Path, seeds: int) -> dict[str, dict[str, str]]:
    """{seed: {image path relative to data: split}}: accuracy.py's grouped artists7 splits."""
    from accuracy import grouped_dataset, phash_cache_dir

    cat = read_kaggle(data / "artists7", source="artists7")
    phash_dir = phash_cache_dir()
    out = {}
    for seed in range(seeds):
        ds = grouped_dataset([cat], "artist", phash_dir, seed=seed, split="grouped", min_per_class=5)
        out[str(seed)] = {str(Path(a.image).relative_to(data)): ds.splits[a.artwork_id] for a in ds.artworks if a.image}
    return out


def artworks_and_splits(data: Path, splits: dict[str, str]):
    cat = read_kaggle(data / "artists7", source="artists7")
    arts = [a for a in cat.artworks if a.image and str(Path(a.image).relative_to(data)) in splits]
    return arts, [splits[str(Path(a.image).relative_to(data))] for a in arts]


def views_variants(arts, split_of, onnx_file: Path, spec) -> dict:
    """Heads on the fine-tuned backbone's features with multi-crop views, and refit on train+val.

    Each views setting is embedded once; refit heads are only scored on test (``fit_dataset``
    leaves val out: it is part of their training data)."""
    out = {}
    for views in ("center", "multicrop"):
        embedder = finetuned_embedder(onnx_file, spec.with_views(views))
        X = embedder.embed_paths([a.image for a in arts], progress=False).features
        for refit in (False, True) if views == "multicrop" else (True,):
            fitted = fit_dataset(arts, split_of, embedder, None, HeadConfig(tasks=("artist",), refit_on_val=refit),
                                 progress=False, features=X)  # refit heads: val is not evaluated
            out[views + ("+refit" if refit else "")] = headline(fitted.evaluations, "artist")
    return out


def run_seed(arts, split_of, config: FinetuneConfig, seed: int) -> dict:
    config = replace(config, seed=seed)
    with tempfile.TemporaryDirectory(prefix="vasari-ft7-") as tmp:
        t0 = time.perf_counter()
        ft = finetune_artworks(arts, split_of, Path(tmp) / "bundle", config, console=None, progress=False,
                               evaluate_splits=("val", "test"))
        seconds = time.perf_counter() - t0
        variants = {"center": headline(ft.evaluations, "artist"), **views_variants(arts, split_of, ft.bundle_dir / BUNDLE_ONNX, ft.spec)}
    return {"seed": seed, "device": ft.device, "seconds": round(seconds, 1), "best_epoch": ft.fit.best_epoch,
            "epochs_run": len(ft.fit.history), "trainable": ft.trainable, "variants": variants}


def summarise(runs: list[dict]) -> dict:
    """Mean val/test top-1 and weighted F1 of every views variant over the seeds."""
    out = {}
    for variant in runs[0]["variants"]:
        row = {}
        for split in ("val", "test"):
            for k in ("top1", "weighted_f1"):
                vals = [r["variants"][variant][split][k] for r in runs if split in r["variants"][variant]]
                if vals:
                    row[f"{split}_{k}"] = float(np.mean(vals))
        row["test_top1_std"] = float(np.std([r["variants"][variant]["test"]["top1"] for r in runs]))
        out[variant] = row
    return out


def choose(summary: dict) -> tuple[str, str]:
    """(recipe, views) with the best mean val top-1 (heads not refit: refit ones have no val)."""
    best = max(((name, v) for name, s in summary.items() for v in ("center", "multicrop") if v in s),
               key=lambda nv: summary[nv[0]][nv[1]]["val_top1"])
    return best


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("data", nargs="?", type=Path, default=None)
    parser.add_argument("--configs", default="all,last", help=f"comma-separated recipes of {', '.join(CONFIGS)}")
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--splits", type=Path, default=None, help="read splits from this file (default: build them)")
    parser.add_argument("--epochs", type=int, default=None, help="override the recipes' epochs (smoke runs)")
    parser.add_argument("--max-steps", type=int, default=None, help="cap steps per epoch (smoke runs)")
    parser.add_argument("--out", type=Path, default=RESULTS / "finetune_artists7.json")
    args = parser.parse_args(argv)
    data = args.data or shared_data_dir()
    if data is None:
        console.print("../shared/data is absent (pass DATA_DIR or set VASARI_DATA)")
        return 2
    data = Path(data).resolve()
    if args.splits is not None:
        splits = json.loads(args.splits.read_text())
        missing = [str(seed) for seed in range(args.seeds) if str(seed) not in splits]
        if missing:
            parser.error(f"{args.splits} has no split for seed(s) {', '.join(missing)} (it holds {', '.join(splits)})")
    else:
        splits = build_splits(data, args.seeds)
        atomic_write_text(SPLITS_FILE, json.dumps(splits, indent=0, sort_keys=True) + "\n")
    names = [c.strip() for c in args.configs.split(",") if c.strip()]
    unknown = [n for n in names if n not in CONFIGS]
    if unknown:
        parser.error(f"unknown recipe(s) {unknown}; choose from {list(CONFIGS)}")
    previous = json.loads(args.out.read_text()) if args.out.is_file() else {}
    payload = {"benchmark": "finetune_artists7", "machine": machine_info(),
               "recipes": {**previous.get("recipes", {})}}
    for name in names:
        config = replace(CONFIGS[name], max_steps_per_epoch=args.max_steps, epochs=args.epochs or CONFIGS[name].epochs)
        runs = []
        for seed in range(args.seeds):
            arts, split_of = artworks_and_splits(data, splits[str(seed)])
            run = run_seed(arts, split_of, config, seed)
            runs.append(run)
            console.print(f"{name} seed {seed}: {run['seconds']} s, best epoch {run['best_epoch']}, "
                          + ", ".join(f"{v} " + " ".join(f"{split} {m['top1']:.3f}" for split, m in s.items())
                                      for v, s in run["variants"].items()))
            payload["recipes"][name] = {"config": asdict(config), "runs": runs, "summary": summarise(runs)}
            write_result(args.out, payload, default=str)
    summary = {n: r["summary"] for n, r in payload["recipes"].items() if len(r["runs"]) == args.seeds}
    if summary:
        recipe, views = choose(summary)
        payload["chosen"] = {"recipe": recipe, "views": views, "rule": "best mean val top-1 over the seeds",
                             "test": summary[recipe][views], "test_refit": summary[recipe].get(f"{views}+refit")}
        write_result(args.out, payload, default=str)
        for n, s in summary.items():
            for v, row in s.items():
                console.print(f"{n:>5} {v:<16} " + "  ".join(f"{k} {val:.3f}" for k, val in row.items()))
        console.print(f"chosen by val: {recipe} / {views}: {payload['chosen']}")
    console.print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
