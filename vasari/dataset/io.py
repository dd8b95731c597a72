"""Save and load a dataset folder: ``dataset.csv`` (``Artwork.to_row`` + ``split``), ``splits.csv`` (``artwork_id,split`` sorted by id) and ``dataset.json`` (config, counts, per-source report); load errors name the file and row."""

from __future__ import annotations

import csv
import json
from dataclasses import fields
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterable, Sequence

import numpy as np

from vasari.catalog import Artwork
from vasari.core.fileio import atomic_open, atomic_write_text
from vasari.core.labels import TASKS

if TYPE_CHECKING:  # pragma: no cover
    pass
from vasari.dataset.config import FORMAT, SPLITS, DatasetConfig, DatasetError
from vasari.dataset.records import Dataset


def atomic_write_csv(path: Path, columns: Sequence[str], rows: Iterable[dict[str, Any]]) -> None:
    with atomic_open(path, "w", newline="", encoding="utf-8") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(columns), lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)


ARTWORK_COLUMNS: tuple[str, ...] = tuple(f.name for f in fields(Artwork) if f.name != "extra")
DATASET_COLUMNS: tuple[str, ...] = ARTWORK_COLUMNS + ("split",)


def save_splits(splits: dict[str, str], path: Path) -> None:
    """``artwork_id,split`` sorted by id (stable, diffable)."""
    atomic_write_csv(
        Path(path), ("artwork_id", "split"), ({"artwork_id": k, "split": splits[k]} for k in sorted(splits))
    )


def load_splits(path: Path) -> dict[str, str]:
    """Read a ``splits.csv``; errors name the file and row."""
    path = Path(path)
    splits: dict[str, str] = {}
    for row_no, row in _read_csv(path, ("artwork_id", "split")):
        art_id, split = row["artwork_id"], row["split"]
        if not art_id:
            raise DatasetError(f"{path}: row {row_no}: empty artwork_id")
        if split not in SPLITS:
            raise DatasetError(f"{path}: row {row_no}: split {split!r} is not one of {', '.join(SPLITS)}")
        if art_id in splits:
            raise DatasetError(f"{path}: row {row_no}: artwork_id {art_id!r} appears twice")
        splits[art_id] = split
    return splits


def _read_csv(path: Path, required: Sequence[str]) -> Iterable[tuple[int, dict[str, str]]]:
    try:
        fh = path.open(newline="", encoding="utf-8")
    except OSError as exc:
        raise DatasetError(f"{path}: cannot read ({exc.strerror or exc})") from exc
    with fh:
        try:
            reader = csv.DictReader(fh)
            header = reader.fieldnames or []
            missing = [c for c in required if c not in header]
            if missing:
                raise DatasetError(
                    f"{path}: missing column{'s' if len(missing) > 1 else ''} {', '.join(missing)} "
                    f"(found: {', '.join(header) or 'no header'})"
                )
            for row in reader:
                # line_num is the physical line just read; header is line 1
                if None in row:
                    raise DatasetError(f"{path}: row {reader.line_num}: more fields than the header has")
                yield reader.line_num, {k: (v if v is not None else "") for k, v in row.items()}
        except UnicodeDecodeError as exc:
            raise DatasetError(f"{path}: not UTF-8 text ({exc.reason})") from exc
        except csv.Error as exc:
            raise DatasetError(f"{path}: malformed CSV ({exc})") from exc


def save_dataset(ds: Dataset, out_dir: Path) -> None:
    """Write ``dataset.csv``, ``splits.csv`` and ``dataset.json`` (each atomically) into ``out_dir``."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    rows = []
    for art in ds.artworks:
        row = art.to_row()
        row["split"] = ds.splits[art.artwork_id]
        rows.append(row)
    atomic_write_csv(out / "dataset.csv", DATASET_COLUMNS, rows)
    save_splits(ds.splits, out / "splits.csv")
    meta = {"format": FORMAT, "config": ds.config.to_dict(), **{k: v for k, v in ds.info.items() if k != "format"}}
    meta["artworks"] = len(ds.artworks)
    meta["splits"] = ds.split_sizes()
    meta["class_counts"] = ds.class_counts()
    meta["class_weights"] = {task: ds.class_weights(task) for task in TASKS}
    atomic_write_text(
        out / "dataset.json", json.dumps(meta, indent=2, ensure_ascii=False, default=_json_default) + "\n"
    )


def _json_default(value: Any) -> Any:
    if isinstance(value, (set, frozenset, tuple)):
        return sorted(value) if isinstance(value, (set, frozenset)) else list(value)
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, np.generic):
        return value.item()
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


def load_dataset(path: Path) -> Dataset:
    """Read a dataset folder (or its ``dataset.csv``) written by ``save_dataset``.

    ``splits.csv``, when present, decides the split (so an edited split file applies); it
    must name exactly the artworks of ``dataset.csv``. Errors name the file and row.
    """
    path = Path(path)
    folder = path.parent if path.suffix.lower() == ".csv" else path
    csv_path = path if path.suffix.lower() == ".csv" else path / "dataset.csv"
    if not csv_path.is_file():
        raise DatasetError(f"{csv_path}: not found (build one with `vasari dataset build`)")
    artworks: list[Artwork] = []
    splits: dict[str, str] = {}
    for row_no, row in _read_csv(csv_path, ("artwork_id", "source", "split")):
        art_id = row["artwork_id"]
        if not art_id:
            raise DatasetError(f"{csv_path}: row {row_no}: empty artwork_id")
        if art_id in splits:
            raise DatasetError(f"{csv_path}: row {row_no}: artwork_id {art_id!r} appears twice")
        if row["split"] not in SPLITS:
            raise DatasetError(f"{csv_path}: row {row_no}: split {row['split']!r} is not one of {', '.join(SPLITS)}")
        try:
            art = Artwork.from_row(row)
        except (ValueError, TypeError) as exc:
            raise DatasetError(f"{csv_path}: row {row_no}: {exc}") from exc
        artworks.append(art)
        splits[art_id] = row["split"]
    split_file = folder / "splits.csv"
    if split_file.is_file():
        from_file = load_splits(split_file)
        missing = sorted(splits.keys() - from_file.keys())
        extra = sorted(from_file.keys() - splits.keys())
        if missing or extra:
            detail = f"lacks {missing[0]!r}" if missing else f"names {extra[0]!r} which dataset.csv lacks"
            raise DatasetError(
                f"{split_file}: does not match {csv_path.name} ({len(missing)} missing, {len(extra)} unknown ids; "
                f"e.g. it {detail})"
            )
        splits = from_file
    meta_file = folder / "dataset.json"
    config, info = DatasetConfig(), {}
    if meta_file.is_file():
        try:
            info = json.loads(meta_file.read_text(encoding="utf-8"))
            config = DatasetConfig.from_dict(info.get("config", {}))
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise DatasetError(f"{meta_file}: not valid JSON ({exc})") from exc
        except (TypeError, DatasetError) as exc:
            raise DatasetError(f"{meta_file}: bad config ({exc})") from exc
    if info.get("catalog_artist_of_relabelled"):  # placeholder detection compares catalog artists
        from vasari.dataset.clean import restore_catalog_artists

        artworks = restore_catalog_artists(artworks, info["catalog_artist_of_relabelled"])
    if info.get("artist_life_years"):  # an artist verdict must fit the catalog's life years
        from vasari.dataset.lives import restore_life_years

        artworks = restore_life_years(artworks, info["artist_life_years"])
    return Dataset(artworks=artworks, splits=splits, config=config, info=info)
