"""Gallery indexes for millions: IVF kinds (recall, exact re-scoring, memory-mapped read-only
loading), the kind chosen by size, index builds from Parquet embedding shards, and
`vasari index build --from-embeddings` end to end."""

from __future__ import annotations

import json
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from vasari.features import BackboneSpec
from vasari.gallery import GalleryIndex, GalleryIndexError, IndexConfig, IndexConfigError, IndexSpecError
from vasari.gallery.ann import default_nlist, faiss_available, resolve_kind

pa = pytest.importorskip("pyarrow", reason="pyarrow is needed to write Parquet shards")
needs_faiss = pytest.mark.skipif(not faiss_available(), reason="faiss is not installed (pip install -e '.[faiss]')")

DIM = 48
SPEC = BackboneSpec("tinynet", "stats", DIM)


def _clustered(n: int, clusters: int = 40, dim: int = DIM, seed: int = 0, spread: float = 0.35) -> np.ndarray:
    """Raw 'features' in clusters around a shared offset (like real ones: a large common
    mean, works of one manner near each other); clusters drawn from one seed, points from another."""
    centres = np.random.default_rng(1234).normal(size=(clusters, dim)) * 2.0
    offset = np.random.default_rng(4321).normal(size=dim) * 5.0
    rng = np.random.default_rng(seed)
    return (offset + centres[rng.integers(0, clusters, n)] + rng.normal(size=(n, dim)) * spread).astype(np.float32)


def _meta(n: int) -> list[dict]:
    return [{"artwork_id": f"w{i}", "image": f"/pictures/{i}.jpg"} for i in range(n)]


def _recall(found: np.ndarray, truth: np.ndarray) -> float:
    return float(np.mean([len(set(a) & set(b)) / len(b) for a, b in zip(found, truth)]))


def _write_shards(folder: Path, x: np.ndarray, ids: list[str | None], per_shard: int = 700,
                  manifest: dict | None = None) -> Path:
    """Shards in the format of `vasari embed --format parquet`: image, artwork_id, vector."""
    import pyarrow.parquet as pq

    folder.mkdir(parents=True, exist_ok=True)
    for part, start in enumerate(range(0, len(x), per_shard)):
        rows = range(start, min(len(x), start + per_shard))
        table = pa.table({"image": [f"/pictures/{i}.jpg" for i in rows], "artwork_id": [ids[i] for i in rows],
                          "vector": pa.array([None if not np.isfinite(x[i]).all() else x[i] for i in rows],
                                             type=pa.list_(pa.float32()))})
        pq.write_table(table, folder / f"part-{part:05d}.parquet")
    manifest = manifest if manifest is not None else {"backbone": SPEC.name, "feature": SPEC.feature, "dim": SPEC.dim}
    (folder / "manifest.json").write_text(json.dumps(manifest))
    return folder


# --------------------------------------------------------------------------- kinds and configuration


def test_config_is_validated():
    with pytest.raises(IndexConfigError, match="hnsw"):
        IndexConfig(kind="hnsw")
    with pytest.raises(IndexConfigError, match="nprobe"):
        IndexConfig(nprobe=0)
    with pytest.raises(IndexConfigError, match="rerank_factor"):
        IndexConfig(rerank_factor=True)
    assert IndexConfig.from_dict(IndexConfig(kind="ivf-pq", nprobe=7).to_dict()).nprobe == 7


def test_auto_kind_follows_the_size(monkeypatch):
    config = IndexConfig(faiss_min_size=100, ivf_pq_min_size=1000)
    monkeypatch.setattr("vasari.gallery.ann.faiss_available", lambda: True)
    assert [resolve_kind(config, n) for n in (99, 100, 999, 1000)] == ["exact", "ivf-flat", "ivf-flat", "ivf-pq"]
    assert resolve_kind(replace(config, kind="exact"), 10**7) == "exact"
    monkeypatch.setattr("vasari.gallery.ann.faiss_available", lambda: False)
    assert resolve_kind(config, 10**7) == "exact"  # "auto" without FAISS stays exact
    assert default_nlist(1_000_000) == 2048 and default_nlist(100_000) == 512 and default_nlist(50) == 1


