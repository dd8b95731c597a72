"""Datasets: filter and merge catalogs, find near-duplicates, and split without leakage.

``build_dataset`` turns the ``Artwork`` records of one or more catalogs into a ``Dataset``:

1. **Merge** the catalogs (artwork ids stay unique; per-source counts are reported).
2. **Filter** as in the WGA study: works dated 1401-1900 (undated works are kept unless
   ``keep_undated=False``), paintings only, optionally some types only.
3. **Near-duplicates**: every local image gets a 64-bit perceptual hash (``imagehash.phash``);
   images within ``phash_distance`` bits of each other are joined (union-find, transitively)
   into one ``group``. Records sharing an image path, a URL or a reader-preset group join too,
   and so do details ("… (detail)") with the same artist's work of that title;
   records without a local image form a group of their own. Unreadable images are dropped
   and listed with their reasons.
4. **Split** into train / val / test with a fixed seed: ``"grouped"`` (the default) keeps every
   group, and with ``group_by_artist`` every artist, inside one split, stratified on one task
   where possible (greedy, seeded); ``"random"`` is the stratified random split of
   the seed studies (it leaks duplicates; the number of straddling groups is reported).
5. **Rare classes**: per task, a class with fewer than ``min_per_class`` *training* examples
   loses its label (the record stays if it has other labels) and is counted.

``save_dataset`` writes ``dataset.csv`` (``Artwork.to_row`` + ``split``), ``splits.csv``
(``artwork_id,split`` sorted by id: the split file to keep, reload and ``diff_splits``) and
``dataset.json`` (config, counts, per-source report, what was dropped and why).
"""

from __future__ import annotations

import re
import time
from collections import Counter, defaultdict
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Sequence

from vasari.catalog import Artwork
from vasari.core.labels import TASKS, timeframe_of
from vasari.dataset.clean import apply_scope, forget_artist, relabelled_artists
from vasari.dataset.lives import artist_life_years
from vasari.dataset.config import FORM_KEYS, FORMAT, SPLITS, DatasetConfig, DatasetError
from vasari.dataset.dedupe import (
    ImageHashes,
    UnionFind,
    join_details,
    name_components,
    near_duplicate_pairs,
    perceptual_hashes,
)
from vasari.dataset.records import Dataset, class_counts
from vasari.dataset.split import split_grouped, split_random, straddling

if TYPE_CHECKING:  # pragma: no cover
    import numpy as np

    from vasari.catalog import Catalog

_TIMEFRAME_RE = re.compile(r"^\s*(\d{3,4})\s*-\s*(\d{3,4})\s*$")


# --------------------------------------------------------------------------- merge and filter


def _is_painting(art: Artwork) -> bool:
    for key in FORM_KEYS:
        form = art.extra.get(key) if art.extra else None
        if form:
            return str(form).strip().lower() in ("painting", "paintings")
    return True


def _timeframe_bounds(timeframe: str | None) -> tuple[int, int] | None:
    match = _TIMEFRAME_RE.match(timeframe or "")
    return (int(match.group(1)), int(match.group(2))) if match else None


def _date_filter(art: Artwork, config: DatasetConfig) -> str | None:
    """None to keep, else the reason to drop."""
    if art.year is not None:
        if not config.first_year <= art.year <= config.last_year:
            return f"year outside {config.first_year}-{config.last_year}"
        return None
    bounds = _timeframe_bounds(art.timeframe)
    if bounds is not None:
        if bounds[1] < config.first_year or bounds[0] > config.last_year:
            return f"year outside {config.first_year}-{config.last_year}"
        return None
    return None if config.keep_undated else "undated"


def _has_labels(art: Artwork) -> bool:
    return art.year is not None or any(art.label(task) is not None for task in TASKS)


def merge_catalogs(catalogs: Sequence["Catalog"]) -> tuple[list[Artwork], dict[str, dict[str, Any]]]:
    """Concatenate catalogs keeping artwork ids unique.

    A record repeated with the same id and image is dropped (``duplicate_id``); a different
    record under a taken id is renamed ``<id>~2`` (``renamed_id``).
    """
    merged: list[Artwork] = []
    seen: dict[str, Artwork] = {}
    per_source: dict[str, dict[str, Any]] = {}
    for catalog in catalogs:
        name = getattr(catalog.report, "source", None) or "catalog"
        stats = per_source.setdefault(name, {"records": 0, "kept": 0, "dropped": Counter()})
        for art in catalog.artworks:
            stats["records"] += 1
            previous = seen.get(art.artwork_id)
            if previous is not None:
                if previous == art:
                    stats["dropped"]["duplicate_id"] += 1
                    continue
                n = 2
                while f"{art.artwork_id}~{n}" in seen:
                    n += 1
                art = replace(art, artwork_id=f"{art.artwork_id}~{n}")
                stats["dropped"]["renamed_id (kept)"] += 1
            seen[art.artwork_id] = art
            merged.append(art)
    return merged, per_source


