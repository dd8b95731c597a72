"""Kaggle "Best Artworks of All Time" layout (artists.csv + images/<Artist_Name>/): ``sniff`` and ``read``."""

from __future__ import annotations

import re
from pathlib import Path

from vasari.catalog import normalize as nz
from vasari.catalog.records import Artwork, Catalog, CatalogError, ParseReport
from vasari.catalog.rows import (
    absolute,
    cell,
    is_image,
    no_images,
    non_empty,
    peek_header,
    read_csv_rows,
    set_label,
)


def _kaggle_years(text: str) -> tuple[int | None, int | None]:
    nums = [int(n) for n in re.findall(r"\d{3,4}", text or "")]
    return (nums[0] if nums else None, nums[1] if len(nums) > 1 else None)


def read_kaggle(path: str | Path, *, source: str | None = None, images_dir: str | Path | None = None) -> Catalog:
    """Read Kaggle's "Best Artworks of All Time" layout: ``artists.csv`` (name, years, genre,
    nationality, ...) beside ``images/images/<Artist_Name>/<Artist_Name>_<n>.jpg``.

    ``path`` is the folder or its artists.csv. Artist = artists.csv name (display-normalised),
    style = genre (mapped), school = nationality (mapped). The images carry no date of their
    own: year and timeframe stay None; the artist's years go to ``extra`` (born, died).
    """
    path = Path(path)
    root = path.parent if path.is_file() else path
    csv_path = path if path.is_file() else root / "artists.csv"
    if not csv_path.is_file():
        raise CatalogError(csv_path, "no artists.csv (Kaggle layout: artists.csv + images/images/<Artist_Name>/)")
    header, rows = read_csv_rows(csv_path, required=["name"])
    if images_dir is not None:
        img_root = Path(images_dir)
    else:
        img_root = next(
            (p for p in (root / "images" / "images", root / "images", root / "resized") if p.is_dir()),
            root / "images" / "images",
        )
    if not img_root.is_dir():
        raise CatalogError(root, "no images/images/ folder beside artists.csv")
    source = source or root.name or "kaggle"
    report = ParseReport(source)
    by_key: dict[str, dict[str, str]] = {}
    for row in rows:
        name = cell(row, "name")
        if name:
            by_key[nz.fold(name)] = row
    artworks: list[Artwork] = []
    folders = sorted(p for p in img_root.iterdir() if p.is_dir())
    matched_rows = set()
    for folder in folders:
        key = nz.fold(nz.fix_text(folder.name.replace("_", " ")))
        row = by_key.get(key)
        if row is None:  # "Albrecht_Du╠êrer": compare without the damaged letters
            loose = re.sub(r"[^a-z ]", "", key)
            row = next(
                (r for k, r in by_key.items() if re.sub(r"[^a-z ]", "", k).replace(" ", "") == loose.replace(" ", "")),
                None,
            )
        images = sorted((p for p in folder.iterdir() if p.is_file() and is_image(p)), key=lambda p: _natural(p.name))
        if row is None:
            report.rows += len(images)
            for _ in images:
                report.skip("artist folder not in artists.csv")
            continue
        matched_rows.add(id(row))
        raw_name = cell(row, "name")
        artist = nz.display_artist(raw_name)
        style_raw = cell(row, "genre", "style")
        nat_raw = cell(row, "nationality")
        style = nz.map_style(style_raw) if style_raw else None
        school = _school_from_nationality(nat_raw)
        born, died = _kaggle_years(cell(row, "years"))
        for image in images:
            report.rows += 1
            set_label(report, "artist", raw_name, artist)
            set_label(report, "style", style_raw, style)
            set_label(report, "school", nat_raw, school)
            extra = {"years": cell(row, "years"), "nationality": nat_raw, "genre": style_raw}
            if born:
                extra["born"] = str(born)
            if died:
                extra["died"] = str(died)
            artworks.append(
                Artwork(
                    artwork_id=f"{source}:{image.stem}",
                    source=source,
                    image=absolute(image),
                    url=None,
                    title=None,
                    artist=artist,
                    school=school,
                    style=style,
                    extra=non_empty(extra),
                )
            )
    no_images(img_root, artworks, "no images found under the artist folders (images/images/<Artist_Name>/*.jpg)")
    return Catalog(artworks, report)


def _school_from_nationality(raw: str) -> str | None:
    """Kaggle nationality, possibly several ("French,British"): the first that maps."""
    if not raw:
        return None
    for part in re.split(r"[,/;]", raw):
        school = nz.map_school(part)
        if school:
            return school
    return None


def _natural(name: str) -> list:
    return [int(t) if t.isdigit() else t.lower() for t in re.split(r"(\d+)", name)]


def sniff(path: Path) -> bool:
    """Kaggle's layout: a folder with artists.csv and images/, or a CSV with name + nationality or years."""
    if path.is_dir():
        return (path / "artists.csv").is_file() and (path / "images").is_dir()
    lower = {h.lower() for h in peek_header(path)}
    return {"name", "nationality"} <= lower or {"name", "years"} <= lower


read = read_kaggle
