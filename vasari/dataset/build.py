"""Datasets: filter and merge catalogs, find near-duplicates, and split without leakage.

``build_dataset`` turns the ``Artwork`` records of one or more catalogs into a ``Dataset``:

1. **Merge** the catalogs (artwork ids stay unique; per-source counts are reported).
2. **Filter** as in the WGA study: works dated 1401-1900 (undated works are kept unless
   ``keep_undated=False``), paintings only, optionally some types only.
3. **Near-duplicates**: every local image gets a 64-bit perceptual hash (``imagehash.phash``);
   images within ``phash_distance`` bits of each other are joined (union-find, transitively)
   into one ``group``. Records sharing an image path, a URL or a reader-preset group join too,
   and so do details ("… (detail)") with the same artist's work of that title;
   records without a local image form a group of their own. Unreadable images are dropped
   and listed with their reasons.
4. **Split** into train / val / test with a fixed seed: ``"grouped"`` (the default) keeps every
   group, and with ``group_by_artist`` every artist, inside one split, stratified on one task
   where possible (greedy, seeded); ``"random"`` is the stratified random split of
   the seed studies (it leaks duplicates; the number of straddling groups is reported).
5. **Rare classes**: per task, a class with fewer than ``min_per_class`` *training* examples
   loses its label (the record stays if it has other labels) and is counted.

``save_dataset`` writes ``dataset.csv`` (``Artwork.to_row`` + ``split``), ``splits.csv``
(``artwork_id,split`` sorted by id: the split file to keep, reload and ``diff_splits``) and
``dataset.json`` (config, counts, per-source report, what was dropped and why).
"""

from __future__ import annotations

import csv
import json
import math
import os
import re
import time
from collections import Counter, defaultdict
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterable, Sequence

import numpy as np

from vasari.catalog.readers import Artwork
from vasari.core.fileio import atomic_open, atomic_write_text
from vasari.core.labels import TASKS, timeframe_of
from vasari.errors import InputError

if TYPE_CHECKING:  # pragma: no cover
    from vasari.catalog.readers import Catalog

SPLITS: tuple[str, ...] = ("train", "val", "test")
SPLIT_STRATEGIES: tuple[str, ...] = ("grouped", "random")
FORMAT = "vasari-dataset/1"
#: ``Artwork.extra`` keys that readers may fill with the source's own object kind (WGA FORM).
FORM_KEYS: tuple[str, ...] = ("form", "FORM")
_TIMEFRAME_RE = re.compile(r"^\s*(\d{3,4})\s*-\s*(\d{3,4})\s*$")


class DatasetError(InputError):
    """Bad dataset input or configuration; the message names the file (and row) at fault."""


# --------------------------------------------------------------------------- configuration


@dataclass(frozen=True)
class DatasetConfig:
    """How a dataset is filtered, deduplicated and split (saved in ``dataset.json``).

    ``types``: keep only works whose (known) type is one of these; works without a type
    label are kept. ``min_per_class``: per task, classes with fewer training examples lose
    their label. ``stratify_on``: the task whose class balance the split preserves
    (records lacking it are spread like a class of their own). ``group_details``: a detail
    ("Last Supper (detail)") joins the group of the same artist's work of that title.

    Near-duplicates: two images are copies of one artwork when their 64-bit perceptual hashes
    differ in at most ``phash_distance`` bits *and* their 256-bit perceptual hashes (16x16
    DCT) in at most ``confirm_distance`` bits. On ../shared/data the 64-bit hash alone
    is not precise (dark portraits and framed Louvre landscapes collide from 4-6 bits up)
    while every pair it finds up to 18 bits that the 256-bit hash confirms (<= 64) is a
    copy, a version or a re-photograph of one work. ``confirm_distance=None`` uses the
    64-bit hash alone (then keep ``phash_distance`` <= 6).
    """

    first_year: int = 1401
    last_year: int = 1900
    keep_undated: bool = True
    paintings_only: bool = True
    types: tuple[str, ...] | None = None
    min_per_class: int = 10
    split: str = "grouped"
    group_by_artist: bool = False
    stratify_on: str | None = "type"
    val_fraction: float = 0.1
    test_fraction: float = 0.1
    seed: int = 0
    group_details: bool = True
    phash_distance: int = 18
    confirm_distance: int | None = 64
    #: Artist vocabulary = painters active 1401-1900 (``vasari.dataset.clean``; issue #14 hook).
    artist_scope: bool = False

    def __post_init__(self) -> None:
        if self.split not in SPLIT_STRATEGIES:
            raise DatasetError(f"unknown split strategy {self.split!r}; use one of {', '.join(SPLIT_STRATEGIES)}")
        if self.stratify_on is not None and self.stratify_on not in TASKS:
            raise DatasetError(f"unknown task {self.stratify_on!r} to stratify on; tasks are {', '.join(TASKS)}")
        for name in ("val_fraction", "test_fraction"):
            value = getattr(self, name)
            if not 0.0 <= value < 1.0:
                raise DatasetError(f"{name} must be in [0, 1), got {value}")
        if self.val_fraction + self.test_fraction >= 1.0:
            raise DatasetError("val_fraction + test_fraction must leave some training data (< 1)")
        if self.first_year > self.last_year:
            raise DatasetError(f"first_year {self.first_year} is after last_year {self.last_year}")
        if self.min_per_class < 0:
            raise DatasetError(f"min_per_class must be >= 0, got {self.min_per_class}")
        if not 0 <= self.phash_distance <= 64:
            raise DatasetError(f"phash_distance must be in 0..64 bits, got {self.phash_distance}")
        if self.confirm_distance is not None and not 0 <= self.confirm_distance <= 256:
            raise DatasetError(f"confirm_distance must be in 0..256 bits, got {self.confirm_distance}")
        if self.types is not None and not isinstance(self.types, tuple):
            object.__setattr__(self, "types", tuple(self.types))

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["types"] = list(self.types) if self.types is not None else None
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "DatasetConfig":
        names = {f.name for f in fields(cls)}
        values = {k: v for k, v in data.items() if k in names}
        if values.get("types") is not None:
            values["types"] = tuple(values["types"])
        return cls(**values)