# --------------------------------------------------------------------------- build


def build_dataset(
    catalogs: Sequence["Catalog"],
    config: DatasetConfig = DatasetConfig(),
    progress: bool = True,
    *,
    cache_dir: Path | None = None,
) -> Dataset:
    """Merge, filter, deduplicate and split catalogs into a ``Dataset`` (the steps of the module docstring).

    ``cache_dir`` keeps perceptual hashes between builds (``phash-cache.csv``).
    Raises ``DatasetError`` when nothing usable remains or a requested type has no works.
    """
    started = time.perf_counter()
    artworks, per_source = merge_catalogs(catalogs)
    if not artworks:
        names = ", ".join(per_source) or "no catalogs"
        raise DatasetError(f"no artworks to build a dataset from ({names})")
    drops = _Drops(by_source={name: stats["dropped"] for name, stats in per_source.items()})
    kept = _filter(artworks, config, drops)
    hashed = _hash_images(kept, drops, progress, cache_dir)
    grouped = _group_near_duplicates(hashed, config)
    splits = _assign_splits(grouped.artworks, grouped.group_names, config)
    final, removed_labels = _drop_rare_classes(grouped.artworks, splits, config, drops)
    info = _build_info(final, splits, config, per_source, drops, hashed, grouped, removed_labels)
    info["seconds"] = {"total": round(time.perf_counter() - started, 2), "pairs": round(grouped.seconds_pairs, 3)}
    ds = Dataset(artworks=final, splits=splits, config=config, info=info)
    info["class_weights"] = {task: ds.class_weights(task) for task in TASKS}
    return ds


@dataclass
class _Drops:
    """Records dropped by reason, overall and per source (the report's "dropped")."""

    by_source: dict[str, Counter[str]]
    total: Counter[str] = field(default_factory=Counter)
    #: artist labels removed by the scope rule (``DatasetConfig.artist_scope``), per artist
    out_of_scope: dict[str, int] = field(default_factory=dict)

    def drop(self, art: Artwork, reason: str) -> None:
        self.total[reason] += 1
        self.by_source.setdefault(art.source, Counter())[reason] += 1


def _filter(artworks: list[Artwork], config: DatasetConfig, drops: _Drops) -> list[Artwork]:
    """Step 2: paintings only, the date window, the selected types, something to learn; a dated record
    without timeframe gets its year's. A selected type left without works is an error."""
    kept: list[Artwork] = []
    wanted_types = set(config.types) if config.types is not None else None
    for art in artworks:
        if config.paintings_only and not _is_painting(art):
            drops.drop(art, "not a painting")
            continue
        reason = _date_filter(art, config)
        if reason:
            drops.drop(art, reason)
            continue
        if wanted_types is not None and art.type is not None and art.type not in wanted_types:
            drops.drop(art, "type not selected")
            continue
        if art.timeframe is None and art.year is not None:
            art = replace(art, timeframe=timeframe_of(art.year))
        if not _has_labels(art):
            drops.drop(art, "no labels")
            continue
        kept.append(art)
    if config.artist_scope:  # the artist vocabulary: painters active 1401-1900
        kept, drops.out_of_scope = apply_scope(kept)
    if wanted_types is not None:
        present = {a.type for a in kept}
        empty = sorted(wanted_types - present)
        if empty:
            raise DatasetError(
                f"type {', '.join(repr(t) for t in empty)} has no artworks after filtering "
                f"(types present: {', '.join(sorted(t for t in present if t)) or 'none'})"
            )
    return kept


@dataclass
class _HashedImages:
    """The records left after hashing, the hashes of the readable images, and which record has which."""

    artworks: list[Artwork]
    hashes: ImageHashes
    hash_of: dict[int, int]  # record index -> row of ``hashes``
    unreadable: list[dict[str, str]]


