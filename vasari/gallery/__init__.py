"""The gallery index: the known paintings' embeddings and metadata, for similar paintings, artist affinity and novelty."""

from vasari.gallery.config import (
    INDEX_FORMAT,
    INDEX_FILE,
    META_FIELDS,
    GalleryIndexError,
    INDEX_KINDS,
    IndexConfigError,
    IndexSpecError,
    IndexConfig,
)
from vasari.gallery.index import GalleryIndex, load_bundle_index
from vasari.gallery.projection import l2_normalize, Projection
from vasari.gallery.search import Hit
from vasari.gallery.store import SHARED_PREFIX, find_index

__all__ = [
    "INDEX_FORMAT",
    "INDEX_FILE",
    "META_FIELDS",
    "GalleryIndexError",
    "IndexSpecError",
    "IndexConfigError",
    "INDEX_KINDS",
    "IndexConfig",
    "Hit",
    "l2_normalize",
    "Projection",
    "SHARED_PREFIX",
    "GalleryIndex",
    "find_index",
    "load_bundle_index",
]