# --------------------------------------------------------------------------- the dataset


@dataclass
class Dataset:
    """Artworks (with ``group`` filled) and their split; ``info`` is what ``dataset.json`` holds."""

    artworks: list[Artwork]
    splits: dict[str, str]
    config: DatasetConfig = field(default_factory=DatasetConfig)
    info: dict[str, Any] = field(default_factory=dict)

    def subset(self, split: str) -> list[Artwork]:
        """The artworks of one split, in dataset order."""
        if split not in SPLITS:
            raise KeyError(f"unknown split {split!r}; splits are {', '.join(SPLITS)}")
        return [a for a in self.artworks if self.splits.get(a.artwork_id) == split]

    def labels(self, task: str, split: str) -> list[str | None]:
        """One task's labels (None = unknown) for the artworks of ``subset(split)``."""
        if task not in TASKS:
            raise KeyError(f"unknown task {task!r}; tasks are {', '.join(TASKS)}")
        return [a.label(task) for a in self.subset(split)]

    def years(self, split: str) -> list[int | None]:
        return [a.year for a in self.subset(split)]

    def class_weights(self, task: str) -> dict[str, float]:
        """sklearn's "balanced" weights n / (k * count) from the train split's labels."""
        return class_weights([label for label in self.labels(task, "train") if label is not None])

    def class_counts(self) -> dict[str, dict[str, dict[str, int]]]:
        """task -> label -> split -> count (labelled records only)."""
        return class_counts(self.artworks, self.splits)

    def split_sizes(self) -> dict[str, int]:
        sizes = Counter(self.splits.values())
        return {s: sizes.get(s, 0) for s in SPLITS}


def class_weights(labels: Sequence[str]) -> dict[str, float]:
    """Balanced class weights (``sklearn.utils.class_weight.compute_class_weight``)."""
    if not labels:
        return {}
    from sklearn.utils.class_weight import compute_class_weight

    classes = np.array(sorted(set(labels)))
    weights = compute_class_weight("balanced", classes=classes, y=np.asarray(labels))
    return {str(c): float(w) for c, w in zip(classes, weights)}


def class_counts(artworks: Iterable[Artwork], splits: dict[str, str]) -> dict[str, dict[str, dict[str, int]]]:
    counts: dict[str, dict[str, dict[str, int]]] = {task: {} for task in TASKS}
    for art in artworks:
        split = splits.get(art.artwork_id)
        for task in TASKS:
            label = art.label(task)
            if label is None or split is None:
                continue
            per_split = counts[task].setdefault(label, {s: 0 for s in SPLITS})
            per_split[split] += 1
    return {task: dict(sorted(c.items())) for task, c in counts.items()}


# --------------------------------------------------------------------------- perceptual hashes

PHASH_CACHE = "phash-cache.csv"
FINE_WORDS = 4  # the 256-bit hash as 4 uint64 words


def _bits_to_int(bits: Any) -> int:
    return int.from_bytes(np.packbits(np.asarray(bits, dtype=bool).ravel()).tobytes(), "big")


