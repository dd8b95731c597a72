"""Parquet shards: the output of `vasari embed --format parquet` and `vasari predict --out DIR`
for collections too large for one ``.npz``.

A shard folder holds ``part-00000.parquet``, ``part-00001.parquet``, ... and ``manifest.json``.
Shard ``k`` holds the inputs ``[k * shard_size, (k + 1) * shard_size)`` of the run (in the
order given), one row per picture:

embeddings
    ``image`` (string: the path as read), ``artwork_id`` (string, null when the source has no
    catalog id) and ``vector`` (``list<float32>``, ``dim`` values). Pictures that failed have
    no row; their messages are in the manifest (``shards[k].errors``, input index -> message).
predictions
    ``image``, ``artwork_id``, then one string column per field of the prediction contract
    (``vasari.inference.schema``: ``predictions``, ``verdict``, ``year``, ``novelty``,
    ``similar``, ``affinity``, ``crop``, ``error``) holding that field's JSON (null when the
    field is absent), so a shard row is the contract object without a nested Arrow schema to
    keep in step with it.

Why shards and a manifest: a run over millions of pictures gets killed. The manifest records,
per shard, its input range, a digest of the paths in it and its row count; a rerun with the
same inputs skips every shard whose file is present with that row count and recomputes only
the others. The manifest also names what made the vectors (backbone spec key, or bundle):
a folder written by another backbone is refused instead of being mixed in.

One reader serves every consumer: ``open_shards`` checks a folder (manifest, files, columns)
into a ``ShardFolder``, ``iter_shard_batches`` streams its vectors batch by batch (``vasari
index build --from-embeddings`` builds on both), ``iter_prediction_objects`` its predictions.

pyarrow is imported only by the functions that read or write shards (``import vasari`` and the
CLI's ``--help`` stay fast); it comes with the ``parquet`` and ``ray`` extras.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, NamedTuple

import numpy as np

from vasari.core.fileio import atomic_write_text, temp_path
from vasari.errors import InputError, ModelError

if TYPE_CHECKING:
    import pyarrow as pa

    from vasari.features.spec import BackboneSpec

MANIFEST = "manifest.json"
SHARD_FORMAT = 1
#: the columns of an embedding shard, in order (the index builder reads them by these names)
EMBEDDING_COLUMNS = ("image", "artwork_id", "vector")
#: the prediction contract's fields after ``image``, one JSON string column each
PREDICTION_FIELDS = ("predictions", "verdict", "year", "novelty", "similar", "affinity", "crop", "error")
_SHARD_RE = re.compile(r"^part-(\d{5,})\.parquet$")
SHARD_GLOB = "part-*.parquet"


class ShardError(InputError):
    """A shard folder that cannot be used as asked: written by another model, another shard
    size, or damaged."""


def require_pyarrow() -> Any:
    """``pyarrow``, or a ModelError saying which extra installs it."""
    try:
        import pyarrow
        import pyarrow.parquet  # noqa: F401
    except ImportError as exc:
        raise ModelError("Parquet shards need pyarrow: pip install 'vasari-art[parquet]' "
                         "(or '[faiss]', '[ray]'), or write an .npz") from exc
    return pyarrow


def shard_name(index: int) -> str:
    return f"part-{index:05d}.parquet"


def _digest(paths: Sequence[str]) -> str:
    """Which inputs a shard covers: a resumed run with other inputs at that range recomputes it."""
    h = hashlib.blake2b(digest_size=10)
    for p in paths:
        h.update(p.encode("utf-8", "surrogateescape") + b"\0")
    return h.hexdigest()


def embedding_identity(spec: "BackboneSpec") -> dict[str, Any]:
    """What makes two embedding shard folders comparable: the spec key (backbone, feature,
    preprocessing, views), plus readable fields for the error message and for readers."""
    return {"kind": "embeddings", "key": spec.key(), "backbone": spec.name, "feature": spec.feature,
            "dim": int(spec.dim), "views": spec.views, "spec": spec.to_dict()}


@dataclass(frozen=True)
class ShardPlan:
    """Shard ``index`` covers inputs ``[start, stop)`` whose paths hash to ``digest``."""

    index: int
    start: int
    stop: int
    digest: str

    @property
    def name(self) -> str:
        return shard_name(self.index)


@dataclass
class RowBatch:
    """Results for some inputs of a run, from either engine: ``rows`` (input indices) got
    ``values`` (vectors, or prediction objects); ``errors``/``codes`` map failed input indices
    to a message and an ``ImageError`` code; ``node`` is the Ray node that computed them
    (None on the local engine)."""

    rows: list[int]
    values: Any
    errors: dict[int, str] = field(default_factory=dict)
    codes: dict[int, str] = field(default_factory=dict)
    node: str | None = None


@dataclass
class ShardRows:
    """What one shard receives: the input indices with a value (vectors or prediction objects)
    and the indices that failed, with their messages."""

    rows: list[int] = field(default_factory=list)
    values: list[Any] = field(default_factory=list)
    errors: dict[int, str] = field(default_factory=dict)
    nodes: dict[str, int] = field(default_factory=dict)

    def done(self) -> int:
        return len(self.rows) + len(self.errors)


class ShardSet:
    """A shard folder being written for ``inputs`` (paths) and ``ids`` by ``identity``
    (``ShardFolder`` is one opened for reading).

    ``pending()`` lists the shards still to compute; ``add(batch)`` takes rows in any order
    (input index, value, error, node) and writes each shard as soon as all its inputs are
    in; ``table`` builds a shard's Arrow table from (images, ids, values).
    """

    def __init__(self, out_dir: str | Path, identity: dict[str, Any], inputs: Sequence[str],
                 ids: Sequence[str | None], shard_size: int,
                 table: Callable[[list[str], list[str | None], list[Any]], "pa.Table"]):
        if shard_size < 1:
            raise ShardError(f"shard size must be at least 1, got {shard_size}")
        require_pyarrow()
        self.dir = Path(out_dir)
        if self.dir.exists() and not self.dir.is_dir():
            raise ShardError(f"{self.dir}: is a file; shards need a folder (--out DIR)")
        self.dir.mkdir(parents=True, exist_ok=True)
        self.identity = identity
        self.inputs = [str(p) for p in inputs]
        self.ids = list(ids)
        self.shard_size = int(shard_size)
        self.table = table
        self.plans = [ShardPlan(k, s, min(s + shard_size, len(self.inputs)), _digest(self.inputs[s:s + shard_size]))
                      for k, s in enumerate(range(0, len(self.inputs), shard_size))]
        self.entries: dict[int, dict[str, Any]] = self._open()
        self._filling: dict[int, ShardRows] = {}

    # -- resuming
    def _open(self) -> dict[int, dict[str, Any]]:
        """The manifest's entries still valid for this run; refuses another model's folder."""
        old = read_manifest(self.dir) if (self.dir / MANIFEST).is_file() else None
        if old is None:
            return {}
        if old.get("identity", {}).get("key") != self.identity["key"]:
            theirs = old.get("identity", {})
            raise ShardError(
                f"{self.dir} holds {theirs.get('kind', '?')} of {_describe(theirs)}, not {_describe(self.identity)}; "
                "write to another folder or delete this one")
        if old.get("shard_size") != self.shard_size:
            raise ShardError(f"{self.dir} was written with shard size {old.get('shard_size')}, not {self.shard_size}; "
                             f"rerun with --shard-size {old.get('shard_size')} to resume it, or use another folder")
        kept = {}
        for entry in old.get("shards", []):
            k = int(entry["index"])
            if k < len(self.plans) and self._complete(self.plans[k], entry):
                kept[k] = entry
        for path in self.dir.iterdir():  # shards this run will not write: stale
            m = _SHARD_RE.match(path.name)
            if m and int(m.group(1)) >= len(self.plans):
                path.unlink()
        return kept

    def _complete(self, plan: ShardPlan, entry: dict[str, Any]) -> bool:
        """Listed for the same inputs, and its file holds the rows the manifest says."""
        if (entry.get("start"), entry.get("stop"), entry.get("inputs")) != (plan.start, plan.stop, plan.digest):
            return False
        path = self.dir / plan.name
        if not path.is_file():
            return False
        import pyarrow.parquet as pq

        try:
            return pq.read_metadata(path).num_rows == entry.get("rows")
        except Exception:  # truncated or not Parquet: recompute it
            return False

    def pending(self) -> list[ShardPlan]:
        return [p for p in self.plans if p.index not in self.entries]

    @property
    def n_done_inputs(self) -> int:
        return sum(self.plans[k].stop - self.plans[k].start for k in self.entries)

    # -- writing
    def add(self, batch: RowBatch) -> None:
        """Take a batch of results; write the shards it completes."""
        for i, value in zip(batch.rows, batch.values):
            part = self._part(int(i))
            part.rows.append(int(i))
            part.values.append(value)
            if batch.node:
                part.nodes[batch.node] = part.nodes.get(batch.node, 0) + 1
        for i, msg in batch.errors.items():
            self._part(int(i)).errors[int(i)] = msg
        for k in [k for k, part in self._filling.items() if part.done() == self.plans[k].stop - self.plans[k].start]:
            self._write(self.plans[k], self._filling.pop(k))

    def _part(self, i: int) -> ShardRows:
        return self._filling.setdefault(i // self.shard_size, ShardRows())

    def _write(self, plan: ShardPlan, part: ShardRows) -> None:
        import pyarrow.parquet as pq

        order = np.argsort(part.rows, kind="stable")
        rows = [part.rows[j] for j in order]
        table = self.table([self.inputs[i] for i in rows], [self.ids[i] for i in rows], [part.values[j] for j in order])
        path = self.dir / plan.name
        tmp = temp_path(path)
        try:
            # float vectors do not repeat: dictionary-encoding them made shards 1.6x larger
            # than zstd without it (16.0 vs 10.1 KB per 2,912-d row)
            pq.write_table(table, tmp, compression="zstd",
                           use_dictionary=[c for c in table.column_names if c != "vector"])
            os.replace(tmp, path)
        finally:
            tmp.unlink(missing_ok=True)
        self.entries[plan.index] = {
            "index": plan.index, "file": plan.name, "start": plan.start, "stop": plan.stop, "inputs": plan.digest,
            "rows": len(rows), "errors": {str(i): part.errors[i] for i in sorted(part.errors)}, "nodes": part.nodes,
        }
        self._save()

    def _save(self) -> None:
        payload = {"format": SHARD_FORMAT, "identity": self.identity, "shard_size": self.shard_size,
                   "n_inputs": len(self.inputs), "n_shards": len(self.plans),
                   "shards": [self.entries[k] for k in sorted(self.entries)]}
        atomic_write_text(self.dir / MANIFEST, json.dumps(payload, indent=1, ensure_ascii=False) + "\n")

    def finish(self) -> dict[str, Any]:
        """Write the manifest (also when every shard was already there) and return it."""
        if self._filling:
            missing = sorted(self._filling)
            raise ShardError(f"{self.dir}: shards {missing[:5]} did not receive all their rows")
        self._save()
        return read_manifest(self.dir)


def _describe(identity: dict[str, Any]) -> str:
    return (f"backbone {identity.get('backbone')!r} feature {identity.get('feature')!r} "
            f"{identity.get('views', 'center')} views (key {identity.get('key')})")


def read_manifest(out_dir: str | Path) -> dict[str, Any]:
    """A shard folder's ``manifest.json`` (ShardError when it is absent, unreadable or of
    another format).

    A manifest without ``format`` is accepted: hand-written ones (a collection embedded
    elsewhere, the scale benchmark's) name the backbone at the top level (``backbone``,
    ``feature``, ``dim`` or ``spec``) and list no shards; only a ``format`` this reader does
    not know is refused, since its fields may mean something else."""
    path = Path(out_dir) / MANIFEST
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise ShardError(f"{path}: missing; shards need the manifest `vasari embed --format parquet` writes "
                         "(it names the backbone that made the vectors)") from exc
    except (OSError, ValueError) as exc:
        raise ShardError(f"{path}: unreadable shard manifest ({exc})") from exc
    if not isinstance(data, dict):
        raise ShardError(f"{path}: not a shard manifest (a JSON object)")
    if data.get("format", SHARD_FORMAT) != SHARD_FORMAT:
        raise ShardError(f"{path}: shard manifest of format {data['format']!r}; this version reads format {SHARD_FORMAT}")
    return data


def manifest_identity(manifest: dict[str, Any]) -> dict[str, Any]:
    """What made the shards: the writer's ``identity``, or the top level of a hand-written
    manifest (``backbone``/``name``, ``feature``, ``dim``, ``spec``)."""
    identity = manifest.get("identity")
    return identity if isinstance(identity, dict) else manifest


# --------------------------------------------------------------------------- tables


def embedding_table(images: list[str], ids: list[str | None], vectors: list[np.ndarray]) -> "pa.Table":
    """The Arrow table of an embedding shard (``EMBEDDING_COLUMNS``)."""
    pa = require_pyarrow()
    dim = len(vectors[0]) if vectors else 0
    flat = np.asarray(vectors, dtype=np.float32).reshape(-1)
    offsets = np.arange(len(vectors) + 1, dtype=np.int32) * dim
    vector = pa.ListArray.from_arrays(pa.array(offsets, pa.int32()), pa.array(flat, pa.float32()))
    return pa.table({"image": pa.array(images, pa.string()), "artwork_id": pa.array(ids, pa.string()),
                     "vector": vector.cast(pa.list_(pa.float32()))})


def prediction_table(images: list[str], ids: list[str | None], objects: list[dict[str, Any]]) -> "pa.Table":
    """The Arrow table of a prediction shard: each contract field as a JSON string column."""
    pa = require_pyarrow()
    columns: dict[str, Any] = {"image": pa.array(images, pa.string()), "artwork_id": pa.array(ids, pa.string())}
    for name in PREDICTION_FIELDS:
        values = [json.dumps(o[name], ensure_ascii=False) if o.get(name) is not None else None for o in objects]
        columns[name] = pa.array(values, pa.string())
    return pa.table(columns)


# --------------------------------------------------------------------------- reading


@dataclass(frozen=True)
class ShardFolder:
    """A shard folder opened for reading (``ShardSet`` is one being written): its files in
    input order, its manifest, the vector length of embedding shards (0 for predictions)
    and its row count (from the Parquet footers)."""

    folder: Path
    files: tuple[Path, ...]
    manifest: dict[str, Any]
    dim: int
    rows: int

    @property
    def identity(self) -> dict[str, Any]:
        return manifest_identity(self.manifest)


class ShardBatch(NamedTuple):
    """One record batch of an embedding shard: the image path and artwork id of each row
    and their vectors ``(n, dim)`` float32 (a NaN row where the vector is null)."""

    images: list[str | None]
    artwork_ids: list[str | None]
    vectors: np.ndarray


def _vector_dim(path: Path, manifest: dict[str, Any]) -> int:
    identity = manifest_identity(manifest)
    try:
        return int(identity.get("dim") or identity["spec"]["dim"])
    except (KeyError, TypeError, ValueError) as exc:
        raise ShardError(f"{path}: no vector dim in the manifest ({exc!r})") from exc


def _listed_files(folder: Path, manifest: dict[str, Any]) -> tuple[Path, ...]:
    """The shards the manifest lists (all present), or every ``part-*.parquet`` of a
    hand-written manifest that lists none."""
    if "shards" not in manifest:
        return tuple(sorted(folder.glob(SHARD_GLOB)))
    files = tuple(folder / e["file"] for e in manifest["shards"])
    missing = [f.name for f in files if not f.is_file()]
    if missing:
        raise ShardError(f"{folder}: shards listed in the manifest are missing: {', '.join(missing[:5])}")
    return files


def open_shards(folder: str | Path, columns: Sequence[str] = ("image", "vector")) -> ShardFolder:
    """The shards of ``folder``, checked: a folder with shards, a manifest of a known format
    (and the vector dim when ``vector`` is asked for), readable files with ``columns``."""
    require_pyarrow()
    import pyarrow.parquet as pq

    folder = Path(folder)
    if not folder.is_dir():
        raise ShardError(f"{folder}: no such folder of shards")
    if not any(folder.glob(SHARD_GLOB)):
        raise ShardError(f"{folder}: no {SHARD_GLOB} shards (write them with `vasari embed ... --format parquet`)")
    manifest = read_manifest(folder)
    if "vector" in columns and manifest_identity(manifest).get("kind") == "predictions":
        raise ShardError(f"{folder}: holds prediction shards (`vasari predict --out`), not embeddings")
    dim = _vector_dim(folder / MANIFEST, manifest) if "vector" in columns else 0
    files = _listed_files(folder, manifest)
    rows = 0
    for path in files:
        try:
            meta = pq.ParquetFile(path)
        except Exception as exc:  # pyarrow raises ArrowInvalid / OSError for a torn file
            raise ShardError(f"{path}: not a readable Parquet file ({exc})") from exc
        names = set(meta.schema_arrow.names)
        if not set(columns) <= names:
            raise ShardError(f"{path}: columns {sorted(names)}; a shard needs {', '.join(columns)}")
        rows += meta.metadata.num_rows
    return ShardFolder(folder, files, manifest, dim, rows)


def _vectors(column: Any, dim: int, where: str) -> np.ndarray:
    """A list<float32> column as ``(n, dim)`` float32; null vectors become NaN rows (the
    caller decides whether to drop them), a vector of another length is a ShardError."""
    import pyarrow.compute as pc

    lengths = pc.list_value_length(column).fill_null(0).to_numpy(zero_copy_only=False)
    bad = np.flatnonzero((lengths != dim) & (lengths != 0))
    if len(bad):
        raise ShardError(f"{where}: row {int(bad[0])} has a vector of {int(lengths[bad[0]])} values, the manifest says {dim}")
    out = np.full((len(lengths), dim), np.nan, np.float32)
    values = column.flatten().to_numpy(zero_copy_only=False)
    out[lengths == dim] = np.asarray(values, np.float32).reshape(-1, dim)
    return out


def iter_shard_batches(shards: ShardFolder | str | Path, batch_size: int = 8192,
                       with_labels: bool = True) -> Iterator[ShardBatch]:
    """``ShardBatch(images, artwork ids, vectors)`` of an embedding shard folder (a path, or
    one ``open_shards`` checked), ``batch_size`` rows at a time, in input order: never more
    than one batch in memory. ``with_labels=False`` reads only the vectors (empty lists)."""
    import pyarrow.parquet as pq

    if not isinstance(shards, ShardFolder):
        shards = open_shards(shards)
    for path in shards.files:
        pf = pq.ParquetFile(path)
        has_id = "artwork_id" in pf.schema_arrow.names
        columns = ["vector", "image"] + (["artwork_id"] if has_id else []) if with_labels else ["vector"]
        for batch in pf.iter_batches(batch_size=batch_size, columns=columns):
            vectors = _vectors(batch.column("vector"), shards.dim, str(path))
            images = batch.column("image").to_pylist() if with_labels else []
            ids = batch.column("artwork_id").to_pylist() if with_labels and has_id else [None] * len(images)
            yield ShardBatch(images, ids, vectors)


def iter_prediction_objects(out_dir: str | Path, batch_size: int = 4096) -> Iterator[dict[str, Any]]:
    """The prediction contract objects of a prediction shard folder, in input order (with
    ``artwork_id`` when the source knew it)."""
    import pyarrow.parquet as pq

    for path in open_shards(out_dir, columns=("image",)).files:
        for batch in pq.ParquetFile(path).iter_batches(batch_size=batch_size):
            for row in batch.to_pylist():
                obj: dict[str, Any] = {"image": row["image"]}
                obj.update({k: json.loads(row[k]) for k in PREDICTION_FIELDS if row.get(k) is not None})
                if row.get("artwork_id") is not None:
                    obj["artwork_id"] = row["artwork_id"]
                yield obj
