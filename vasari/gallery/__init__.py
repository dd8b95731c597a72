"""The gallery index: the known paintings' embeddings and metadata, for similar paintings, artist affinity and novelty."""

from vasari.gallery.index import (
    INDEX_FORMAT,
    INDEX_FILE,
    META_FIELDS,
    GalleryIndexError,
    IndexSpecError,
    IndexConfig,
    Hit,
    l2_normalize,
    Projection,
    SHARED_PREFIX,
    GalleryIndex,
    find_index,
    load_bundle_index,
    enrich_predictions,
)

__all__ = [
    "INDEX_FORMAT",
    "INDEX_FILE",
    "META_FIELDS",
    "GalleryIndexError",
    "IndexSpecError",
    "IndexConfig",
    "Hit",
    "l2_normalize",
    "Projection",
    "SHARED_PREFIX",
    "GalleryIndex",
    "find_index",
    "load_bundle_index",
    "enrich_predictions",
]