def _hash_images(kept: list[Artwork], drops: _Drops, progress: bool, cache_dir: Path | None) -> _HashedImages:
    """Step 3a: perceptual hashes of local images; records whose image cannot be read are dropped and listed."""
    with_image = [i for i, a in enumerate(kept) if a.image]
    paths = [str(kept[i].image) for i in with_image]
    hashes = perceptual_hashes(paths, progress=progress, cache_dir=cache_dir)
    unreadable: list[dict[str, str]] = []
    bad = set()
    for j, (code, message) in sorted(hashes.errors.items()):
        art = kept[with_image[j]]
        bad.add(with_image[j])
        drops.drop(art, f"unreadable image ({code})")
        unreadable.append({"artwork_id": art.artwork_id, "image": str(art.image), "code": code, "error": message})
    if with_image and len(bad) == len(with_image) and len(kept) == len(bad):
        first = unreadable[0]["error"] if unreadable else ""
        raise DatasetError(f"no images: none of the {len(paths)} images could be read (first: {first})")
    good = [j for j, i in enumerate(with_image) if i not in bad]
    image_index = {with_image[j]: k for k, j in enumerate(good)}
    survivors = [i for i in range(len(kept)) if i not in bad]
    hash_of = {new: image_index[old] for new, old in enumerate(survivors) if old in image_index}
    if not survivors:
        raise DatasetError(f"no artworks left after filtering (dropped: {_fmt_counter(drops.total)})")
    return _HashedImages([kept[i] for i in survivors], hashes.take(good), hash_of, unreadable)


@dataclass
class _Groups:
    """Records with their ``group`` set, the group name of each, and what the grouping found."""

    artworks: list[Artwork]
    group_names: list[str]
    pairs: "np.ndarray"
    phash_groups: list[int]  # sizes of the groups phash pairs alone make
    details_joined: int
    seconds_pairs: float


def _group_near_duplicates(hashed: _HashedImages, config: DatasetConfig) -> _Groups:
    """Step 3b: near-duplicate groups: phash pairs, then the same image path / URL / preset group,
    then details joined to their work by title."""
    kept = hashed.artworks
    t_pairs = time.perf_counter()
    pairs = near_duplicate_pairs(
        hashed.hashes.coarse, config.phash_distance, fine=hashed.hashes.fine, fine_distance=config.confirm_distance
    )
    seconds_pairs = time.perf_counter() - t_pairs
    uf = UnionFind(len(kept))
    by_hash_row = {row: i for i, row in hashed.hash_of.items()}
    for a, b in pairs.tolist():
        uf.union(by_hash_row[a], by_hash_row[b])
    phash_sizes = Counter(uf.find(i) for i in by_hash_row.values())
    phash_groups = [size for size in phash_sizes.values() if size > 1]
    for attr in ("image", "url", "group"):
        buckets: dict[str, list[int]] = defaultdict(list)
        for i, art in enumerate(kept):
            value = getattr(art, attr)
            if value:
                buckets[str(value)].append(i)
        for members in buckets.values():
            uf.union_all(members)
    details_joined = join_details(kept, uf) if config.group_details else 0
    group_names = name_components(uf.components(), [a.artwork_id for a in kept])
    grouped = [replace(a, group=g) for a, g in zip(kept, group_names)]
    return _Groups(grouped, group_names, pairs, phash_groups, details_joined, seconds_pairs)


def _assign_splits(kept: list[Artwork], group_names: list[str], config: DatasetConfig) -> dict[str, str]:
    """Step 4: artwork_id -> split; grouped splits move whole groups (with ``group_by_artist``, whole
    artists with their groups), random splits ignore them."""
    ids = [a.artwork_id for a in kept]
    split_units = list(group_names)
    if config.group_by_artist:
        uf_artist = UnionFind(len(kept))
        index_of_group: dict[str, int] = {}
        for i, g in enumerate(group_names):
            uf_artist.union(index_of_group.setdefault(g, i), i)
        index_of_artist: dict[str, int] = {}
        for i, art in enumerate(kept):
            if art.artist:
                uf_artist.union(index_of_artist.setdefault(art.artist, i), i)
        split_units = name_components(uf_artist.components(), ids)
    strata = [a.label(config.stratify_on) if config.stratify_on else None for a in kept]
    if config.split == "grouped":
        return split_grouped(
            ids,
            split_units,
            strata,
            val_fraction=config.val_fraction,
            test_fraction=config.test_fraction,
            seed=config.seed,
        )
    return split_random(
        ids, strata, val_fraction=config.val_fraction, test_fraction=config.test_fraction, seed=config.seed
    )


