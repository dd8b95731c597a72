"""One root for every error Vasari raises on purpose, with families below it (as httpx does).

Callers catch by family, not by a hand-built tuple of classes: the CLI turns any
``VasariError`` into one red line, the service maps ``InputError`` to a 4xx answer and
``ModelError``/``CacheError`` to a server-side one. Each family also keeps the built-in
base its members always had (``ValueError`` or ``RuntimeError``), so code written against
those keeps working.

    VasariError
    ├── InputError       what the user handed in is unusable: an image, a catalog, a
    │                    dataset, labels to train on (ImageError, CatalogError,
    │                    DatasetError, TrainError)
    ├── ModelError       a saved model or its parts are missing, corrupt or incompatible
    │                    (BundleError, BackboneError, GalleryIndexError, FinetuneError)
    ├── CacheError       an embedding cache cannot be used (CacheMismatchError,
    │                    CacheCorruptError, CacheLocationError)
    └── DownloadError    a download run cannot go on
"""

from __future__ import annotations


class VasariError(Exception):
    """Root of every error Vasari raises on purpose; its message names the file (and row)."""


class InputError(VasariError, ValueError):
    """Input the user handed in cannot be used as it is."""


class ModelError(VasariError, ValueError):
    """A saved model (bundle, backbone, gallery index) is missing, corrupt or incompatible."""


class CacheError(VasariError, RuntimeError):
    """An embedding cache cannot be used (written by another backbone, corrupt, unwritable)."""


class VasariDownloadError(VasariError, RuntimeError):
    """A download run cannot go on (the per-image failures go to failed.csv instead)."""