def phash_image(path: str | Path) -> tuple[int, int]:
    """The 64-bit and 256-bit perceptual hashes of one image file (decoded small for speed)."""
    import imagehash

    from vasari.core.images import load_image

    img = load_image(path, min_side=64)
    return _bits_to_int(imagehash.phash(img).hash), _bits_to_int(imagehash.phash(img, hash_size=16).hash)


def _fine_words(value: int) -> np.ndarray:
    return np.frombuffer(value.to_bytes(8 * FINE_WORDS, "big"), dtype=">u8").astype(np.uint64)


def _file_key(path: str) -> tuple[int, int] | None:
    try:
        st = os.stat(path)
    except OSError:
        return None
    return st.st_size, st.st_mtime_ns


class PhashCache:
    """``phash-cache.csv`` in a folder: path, size, mtime -> hashes or error (lets builds resume)."""

    COLUMNS = ("path", "size", "mtime_ns", "phash", "phash256", "error_code", "error")

    def __init__(self, folder: Path | None):
        self.file = Path(folder) / PHASH_CACHE if folder is not None else None
        self.entries: dict[str, tuple[int, int, str, str, str, str]] = {}
        if self.file is not None and self.file.is_file():
            try:
                with self.file.open(newline="", encoding="utf-8") as fh:
                    for row in csv.DictReader(fh):
                        self.entries[row["path"]] = (
                            int(row["size"]),
                            int(row["mtime_ns"]),
                            row["phash"],
                            row["phash256"],
                            row["error_code"],
                            row["error"],
                        )
            except (KeyError, ValueError, TypeError, csv.Error, UnicodeDecodeError):
                self.entries = {}  # a damaged cache is only a cache: start again

    def get(self, path: str) -> tuple[tuple[int, int] | None, tuple[str, str] | None] | None:
        entry = self.entries.get(path)
        key = _file_key(path)
        if entry is None or key is None or (entry[0], entry[1]) != key:
            return None
        if entry[2] and entry[3]:
            return (int(entry[2], 16), int(entry[3], 16)), None
        return None, (entry[4], entry[5])

    def put(self, path: str, value: tuple[int, int] | None, error: tuple[str, str] | None) -> None:
        key = _file_key(path)
        if key is None:
            return  # missing files are not cached: they may appear later
        code, message = error or ("", "")
        coarse, fine = (f"{value[0]:016x}", f"{value[1]:064x}") if value is not None else ("", "")
        self.entries[path] = (key[0], key[1], coarse, fine, code, message)

    def save(self) -> None:
        if self.file is None:
            return
        self.file.parent.mkdir(parents=True, exist_ok=True)
        rows = [dict(zip(self.COLUMNS, (p, *e))) for p, e in sorted(self.entries.items())]
        _atomic_write_csv(self.file, self.COLUMNS, rows)


@dataclass
class ImageHashes:
    """Perceptual hashes of a list of images: ``coarse`` (N,) 64-bit, ``fine`` (N, 4) 256-bit.

    Rows of images that failed are 0; ``errors`` maps their index to (code, message).
    """

    coarse: np.ndarray
    fine: np.ndarray
    errors: dict[int, tuple[str, str]]

    def take(self, rows: Sequence[int]) -> "ImageHashes":
        rows = np.asarray(rows, dtype=int)
        return ImageHashes(self.coarse[rows], self.fine[rows], {})


def perceptual_hashes(
    paths: Sequence[str],
    *,
    progress: bool = True,
    cache_dir: Path | None = None,
    workers: int | None = None,
) -> ImageHashes:
    """Hash every image (64- and 256-bit pHash); failures are listed, never raised.

    Decoding runs in a thread pool (PIL releases the GIL while decoding).
    """
    from vasari.core.images import ImageError

    cache = PhashCache(cache_dir)
    coarse = np.zeros(len(paths), dtype=np.uint64)
    fine = np.zeros((len(paths), FINE_WORDS), dtype=np.uint64)
    errors: dict[int, tuple[str, str]] = {}
    todo: list[int] = []

    def store(i: int, value: tuple[int, int]) -> None:
        coarse[i] = np.uint64(value[0])
        fine[i] = _fine_words(value[1])

    for i, path in enumerate(paths):
        hit = cache.get(path)
        if hit is None:
            todo.append(i)
        elif hit[1] is not None:
            errors[i] = hit[1]
        else:
            store(i, hit[0])

    def work(i: int) -> tuple[int, tuple[int, int] | None, tuple[str, str] | None]:
        try:
            return i, phash_image(paths[i]), None
        except ImageError as exc:
            return i, None, (exc.code, str(exc))
        except Exception as exc:  # never let one odd file stop a build
            return i, None, ("corrupt", f"{paths[i]}: {type(exc).__name__}: {exc}")

    if todo:
        workers = workers or min(16, (os.cpu_count() or 2) * 2)
        bar = _progress(progress)
        with bar, ThreadPoolExecutor(max_workers=workers) as pool:
            task = bar.add_task(f"perceptual hashes ({len(paths) - len(todo)} cached)", total=len(todo))
            for future in as_completed([pool.submit(work, i) for i in todo]):
                i, value, error = future.result()
                if error is not None:
                    errors[i] = error
                else:
                    store(i, value)
                cache.put(paths[i], value, error)
                bar.advance(task)
        cache.save()
    return ImageHashes(coarse, fine, errors)


