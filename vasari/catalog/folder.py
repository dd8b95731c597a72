"""A folder per class (``<root>/<class>/*.jpg``, e.g. the Louvre type folders): ``sniff`` and ``read``."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

from vasari.catalog import normalize as nz
from vasari.catalog.records import Artwork, Catalog, CatalogError, ParseReport
from vasari.catalog.rows import absolute, is_image, no_images, set_label
from vasari.core.labels import TASKS


def read_folder(
    path: str | Path | Sequence[str | Path],
    *,
    task: str = "type",
    source: str | None = None,
) -> Catalog:
    """Read ``<root>/<class>/*.jpg``: each image's parent folder name is its label for ``task``
    (mapped onto Vasari's vocabulary; e.g. Louvre "still-life", "Naturmort" -> "still-life").

    ``path`` may be a list of roots (Louvre train + val); ids are the image paths relative to
    the roots' common parent, so they stay unique and stable.
    """
    if task not in TASKS:
        raise CatalogError(
            path if isinstance(path, (str, Path)) else path[0], f"unknown task {task!r}; tasks are {', '.join(TASKS)}"
        )
    roots = [Path(path)] if isinstance(path, (str, Path)) else [Path(p) for p in path]
    for root in roots:
        if not root.is_dir():
            raise CatalogError(root, "not a folder (expected <root>/<class>/<image>)")
    base = Path(os.path.commonpath([str(r.resolve()) for r in roots])) if len(roots) > 1 else roots[0].resolve()
    source = source or (base.name if len(roots) > 1 else roots[0].name) or "folder"
    report = ParseReport(source)
    artworks: list[Artwork] = []
    for root in roots:
        for class_dir in sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")):
            images = sorted(p for p in class_dir.rglob("*") if p.is_file() and is_image(p))
            label_raw = class_dir.name
            label = nz.map_label(task, label_raw)
            for image in images:
                report.rows += 1
                set_label(report, task, label_raw, label)
                rel = image.resolve().relative_to(base).with_suffix("").as_posix()
                artworks.append(
                    Artwork(
                        artwork_id=f"{source}:{rel}",
                        source=source,
                        image=absolute(image),
                        extra={"folder": label_raw, "root": root.name},
                        **{task: label},
                    )
                )
    no_images(
        roots[0] if len(roots) == 1 else base, artworks, "no images found in class folders (<root>/<class>/*.jpg)"
    )
    return Catalog(artworks, report)


def sniff(path: Path) -> bool:
    """A folder of class folders (asked after every other kind: any folder with subfolders reads as one)."""
    return path.is_dir() and any(p.is_dir() and not p.name.startswith(".") for p in path.iterdir())


read = read_folder
