"""Near-duplicates: 64-bit perceptual hashes of every local image (cached between builds), confirmed by a 256-bit hash, pairs within a Hamming distance, union-find groups, and details ("… (detail)") joined to their work by title."""

from __future__ import annotations

import csv
import os
import re
from collections import defaultdict
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Sequence

import numpy as np

from vasari.catalog import Artwork

if TYPE_CHECKING:  # pragma: no cover
    pass
from vasari.dataset.io import atomic_write_csv

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
        atomic_write_csv(self.file, self.COLUMNS, rows)


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
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        TextColumn,
        TimeRemainingColumn,
    )

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


def name_components(roots: Sequence[int], ids: Sequence[str]) -> list[str]:
    """Name each component after its smallest artwork id (deterministic, readable)."""
    names: dict[int, str] = {}
    for root, art_id in zip(roots, ids):
        if root not in names or art_id < names[root]:
            names[root] = art_id
    return [names[r] for r in roots]


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


def join_details(artworks: Sequence[Artwork], uf: "UnionFind") -> int:
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