def _progress(enabled: bool):
    from rich.progress import BarColumn, MofNCompleteColumn, TextColumn, TimeRemainingColumn

    from vasari.core.progress import make_progress

    return make_progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeRemainingColumn(),
        disable=not enabled,
        transient=True,
    )


def _popcount(x: np.ndarray) -> np.ndarray:
    if hasattr(np, "bitwise_count"):
        return np.bitwise_count(x)
    table = np.array([bin(i).count("1") for i in range(256)], dtype=np.uint8)
    return table[x.view(np.uint8)].reshape(*x.shape, 8).sum(axis=-1, dtype=np.uint8)


def near_duplicate_pairs(
    hashes: np.ndarray,
    max_distance: int,
    chunk: int = 1024,
    *,
    fine: np.ndarray | None = None,
    fine_distance: int | None = None,
) -> np.ndarray:
    """All index pairs (i < j) whose 64-bit hashes differ in at most ``max_distance`` bits.

    With ``fine`` (N, 4) 256-bit hashes and ``fine_distance``, a pair must also be within
    ``fine_distance`` bits there. Vectorised and chunked: about N²/2 XOR + popcounts, well
    under a second for 12k hashes.
    """
    hashes = np.ascontiguousarray(hashes, dtype=np.uint64)
    n = len(hashes)
    found: list[np.ndarray] = []
    for start in range(0, n, chunk):
        stop = min(n, start + chunk)
        block = hashes[start:stop, None] ^ hashes[None, start:]
        distance = _popcount(block)
        rows, cols = np.nonzero(distance <= max_distance)
        cols = cols + start
        rows = rows + start
        keep = cols > rows
        if keep.any():
            found.append(np.stack([rows[keep], cols[keep]], axis=1))
    pairs = np.concatenate(found).astype(np.int64) if found else np.zeros((0, 2), dtype=np.int64)
    if fine is not None and fine_distance is not None and len(pairs):
        fine = np.asarray(fine, dtype=np.uint64)
        fine_d = _popcount(fine[pairs[:, 0]] ^ fine[pairs[:, 1]]).sum(axis=1)
        pairs = pairs[fine_d <= fine_distance]
    return pairs


class UnionFind:
    """Disjoint sets over 0..n-1 with path halving and union by size."""

    def __init__(self, n: int):
        self.parent = list(range(n))
        self.size = [1] * n

    def find(self, i: int) -> int:
        parent = self.parent
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    def union(self, i: int, j: int) -> None:
        a, b = self.find(i), self.find(j)
        if a == b:
            return
        if self.size[a] < self.size[b]:
            a, b = b, a
        self.parent[b] = a
        self.size[a] += self.size[b]

    def union_all(self, members: Sequence[int]) -> None:
        for m in members[1:]:
            self.union(members[0], m)

    def components(self) -> list[int]:
        return [self.find(i) for i in range(len(self.parent))]


def _name_components(roots: Sequence[int], ids: Sequence[str]) -> list[str]:
    """Name each component after its smallest artwork id (deterministic, readable)."""
    names: dict[int, str] = {}
    for root, art_id in zip(roots, ids):
        if root not in names or art_id < names[root]:
            names[root] = art_id
    return [names[r] for r in roots]


# --------------------------------------------------------------------------- filters


_DETAIL_RE = re.compile(r"\(\s*[^()]*\bdetails?\b[^()]*\)|^\s*details?\s+(?:of\s+)?", re.IGNORECASE)
_TITLE_JUNK_RE = re.compile(r"[^\w]+")


def detail_base(title: str | None) -> str | None:
    """For a title marking a detail ("Last Supper (detail)", "Detail of the Last Supper"),
    the normalised title of the whole work ("last supper"); None for other titles."""
    if not title or not _DETAIL_RE.search(title):
        return None
    return _title_key(_DETAIL_RE.sub(" ", title))