def test_an_ivf_kind_without_faiss_names_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "faiss", None)  # `import faiss` now raises ImportError
    x = _clustered(300)
    with pytest.raises(GalleryIndexError, match=r"pip install -e '\.\[faiss\]'"):
        GalleryIndex.build(x, _meta(len(x)), config=IndexConfig(kind="ivf-flat", pca_dim=None), calibrate=False)


def test_small_indexes_stay_exact_as_before(tmp_path):
    x = _clustered(500)
    index = GalleryIndex.build(x, _meta(len(x)), SPEC, IndexConfig(pca_dim=16, thumbnails=False))
    assert index.kind == "exact" and index.ann is None
    index.save(tmp_path / "idx")
    info = json.loads((tmp_path / "idx" / "index.json").read_text())
    assert info["kind"] == "exact" and info["ann"] is None and not (tmp_path / "idx" / "ann.faiss").exists()
    del info["kind"], info["ann"]  # an index written before IVF kinds existed
    (tmp_path / "idx" / "index.json").write_text(json.dumps(info))
    old = GalleryIndex.load(tmp_path / "idx", spec=SPEC)
    assert old.kind == "exact" and not isinstance(old.vectors, np.memmap)
    q = _clustered(20, seed=9)
    assert (old.search_rows(q, 5)[1] == index.search_rows(q, 5)[1]).all()


def test_the_default_bundle_index_loads_exact():
    from vasari.gallery import find_index

    where = find_index(None)
    if where is None:
        pytest.skip("the default bundle has no gallery index here")
    index = GalleryIndex.load(where)
    assert index.kind == "exact" and index.ann is None and not isinstance(index.vectors, np.memmap)


# --------------------------------------------------------------------------- IVF search


@needs_faiss
@pytest.mark.parametrize("kind", ["ivf-flat", "ivf-pq"])
def test_ivf_recall_against_exact_on_clustered_vectors(kind):
    x = _clustered(6000)
    config = IndexConfig(kind=kind, pca_dim=None, dtype="float32", nprobe=8, pq_m=8)
    index = GalleryIndex.build(x, _meta(len(x)), config=config, calibrate=False)
    assert index.kind == kind and len(index.ann) == len(x)
    queries = _clustered(200, seed=7)  # held out: not in the index
    ann_scores, ann_rows = index.search_rows(queries, 10)
    exact_scores, exact_rows = index.search_rows(queries, 10, use_faiss=False)
    assert _recall(ann_rows, exact_rows) >= 0.9
    # the scores are exact cosines of the rows found, whatever the kind
    q = index.project(queries)
    direct = np.einsum("qkd,qd->qk", index.vectors[ann_rows].astype(np.float32), q)
    assert np.allclose(ann_scores, direct, atol=1e-5)
    assert (np.diff(ann_scores, axis=1) <= 1e-6).all()  # best first


@needs_faiss
def test_more_probes_find_more_neighbours():
    x = _clustered(6000, clusters=200, spread=1.0)
    index = GalleryIndex.build(x, _meta(len(x)), config=IndexConfig(kind="ivf-flat", pca_dim=None, nprobe=1),
                               calibrate=False)
    queries = _clustered(200, clusters=200, spread=1.0, seed=5)
    truth = index.search_rows(queries, 10, use_faiss=False)[1]
    one = _recall(index.search_rows(queries, 10)[1], truth)
    index.ann.set_nprobe(index.ann.index.nlist)  # every cluster: exhaustive
    assert one < 0.99 and _recall(index.search_rows(queries, 10)[1], truth) > 0.99


