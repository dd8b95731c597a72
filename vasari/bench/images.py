"""The benchmark's pictures: a folder with class subfolders (the shared Louvre set by default), or
generated ones when it is absent, subsampled reproducibly."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from vasari.core.images import is_image_file


@dataclass
class BenchImages:
    """The images a benchmark runs on: paths, one label each, a train/val split."""

    source: str
    paths: list[Path]
    labels: list[str]
    splits: list[str]
    generated: bool = False

    def summary(self) -> dict[str, Any]:
        return {
            "source": self.source,
            "count": len(self.paths),
            "generated": self.generated,
            "classes": dict(sorted(Counter(self.labels).items())),
            "splits": dict(sorted(Counter(self.splits).items())),
        }


def generate_images(out_dir: Path, per_class: int = 12, size: int = 320, seed: int = 0) -> Path:
    """Write small synthetic "paintings" in class folders (colour family + texture differ by class).

    Used when no real images are available, and by tests. Returns ``out_dir``.
    """
    from PIL import Image, ImageDraw

    rng = np.random.default_rng(seed)
    classes = {
        "warm": ((200, 80, 40), "ellipse"),
        "cool": ((40, 90, 200), "rectangle"),
        "green": ((60, 160, 70), "line"),
        "dark": ((40, 35, 30), "ellipse"),
    }
    for name, (base, shape) in classes.items():
        folder = out_dir / name
        folder.mkdir(parents=True, exist_ok=True)
        for i in range(per_class):
            w, h = int(size * rng.uniform(0.8, 1.2)), int(size * rng.uniform(0.8, 1.2))
            noise = rng.normal(0, 25, (h, w, 3))
            arr = np.clip(np.array(base, dtype=np.float64) + noise, 0, 255).astype(np.uint8)
            img = Image.fromarray(arr, "RGB")
            draw = ImageDraw.Draw(img)
            for _ in range(6):
                x0, y0 = int(rng.uniform(0, w * 0.7)), int(rng.uniform(0, h * 0.7))
                x1, y1 = x0 + int(w * rng.uniform(0.08, 0.3)), y0 + int(h * rng.uniform(0.08, 0.3))
                colour = tuple(int(c) for c in np.clip(np.array(base) + rng.normal(0, 60, 3), 0, 255))
                getattr(draw, shape)([x0, y0, x1, y1], fill=colour) if shape != "line" else draw.line(
                    [x0, y0, x1, y1], fill=colour, width=8
                )
            img.save(folder / f"{name}_{i:03d}.jpg", quality=90)
    return out_dir


def collect_images(root: Path, seed: int = 0) -> BenchImages:
    """Images under ``root`` with their class-folder label and split.

    The label is the image's parent folder name. A path component named ``train``/``val``/
    ``test`` gives the split; other components (e.g. ``photos``) are skipped when split
    folders exist. Without split folders a deterministic 80/20 split is made per class.
    """
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"{root}: no such image folder")
    files = sorted(p for p in root.rglob("*") if p.is_file() and is_image_file(p))
    if not files:
        raise FileNotFoundError(f"{root}: no images found (expected class subfolders of .jpg/.png files)")
    rel_parts = [p.relative_to(root).parts for p in files]
    has_splits = any(part in ("train", "val") for parts in rel_parts for part in parts[:-1])
    paths, labels, splits = [], [], []
    for path, parts in zip(files, rel_parts):
        split = next((s for s in ("train", "val", "test") if s in parts[:-1]), None)
        if has_splits and split is None:
            continue
        paths.append(path)
        labels.append(path.parent.name if len(parts) > 1 else "unlabelled")
        splits.append(split or "")
    if not has_splits:
        rng = np.random.default_rng(seed)
        by_class: dict[str, list[int]] = {}
        for i, label in enumerate(labels):
            by_class.setdefault(label, []).append(i)
        for idx in by_class.values():
            order = rng.permutation(idx)
            n_val = max(1, round(len(order) * 0.2)) if len(order) > 1 else 0
            for j, i in enumerate(order):
                splits[i] = "val" if j < n_val else "train"
    splits = ["val" if s == "test" else s for s in splits]
    return BenchImages(source=str(root), paths=paths, labels=labels, splits=splits)


def subsample(images: BenchImages, n: int | None, seed: int = 0) -> BenchImages:
    """A class- and split-stratified subset of ``n`` images (all when ``n`` is None or larger)."""
    if n is None or n >= len(images.paths):
        return images
    rng = np.random.default_rng(seed)
    strata: dict[tuple[str, str], list[int]] = {}
    for i, key in enumerate(zip(images.labels, images.splits)):
        strata.setdefault(key, []).append(i)
    queues = [list(rng.permutation(idx)) for _, idx in sorted(strata.items())]
    chosen: list[int] = []
    while len(chosen) < n and any(queues):  # round-robin over strata keeps every class in both splits
        for q in queues:
            if q and len(chosen) < n:
                chosen.append(int(q.pop()))
    chosen.sort()
    return BenchImages(
        source=images.source,
        paths=[images.paths[i] for i in chosen],
        labels=[images.labels[i] for i in chosen],
        splits=[images.splits[i] for i in chosen],
        generated=images.generated,
    )


def default_images(work_dir: Path) -> BenchImages:
    """The shared Louvre images (train + val) when present, else generated ones in ``work_dir``."""
    from vasari.core.paths import shared_data_dir

    data = shared_data_dir()
    if data is not None and (data / "louvre" / "train").is_dir():
        return collect_images(data / "louvre")
    images = collect_images(generate_images(work_dir / "generated"))
    images.generated = True
    images.source = "generated (no ../shared/data/louvre)"
    return images
