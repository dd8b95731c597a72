"""Parquet shards of embeddings and predictions (``vasari.features.shards``), with the local
engine on generated pictures: columns and types, the same vectors as the .npz, resumption shard
by shard, refusal of another backbone's folder, the cache, and predictions equal to the local
predictor's. No Ray here (tests/test_ray.py)."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
from typer.testing import CliRunner

from answers_close import assert_answers_close
from learn_data import TYPES, painting
from vasari.cli import app
from vasari.features.shards import ShardError, ShardSet, embedding_identity, embedding_table, iter_shard_batches

pa = pytest.importorskip("pyarrow")
pq = pytest.importorskip("pyarrow.parquet")
runner = CliRunner()


def _cli(*args):
    return runner.invoke(app, [str(a) for a in args], catch_exceptions=False)


@pytest.fixture(scope="module")
def pictures(tmp_path_factory):
    """11 generated paintings and one file that is not a picture, in name order."""
    root = tmp_path_factory.mktemp("pictures")
    rng = np.random.default_rng(5)
    for i in range(11):
        img, _ = painting(rng, TYPES[i % 3], size=120)
        img.save(root / f"p{i:02d}.png")
    (root / "p05_broken.jpg").write_bytes(b"not a jpeg at all")
    return root


@pytest.fixture(scope="module")
def embedder():
    from vasari.features import Embedder

    return Embedder(threads=1)


def _paths(root):
    return sorted(str(p) for p in root.iterdir())


def _read(out):
    rows = [(images, ids, vecs) for images, ids, vecs in iter_shard_batches(out, batch_size=3)]
    return (sum((r[0] for r in rows), []), sum((r[1] for r in rows), []), np.concatenate([r[2] for r in rows]))


def test_parquet_shards_hold_the_npz_vectors(pictures, tmp_path):
    shards, npz = tmp_path / "shards", tmp_path / "all.npz"
    assert _cli("embed", pictures, "--out", shards, "--format", "parquet", "--shard-size", 4, "--no-cache").exit_code == 0
    assert _cli("embed", pictures, "--out", npz, "--no-cache").exit_code == 0

    files = sorted(p.name for p in shards.glob("part-*.parquet"))
    assert files == ["part-00000.parquet", "part-00001.parquet", "part-00002.parquet"]
    schema = pq.read_schema(shards / files[0])
    assert schema.names == ["image", "artwork_id", "vector"]
    assert schema.field("image").type == pa.string() and schema.field("artwork_id").type == pa.string()
    assert schema.field("vector").type == pa.list_(pa.float32())

    manifest = json.loads((shards / "manifest.json").read_text())
    assert manifest["identity"]["backbone"] == "efficientnet_lite2" and manifest["identity"]["dim"] == 2912
    assert [(e["start"], e["stop"], e["rows"]) for e in manifest["shards"]] == [(0, 4, 4), (4, 8, 3), (8, 12, 4)]
    broken = _paths(pictures).index(str(pictures / "p05_broken.jpg"))
    assert list(manifest["shards"][1]["errors"]) == [str(broken)]

    from vasari.features.embedder import load_embeddings

    ref = load_embeddings(npz)
    images, ids, vectors = _read(shards)
    assert images == [p for p, ok in zip(ref["paths"], ref["ok"]) if ok]
    assert ids == [None] * 11  # plain files: no catalog id
    assert vectors.dtype == np.float32 and vectors.shape == (11, 2912)
    assert np.abs(vectors - ref["features"][ref["ok"]]).max() <= 1e-5


def test_the_gallery_builds_its_index_from_embed_shards_and_names_bad_ones(pictures, tmp_path):
    """One reader: what `vasari embed --format parquet` writes (manifest with ``format`` and
    ``identity``, a listed shard list) is what `vasari index build --from-embeddings` reads;
    a vector of another length or null vectors get their specific errors."""
    from vasari.features import backbone_spec
    from vasari.gallery import GalleryIndex
    from vasari.gallery.shards import build_from_shards

    shards = tmp_path / "shards"
    assert _cli("embed", pictures, "--out", shards, "--format", "parquet", "--shard-size", 4, "--no-cache").exit_code == 0
    result = _cli("index", "build", "--from-embeddings", shards, "--out", tmp_path / "idx", "--kind", "exact")
    assert result.exit_code == 0, result.output
    spec = backbone_spec("efficientnet_lite2", "stats")
    index = GalleryIndex.load(tmp_path / "idx", spec=spec)
    images, _, vectors = _read(shards)
    assert len(index) == 11 and [r["image"] for r in index.metadata] == images
    assert [h[0].artwork_id for h in index.search(vectors[[2, 9]], k=1)] == [images[2], images[9]]

    part = shards / "part-00002.parquet"
    good = pq.read_table(part)
    short = good.set_column(2, "vector", pa.array([[0.5, 1.0, 2.0]] * good.num_rows, pa.list_(pa.float32())))
    pq.write_table(short, part)
    with pytest.raises(ShardError, match=r"part-00002.parquet: row 0 has a vector of 3 values, the manifest says 2912"):
        build_from_shards(shards, tmp_path / "bad", spec)
    one_null = good.set_column(2, "vector", pa.array([None] + good.column("vector").to_pylist()[1:], pa.list_(pa.float32())))
    pq.write_table(one_null, part)
    got = _read(shards)[2]
    assert np.isnan(got[7]).all() and np.isfinite(np.delete(got, 7, axis=0)).all()  # a null vector: a NaN row
    assert len(build_from_shards(shards, tmp_path / "dropped", spec)) == 10  # which the index drops
    for path in shards.glob("part-*.parquet"):
        table = pq.read_table(path)
        pq.write_table(table.set_column(2, "vector", pa.nulls(table.num_rows, pa.list_(pa.float32()))), path)
    with pytest.raises(ShardError, match="every vector in the shards is null or not finite"):
        build_from_shards(shards, tmp_path / "nulls", spec)


def test_manifests_without_format_are_read_and_another_format_is_refused(tmp_path):
    from vasari.features.shards import open_shards, read_manifest

    folder = tmp_path / "shards"
    folder.mkdir()
    pq.write_table(pa.table({"image": ["a.jpg"], "vector": pa.array([[1.0, 2.0]], pa.list_(pa.float32()))}),
                   folder / "part-00000.parquet")
    (folder / "manifest.json").write_text(json.dumps({"backbone": "tinynet", "feature": "stats", "dim": 2}))
    opened = open_shards(folder)  # hand-written: no format, no shard list (every part-*.parquet)
    assert (opened.dim, opened.rows, opened.identity["backbone"]) == (2, 1, "tinynet")
    batch = next(iter_shard_batches(opened, batch_size=4))
    assert batch.images == ["a.jpg"] and batch.artwork_ids == [None] and batch.vectors.tolist() == [[1.0, 2.0]]
    (folder / "manifest.json").write_text(json.dumps({"format": 2, "identity": {"dim": 2}}))
    with pytest.raises(ShardError, match="manifest.json: shard manifest of format 2; this version reads format 1"):
        read_manifest(folder)
    (folder / "manifest.json").write_text(json.dumps({"format": 1, "identity": {"kind": "predictions"}, "shards": []}))
    with pytest.raises(ShardError, match="holds prediction shards"):
        open_shards(folder)


def test_a_rerun_recomputes_only_missing_or_damaged_shards(pictures, tmp_path, embedder):
    from vasari.features.collection import CollectionConfig, embed_to_shards

    out, paths = tmp_path / "shards", _paths(pictures)
    config = CollectionConfig(shard_size=3)
    embed_to_shards(embedder, paths, None, out, config=config, progress=False)
    before_vectors = _read(out)[2]
    stat = {p.name: p.stat().st_mtime_ns for p in out.glob("part-*.parquet")}
    (out / "part-00001.parquet").unlink()  # killed before this shard was written
    (out / "part-00002.parquet").write_bytes(b"PAR1 torn")  # or while writing it (not atomic elsewhere)

    manifest = embed_to_shards(embedder, paths, None, out, config=config, progress=False)
    after = {p.name: p.stat().st_mtime_ns for p in out.glob("part-*.parquet")}
    assert after["part-00000.parquet"] == stat["part-00000.parquet"]
    assert after["part-00003.parquet"] == stat["part-00003.parquet"]
    assert "part-00001.parquet" in after and after["part-00002.parquet"] != stat["part-00002.parquet"]
    assert [e["index"] for e in manifest["shards"]] == [0, 1, 2, 3]
    assert np.abs(_read(out)[2] - before_vectors).max() <= 1e-5

    # fewer inputs: the shard past the end goes, the last one is recomputed for its new range
    manifest = embed_to_shards(embedder, paths[:7], None, out, config=config, progress=False)
    assert sorted(p.name for p in out.glob("part-*.parquet")) == [f"part-0000{k}.parquet" for k in range(3)]
    assert [(e["start"], e["stop"]) for e in manifest["shards"]] == [(0, 3), (3, 6), (6, 7)]


def test_another_backbone_or_shard_size_is_refused(pictures, tmp_path):
    from vasari.features import backbone_spec

    stats, pooled = backbone_spec("efficientnet_lite2", "stats"), backbone_spec("efficientnet_lite2", "pooled")
    shards = ShardSet(tmp_path, embedding_identity(stats), ["a.jpg", "b.jpg"], [None, "wga:1"], 2, embedding_table)
    shards.finish()
    with pytest.raises(ShardError, match="feature 'stats'.*not backbone 'efficientnet_lite2' feature 'pooled'"):
        ShardSet(tmp_path, embedding_identity(pooled), ["a.jpg"], [None], 2, embedding_table)
    with pytest.raises(ShardError, match="shard size 2, not 5.*--shard-size 2"):
        ShardSet(tmp_path, embedding_identity(stats), ["a.jpg"], [None], 5, embedding_table)
    result = _cli("embed", pictures, "--out", tmp_path / "x", "--format", "csv")
    assert result.exit_code == 2 and '"npz" or "parquet"' in result.output
    result = _cli("embed", pictures, "--out", tmp_path / "x", "--ray-workers", "2")
    assert result.exit_code == 2 and "--engine ray" in result.output


def test_the_cache_is_shared_by_shards_and_npz(pictures, tmp_path, embedder):
    from vasari.features import EmbeddingCache
    from vasari.features.collection import embed_to_shards

    store = EmbeddingCache(tmp_path / "cache", embedder.spec)
    paths = _paths(pictures)
    embed_to_shards(embedder, paths, None, tmp_path / "shards", cache=store, progress=False)
    again = embedder.embed_paths(paths, cache=EmbeddingCache(tmp_path / "cache", embedder.spec), progress=False)
    assert again.n_cached == 11 and again.n_computed == 0
    assert np.abs(_read(tmp_path / "shards")[2] - again.features[again.ok]).max() <= 1e-6


def test_the_ray_engine_takes_cached_vectors_without_starting_ray(pictures, tmp_path, embedder):
    """With --engine ray the driver looks pictures up in the cache first: all cached, no Ray."""
    from vasari.features import EmbeddingCache
    from vasari.features.collection import CollectionConfig, embed_to_result

    paths = [p for p in _paths(pictures) if not p.endswith("broken.jpg")]
    local = embedder.embed_paths(paths, cache=EmbeddingCache(tmp_path / "cache", embedder.spec), progress=False)
    cached = embed_to_result(embedder, paths, cache=EmbeddingCache(tmp_path / "cache", embedder.spec),
                             config=CollectionConfig(engine="ray"), progress=False)
    assert not cached.errors and np.array_equal(cached.features, local.features)


def test_prediction_shards_are_the_local_predictors_objects(pictures, tmp_path):
    from vasari.features.collection import CollectionConfig
    from vasari.features.shards import iter_prediction_objects
    from vasari.inference.predictor import Predictor
    from vasari.inference.ray_predict import predict_to_shards

    predictor = Predictor.load()
    paths = _paths(pictures)
    ids = [f"test:{i}" for i in range(len(paths))]
    manifest, failed = predict_to_shards(predictor, paths, ids, tmp_path / "pred", top_k=2,
                                         config=CollectionConfig(shard_size=5))
    assert failed == 1 and [e["rows"] for e in manifest["shards"]] == [5, 5, 2]
    got = list(iter_prediction_objects(tmp_path / "pred"))
    expected = predictor.predict_paths(paths, top_k=2)
    assert [g.pop("artwork_id") for g in got] == ids
    assert_answers_close(got, expected)  # shards of 5 against one batch of 12: float paths differ
    assert "error" in got[paths.index(str(pictures / "p05_broken.jpg"))]
    schema = pq.read_schema(tmp_path / "pred" / "part-00000.parquet")
    assert schema.names[:4] == ["image", "artwork_id", "predictions", "verdict"]


def test_import_and_help_load_neither_ray_nor_pyarrow():
    code = ("import sys, vasari, vasari.cli, vasari.features.shards, vasari.features.collection, "
            "vasari.inference.ray_predict; print(sorted({'ray', 'pyarrow'} & set(sys.modules)))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.stdout.strip() == "[]", out.stderr


def test_predict_cli_writes_prediction_shards(pictures, tmp_path):
    result = _cli("predict", pictures, "--engine", "ray")
    assert result.exit_code == 2 and "--engine needs --out DIR" in " ".join(result.output.split())
    result = _cli("predict", pictures, "--out", tmp_path / "pred", "--shard-size", 6, "--top-k", 1)
    assert result.exit_code == 1  # one picture could not be read; its row says why
    manifest = json.loads((tmp_path / "pred" / "manifest.json").read_text())
    assert manifest["identity"]["kind"] == "predictions" and manifest["identity"]["top_k"] == 1
    assert [e["rows"] for e in manifest["shards"]] == [6, 6]