def _drop_rare_classes(
    kept: list[Artwork], splits: dict[str, str], config: DatasetConfig, drops: _Drops
) -> tuple[list[Artwork], dict[str, Counter[str]]]:
    """Step 5: per task, a class with fewer than ``min_per_class`` training examples loses its label;
    records left without any label are dropped (and leave ``splits``)."""
    removed_labels: dict[str, Counter[str]] = {}
    if config.min_per_class > 0:
        for task in TASKS:
            train_counts = Counter(
                a.label(task) for a in kept if splits[a.artwork_id] == "train" and a.label(task) is not None
            )
            all_labels = Counter(a.label(task) for a in kept if a.label(task) is not None)
            rare = {label for label in all_labels if train_counts.get(label, 0) < config.min_per_class}
            if rare:
                removed_labels[task] = Counter({label: all_labels[label] for label in sorted(rare)})
                kept = [(forget_artist(a) if task == "artist" else replace(a, **{task: None}))
                        if a.label(task) in rare else a for a in kept]
    final: list[Artwork] = []
    for art in kept:
        if _has_labels(art):
            final.append(art)
        else:
            drops.drop(art, "no labels left after min_per_class")
            splits.pop(art.artwork_id)
    if not final:
        raise DatasetError(
            f"no artworks left after dropping classes with fewer than {config.min_per_class} "
            f"training examples (dropped: {_fmt_counter(drops.total)})"
        )
    return final, removed_labels


def _source_report(
    final: list[Artwork], splits: dict[str, str], per_source: dict[str, dict[str, Any]], drops: _Drops
) -> dict[str, dict[str, Any]]:
    """Per source: records, kept, kept per split, dropped by reason (``per_source`` filled in place)."""
    for name, stats in per_source.items():
        members = [a for a in final if a.source == name]
        stats["kept"] = len(members)
        stats["splits"] = {s: sum(1 for a in members if splits[a.artwork_id] == s) for s in SPLITS}
        stats["dropped"] = dict(drops.by_source.get(name, Counter()))
    for name, counter in drops.by_source.items():  # records whose .source differs from their catalog's name
        if name not in per_source:
            per_source[name] = {
                "records": None,
                "kept": sum(1 for a in final if a.source == name),
                "dropped": dict(counter),
            }
    return per_source


def _build_info(
    final: list[Artwork],
    splits: dict[str, str],
    config: DatasetConfig,
    per_source: dict[str, dict[str, Any]],
    drops: _Drops,
    hashed: _HashedImages,
    grouped: _Groups,
    removed_labels: dict[str, Counter[str]],
) -> dict[str, Any]:
    """Step 6: the build's report (``Dataset.info``, saved as dataset.json)."""
    final_ids = {a.artwork_id for a in final}
    sources = _source_report(final, splits, per_source, drops)
    group_sizes = Counter(grouped.group_names)
    leaks = straddling(final, splits, "group")
    artist_leaks = straddling(final, splits, "artist")
    return {
        "format": FORMAT,
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "artworks": len(final),
        "splits": {s: sum(1 for i in final_ids if splits[i] == s) for s in SPLITS},
        "sources": sources,
        "dropped": dict(drops.total),
        "removed_labels": {task: dict(c) for task, c in removed_labels.items()},
        "out_of_scope_artist_labels": dict(drops.out_of_scope),
        "catalog_artist_of_relabelled": relabelled_artists(final),
        "artist_life_years": artist_life_years(final),
        "unreadable": hashed.unreadable,
        "duplicates": {
            "phash_distance": config.phash_distance,
            "confirm_distance": config.confirm_distance,
            "images_hashed": len(hashed.hashes.coarse),
            "pairs": int(len(grouped.pairs)),
            "phash_groups": len(grouped.phash_groups),
            "phash_images": sum(grouped.phash_groups),
            "groups_with_duplicates": sum(1 for size in group_sizes.values() if size > 1),
            "images_in_duplicate_groups": sum(size for size in group_sizes.values() if size > 1),
            "largest_group": max(group_sizes.values()) if group_sizes else 0,
            "details_joined": grouped.details_joined,
            "groups_straddling_splits": len(leaks),
            "artists_straddling_splits": len(artist_leaks),
        },
        "class_counts": class_counts(final, splits),
    }


def _fmt_counter(counter: Counter[str] | dict[str, int]) -> str:
    return ", ".join(f"{k}: {v}" for k, v in sorted(counter.items(), key=lambda kv: -kv[1])) or "nothing"