def _title_key(title: str) -> str:
    key = _TITLE_JUNK_RE.sub(" ", title.lower()).strip()
    return key[4:] if key.startswith("the ") else key


def _join_details(artworks: Sequence[Artwork], uf: "UnionFind") -> int:
    """Put each detail ("… (detail)") in one group with the works of the same artist (or,
    anonymous, the same source) and the same title: WGA shows many details of one painting,
    and pHashes do not match a crop with its whole. Returns how many details were joined."""
    by_key: dict[tuple[str, str], list[int]] = defaultdict(list)
    details: list[tuple[int, tuple[str, str]]] = []
    for i, art in enumerate(artworks):
        if not art.title:
            continue
        who = art.artist or f"source:{art.source}"
        base = detail_base(art.title)
        if base is not None:
            details.append((i, (who, base)))
            by_key[(who, base)].append(i)
        else:
            by_key[(who, _title_key(art.title))].append(i)
    joined = 0
    for i, key in details:
        others = [j for j in by_key[key] if j != i]
        if others:
            joined += 1
            uf.union_all([i, *others])
    return joined


def _is_painting(art: Artwork) -> bool:
    for key in FORM_KEYS:
        form = art.extra.get(key) if art.extra else None
        if form:
            return str(form).strip().lower() in ("painting", "paintings")
    return True


def _timeframe_bounds(timeframe: str | None) -> tuple[int, int] | None:
    match = _TIMEFRAME_RE.match(timeframe or "")
    return (int(match.group(1)), int(match.group(2))) if match else None


def _date_filter(art: Artwork, config: DatasetConfig) -> str | None:
    """None to keep, else the reason to drop."""
    if art.year is not None:
        if not config.first_year <= art.year <= config.last_year:
            return f"year outside {config.first_year}-{config.last_year}"
        return None
    bounds = _timeframe_bounds(art.timeframe)
    if bounds is not None:
        if bounds[1] < config.first_year or bounds[0] > config.last_year:
            return f"year outside {config.first_year}-{config.last_year}"
        return None
    return None if config.keep_undated else "undated"


def _has_labels(art: Artwork) -> bool:
    return art.year is not None or any(art.label(task) is not None for task in TASKS)


def merge_catalogs(catalogs: Sequence["Catalog"]) -> tuple[list[Artwork], dict[str, dict[str, Any]]]:
    """Concatenate catalogs keeping artwork ids unique.

    A record repeated with the same id and image is dropped (``duplicate_id``); a different
    record under a taken id is renamed ``<id>~2`` (``renamed_id``).
    """
    merged: list[Artwork] = []
    seen: dict[str, Artwork] = {}
    per_source: dict[str, dict[str, Any]] = {}
    for catalog in catalogs:
        name = getattr(catalog.report, "source", None) or "catalog"
        stats = per_source.setdefault(name, {"records": 0, "kept": 0, "dropped": Counter()})
        for art in catalog.artworks:
            stats["records"] += 1
            previous = seen.get(art.artwork_id)
            if previous is not None:
                if previous == art:
                    stats["dropped"]["duplicate_id"] += 1
                    continue
                n = 2
                while f"{art.artwork_id}~{n}" in seen:
                    n += 1
                art = replace(art, artwork_id=f"{art.artwork_id}~{n}")
                stats["dropped"]["renamed_id (kept)"] += 1
            seen[art.artwork_id] = art
            merged.append(art)
    return merged, per_source


# --------------------------------------------------------------------------- splits


def _stratify_values(labels: Sequence[str | None], min_count: int = 2) -> np.ndarray:
    """Labels for stratification: missing -> "<none>", classes rarer than min_count -> "<rare>"."""
    values = ["<none>" if label is None else label for label in labels]
    counts = Counter(values)
    return np.array([v if counts[v] >= min_count else "<rare>" for v in values], dtype=object)


