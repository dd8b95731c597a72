"""Generated paintings with learnable labels, embedded once per test session by the REAL
Embedder (shared by the test_train/test_bundle/test_evaluate/test_predict/test_cli_learn
modules through ``learn_world``).

Type is the dominant hue (three classes); the year is correlated with the hue; every
image has its own random stripes and noise, so the heads must read colour through the
backbone features, not memorise pixels.
"""

from __future__ import annotations

import functools
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

TYPES = ("landscape", "portrait", "still-life")
HUES = {"landscape": 0.33, "portrait": 0.02, "still-life": 0.62}


def painting(rng: np.random.Generator, label: str, size: int = 96) -> tuple[Image.Image, int]:
    import colorsys

    hue = (HUES[label] + rng.uniform(-0.06, 0.06)) % 1.0
    year = int(np.clip(1450 + (hue if hue < 0.9 else hue - 1.0) * 650 + rng.normal(0, 15), 1401, 1900))
    r, g, b = colorsys.hsv_to_rgb(hue, rng.uniform(0.55, 0.95), rng.uniform(0.55, 0.95))
    yy, xx = np.mgrid[0:size, 0:size]
    freq, angle = rng.uniform(0.05, 0.4), rng.uniform(0, np.pi)
    stripes = 0.5 + 0.5 * np.sin(freq * (xx * np.cos(angle) + yy * np.sin(angle)))
    base = np.stack([np.full((size, size), c) for c in (r, g, b)], axis=-1)
    img = base * (0.65 + 0.35 * stripes[..., None]) + rng.normal(0, 0.05, (size, size, 3))
    return Image.fromarray((np.clip(img, 0, 1) * 255).astype(np.uint8)), year


@dataclass
class LearnWorld:
    root: Path
    paths: list[str]
    labels: list[str]
    years: list[int]
    split: list[str]
    features: np.ndarray  # (N, dim) from the real default Embedder
    embedder: object
    cache_dir: Path

    def rows(self, split: str) -> np.ndarray:
        return np.array([i for i, s in enumerate(self.split) if s == split])

    def part(self, split: str):
        idx = self.rows(split)
        return (self.features[idx], {"type": [self.labels[i] for i in idx]}, [self.years[i] for i in idx])


@functools.lru_cache(maxsize=1)
def learn_world() -> LearnWorld:
    from vasari.features import Embedder, EmbeddingCache

    root = Path(tempfile.mkdtemp(prefix="vasari-learn-"))
    rng = np.random.default_rng(0)
    paths, labels, years, split = [], [], [], []
    per_class = {"train": 18, "val": 8, "test": 8}
    for label in TYPES:
        for name, count in per_class.items():
            for i in range(count):
                img, year = painting(rng, label)
                path = root / "images" / label / f"{name}_{i}.jpg"
                path.parent.mkdir(parents=True, exist_ok=True)
                img.save(path, quality=92)
                paths.append(str(path))
                labels.append(label)
                years.append(year)
                split.append(name)
    embedder = Embedder()
    cache_dir = root / "cache"
    result = embedder.embed_paths(paths, cache=EmbeddingCache(cache_dir, embedder.spec), progress=False)
    assert not result.errors, result.errors
    return LearnWorld(root, paths, labels, years, split, result.features, embedder, cache_dir)


@functools.lru_cache(maxsize=1)
def learn_bundle() -> tuple[Path, object]:
    """A bundle trained on the world (type + year heads), saved once per session."""
    from vasari.bundle import Bundle, save_bundle
    from vasari.heads.metrics import evaluate_heads
    from vasari.heads.train import HeadConfig, train_heads

    w = learn_world()
    Xt, lt, yt = w.part("train")
    Xv, lv, yv = w.part("val")
    heads = train_heads(Xt, lt, yt, Xv, lv, yv, HeadConfig(min_kept=3))
    Xs, ls, ys = w.part("test")
    ev = evaluate_heads(heads, Xs, ls, ys, split="test")
    bundle = Bundle(heads, w.embedder.spec, {"name": "generated", "data": {"generated": len(w.paths)}},
                    {"test": ev.metrics})
    path = save_bundle(bundle, w.root / "bundle")
    return path, heads
