"""A gallery index from embedding shards: ``DIR/part-NNNNN.parquet`` + ``DIR/manifest.json``.

``vasari embed SOURCE... --format parquet --out DIR`` (either engine, local or Ray) writes
shards with the columns ``image`` (the path as read), ``artwork_id`` (nullable) and
``vector`` (list<float32>), and a manifest naming the backbone (its ``identity``; a
hand-written manifest may name it at the top level: ``backbone``/``name``, ``feature``,
``dim``, optionally the whole ``spec``). ``vasari.features.shards`` reads and checks them
(``open_shards``, ``iter_shard_batches``); this module builds the index. A collection of millions does not fit
in memory as raw vectors (1M x 2,912 float32 is 11.6 GB), so the index is built in two
streaming passes over record batches (``pyarrow.parquet.ParquetFile.iter_batches``):

1. count the rows and fit the PCA projection on a sample of raw vectors (past 20k rows,
   from their Gram matrix, accumulated batch by batch);
2. project each batch into a memory-mapped ``vectors.npy`` (128-d float16: 256 MB per
   million), then train the IVF index on a sample of those and add them in batches.

Shards know no labels: the metadata of such an index is the image path and artwork id, so
similar works show what is known (and there is no artist affinity).
"""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from vasari.features.shards import MANIFEST, ShardError, ShardFolder, iter_shard_batches, open_shards
from vasari.gallery.config import IndexConfig, IndexSpecError
from vasari.gallery.projection import Projection

if TYPE_CHECKING:
    from vasari.features import BackboneSpec
    from vasari.gallery.index import GalleryIndex

#: Raw vectors the PCA projection is fitted on (20k x 2,912 float64 is 470 MB; 128 axes
#: from 20k paintings are as stable as from all of them).
PCA_SAMPLE = 20_000
BATCH_ROWS = 8_192


def open_embedding_shards(folder: str | Path) -> ShardFolder:
    """``open_shards`` for an index: the folder must hold at least one row."""
    shards = open_shards(folder)
    if shards.rows == 0:
        raise ShardError(f"{shards.folder}: the shards hold no rows")
    return shards


def check_spec(shards: ShardFolder, spec: BackboneSpec) -> None:
    """Refuse shards embedded by another backbone (or feature, or dim) than ``spec``."""
    from vasari.features import BackboneSpec

    m = shards.identity
    if isinstance(m.get("spec"), dict):
        try:
            theirs = BackboneSpec.from_dict(m["spec"]).key()
        except (KeyError, TypeError, ValueError) as exc:
            raise ShardError(f"{shards.folder / MANIFEST}: bad backbone spec ({exc})") from exc
        same = theirs == spec.key()
    else:
        theirs = f"{m.get('backbone') or m.get('name')}/{m.get('feature')} ({shards.dim}-d)"
        same = (m.get("backbone") or m.get("name"), m.get("feature"), shards.dim) == (spec.name, spec.feature, spec.dim)
    if not same:
        raise IndexSpecError(f"{shards.folder}: shards embedded with {theirs}, but the index is for "
                             f"{spec.key()}; embed them again with that backbone, or build with the shards' one")


def _sampled_batches(shards: ShardFolder, sample: int, seed: int) -> Iterator[np.ndarray]:
    """The finite raw vectors of ``sample`` rows drawn evenly from every shard (all rows when
    there are fewer), batch by batch in shard order."""
    pick = np.arange(shards.rows)
    if shards.rows > sample:
        pick = np.sort(np.random.default_rng(seed).choice(shards.rows, sample, replace=False))
    start = 0
    for batch in iter_shard_batches(shards, BATCH_ROWS, with_labels=False):
        end = start + len(batch.vectors)
        chosen = batch.vectors[pick[(pick >= start) & (pick < end)] - start]
        start = end
        yield chosen[np.isfinite(chosen).all(axis=1)]