@needs_faiss
def test_ivf_index_saves_and_opens_memory_mapped_read_only(tmp_path):
    x = _clustered(3000)
    config = IndexConfig(kind="ivf-pq", pca_dim=16, nprobe=6, pq_m=4, rerank_factor=5, thumbnails=False)
    index = GalleryIndex.build(x, _meta(len(x)), SPEC, config)
    assert index.calibration["method"] == "leave-group-out (index search)"
    index.save(tmp_path / "idx")
    info = json.loads((tmp_path / "idx" / "index.json").read_text())
    assert info["kind"] == "ivf-pq" and info["ann"]["nprobe"] == 6 and info["ann"]["pq_m"] == 4
    assert info["config"]["rerank_factor"] == 5
    loaded = GalleryIndex.load(tmp_path / "idx", spec=SPEC)
    assert loaded.kind == "ivf-pq" and loaded.ann.nprobe == 6
    assert isinstance(loaded.vectors, np.memmap) and loaded.vectors.mode == "r"
    with pytest.raises(ValueError):
        loaded.vectors[0, 0] = 1.0  # read-only: replicas share one copy of the pages
    q = _clustered(30, seed=3)
    assert (loaded.search_rows(q, 5)[1] == index.search_rows(q, 5)[1]).all()
    assert loaded.info()["kind"] == "ivf-pq"


@needs_faiss
def test_a_damaged_ivf_file_is_named(tmp_path):
    x = _clustered(1000)
    index = GalleryIndex.build(x, _meta(len(x)), SPEC, IndexConfig(kind="ivf-flat", pca_dim=8, thumbnails=False))
    index.save(tmp_path / "idx")
    (tmp_path / "idx" / "ann.faiss").write_bytes(b"not faiss")
    with pytest.raises(GalleryIndexError, match="ann.faiss"):
        GalleryIndex.load(tmp_path / "idx")


@needs_faiss
def test_enrichment_uses_the_ivf_search(tmp_path):
    """A prediction enriched by an IVF index gets the neighbours its search finds, with no
    (n, N) similarity matrix (the index has no artists, so no affinity)."""
    from vasari.inference.enrich import enrich_predictions
    from vasari.inference.schema import Prediction

    x = _clustered(3000)
    index = GalleryIndex.build(x, _meta(len(x)), SPEC, IndexConfig(kind="ivf-flat", pca_dim=16, nprobe=64))
    index.similarities = None  # enrichment must not call it for this index
    pred = Prediction.model_validate({"image": "q.jpg", "predictions": {}, "verdict": {}})
    enrich_predictions([pred], index, x[:1], k_similar=3)
    assert [s.artwork_id for s in pred.similar][0] == "w0"
    assert len(pred.similar) == 3 and not pred.affinity and pred.novelty.novel is False


# --------------------------------------------------------------------------- shards


def test_shards_build_equals_the_in_memory_build(tmp_path):
    from vasari.gallery.shards import build_from_shards

    x = _clustered(2000)
    x[5] = np.nan  # a null vector in a shard: dropped, like a NaN row in memory
    ids = [None if i % 3 == 0 else f"w{i}" for i in range(len(x))]
    shards = _write_shards(tmp_path / "shards", x, ids)
    config = IndexConfig(kind="exact", pca_dim=16, thumbnails=False)
    streamed = build_from_shards(shards, tmp_path / "idx", SPEC, config)
    meta = [{"artwork_id": ids[i] or f"/pictures/{i}.jpg", "image": f"/pictures/{i}.jpg"} for i in range(len(x))]
    memory = GalleryIndex.build(x, meta, SPEC, config)
    assert len(streamed) == len(memory) == len(x) - 1
    assert np.allclose(streamed.vectors.astype(np.float32), memory.vectors.astype(np.float32), atol=1e-3)
    assert [r["artwork_id"] for r in streamed.metadata] == [r["artwork_id"] for r in memory.metadata]
    assert streamed.metadata[1]["image"] == "/pictures/1.jpg" and streamed.metadata[0]["artwork_id"] == "/pictures/0.jpg"
    q = _clustered(25, seed=11)
    assert (streamed.search_rows(q, 5)[1] == memory.search_rows(q, 5)[1]).all()
    assert streamed.calibration["novelty_threshold"] == pytest.approx(memory.calibration["novelty_threshold"], abs=1e-3)


