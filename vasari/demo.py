"""What ``vasari demo`` trains on and shows: a small, grouped, every-task subset of the shared
data, and a few example answers on held-out paintings.

The demo must finish in under a minute cold on 2 cores (ONNX export + embedding dominate,
at roughly 60-150 images/s), so it samples a fixed number of images per source: artists7
(artist), WikiArt (style, artist, year), WGA thumbnails (school, period, type, artist) and the
Louvre folders (type), so that every task has labels. The split is the dataset stage's
grouped split (copies of one work never straddle train and test); the Louvre museum photos
stay an extra evaluation split, as in the type-only demo before.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from vasari.core.labels import TASKS


@dataclass(frozen=True)
class DemoConfig:
    """Which images the demo uses and how it splits them.

    ``per_source``: (catalog source, images sampled from it); sources that are absent are
    skipped. ``photos``: also evaluate type on the Louvre museum photos (55 images).
    ``examples``: how many held-out paintings get their answers printed.
    """

    per_source: tuple[tuple[str, int], ...] = (
        ("artists7", 560), ("wikiart", 640), ("wga_thumbs", 600), ("louvre", 320),
    )
    photos: bool = True
    seed: int = 0
    val_fraction: float = 0.15
    test_fraction: float = 0.2
    min_per_class: int = 8
    examples: int = 6


@dataclass
class DemoData:
    """The demo's artworks, their splits ("train", "val", "test", "photos") and a one-line summary."""

    artworks: list[Any]
    splits: list[str]
    summary: str


def sample_catalogs(catalogs: Sequence[Any], config: DemoConfig) -> list[Any]:
    """Each catalog cut to its ``per_source`` size (seeded sample of works with a local image);
    catalogs not named in ``per_source`` or sized 0 are left out."""
    from vasari.catalog import Catalog

    sizes = dict(config.per_source)
    rng = np.random.default_rng(config.seed)
    out = []
    for catalog in catalogs:
        size = sizes.get(catalog.source, 0)
        arts = [a for a in catalog.artworks if a.image]
        if size <= 0 or not arts:
            continue
        keep = sorted(rng.choice(len(arts), size=min(size, len(arts)), replace=False))
        out.append(Catalog([arts[i] for i in keep], catalog.report))
    return out


def demo_data(data_dir: Path, config: DemoConfig = DemoConfig(), cache_dir: Path | None = None,
              progress: bool = True) -> DemoData:
    """Sample the shared data folder and split it with the dataset stage (grouped split).

    ``cache_dir`` keeps the perceptual hashes between runs. Raises ``DatasetError`` (from the
    dataset stage) when the folder holds nothing usable.
    """
    from vasari.catalog import read_folder, shared_catalogs
    from vasari.dataset import DatasetConfig, build_dataset

    catalogs = sample_catalogs(shared_catalogs(data_dir), config)
    ds_config = DatasetConfig(min_per_class=config.min_per_class, stratify_on=None, seed=config.seed,
                              val_fraction=config.val_fraction, test_fraction=config.test_fraction)
    ds = build_dataset(catalogs, ds_config, progress=progress, cache_dir=cache_dir)
    arts = [a for a in ds.artworks if a.image]
    splits = [ds.splits[a.artwork_id] for a in arts]
    photos_dir = data_dir / "louvre" / "photos"
    n_photos = 0
    if config.photos and photos_dir.is_dir():
        photos = read_folder(photos_dir, task="type", source="louvre_photos").artworks
        arts += photos
        splits += ["photos"] * len(photos)
        n_photos = len(photos)
    sources = ", ".join(f"{c.source} {len([a for a in arts if a.source == c.source])}" for c in catalogs)
    counts = ", ".join(f"{s} {splits.count(s)}" for s in ("train", "val", "test"))
    summary = (f"{len(arts)} images ({sources}" + (f", museum photos {n_photos}" if n_photos else "")
               + f"); grouped split: {counts}")
    return DemoData(arts, splits, summary)


def example_rows(artworks: Sequence[Any], splits: Sequence[str], n: int, seed: int = 0) -> list[int]:
    """``n`` held-out (test) rows, a seeded draw among those labelled for as many tasks as
    the n-th best labelled one, so the examples show artist, school, period and style together."""
    test = [i for i, s in enumerate(splits) if s == "test"]
    if not test or n <= 0:
        return []
    richness = np.array([sum(artworks[i].label(t) is not None for t in TASKS) for i in test])
    cutoff = np.sort(richness)[::-1][min(n, len(test)) - 1]
    candidates = [i for i, r in zip(test, richness) if r >= cutoff]
    rng = np.random.default_rng(seed)
    return sorted(int(i) for i in rng.choice(candidates, size=min(n, len(candidates)), replace=False))


def example_answers(predictor: Any, features: np.ndarray, artworks: Sequence[Any], rows: Sequence[int],
                    top_k: int = 2) -> list[dict[str, Any]]:
    """Prediction objects (``Predictor.predict_features``) of ``rows``, each with the true
    labels beside: ``{"image", "predictions", "verdict", "year", "truth": {task: label}}``."""
    if not rows:
        return []
    names = [Path(artworks[i].image).name for i in rows]
    out = predictor.predict_features(features[list(rows)], top_k=top_k, names=names)
    for obj, i in zip(out, rows):
        art = artworks[i]
        obj["truth"] = {t: art.label(t) for t in TASKS if art.label(t) is not None}
        if art.year is not None:
            obj["truth"]["year"] = art.year
    return out
