"""Catalogs: read a source's own table or folder layout (WGA, Kaggle Best Artworks, WikiArt, AIC, a folder per class, a CSV manifest) into ``Artwork`` records, mapping free text onto Vasari's vocabularies.

Layout: ``records`` (Artwork, ParseReport, Catalog, CatalogError); ``normalize`` (free text ->
labels); ``rows`` (what the readers share: CSV rows, cells, report counting); one module per source,
each with ``sniff(path) -> bool`` and ``read(path, ...) -> Catalog``: ``wga``, ``kaggle``, ``folder``,
``manifest`` (AIC's metadata.csv is a manifest), ``wikiart``; ``registry`` (kinds, ``parse_spec``,
``sniff_kind``, ``read_catalog``); ``shared`` (the shared data folder's sources); ``sources``
(``read_sources``: the CLI's SPEC arguments -> catalogs).
"""

from vasari.catalog.folder import read_folder
from vasari.catalog.kaggle import read_kaggle
from vasari.catalog.manifest import MANIFEST_COLUMNS, read_manifest
from vasari.catalog.normalize import (
    ARTIST_ALIASES,
    MAX_TIMEFRAME_SPAN,
    OTHER_NATIONALITIES,
    ParsedArtist,
    artist_key,
    display_artist,
    fix_text,
    fold,
    has_date,
    map_label,
    map_school,
    map_style,
    map_timeframe,
    map_type,
    parse_artist,
    parse_date,
    parse_year,
    parse_year_range,
    slug_to_name,
    slug_to_title,
    wga_author_name,
)
from vasari.catalog.records import (
    IMAGE_EXTENSIONS,
    REPORT_FIELDS,
    Artwork,
    Catalog,
    CatalogError,
    ParseReport,
)
from vasari.catalog.registry import (
    READERS,
    SOURCES,
    parse_spec,
    read_catalog,
    sniff_kind,
)
from vasari.catalog.rows import read_csv_rows
from vasari.catalog.shared import (
    SHARED_SOURCES,
    artist_schools,
    fill_schools,
    harmonize_artists,
    shared_catalogs,
    shared_negatives,
)
from vasari.catalog.sources import SHARED_SPEC, SharedDataMissing, read_sources
from vasari.catalog.wga import read_wga, wga_author_schools, wga_image_url
from vasari.catalog.wikiart import parse_wikiart_name, read_wikiart

__all__ = [
    "fix_text",
    "fold",
    "artist_key",
    "has_date",
    "parse_year_range",
    "parse_year",
    "MAX_TIMEFRAME_SPAN",
    "parse_date",
    "map_type",
    "map_school",
    "map_style",
    "map_timeframe",
    "map_label",
    "ARTIST_ALIASES",
    "ParsedArtist",
    "wga_author_name",
    "slug_to_name",
    "slug_to_title",
    "display_artist",
    "OTHER_NATIONALITIES",
    "parse_artist",
    "Artwork",
    "IMAGE_EXTENSIONS",
    "REPORT_FIELDS",
    "CatalogError",
    "ParseReport",
    "Catalog",
    "read_csv_rows",
    "wga_image_url",
    "wga_author_schools",
    "read_wga",
    "read_kaggle",
    "read_folder",
    "MANIFEST_COLUMNS",
    "read_manifest",
    "parse_wikiart_name",
    "read_wikiart",
    "READERS",
    "sniff_kind",
    "parse_spec",
    "read_catalog",
    "harmonize_artists",
    "artist_schools",
    "fill_schools",
    "SHARED_SOURCES",
    "shared_catalogs",
    "shared_negatives",
    "SOURCES",
    "SHARED_SPEC",
    "SharedDataMissing",
    "read_sources",
]
