"""``vasari dataset build | show | diff``: catalogs -> a leakage-free, split dataset folder."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Optional

import typer
from rich.console import Console
from rich.table import Table

from vasari.cli.common import fail

dataset_app = typer.Typer(
    name="dataset",
    help="Build datasets from catalogs (filters, near-duplicate groups, splits) and inspect them.",
    no_args_is_help=True,
    add_completion=False,
)


def register(app: typer.Typer) -> None:
    app.add_typer(dataset_app, name="dataset")


def _input_errors() -> tuple[type[BaseException], ...]:
    """Built-in exceptions that still mean bad input here (reported in one line, exit 2):
    unreadable files, malformed cells. Every ``VasariError`` is reported by the CLI itself
    (``vasari.cli.common.report_errors``)."""
    return (OSError, ValueError, KeyError)


def _message(exc: BaseException) -> str:
    if isinstance(exc, KeyError) and exc.args:
        return str(exc.args[0])
    if isinstance(exc, OSError) and exc.filename:
        return f"{exc.filename}: {exc.strerror or exc}"
    return str(exc) or type(exc).__name__


def class_count_tables(counts: dict[str, dict[str, dict[str, int]]], tasks: list[str] | None = None) -> list[Table]:
    """One rich table per task: label | train | val | test | total."""
    from vasari.dataset import SPLITS

    tables = []
    for task, per_label in counts.items():
        if tasks and task not in tasks:
            continue
        table = Table(title=f"{task}: {len(per_label)} classes", title_justify="left")
        table.add_column(task)
        for split in SPLITS:
            table.add_column(split, justify="right")
        table.add_column("total", justify="right")
        totals = {s: 0 for s in SPLITS}
        for label, per in sorted(per_label.items(), key=lambda kv: (-sum(kv[1].values()), kv[0])):
            for s in SPLITS:
                totals[s] += per.get(s, 0)
            table.add_row(label, *(str(per.get(s, 0)) for s in SPLITS), str(sum(per.values())))
        if per_label:
            table.add_section()
            table.add_row("all", *(str(totals[s]) for s in SPLITS), str(sum(totals.values())), style="bold")
        else:
            table.add_row("(no labels)", "", "", "", "")
        tables.append(table)
    return tables


def summary_table(info: dict, splits: dict[str, int]) -> Table:
    """Sources (records, kept, per split, dropped) and the near-duplicate summary."""
    table = Table(title="sources", title_justify="left")
    for column in ("source", "records", "kept", "train", "val", "test", "dropped"):
        table.add_column(column, justify="left" if column in ("source", "dropped") else "right")
    for name, stats in sorted(info.get("sources", {}).items()):
        per = stats.get("splits", {})
        dropped = ", ".join(f"{k} {v}" for k, v in sorted(stats.get("dropped", {}).items(), key=lambda kv: -kv[1]))
        records = stats.get("records")
        table.add_row(
            name,
            "" if records is None else str(records),
            str(stats.get("kept", "")),
            *(str(per.get(s, "")) for s in ("train", "val", "test")),
            dropped or "-",
        )
    table.add_section()
    table.add_row("all", "", str(sum(splits.values())), *(str(splits.get(s, 0)) for s in ("train", "val", "test")), "")
    return table


def _print_dataset(console: Console, ds, tasks: list[str] | None) -> None:
    info = ds.info
    console.print(summary_table(info, ds.split_sizes()))
    dup = info.get("duplicates")
    config = ds.config
    grouping = (
        "random (stratified)"
        if config.split == "random"
        else ("grouped by near-duplicate group" + (" and artist" if config.group_by_artist else ""))
    )
    console.print(
        f"split: {grouping}, seed {config.seed}, val {config.val_fraction:g}, test {config.test_fraction:g}"
        + (f", stratified on {config.stratify_on}" if config.stratify_on else ""),
        soft_wrap=True,
    )
    if dup:
        console.print(
            f"near-duplicates (pHash-64 <= {dup['phash_distance']} bits, confirmed by pHash-256 <= "
            f"{dup.get('confirm_distance')}): {dup.get('phash_groups', '?')} groups of {dup.get('phash_images', '?')} "
            f"images; details joined to their work by title: {dup.get('details_joined', 0)}; "
            f"groups of more than one image in all: {dup['groups_with_duplicates']} (largest {dup['largest_group']}); "
            f"groups straddling splits: {dup['groups_straddling_splits']}",
            soft_wrap=True,
        )
        console.print(_artist_line(dup["artists_straddling_splits"], config.group_by_artist), soft_wrap=True)
    if info.get("dropped"):
        console.print(
            "dropped: " + ", ".join(f"{k} {v}" for k, v in sorted(info["dropped"].items(), key=lambda kv: -kv[1]))
        )
    for task, removed in (info.get("removed_labels") or {}).items():
        console.print(
            f"{task}: {len(removed)} classes under {config.min_per_class} training examples lost their label "
            f"({sum(removed.values())} records)"
        )
    scope = info.get("out_of_scope_artist_labels") or {}  # issue #14 hook
    console.print(f"out-of-scope artist labels removed (docs/labels.md): {sum(scope.values())} "
                  f"({', '.join(f'{k} {v}' for k, v in scope.items()) or 'none'}); "
                  f"{len(info.get('catalog_artist_of_relabelled') or {})} records whose artist label was removed keep "
                  "the catalog's name (placeholder cards are compared under it, similar paintings show it)")
    unreadable = info.get("unreadable") or []
    if unreadable:
        console.print(f"unreadable images: {len(unreadable)}")
        for item in unreadable[:10]:
            console.print(f"  {item['artwork_id']}: {item['error']}", markup=False, soft_wrap=True)
        if len(unreadable) > 10:
            console.print(f"  ... and {len(unreadable) - 10} more (listed in dataset.json)")
    for table in class_count_tables(ds.class_counts(), tasks):
        console.print(table)


def _artist_line(straddling: int, by_artist: bool) -> str:
    """How many artists have works in more than one split, and whether that is by design:
    the default split keeps each artwork's copies in one split, not each artist."""
    if by_artist:
        return f"artists in more than one split: {straddling} (split by artist: each artist in one split)"
    return (f"artists in more than one split: {straddling} (expected: the split keeps each artwork's copies "
            "together, not each artist; build with --by-artist to keep every artist in one split)")


