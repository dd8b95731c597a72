"""Generated "artists" for the enrolment tests, embedded once per session by the REAL Embedder.

Each artist has a signature the backbone can see: a hue and a pattern (stripes or a checker
board), with per-image jitter in hue, frequency, angle and noise. Four artists train a small
bundle (artist head + reference rows + gallery); a fifth, "Elena Viola" (purple checker board),
is enrolled later from some of her images and tested on the others.
"""

from __future__ import annotations

import colorsys
import functools
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

KNOWN = {"Aldo Verde": (0.33, "stripes"), "Bruna Rossi": (0.0, "stripes"),
         "Carlo Blu": (0.62, "checker"), "Dora Gialli": (0.15, "checker")}
NEW_ARTIST = "Elena Viola"
NEW_STYLE = (0.8, "checker")


def painting(rng: np.random.Generator, hue: float, pattern: str, size: int = 96) -> Image.Image:
    hue = (hue + rng.uniform(-0.03, 0.03)) % 1.0
    r, g, b = colorsys.hsv_to_rgb(hue, rng.uniform(0.6, 0.95), rng.uniform(0.6, 0.95))
    yy, xx = np.mgrid[0:size, 0:size]
    freq = rng.uniform(0.15, 0.35)
    if pattern == "stripes":
        angle = rng.uniform(0, np.pi)
        motif = 0.5 + 0.5 * np.sin(freq * (xx * np.cos(angle) + yy * np.sin(angle)))
    else:
        motif = ((np.sin(freq * xx) > 0) ^ (np.sin(freq * yy) > 0)).astype(float)
    base = np.stack([np.full((size, size), c) for c in (r, g, b)], axis=-1)
    img = base * (0.55 + 0.45 * motif[..., None]) + rng.normal(0, 0.04, (size, size, 3))
    return Image.fromarray((np.clip(img, 0, 1) * 255).astype(np.uint8))


@dataclass
class EnrolWorld:
    root: Path
    paths: list[str]
    artists: list[str]
    split: list[str]
    features: np.ndarray
    embedder: object
    bundle: Path

    def rows(self, split: str, artist: str | None = None) -> list[int]:
        return [i for i, s in enumerate(self.split) if s == split and (artist is None or self.artists[i] == artist)]

    def images(self, split: str, artist: str | None = None) -> list[str]:
        return [self.paths[i] for i in self.rows(split, artist)]


def _draw(root: Path) -> tuple[list[str], list[str], list[str]]:
    rng = np.random.default_rng(7)
    paths, artists, split = [], [], []
    plan = [(name, style, {"train": 12, "val": 6, "test": 6}) for name, style in KNOWN.items()]
    plan.append((NEW_ARTIST, NEW_STYLE, {"enrol": 8, "held": 8}))
    for name, (hue, pattern), counts in plan:
        for part, count in counts.items():
            for i in range(count):
                path = root / "images" / name.replace(" ", "_") / f"{part}_{i}.jpg"
                path.parent.mkdir(parents=True, exist_ok=True)
                painting(rng, hue, pattern).save(path, quality=92)
                paths.append(str(path))
                artists.append(name)
                split.append(part)
    return paths, artists, split


@functools.lru_cache(maxsize=1)
def enrol_world() -> EnrolWorld:
    """The images, their features and a saved bundle that knows the four first artists."""
    from vasari.bundle import Bundle, save_bundle
    from vasari.enrol import write_reference
    from vasari.features import Embedder, EmbeddingCache
    from vasari.gallery.index import GalleryIndex
    from vasari.heads.train import HeadConfig, train_heads

    root = Path(tempfile.mkdtemp(prefix="vasari-enrol-"))
    paths, artists, split = _draw(root)
    embedder = Embedder()
    result = embedder.embed_paths(paths, cache=EmbeddingCache(root / "cache", embedder.spec), progress=False)
    assert not result.errors, result.errors
    X = result.features
    train = [i for i, s in enumerate(split) if s == "train"]
    val = [i for i, s in enumerate(split) if s == "val"]
    heads = train_heads(X[train], {"artist": [artists[i] for i in train]}, None, X[val],
                        {"artist": [artists[i] for i in val]}, None,
                        HeadConfig(tasks=("artist",), year=False, min_kept=3))
    index = GalleryIndex.build(X[train], [{"artwork_id": f"g{i}", "artist": artists[i], "group": f"g{i}",
                                           "source": "generated", "image": paths[i]} for i in train], embedder.spec)
    bundle = save_bundle(Bundle(heads, embedder.spec, {"name": "generated artists"}), root / "bundle", index=index)
    write_reference(bundle, heads, X[train + val], [artists[i] for i in train + val])
    return EnrolWorld(root, paths, artists, split, X, embedder, bundle)
