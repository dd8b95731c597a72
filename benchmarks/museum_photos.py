"""Museum photos: type top-1 on ../shared/data/louvre/photos with and without the painting crop.

    python benchmarks/museum_photos.py [DATA_DIR] [--cache DIR] [--debug-grid OUT.png]

A logistic-regression type head (standardised features, C chosen on louvre/val, then refit
on louvre/train + val) on the default backbone's features (``Embedder()``, cached) labels
the 55 phone photos three ways: the photo as it is, the crop of ``find_painting`` (frame
trimmed, the default), and the crop without frame trimming. Prints the numbers and writes
benchmarks/results/museum_photos.json (plus per-photo rows).
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np
from rich.console import Console
from rich.table import Table

from vasari.features import Embedder, EmbeddingCache
from _provenance import write_result
from vasari.core.images import load_image
from vasari.inference.photo import PhotoConfig, find_painting
from vasari.core.paths import shared_data_dir

CLASSES = ("genre", "landscape", "portrait", "still-life")


def _folder(root: Path) -> tuple[list[str], np.ndarray]:
    paths, labels = [], []
    for i, c in enumerate(CLASSES):
        for p in sorted((root / c).glob("*")):
            if p.suffix.lower() in (".jpg", ".jpeg", ".png"):
                paths.append(str(p))
                labels.append(i)
    return paths, np.asarray(labels)


def _head(x: np.ndarray, y: np.ndarray, c: float):
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    return make_pipeline(StandardScaler(), LogisticRegression(C=c, max_iter=5000)).fit(x, y)


def debug_grid(images, crops, out: Path) -> None:
    """Photo with the found outline (green: frame, red: canvas) beside the crop, per photo."""
    import cv2
    from PIL import Image

    tiles = []
    for img, crop in zip(images, crops):
        a = np.asarray(img.convert("RGB")).copy()
        if crop.outer_corners:
            cv2.polylines(a, [np.round(np.array(crop.outer_corners)).astype(np.int32)], True, (0, 255, 0), 3)
        cv2.polylines(a, [np.round(np.array(crop.corners)).astype(np.int32)], True, (255, 0, 0), 3)
        a = cv2.resize(a, (200, 200))
        c = np.asarray(crop.image.convert("RGB"))
        s = 200 / max(c.shape[:2])
        c = cv2.resize(c, (max(1, int(c.shape[1] * s)), max(1, int(c.shape[0] * s))))
        pad = np.full((200, 200, 3), 255, np.uint8)
        pad[: c.shape[0], : c.shape[1]] = c
        tiles.append(np.hstack([a, pad]))
    while len(tiles) % 4:
        tiles.append(np.zeros_like(tiles[0]))
    grid = np.vstack([np.hstack(tiles[i:i + 4]) for i in range(0, len(tiles), 4)])
    Image.fromarray(grid).save(out)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("data", nargs="?", type=Path, default=None)
    ap.add_argument("--cache", type=Path, default=None, help="embedding cache folder (default: user cache)")
    ap.add_argument("--debug-grid", type=Path, default=None)
    ap.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "museum_photos.json")
    args = ap.parse_args(argv)
    console = Console()
    data = args.data or shared_data_dir()
    if data is None or not (data / "louvre" / "photos").is_dir():
        console.print("[red]../shared/data/louvre is absent (pass DATA_DIR or set VASARI_DATA)[/]")
        return 2
    louvre = data / "louvre"

    embedder = Embedder()
    cache = EmbeddingCache(args.cache, embedder.spec) if args.cache else EmbeddingCache.default(embedder.spec)
    tr_paths, y_tr = _folder(louvre / "train")
    va_paths, y_va = _folder(louvre / "val")
    ph_paths, y_ph = _folder(louvre / "photos")
    t0 = time.perf_counter()
    x_tr = embedder.embed_paths(tr_paths, cache=cache).features
    x_va = embedder.embed_paths(va_paths, cache=cache).features
    embed_s = time.perf_counter() - t0

    # C on val, then refit on train + val
    best_c, best_acc = None, -1.0
    for c in (0.01, 0.03, 0.1, 0.3):
        acc = float((_head(x_tr, y_tr, c).predict(x_va) == y_va).mean())
        if acc > best_acc:
            best_c, best_acc = c, acc
    head = _head(np.concatenate([x_tr, x_va]), np.concatenate([y_tr, y_va]), best_c)

    images = [load_image(p) for p in ph_paths]
    t0 = time.perf_counter()
    crops = [find_painting(im) for im in images]
    crop_ms = (time.perf_counter() - t0) / len(images) * 1000
    crops_nt = [find_painting(im, PhotoConfig(trim_frame=False)) for im in images]
    variants = {
        "whole photo": images,
        "crop (frame trimmed)": [c.image for c in crops],
        "crop (frame kept)": [c.image for c in crops_nt],
    }
    preds, accs = {}, {}
    for name, ims in variants.items():
        p = head.predict(embedder.embed_images(ims))
        preds[name] = p
        accs[name] = float((p == y_ph).mean())
    if args.debug_grid:
        debug_grid(images, crops, args.debug_grid)

    table = Table(title=f"Louvre museum photos (n={len(images)}): type top-1", title_justify="left")
    table.add_column("input")
    table.add_column("top-1", justify="right")
    table.add_column("wrong")
    for name, acc in accs.items():
        wrong = [Path(ph_paths[i]).relative_to(louvre / "photos").as_posix() for i in np.nonzero(preds[name] != y_ph)[0]]
        table.add_row(name, f"{acc:.3f} ({int(round(acc * len(images)))}/{len(images)})", ", ".join(wrong))
    console.print(table)
    methods: dict[str, int] = {}
    for c in crops:
        methods[c.method] = methods.get(c.method, 0) + 1
    found = sum(c.found for c in crops)
    console.print(f"painting found in {found}/{len(crops)} photos (by detector: {methods}); "
                  f"frame trimmed in {sum(c.frame_trimmed for c in crops)}; {crop_ms:.0f} ms per photo; "
                  f"head C={best_c} (louvre val top-1 {best_acc:.3f}); embedding {embed_s:.0f} s")

    result = {
        "n_photos": len(images),
        "backbone": embedder.spec.key(),
        "head": {"model": "StandardScaler + LogisticRegression", "C": best_c, "louvre_val_top1": best_acc,
                 "trained_on": "louvre/train + louvre/val", "n_train": int(len(y_tr) + len(y_va))},
        "top1": {"whole_photo": accs["whole photo"], "crop": accs["crop (frame trimmed)"],
                 "crop_frame_kept": accs["crop (frame kept)"]},
        "found": found,
        "detector": methods,
        "frame_trimmed": int(sum(c.frame_trimmed for c in crops)),
        "crop_ms_per_photo": round(crop_ms, 1),
        "photos": [
            {"photo": Path(p).relative_to(louvre / "photos").as_posix(), "label": CLASSES[y],
             "whole_photo": CLASSES[preds["whole photo"][i]], "crop": CLASSES[preds["crop (frame trimmed)"][i]],
             "found": c.found, "method": c.method, "frame_trimmed": c.frame_trimmed,
             "box": c.to_dict()["box"]}
            for i, (p, y, c) in enumerate(zip(ph_paths, y_ph, crops))
        ],
        "machine": {"cpus": os.cpu_count()},
    }
    write_result(args.out, result)
    console.print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
