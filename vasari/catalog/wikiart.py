"""The WikiArt benchmark layout (ArtGAN: ``<root>/<Style>/<artist>_<title>-<year>.jpg`` + genre/style CSVs): ``sniff`` and ``read``."""

from __future__ import annotations

import csv
import io
import re
from pathlib import Path

from vasari.catalog import normalize as nz
from vasari.catalog.records import (
    IMAGE_EXTENSIONS,
    Artwork,
    Catalog,
    CatalogError,
    ParseReport,
)
from vasari.catalog.rows import (
    absolute,
    count_timeframe,
    is_image,
    no_images,
    peek_header,
    read_text,
    set_label,
    sniff_delimiter,
)
from vasari.core.labels import timeframe_of

_WIKIART_STEM = re.compile(r"^(?P<title>.*?)(?:-(?P<year>\d{4}))?(?:-(?P<dup>\d{1,2}))?$")


def parse_wikiart_name(name: str) -> tuple[str | None, str | None, int | None]:
    """(artist, title, year) from a WikiArt benchmark file name:
    "rembrandt_self-portrait-1630-1.jpg" -> ("Rembrandt", "Self portrait", 1630);
    "caravaggio_amor-victorious-1602(1).jpg" -> ("Caravaggio", "Amor victorious", 1602);
    "guido-reni_not_detected_232244-1635.jpg" -> ("Guido Reni", None, 1635)."""
    stem = Path(name).stem if Path(name).suffix.lower() in IMAGE_EXTENSIONS else name
    stem = nz.fix_text(stem)
    stem = re.sub(r"\(\d+\)$", "", stem)
    if "_" not in stem:
        return None, None, None
    artist_slug, rest = stem.split("_", 1)
    m = _WIKIART_STEM.match(rest)
    title_slug, year = (m.group("title"), m.group("year")) if m else (rest, None)
    if year is None:
        m2 = re.match(r"^(?P<title>.*?)-(?P<year>\d{4})$", rest)
        if m2:
            title_slug, year = m2.group("title"), m2.group("year")
    title = None if re.match(r"^not[_-]detected", title_slug) or not title_slug else nz.slug_to_title(title_slug)
    artist = nz.display_artist(nz.slug_to_name(artist_slug)) if artist_slug else None
    return artist, title, int(year) if year else None


def _read_label_csv(csv_path: Path) -> dict[str, str]:
    """path -> label from a WikiArt ``path,label`` CSV (header optional; integer labels are
    resolved through ``<name>_class.txt`` beside it, as the ArtGAN lists do)."""
    text = read_text(csv_path)
    labels: dict[str, str] = {}
    classes: dict[str, str] = {}
    stem = csv_path.stem.split("_")[0]
    for class_file in (csv_path.parent / f"{stem}_class.txt", csv_path.parent / f"{stem}_classes.txt"):
        if class_file.is_file():
            for line in read_text(class_file).splitlines():
                parts = line.strip().split(None, 1)
                if len(parts) == 2:
                    classes[parts[0]] = parts[1]
    reader = csv.reader(io.StringIO(text), delimiter=sniff_delimiter(text.splitlines()[0]))
    for i, values in enumerate(reader, start=1):
        if len(values) < 2:
            continue
        rel, label = values[0].strip(), values[1].strip()
        if i == 1 and not is_image(Path(rel)):
            continue  # header
        labels[rel.replace("\\", "/")] = classes.get(label, label)
    return labels


def read_wikiart(
    path: str | Path,
    *,
    source: str | None = None,
    genre: str | Path | None = None,
    style_csv: str | Path | None = None,
    artist_csv: str | Path | None = None,
) -> Catalog:
    """Read the WikiArt benchmark layout (ArtGAN): ``<root>/<Style>/<artist-slug>_<title-slug>-<year>.jpg``.

    style = the folder (mapped: "Mannerism_Late_Renaissance" -> "Mannerism"); artist, title
    and year from the file name (year -> timeframe); type from a ``path,genre`` CSV
    (``genre``; ``<root>/genre.csv`` or ``genre_*.csv`` by default; genres mapped:
    "religious_painting" -> "religious", "sketch_and_study" unmapped). ``style_csv`` /
    ``artist_csv`` override the folder / file-name labels when given.
    """
    path = Path(path)
    root = path.parent if path.is_file() else path
    if not root.is_dir():
        raise CatalogError(path, "not a folder (expected <root>/<Style>/<artist>_<title>-<year>.jpg)")
    source = source or root.name or "wikiart"

    def find_csv(option, prefix: str) -> dict[str, str]:
        if option:
            p = Path(option)
            p = p if p.is_absolute() or p.exists() else root / p
            if not p.is_file():
                raise CatalogError(p, f"the {prefix} CSV does not exist")
            return _read_label_csv(p)
        labels: dict[str, str] = {}
        for p in sorted(root.glob(f"{prefix}*.csv")):
            labels.update(_read_label_csv(p))
        return labels

    genres = find_csv(genre if not (path.is_file() and genre is None) else path, "genre")
    styles = find_csv(style_csv, "style") if style_csv else {}
    artists = find_csv(artist_csv, "artist") if artist_csv else {}
    report = ParseReport(source)
    artworks: list[Artwork] = []
    for style_dir in sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")):
        for image in sorted(p for p in style_dir.iterdir() if p.is_file() and is_image(p)):
            report.rows += 1
            rel = f"{style_dir.name}/{image.name}"
            artist, title, year = parse_wikiart_name(image.name)
            if rel in artists:
                artist = nz.display_artist(nz.slug_to_name(artists[rel]))
            report.count("artist", True, artist is not None)
            report.count("year", True, year is not None)
            timeframe = timeframe_of(year)
            count_timeframe(report, "", None, year, timeframe)
            style_raw = styles.get(rel, style_dir.name)
            style = set_label(report, "style", style_raw, nz.map_style(style_raw))
            genre_raw = genres.get(rel)
            kind = set_label(report, "type", genre_raw, nz.map_type(genre_raw)) if genre_raw else None
            extra = {"folder": style_dir.name}
            if genre_raw:
                extra["genre"] = genre_raw
            artworks.append(
                Artwork(
                    artwork_id=f"{source}:{Path(rel).with_suffix('').as_posix()}",
                    source=source,
                    image=absolute(image),
                    title=title,
                    artist=artist,
                    year=year,
                    timeframe=timeframe,
                    type=kind,
                    style=style,
                    extra=extra,
                )
            )
    no_images(root, artworks, "no images found (expected <root>/<Style>/<artist>_<title>-<year>.jpg)")
    return Catalog(artworks, report)


def sniff(path: Path) -> bool:
    """WikiArt: a CSV of two columns (image path, label), or a folder with genre/style CSVs or whose
    style folders hold mostly ``artist-slug_title-slug-1890.jpg`` names."""
    if path.is_file():
        header = peek_header(path)
        return len(header) == 2 and is_image(Path(header[0]))
    if list(path.glob("genre*.csv")) or list(path.glob("style*.csv")):
        return True
    subdirs = [p for p in path.iterdir() if p.is_dir() and not p.name.startswith(".")]
    sample = [f.name for d in subdirs[:5] for f in list(d.iterdir())[:20] if f.is_file() and is_image(f)]
    return bool(sample) and sum(bool(re.match(r"^[a-z0-9.\-]+_.+-\d{4}", n)) for n in sample) >= 0.8 * len(sample)


read = read_wikiart