def split_grouped(
    ids: Sequence[str],
    groups: Sequence[str],
    strata: Sequence[str | None],
    *,
    val_fraction: float,
    test_fraction: float,
    seed: int,
) -> dict[str, str]:
    """Whole groups to train/val/test, stratified on ``strata`` (None = a class of its own).

    Every record of a group gets its group's split, so no group can straddle splits. Groups
    are visited in a seeded random order, largest first, and each goes to the split whose
    quotas for the group's classes would be the least filled (relative to the quota) once
    the group is added, so a group too big for val or test lands in train instead of
    overfilling a small split: a greedy stratified group split that, unlike k-fold schemes
    (sklearn's StratifiedGroupKFold took 20 s on the shared data), hits arbitrary fractions
    and takes milliseconds for 10k groups.
    """
    if not ids:
        return {}
    targets = {"train": 1.0 - val_fraction - test_fraction, "val": val_fraction, "test": test_fraction}
    active = [s for s in SPLITS if targets[s] > 0]
    y = ["<none>" if label is None else label for label in strata]
    class_total = Counter(y)
    members: dict[str, list[int]] = defaultdict(list)
    for i, g in enumerate(groups):
        members[g].append(i)
    rng = np.random.default_rng(seed)
    names = sorted(members)
    order = [names[k] for k in rng.permutation(len(names))]
    order.sort(key=lambda g: -len(members[g]))  # stable: random among equal sizes
    jitter = rng.random((len(order), len(active))) * 1e-9
    filled: dict[str, Counter[str]] = {s: Counter() for s in active}
    assignment: dict[str, str] = {}
    for k, g in enumerate(order):
        counts = Counter(y[i] for i in members[g])
        best, best_score = active[0], -math.inf
        for j, s in enumerate(active):
            score = jitter[k, j]
            for label, count in counts.items():
                quota = targets[s] * class_total[label]
                score -= count * (filled[s][label] + count) / quota
            if score > best_score:
                best, best_score = s, score
        filled[best].update(counts)
        for i in members[g]:
            assignment[ids[i]] = best
    return assignment


def split_random(
    ids: Sequence[str],
    strata: Sequence[str | None],
    *,
    val_fraction: float,
    test_fraction: float,
    seed: int,
) -> dict[str, str]:
    """A stratified random split of records (what the seed studies did; ignores duplicates)."""
    from sklearn.model_selection import train_test_split

    n = len(ids)
    split = np.full(n, "train", dtype=object)
    y = _stratify_values(strata, min_count=3)

    def take(indices: np.ndarray, fraction: float, seed_: int) -> np.ndarray:
        if fraction <= 0 or len(indices) < 2:
            return np.zeros(0, dtype=int)
        count = max(1, round(fraction * len(indices)))
        if count >= len(indices):
            return np.zeros(0, dtype=int)
        for stratify in (y[indices], None):
            try:
                _, taken = train_test_split(indices, test_size=count, stratify=stratify, random_state=seed_)
                return np.asarray(taken)
            except ValueError:
                continue
        return np.zeros(0, dtype=int)

    everything = np.arange(n)
    split[take(everything, test_fraction, seed)] = "test"
    rest = everything[split == "train"]
    val_share = val_fraction / (1.0 - test_fraction)
    split[take(rest, val_share, seed + 1)] = "val"
    return dict(zip(ids, split.tolist()))


def diff_splits(a: dict[str, str] | "Dataset", b: dict[str, str] | "Dataset") -> dict[str, Any]:
    """How two split assignments differ: moved ids (id -> (from, to)), ids only in a / only in b."""
    sa = a.splits if isinstance(a, Dataset) else a
    sb = b.splits if isinstance(b, Dataset) else b
    moved = {k: (sa[k], sb[k]) for k in sorted(sa.keys() & sb.keys()) if sa[k] != sb[k]}
    return {
        "moved": moved,
        "only_in_a": sorted(sa.keys() - sb.keys()),
        "only_in_b": sorted(sb.keys() - sa.keys()),
        "same": len(sa.keys() & sb.keys()) - len(moved),
    }


def straddling(artworks: Sequence[Artwork], splits: dict[str, str], key: str = "group") -> dict[str, set[str]]:
    """Values of ``key`` ("group" or "artist") whose artworks sit in more than one split."""
    where: dict[str, set[str]] = defaultdict(set)
    for art in artworks:
        value = getattr(art, key)
        if value is not None and art.artwork_id in splits:
            where[value].add(splits[art.artwork_id])
    return {value: s for value, s in where.items() if len(s) > 1}


# --------------------------------------------------------------------------- build


