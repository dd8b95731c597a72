"""Frozen backbone vs fine-tuned backbone on the Louvre type task (val + museum photos).

    python benchmarks/finetune_louvre.py [--epochs 3] [--unfreeze last] [--device auto] [--image-size 260]

Frozen: ``vasari.pipeline.fit_dataset`` with the stock EfficientNet-Lite2 ONNX embedder (what
``vasari demo`` trains). Fine-tuned: ``vasari.finetune.finetune_artworks`` on the same train
split (early stopping on val), heads refit the same way on the exported fine-tuned backbone.
Both are evaluated on Louvre val and on the 55 museum photos. Writes
benchmarks/results/finetune_louvre.json. On a CPU this is slow (it warns); it is meant for a GPU.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from dataclasses import asdict
from pathlib import Path

from rich.console import Console

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from vasari.bench import machine_info  # noqa: E402
from vasari.catalog import read_folder  # noqa: E402
from vasari.heads.metrics import headline  # noqa: E402
from _provenance import write_result  # noqa: E402
from vasari.finetune import FinetuneConfig, finetune_artworks  # noqa: E402
from vasari.core.paths import shared_data_dir  # noqa: E402


def louvre() -> tuple[list, list[str]]:
    data = shared_data_dir()
    if data is None:
        raise SystemExit("../shared/data is absent")
    arts, splits = [], []
    for split in ("train", "val"):
        cat = read_folder(data / "louvre" / split, task="type", source="louvre")
        arts += cat.artworks
        splits += [split] * len(cat.artworks)
    photos = read_folder(data / "louvre" / "photos", task="type", source="louvre_photos").artworks
    return arts + photos, splits + ["photos"] * len(photos)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--unfreeze", default="last")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--image-size", type=int, default=None)
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "finetune_louvre.json")
    args = parser.parse_args(argv)
    console = Console(width=150)
    arts, splits = louvre()
    from vasari.features.embedder import Embedder
    from vasari.heads.train import HeadConfig
    from vasari.pipeline import fit_dataset

    results: dict = {"machine": machine_info(), "images": {s: splits.count(s) for s in sorted(set(splits))}}
    t0 = time.perf_counter()
    frozen = fit_dataset(arts, splits, Embedder(), None, HeadConfig(tasks=("type",)),
                         evaluate_splits=("val", "photos"), progress=False)
    results["frozen"] = {"seconds": round(time.perf_counter() - t0, 1), "metrics": headline(frozen.evaluations, "type")}
    console.print("frozen:", results["frozen"])

    config = FinetuneConfig(tasks=("type",), epochs=args.epochs, unfreeze=args.unfreeze, device=args.device,
                            batch_size=args.batch_size, lr=args.lr, image_size=args.image_size, year_weight=0.0)
    with tempfile.TemporaryDirectory(prefix="vasari-ft-") as tmp:
        t0 = time.perf_counter()
        ft = finetune_artworks(arts, splits, Path(tmp) / "bundle", config, console=console,
                               evaluate_splits=("val", "photos"))
        results["finetuned"] = {
            "seconds": round(time.perf_counter() - t0, 1),
            "device": ft.device,
            "config": asdict(config),
            "trainable": ft.trainable,
            "best_epoch": ft.fit.best_epoch,
            "epochs_run": len(ft.fit.history),
            "history": [{k: v for k, v in h.items() if k != "train_losses"} for h in ft.fit.history],
            "metrics": headline(ft.evaluations, "type"),
        }
    console.print("fine-tuned:", {k: v for k, v in results["finetuned"].items() if k != "history"})
    write_result(args.out, results, default=str)
    console.print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
