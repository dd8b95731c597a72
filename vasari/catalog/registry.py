"""Catalog kinds: parse a "kind:path?opt=val" spec, sniff a bare path's kind, and read it with its source's reader."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from urllib.parse import parse_qsl

from vasari.catalog import folder, kaggle, manifest, wga, wikiart
from vasari.catalog.records import Catalog, CatalogError

#: Each kind's module: ``sniff(path) -> bool`` and ``read(path, **options) -> Catalog``.
SOURCES: dict[str, ModuleType] = {
    "wga": wga,
    "kaggle": kaggle,
    "folder": folder,
    "manifest": manifest,
    "wikiart": wikiart,
}

#: kind -> reader (the spec's kinds, in the order error messages list them).
READERS: dict[str, Callable[..., Catalog]] = {kind: module.read for kind, module in SOURCES.items()}

#: The order kinds are asked whether they claim a bare path: a file's header is most specific for
#: WGA and Kaggle and any CSV reads as a manifest; a folder's marker files come before its layout,
#: and any folder with subfolders reads as a folder per class.
_FILE_SNIFF_ORDER: tuple[str, ...] = ("wga", "kaggle", "wikiart", "manifest")
_FOLDER_SNIFF_ORDER: tuple[str, ...] = ("kaggle", "wga", "manifest", "wikiart", "folder")


def _coerce(value: str):
    low = value.lower()
    if low in {"true", "yes", "on", "1"}:
        return True
    if low in {"false", "no", "off", "0"}:
        return False
    if low in {"none", "null"}:
        return None
    return value


def sniff_kind(path: str | Path) -> str:
    """Which reader a bare path needs ("wga", "kaggle", "folder", "manifest", "wikiart")."""
    path = Path(path)
    if path.is_file():
        order = _FILE_SNIFF_ORDER
    elif path.is_dir():
        order = _FOLDER_SNIFF_ORDER
    else:
        raise CatalogError(path, "no such file or folder")
    kind = next((kind for kind in order if SOURCES[kind].sniff(path)), None)
    if kind is None:
        raise CatalogError(
            path, "cannot tell the catalog kind (no catalog.csv, metadata.csv, artists.csv or class folders)"
        )
    return kind


#: "kind:" at the start of a catalog spec (not a Windows drive: "C:\\...")
_KIND_PREFIX = re.compile(r"^([a-z_]+):(?!\\)(.*)$")


def parse_spec(spec: str | Path) -> tuple[str | None, str, dict[str, object]]:
    """ "kind:path?opt=val&opt2=val" -> (kind or None, path, options)."""
    text = str(spec)
    kind = None
    m = _KIND_PREFIX.match(text)
    if m and m.group(1) in READERS:
        kind, text = m.group(1), m.group(2)
    options: dict[str, object] = {}
    if "?" in text:
        text, query = text.split("?", 1)
        options = {k: _coerce(v) for k, v in parse_qsl(query, keep_blank_values=True)}
    return kind, text, options


def read_catalog(spec: str | Path, kind: str | None = None, **options) -> Catalog:
    """Read any catalog from a spec "kind:path?opt=val", e.g.
    "wga:../shared/data/wga/catalog.csv", "folder:../shared/data/louvre/train?task=type",
    "kaggle:../shared/data/artists7", "manifest:../shared/data/aic/metadata.csv",
    "wikiart:../shared/data/wikiart"; a bare path is sniffed (``sniff_kind``).
    Keyword ``options`` override the spec's."""
    spec_kind, path_text, spec_options = parse_spec(spec)
    kind = kind or spec_kind
    path = Path(path_text).expanduser()
    prefix = _KIND_PREFIX.match(path_text)
    if kind is None and prefix and not path.exists():  # "bogus:x" is a misspelt kind, not a file name
        raise CatalogError(prefix.group(2), f"unknown catalog kind {prefix.group(1)!r}; kinds are {', '.join(READERS)}")
    if not path.exists():
        raise CatalogError(path, "no such file or folder")
    if kind is None:
        kind = sniff_kind(path)
    if kind not in READERS:
        raise CatalogError(path, f"unknown catalog kind {kind!r}; kinds are {', '.join(READERS)}")
    merged = {**spec_options, **options}
    if kind == "wga" and path.is_dir():
        path = path / "catalog.csv"
    if kind == "manifest" and path.is_dir():
        path = path / "metadata.csv"
    if kind == "wikiart" and "genre_csv" in merged:
        merged["genre"] = merged.pop("genre_csv")
    try:
        return READERS[kind](path, **merged)
    except TypeError as exc:
        if "unexpected keyword" in str(exc):
            raise CatalogError(path, f"unknown option for {kind}: {exc}") from exc
        raise