def build_dataset(
    catalogs: Sequence["Catalog"],
    config: DatasetConfig = DatasetConfig(),
    progress: bool = True,
    *,
    cache_dir: Path | None = None,
) -> Dataset:
    """Merge, filter, deduplicate and split catalogs into a ``Dataset``.

    ``cache_dir`` keeps perceptual hashes between builds (``phash-cache.csv``).
    Raises ``DatasetError`` when nothing usable remains or a requested type has no works.
    """
    started = time.perf_counter()
    artworks, per_source = merge_catalogs(catalogs)
    if not artworks:
        names = ", ".join(per_source) or "no catalogs"
        raise DatasetError(f"no artworks to build a dataset from ({names})")
    dropped: Counter[str] = Counter()
    source_drop = {name: stats["dropped"] for name, stats in per_source.items()}

    def drop(art: Artwork, reason: str) -> None:
        dropped[reason] += 1
        source_drop.setdefault(art.source, Counter())[reason] += 1

    # 1. filters
    kept: list[Artwork] = []
    wanted_types = set(config.types) if config.types is not None else None
    for art in artworks:
        if config.paintings_only and not _is_painting(art):
            drop(art, "not a painting")
            continue
        reason = _date_filter(art, config)
        if reason:
            drop(art, reason)
            continue
        if wanted_types is not None and art.type is not None and art.type not in wanted_types:
            drop(art, "type not selected")
            continue
        if art.timeframe is None and art.year is not None:
            art = replace(art, timeframe=timeframe_of(art.year))
        if not _has_labels(art):
            drop(art, "no labels")
            continue
        kept.append(art)
    from vasari.dataset.clean import apply_scope  # issue #14 hook: painters active 1401-1900

    kept, out_of_scope = apply_scope(kept) if config.artist_scope else (kept, {})
    if wanted_types is not None:
        present = {a.type for a in kept}
        empty = sorted(wanted_types - present)
        if empty:
            raise DatasetError(
                f"type {', '.join(repr(t) for t in empty)} has no artworks after filtering "
                f"(types present: {', '.join(sorted(t for t in present if t)) or 'none'})"
            )

    # 2. perceptual hashes of local images; unreadable images are dropped
    with_image = [i for i, a in enumerate(kept) if a.image]
    paths = [str(kept[i].image) for i in with_image]
    hashes = perceptual_hashes(paths, progress=progress, cache_dir=cache_dir)
    unreadable: list[dict[str, str]] = []
    bad = set()
    for j, (code, message) in sorted(hashes.errors.items()):
        art = kept[with_image[j]]
        bad.add(with_image[j])
        drop(art, f"unreadable image ({code})")
        unreadable.append({"artwork_id": art.artwork_id, "image": str(art.image), "code": code, "error": message})
    if with_image and len(bad) == len(with_image) and len(kept) == len(bad):
        first = unreadable[0]["error"] if unreadable else ""
        raise DatasetError(f"no images: none of the {len(paths)} images could be read (first: {first})")
    good = [j for j, i in enumerate(with_image) if i not in bad]
    image_index = {with_image[j]: k for k, j in enumerate(good)}
    good_hashes = hashes.take(good)
    survivors = [i for i in range(len(kept)) if i not in bad]
    kept = [kept[i] for i in survivors]
    hash_of = {new: image_index[old] for new, old in enumerate(survivors) if old in image_index}
    if not kept:
        raise DatasetError(f"no artworks left after filtering (dropped: {_fmt_counter(dropped)})")

    # 3. near-duplicate groups: phash pairs + same image path / URL / preset group
    t_pairs = time.perf_counter()
    pairs = near_duplicate_pairs(
        good_hashes.coarse, config.phash_distance, fine=good_hashes.fine, fine_distance=config.confirm_distance
    )
    seconds_pairs = time.perf_counter() - t_pairs
    uf = UnionFind(len(kept))
    by_hash_row = {row: i for i, row in hash_of.items()}
    for a, b in pairs.tolist():
        uf.union(by_hash_row[a], by_hash_row[b])
    phash_sizes = Counter(uf.find(i) for i in by_hash_row.values())
    phash_groups = [size for size in phash_sizes.values() if size > 1]
    for attr in ("image", "url", "group"):
        buckets: dict[str, list[int]] = defaultdict(list)
        for i, art in enumerate(kept):
            value = getattr(art, attr)
            if value:
                buckets[str(value)].append(i)
        for members in buckets.values():
            uf.union_all(members)
    detail_links = _join_details(kept, uf) if config.group_details else 0
    ids = [a.artwork_id for a in kept]
    group_names = _name_components(uf.components(), ids)
    kept = [replace(a, group=g) for a, g in zip(kept, group_names)]
    group_sizes = Counter(group_names)
    dup_groups = sum(1 for size in group_sizes.values() if size > 1)

    # 4. split
    split_units = list(group_names)
    if config.group_by_artist:
        uf_artist = UnionFind(len(kept))
        index_of_group: dict[str, int] = {}
        for i, g in enumerate(group_names):
            uf_artist.union(index_of_group.setdefault(g, i), i)
        index_of_artist: dict[str, int] = {}
        for i, art in enumerate(kept):
            if art.artist:
                uf_artist.union(index_of_artist.setdefault(art.artist, i), i)
        split_units = _name_components(uf_artist.components(), ids)
    strata = [a.label(config.stratify_on) if config.stratify_on else None for a in kept]
    if config.split == "grouped":
        splits = split_grouped(
            ids,
            split_units,
            strata,
            val_fraction=config.val_fraction,
            test_fraction=config.test_fraction,
            seed=config.seed,
        )
    else:
        splits = split_random(
            ids, strata, val_fraction=config.val_fraction, test_fraction=config.test_fraction, seed=config.seed
        )

    # 5. rare classes (counted on the train split) lose their label
    removed_labels: dict[str, Counter[str]] = {}
    if config.min_per_class > 0:
        for task in TASKS:
            train_counts = Counter(
                a.label(task) for a in kept if splits[a.artwork_id] == "train" and a.label(task) is not None
            )
            all_labels = Counter(a.label(task) for a in kept if a.label(task) is not None)
            rare = {label for label in all_labels if train_counts.get(label, 0) < config.min_per_class}
            if rare:
                removed_labels[task] = Counter({label: all_labels[label] for label in sorted(rare)})
                kept = [replace(a, **{task: None}) if a.label(task) in rare else a for a in kept]
    final: list[Artwork] = []
    for art in kept:
        if _has_labels(art):
            final.append(art)
        else:
            drop(art, "no labels left after min_per_class")
            splits.pop(art.artwork_id)
    if not final:
        raise DatasetError(
            f"no artworks left after dropping classes with fewer than {config.min_per_class} "
            f"training examples (dropped: {_fmt_counter(dropped)})"
        )

    # 6. report
    final_ids = {a.artwork_id for a in final}
    for name, stats in per_source.items():
        members = [a for a in final if a.source == name]
        stats["kept"] = len(members)
        stats["splits"] = {s: sum(1 for a in members if splits[a.artwork_id] == s) for s in SPLITS}
        stats["dropped"] = dict(source_drop.get(name, Counter()))
    for name, counter in source_drop.items():  # records whose .source differs from their catalog's name
        if name not in per_source:
            per_source[name] = {
                "records": None,
                "kept": sum(1 for a in final if a.source == name),
                "dropped": dict(counter),
            }
    leaks = straddling(final, splits, "group")
    artist_leaks = straddling(final, splits, "artist")
    info: dict[str, Any] = {
        "format": FORMAT,
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "artworks": len(final),
        "splits": {s: sum(1 for i in final_ids if splits[i] == s) for s in SPLITS},
        "sources": per_source,
        "dropped": dict(dropped),
        "removed_labels": {task: dict(c) for task, c in removed_labels.items()},
        "out_of_scope_artist_labels": out_of_scope,
        "unreadable": unreadable,
        "duplicates": {
            "phash_distance": config.phash_distance,
            "confirm_distance": config.confirm_distance,
            "images_hashed": len(good),
            "pairs": int(len(pairs)),
            "phash_groups": len(phash_groups),
            "phash_images": sum(phash_groups),
            "groups_with_duplicates": dup_groups,
            "images_in_duplicate_groups": sum(size for size in group_sizes.values() if size > 1),
            "largest_group": max(group_sizes.values()) if group_sizes else 0,
            "details_joined": detail_links,
            "groups_straddling_splits": len(leaks),
            "artists_straddling_splits": len(artist_leaks),
        },
        "class_counts": class_counts(final, splits),
        "seconds": {"total": round(time.perf_counter() - started, 2), "pairs": round(seconds_pairs, 3)},
    }
    ds = Dataset(artworks=final, splits=splits, config=config, info=info)
    info["class_weights"] = {task: ds.class_weights(task) for task in TASKS}
    return ds


def _fmt_counter(counter: Counter[str] | dict[str, int]) -> str:
    return ", ".join(f"{k}: {v}" for k, v in sorted(counter.items(), key=lambda kv: -kv[1])) or "nothing"


# --------------------------------------------------------------------------- save / load


def _atomic_write_csv(path: Path, columns: Sequence[str], rows: Iterable[dict[str, Any]]) -> None:
    with atomic_open(path, "w", newline="", encoding="utf-8") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(columns), lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)


ARTWORK_COLUMNS: tuple[str, ...] = tuple(f.name for f in fields(Artwork) if f.name != "extra")
DATASET_COLUMNS: tuple[str, ...] = ARTWORK_COLUMNS + ("split",)


def save_splits(splits: dict[str, str], path: Path) -> None:
    """``artwork_id,split`` sorted by id (stable, diffable)."""
    _atomic_write_csv(
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
    _atomic_write_csv(out / "dataset.csv", DATASET_COLUMNS, rows)
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
    return Dataset(artworks=artworks, splits=splits, config=config, info=info)
