"""SPEC arguments to catalogs: the one place every CLI verb (dataset build, index build and its
negatives, embed, download) turns what a user names on the command line into catalogs.

A SPEC is a catalog spec "kind:path?opt=val" or a bare path (``read_catalog`` sniffs its kind), or
the word ``shared`` for the labelled sources of the shared data folder (``shared_catalogs``). Each
source stays its own ``Catalog``, so that its parse report can be shown and the dataset stage can
count records per source.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from vasari.catalog.records import Catalog, CatalogError
from vasari.catalog.registry import read_catalog
from vasari.catalog.shared import shared_catalogs, shared_negatives
from vasari.core.paths import shared_data_dir

#: The SPEC that names the shared data folder's catalogs.
SHARED_SPEC = "shared"


class SharedDataMissing(CatalogError):
    """``shared`` was named but no shared data folder exists: neither ``data_dir`` nor
    ``../shared/data`` / $VASARI_DATA. The CLI words the fix for its own options."""


def read_sources(
    specs: Iterable[str | Path],
    *,
    data_dir: str | Path | None = None,
    include_photos: bool = False,
    negatives: bool = False,
) -> list[Catalog]:
    """The catalogs ``specs`` name, in order.

    ``shared`` reads the shared data folder (``data_dir``, else ``vasari.core.paths.shared_data_dir()``):
    its labelled sources (``include_photos`` adds the Louvre photos), or with ``negatives`` its known
    non-paintings (``shared_negatives``). Anything else goes to ``read_catalog``, whose
    ``CatalogError`` names the file and row.
    """
    catalogs: list[Catalog] = []
    for spec in specs:
        if str(spec) != SHARED_SPEC:
            catalogs.append(read_catalog(spec))
            continue
        folder = Path(data_dir) if data_dir else shared_data_dir()
        if folder is None or not folder.is_dir():
            raise SharedDataMissing(folder or "../shared/data", "no shared data folder found")
        catalogs.extend(shared_negatives(folder) if negatives else shared_catalogs(folder, include_photos=include_photos))
    return catalogs