def fit_projection(shards: ShardFolder, config: IndexConfig, sample: int | None = None, seed: int = 0) -> Projection:
    """The index projection fitted on ``sample`` (``PCA_SAMPLE``) raw vectors of the shards.

    With as many rows as the sample or fewer (or centring / scaling asked for) it is
    ``Projection.fit`` on them, so the index equals ``GalleryIndex.build``'s. Past that, the
    uncentred PCA axes are the top eigenvectors of the Gram matrix ``X^T X`` accumulated batch
    by batch (the right singular vectors ``Projection.fit`` takes from an SVD, up to sign):
    68 MB for 2,912 dims instead of 20k x 2,912 float64 rows, their SVD and its workspace
    (3.7 GB and 8 minutes for 20k rows on 2 busy cores)."""
    sample = PCA_SAMPLE if sample is None else sample
    gram_path = shards.rows > sample and config.pca_dim is not None and not (config.center or config.scale)
    if not gram_path:
        x = np.concatenate(list(_sampled_batches(shards, sample, seed)))
        if len(x) == 0:
            raise ShardError(f"{shards.folder}: every vector in the shards is null or not finite")
        return Projection.fit(x, config.center, config.scale, config.pca_dim)
    gram = np.zeros((shards.dim, shards.dim), np.float64)
    count = 0
    for x in _sampled_batches(shards, sample, seed):
        x64 = x.astype(np.float64)
        gram += x64.T @ x64
        count += len(x)
    return gram_projection(gram, count, config.pca_dim)


def gram_projection(gram: np.ndarray, count: int, pca_dim: int) -> Projection:
    """The uncentred, unscaled PCA projection onto the top ``pca_dim`` eigenvectors of the
    Gram matrix of ``count`` raw vectors (as many axes as ``Projection.fit`` would keep)."""
    dim = len(gram)
    if count <= 2 or pca_dim >= dim:
        return Projection(np.zeros(dim, np.float32), np.ones(dim, np.float32))
    _, vectors = np.linalg.eigh(gram)  # ascending eigenvalues
    k = int(min(pca_dim, count - 1, dim))
    components = vectors[:, ::-1][:, :k].T
    return Projection(np.zeros(dim, np.float32), np.ones(dim, np.float32), components.astype(np.float32))


def _project_into(shards: ShardFolder, projection: Projection, store: np.ndarray, config: IndexConfig,
                  progress: bool) -> tuple[int, np.ndarray, list[dict[str, Any]]]:
    """Project every finite shard row into ``store`` (a memory map) in order; returns how many
    rows were kept, their explained fractions and their metadata rows."""
    from vasari.core.progress import make_progress
    from vasari.gallery.store import _meta_row

    explained = np.ones(shards.rows, np.float32)
    rows: list[dict[str, Any]] = []
    kept = 0
    with make_progress(transient=True, disable=not progress) as bar:
        task = bar.add_task("projecting shards", total=shards.rows)
        for batch in iter_shard_batches(shards, BATCH_ROWS):
            ok = np.isfinite(batch.vectors).all(axis=1)
            vectors, frac = projection.transform(batch.vectors[ok])
            store[kept:kept + len(vectors)] = vectors.astype(config.dtype)
            explained[kept:kept + len(vectors)] = frac
            for image, artwork_id, keep in zip(batch.images, batch.artwork_ids, ok):
                if keep:  # no id: the image path is the work's name (metadata.csv needs one)
                    rows.append(_meta_row({"artwork_id": artwork_id or image, "image": image}))
            kept += len(vectors)
            bar.advance(task, len(batch.vectors))
    return kept, explained[:kept], rows


def build_from_shards(folder: str | Path, out: str | Path, spec: BackboneSpec, config: IndexConfig = IndexConfig(),
                      calibrate: bool = True, progress: bool = False) -> GalleryIndex:
    """Build the gallery index of the shards in ``folder`` into ``out`` and open it (IVF
    kinds memory-mapped). Raises ``ShardError`` for a bad folder and ``IndexSpecError`` for
    shards of another backbone than ``spec``."""
    from vasari.gallery.ann import AnnIndex, resolve_kind
    from vasari.gallery.index import GalleryIndex

    shards = open_embedding_shards(folder)
    check_spec(shards, spec)
    config = replace(config, thumbnails=False)  # millions of images: paths are shown instead
    projection = fit_projection(shards, config)
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=out.parent, prefix=f".{out.name}.build-") as scratch:
        store = np.lib.format.open_memmap(Path(scratch) / "vectors.npy", mode="w+", dtype=config.dtype,
                                          shape=(shards.rows, projection.out_dim))
        kept, explained, rows = _project_into(shards, projection, store, config, progress)
        if kept == 0:
            raise ShardError(f"{shards.folder}: every vector in the shards is null or not finite")
        index = GalleryIndex(store[:kept], rows, projection, spec, config, explained=explained)
        kind = resolve_kind(config, kept)
        if kind != "exact":
            index.ann = AnnIndex.build(kind, index.vectors, config, progress=progress)
        if calibrate and kept >= 10:
            index.calibrate()
        index.save(out)
        del index, store  # the memory map must be closed before its folder is removed
    return GalleryIndex.load(out, spec=spec)