@needs_faiss
def test_shards_build_an_ivf_index_in_batches(tmp_path, monkeypatch):
    from vasari.gallery import ann, shards as shard_module

    monkeypatch.setattr(ann, "ADD_BATCH", 500)  # several add() calls
    monkeypatch.setattr(shard_module, "BATCH_ROWS", 256)  # several record batches per shard
    x = _clustered(3000)
    folder = _write_shards(tmp_path / "shards", x, [f"w{i}" for i in range(len(x))])
    index = shard_module.build_from_shards(folder, tmp_path / "idx", SPEC,
                                           IndexConfig(kind="ivf-flat", pca_dim=16, nprobe=16))
    assert index.kind == "ivf-flat" and len(index.ann) == len(x) == len(index)
    assert isinstance(index.vectors, np.memmap)
    hits = index.search(x[[10, 2500]], k=1)
    assert [h[0].artwork_id for h in hits] == ["w10", "w2500"]


def test_shards_from_another_backbone_are_refused(tmp_path):
    from vasari.gallery.shards import build_from_shards

    x = _clustered(100)
    ids = [f"w{i}" for i in range(len(x))]
    other = _write_shards(tmp_path / "other", x, ids, manifest={"backbone": "convnext_tiny", "feature": "stats", "dim": DIM})
    with pytest.raises(IndexSpecError, match="convnext_tiny"):
        build_from_shards(other, tmp_path / "idx", SPEC)
    spec_other = replace(SPEC, feature="pooled")
    whole = _write_shards(tmp_path / "whole", x, ids, manifest={"spec": spec_other.to_dict(), "dim": DIM})
    with pytest.raises(IndexSpecError, match="embed them again"):
        build_from_shards(whole, tmp_path / "idx", SPEC)
    assert not (tmp_path / "idx").exists()


def test_bad_shard_folders_are_named(tmp_path):
    import pyarrow.parquet as pq

    from vasari.gallery.shards import ShardError, build_from_shards

    with pytest.raises(ShardError, match="no such folder"):
        build_from_shards(tmp_path / "absent", tmp_path / "idx", SPEC)
    (tmp_path / "empty").mkdir()
    with pytest.raises(ShardError, match="no part-"):
        build_from_shards(tmp_path / "empty", tmp_path / "idx", SPEC)
    x = _clustered(50)
    folder = _write_shards(tmp_path / "nomanifest", x, [None] * len(x))
    (folder / "manifest.json").unlink()
    with pytest.raises(ShardError, match="manifest.json"):
        build_from_shards(folder, tmp_path / "idx", SPEC)
    wrong = _write_shards(tmp_path / "wrongdim", x, [None] * len(x), manifest={"backbone": "tinynet", "feature": "stats", "dim": DIM + 1})
    with pytest.raises(IndexSpecError):
        build_from_shards(wrong, tmp_path / "idx", SPEC)
    short = _write_shards(tmp_path / "short", x, [None] * len(x))
    pq.write_table(pa.table({"image": ["a.jpg"], "vector": pa.array([[1.0, 2.0]], type=pa.list_(pa.float32()))}),
                   short / "part-00009.parquet")
    with pytest.raises(ShardError, match=r"part-00009.parquet: row 0 has a vector of 2 values"):
        build_from_shards(short, tmp_path / "idx", SPEC)
    (short / "part-00009.parquet").write_bytes(b"torn")
    with pytest.raises(ShardError, match="part-00009.parquet: not a readable Parquet file"):
        build_from_shards(short, tmp_path / "idx", SPEC)
    nulls = _write_shards(tmp_path / "nulls", np.full((3, DIM), np.nan, np.float32), [None] * 3)
    with pytest.raises(ShardError, match="null or not finite"):
        build_from_shards(nulls, tmp_path / "idx", SPEC)


# --------------------------------------------------------------------------- the CLI, end to end