def _check_tasks(tasks: list[str] | None) -> list[str] | None:
    from vasari.core.labels import TASKS

    for task in tasks or []:
        if task not in TASKS:
            fail(f"unknown task {task!r}; tasks are {', '.join(TASKS)}")
    return tasks or None


@dataset_app.command("build")
def build(
    specs: Optional[list[str]] = typer.Argument(
        None,
        metavar="SPEC...",
        help='Catalogs: "kind:path[?opt=val]" (wga, kaggle, folder, manifest, wikiart) or a path.',
    ),
    out: Path = typer.Option(..., "--out", "-o", help="Folder to write dataset.csv, splits.csv, dataset.json into."),
    shared: bool = typer.Option(False, "--shared", help="Add every labelled source of ../shared/data."),
    data_dir: Optional[Path] = typer.Option(
        None, "--data-dir", help="Shared data folder (default: ../shared/data or $VASARI_DATA)."
    ),
    include_photos: bool = typer.Option(
        False, "--include-photos", help="With --shared: also the Louvre museum photos."
    ),
    split: str = typer.Option(
        "grouped", "--split", help="grouped (near-duplicates, optionally artists, in one split) or random (stratified)."
    ),
    by_artist: bool = typer.Option(
        False, "--by-artist/--no-by-artist", help="Grouped split: also keep each artist inside one split."
    ),
    artist_scope: bool = typer.Option(
        False, "--artist-scope/--no-artist-scope", help="Artist vocabulary = painters active 1401-1900: "
        "sculptors and 20th-century artists lose their artist label (docs/labels.md)."),
    stratify: Optional[str] = typer.Option(
        "type", "--stratify", help="Task whose class balance the split keeps ('none' to not stratify)."
    ),
    min_per_class: int = typer.Option(
        10, "--min-per-class", help="Classes with fewer training examples lose their label."
    ),
    seed: int = typer.Option(0, "--seed", help="Random seed of the split."),
    val: float = typer.Option(0.1, "--val", help="Validation fraction."),
    test: float = typer.Option(0.1, "--test", help="Test fraction."),
    first_year: int = typer.Option(1401, "--first-year"),
    last_year: int = typer.Option(1900, "--last-year"),
    keep_undated: bool = typer.Option(True, "--keep-undated/--drop-undated", help="Keep works without a date."),
    paintings_only: bool = typer.Option(True, "--paintings-only/--all-forms", help="Drop non-paintings (WGA FORM)."),
    types: Optional[list[str]] = typer.Option(
        None, "--type", help="Keep only these types (repeatable); untyped works stay."
    ),
    group_details: bool = typer.Option(
        True,
        "--group-details/--no-group-details",
        help='Put a "... (detail)" in the group of the same artist\'s work of that title.',
    ),
    phash_distance: int = typer.Option(
        18, "--phash-distance", help="Near-duplicate candidates: max Hamming distance of the 64-bit pHashes."
    ),
    confirm_distance: int = typer.Option(
        64,
        "--confirm-distance",
        help="...confirmed when their 256-bit pHashes differ in at most this many bits (256: no check).",
    ),
    tasks: Optional[list[str]] = typer.Option(
        None, "--task", help="Show class counts for these tasks only (repeatable)."
    ),
    progress: bool = typer.Option(True, "--progress/--no-progress", help="Show a progress bar while hashing images."),
) -> None:
    """Build a dataset folder from catalogs.

    Example: vasari dataset build --shared --out runs/data --split grouped --min-per-class 10

    Example: vasari dataset build kaggle:../shared/data/artists7 --out runs/artists7 --stratify artist
    """
    from vasari.dataset import DatasetConfig, build_dataset, save_dataset

    console = Console(highlight=False)
    tasks = _check_tasks(tasks)
    errors = _input_errors()
    started = time.perf_counter()
    try:
        config = DatasetConfig(
            first_year=first_year,
            last_year=last_year,
            keep_undated=keep_undated,
            paintings_only=paintings_only,
            types=tuple(types) if types else None,
            min_per_class=min_per_class,
            split=split,
            group_by_artist=by_artist,
            artist_scope=artist_scope,
            stratify_on=None if (stratify or "").lower() in ("", "none") else stratify,
            val_fraction=val,
            test_fraction=test,
            seed=seed,
            phash_distance=phash_distance,
            confirm_distance=confirm_distance,
            group_details=group_details,
        )
        catalogs = _read_catalogs(specs or [], shared, data_dir, include_photos)
        for catalog in catalogs:
            report = getattr(catalog, "report", None)
            if report is not None and hasattr(report, "as_table"):
                console.print(report.as_table())
        out.mkdir(parents=True, exist_ok=True)
        ds = build_dataset(catalogs, config, progress=progress, cache_dir=out)
        save_dataset(ds, out)
    except errors as exc:
        fail(_message(exc))
    _print_dataset(console, ds, tasks)
    console.print(f"wrote {out} ({len(ds.artworks)} artworks) in {time.perf_counter() - started:.1f} s")


