"""Datasets: filter artworks, find near-duplicates, and assign leakage-free grouped splits.

Layout: ``config`` (DatasetConfig, DatasetError, split names); ``records`` (Dataset, class weights
and counts); ``dedupe`` (perceptual hashes and their cache, near-duplicate pairs, union-find groups,
details joined by title); ``split`` (grouped and random split assignment, diffs); ``build``
(``build_dataset``: merge, filter, hash, group, split, drop rare classes, report, one function each);
``io`` (save and load a dataset folder).
"""

from vasari.dataset.build import build_dataset, merge_catalogs
from vasari.dataset.config import (
    FORM_KEYS,
    FORMAT,
    SPLIT_STRATEGIES,
    SPLITS,
    DatasetConfig,
    DatasetError,
)
from vasari.dataset.dedupe import (
    FINE_WORDS,
    PHASH_CACHE,
    ImageHashes,
    PhashCache,
    UnionFind,
    detail_base,
    near_duplicate_pairs,
    perceptual_hashes,
    phash_image,
)
from vasari.dataset.io import (
    ARTWORK_COLUMNS,
    DATASET_COLUMNS,
    load_dataset,
    load_splits,
    save_dataset,
    save_splits,
)
from vasari.dataset.records import Dataset, class_counts, class_weights
from vasari.dataset.split import diff_splits, split_grouped, split_random, straddling

__all__ = [
    "SPLITS",
    "SPLIT_STRATEGIES",
    "FORMAT",
    "FORM_KEYS",
    "DatasetError",
    "DatasetConfig",
    "Dataset",
    "class_weights",
    "class_counts",
    "PHASH_CACHE",
    "FINE_WORDS",
    "phash_image",
    "PhashCache",
    "ImageHashes",
    "perceptual_hashes",
    "near_duplicate_pairs",
    "UnionFind",
    "detail_base",
    "merge_catalogs",
    "split_grouped",
    "split_random",
    "diff_splits",
    "straddling",
    "build_dataset",
    "ARTWORK_COLUMNS",
    "DATASET_COLUMNS",
    "save_splits",
    "load_splits",
    "save_dataset",
    "load_dataset",
]