@pytest.mark.slow
@needs_faiss
def test_cli_builds_from_embeddings_and_similar_and_predictor_use_it(tmp_path, monkeypatch):
    """Shards of real embeddings of generated pictures (three manners) -> `vasari index
    build --from-embeddings` (IVF-Flat) -> `vasari similar --index` and a Predictor with
    that index find works of the query's manner."""
    from typer.testing import CliRunner

    from test_index import _picture
    from vasari.cli import app
    from vasari.features.embedder import Embedder
    from vasari.inference.predictor import Predictor

    monkeypatch.setenv("VASARI_CACHE", str(tmp_path / "cache"))
    paths = []
    for i in range(24):
        path = tmp_path / "pictures" / f"manner{i % 3}_{i}.jpg"
        path.parent.mkdir(exist_ok=True)
        _picture(500 + i, i % 3).save(path)
        paths.append(str(path))
    embedder = Embedder()
    x = embedder.embed_paths(paths, progress=False).features
    spec = embedder.spec
    shards = _write_shards(tmp_path / "shards", x, [f"pic{i}" for i in range(len(x))], per_shard=10,
                           manifest={"spec": spec.to_dict(), "dim": spec.dim})
    for part in sorted(shards.glob("part-*.parquet")):  # the real image paths
        import pyarrow.parquet as pq

        table = pq.read_table(part)
        rows = [int(i[3:]) for i in table.column("artwork_id").to_pylist()]
        pq.write_table(table.set_column(0, "image", pa.array([paths[r] for r in rows])), part)
    out = tmp_path / "index"
    runner = CliRunner()
    res = runner.invoke(app, ["index", "build", "--from-embeddings", str(shards), "--out", str(out),
                              "--kind", "ivf-flat", "--nlist", "3", "--nprobe", "3", "--pca", "16"])
    assert res.exit_code == 0, res.output
    assert json.loads((out / "index.json").read_text())["kind"] == "ivf-flat"
    query = tmp_path / "q.jpg"
    _picture(999, 2).save(query)
    res = runner.invoke(app, ["similar", str(query), "--index", str(out), "-k", "3", "--json"])
    assert res.exit_code == 0, res.output
    similar = json.loads(res.output)["similar"]
    assert len(similar) == 3 and all(int(s["artwork_id"][3:]) % 3 == 2 for s in similar)

    predictor = Predictor.load(None, with_index=False)
    predictor.index = GalleryIndex.load(out, spec=predictor.bundle.spec)
    obj = predictor.predict_paths([str(query)], top_k=2)[0]
    assert int(obj["similar"][0]["artwork_id"][3:]) % 3 == 2 and not obj.get("affinity")

    both = runner.invoke(app, ["index", "build", "shared", "--from-embeddings", str(shards), "--out", str(out)])
    assert both.exit_code != 0 and "not both" in both.output
    other = runner.invoke(app, ["index", "build", "--from-embeddings", str(shards), "--out", str(tmp_path / "x"),
                                "--feature", "pooled"])
    assert other.exit_code != 0 and "embed them again" in other.output


def test_large_shard_sets_fit_pca_from_the_gram_matrix(tmp_path, monkeypatch):
    """Past PCA_SAMPLE rows the projection comes from the Gram matrix of the sample, batch by
    batch: the same axes as the SVD of those rows (up to sign), so the same cosines."""
    from vasari.gallery import shards as shard_module
    from vasari.gallery.projection import Projection

    monkeypatch.setattr(shard_module, "BATCH_ROWS", 128)
    x = _clustered(1500)
    folder = _write_shards(tmp_path / "shards", x, [None] * len(x))
    opened = shard_module.open_shards(folder)
    config = IndexConfig(pca_dim=12)
    streamed = shard_module.fit_projection(opened, config, sample=600)
    rows = np.concatenate(list(shard_module._sampled_batches(opened, 600, 0)))
    assert len(rows) == 600
    direct = Projection.fit(rows, pca_dim=12)
    assert np.allclose(np.abs(streamed.components), np.abs(direct.components), atol=1e-3)
    a, b = streamed(x[:50]), direct(x[:50])
    assert np.allclose(a @ a.T, b @ b.T, atol=1e-4)