def _read_catalogs(specs: list[str], shared: bool, data_dir: Path | None, include_photos: bool) -> list:
    from vasari.catalog import SHARED_SPEC, SharedDataMissing, read_sources

    if not specs and not shared:
        fail("give at least one catalog SPEC or --shared")
    try:
        return read_sources(([SHARED_SPEC] if shared else []) + specs, data_dir=data_dir, include_photos=include_photos)
    except SharedDataMissing:
        fail("--shared: no shared data folder found (../shared/data, or set VASARI_DATA / --data-dir)")


@dataset_app.command("show")
def show(
    path: Path = typer.Argument(..., help="A dataset folder written by `vasari dataset build`."),
    tasks: Optional[list[str]] = typer.Option(None, "--task", help="Only these tasks (repeatable)."),
    cache: Optional[Path] = typer.Option(
        None, "--cache", help="Embedding cache to count placeholder cards from (default: the default backbone's "
        "cache, where `vasari train` writes); nothing is embedded."),
) -> None:
    """Print a dataset's sources, near-duplicate summary, placeholder cards and per-task,
    per-split class counts.

    Example: vasari dataset show runs/data --task type --task school
    """
    from vasari.dataset import load_dataset

    tasks = _check_tasks(tasks)
    try:
        ds = load_dataset(path)
    except _input_errors() as exc:
        fail(_message(exc))
    console = Console(highlight=False)
    _print_dataset(console, ds, tasks)
    console.print(_placeholder_line(ds.artworks, cache), soft_wrap=True)


def _placeholder_line(artworks: list, cache_dir: Path | None) -> str:
    """How many placeholder cards training will drop, counted from cached embeddings (issue
    #14), or why they cannot be counted yet."""
    from vasari.features import EmbeddingCache, backbone_spec
    from vasari.features.cache import CacheError
    from vasari.pipeline import cached_placeholders

    spec = backbone_spec()
    folder = cache_dir or EmbeddingCache.default_dir(spec)
    if not folder.is_dir():
        return (f"placeholder cards: not counted (no embedding cache at {folder}; `vasari train` or "
                "`vasari embed` fills it, then this counts them)")
    try:
        with EmbeddingCache(folder, spec) as store:
            ids, looked = cached_placeholders(artworks, store)
    except (CacheError, *_input_errors()) as exc:
        return f"placeholder cards: not counted ({_message(exc)})"
    shown = ", ".join(ids[:6]) + (f" and {len(ids) - 6} more" if len(ids) > 6 else "")
    return (f"placeholder cards (one picture filed under two artists; dropped from training and the gallery): "
            f"{len(ids)} among the {looked} of {len(artworks)} pictures with cached embeddings"
            + (f" ({shown})" if ids else ""))


@dataset_app.command("diff")
def diff(
    a: Path = typer.Argument(..., help="A dataset folder or splits.csv."),
    b: Path = typer.Argument(..., help="Another dataset folder or splits.csv."),
    limit: int = typer.Option(20, "--limit", help="How many moved ids to list."),
) -> None:
    """Compare two split files: which artworks moved between train/val/test.

    Example: vasari dataset build --shared --seed 1 --out runs/data-seed1 && vasari dataset diff runs/data runs/data-seed1
    """
    from vasari.dataset import diff_splits, load_splits

    def splits_of(p: Path) -> dict[str, str]:
        return load_splits(p / "splits.csv" if p.is_dir() else p)

    try:
        result = diff_splits(splits_of(a), splits_of(b))
    except _input_errors() as exc:
        fail(_message(exc))
    console = Console(highlight=False)
    moved = result["moved"]
    console.print(
        f"same split: {result['same']}, moved: {len(moved)}, only in A: {len(result['only_in_a'])}, "
        f"only in B: {len(result['only_in_b'])}"
    )
    if moved:
        table = Table("artwork_id", "A", "B")
        for art_id, (was, now) in list(moved.items())[:limit]:
            table.add_row(art_id, was, now)
        console.print(table)
        if len(moved) > limit:
            console.print(f"... and {len(moved) - limit} more")
