"""Gallery index: search, save/load, spec checks, artist affinity, novelty, FAISS, and the CLI."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from pydantic import TypeAdapter

from vasari.features import backbone_spec
from vasari.gallery import (
    GalleryIndex,
    GalleryIndexError,
    IndexConfig,
    IndexSpecError,
    find_index,
    load_bundle_index,
)
from vasari.gallery.search import _faiss
from vasari.inference.enrich import enrich_predictions
from vasari.inference.schema import PredictionResult

ARTISTS = ("Rembrandt", "Claude Monet", "J. M. W. Turner", "Edward Hopper")


def _enrich(preds: list[dict], index, feats, **options) -> list[dict]:
    """``enrich_predictions`` on JSON prediction objects: parsed into the contract's models,
    enriched, and dumped back into ``preds`` (in place, like the predictor's output)."""
    models = [TypeAdapter(PredictionResult).validate_python(p) for p in preds]
    enrich_predictions(models, index, feats, **options)
    preds[:] = [m.model_dump(mode="json") for m in models]
    return preds


def _clustered(n_per: int = 30, dim: int = 64, seed: int = 0, spread: float = 0.6):
    """Raw 'features': one cluster per artist around a common offset (like real features,
    which share a large mean), with metadata rows."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(len(ARTISTS), dim)) * 2.0
    offset = rng.normal(size=dim) * 10.0
    x, meta = [], []
    for a, name in enumerate(ARTISTS):
        for i in range(n_per):
            x.append(offset + centres[a] + rng.normal(size=dim) * spread)
            meta.append({"artwork_id": f"t:{a}-{i}", "title": f"Work {i}", "artist": name,
                         "year": 1600 + a * 50 + i, "source": "t", "type": "portrait"})
    return np.asarray(x, np.float32), meta, centres, offset


def test_search_returns_itself_first_and_sorted_scores():
    x, meta, _, _ = _clustered()
    index = GalleryIndex.build(x, meta, config=IndexConfig(pca_dim=None, dtype="float32"))
    hits = index.search(x[:5], k=4)
    assert len(hits) == 5
    for i, row in enumerate(hits):
        assert row[0].artwork_id == meta[i]["artwork_id"]
        assert row[0].score == pytest.approx(1.0, abs=1e-4)
        scores = [h.score for h in row]
        assert scores == sorted(scores, reverse=True)
        assert all(h.artist == meta[i]["artist"] for h in row)  # same cluster
    assert len(index.search(x[:1], k=10_000)[0]) == len(index)  # k is clamped
    d = hits[0][0].to_dict()
    assert set(d) >= {"artwork_id", "title", "artist", "year", "score"}


def test_nan_rows_are_dropped_and_wrong_shapes_refused():
    x, meta, _, _ = _clustered(n_per=5)
    x[3] = np.nan
    index = GalleryIndex.build(x, meta, calibrate=False)
    assert len(index) == len(meta) - 1 and "t:0-3" not in [m["artwork_id"] for m in index.metadata]
    with pytest.raises(GalleryIndexError):
        GalleryIndex.build(x[:4], meta)
    with pytest.raises(IndexSpecError):
        index.search(np.zeros((1, 7), np.float32))


def test_pca_and_float16_storage():
    x, meta, _, _ = _clustered(dim=96)
    index = GalleryIndex.build(x, meta, config=IndexConfig(pca_dim=16))
    assert index.vectors.dtype == np.float16 and index.dim == 16
    norms = np.linalg.norm(index.vectors.astype(np.float32), axis=1)
    assert np.allclose(norms, 1.0, atol=1e-2)
    assert index.search(x[7:8], 1)[0][0].artwork_id == meta[7]["artwork_id"]


def test_save_load_round_trip_is_exact_and_atomic(tmp_path):
    x, meta, _, _ = _clustered()
    meta[0]["title"] = 'A "quoted", title; with\nnewline'
    meta[1]["year"] = None
    spec = backbone_spec()
    x = np.pad(x, ((0, 0), (0, spec.dim - x.shape[1])))
    index = GalleryIndex.build(x, meta, spec)
    out = tmp_path / "idx"
    index.save(out)
    assert (out / "index.json").is_file() and (out / "vectors.npy").is_file()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temp folders left
    loaded = GalleryIndex.load(out, spec=spec)
    assert np.array_equal(loaded.vectors, index.vectors)
    assert loaded.metadata == index.metadata
    assert loaded.metadata[1]["year"] is None and loaded.metadata[2]["year"] == meta[2]["year"]
    assert loaded.calibration == pytest.approx(index.calibration)
    assert loaded.search(x[:3], 3)[0][0].artwork_id == meta[0]["artwork_id"]
    # no pickles anywhere
    np.load(out / "vectors.npy", allow_pickle=False)
    np.load(out / "projection.npz", allow_pickle=False)
    info = json.loads((out / "index.json").read_text())
    assert info["count"] == len(meta) and info["spec_key"] == spec.key()
    # saving again replaces the folder
    index.save(out)
    assert GalleryIndex.load(out).metadata == index.metadata
    assert find_index(out) == out
    bundle = tmp_path / "bundle"
    index.save(bundle / "index")
    assert find_index(bundle) == bundle / "index"


def test_index_of_another_backbone_is_refused(tmp_path):
    spec = backbone_spec()
    x, meta, _, _ = _clustered(n_per=5)
    x = np.pad(x, ((0, 0), (0, spec.dim - x.shape[1])))
    GalleryIndex.build(x, meta, spec).save(tmp_path / "idx")
    with pytest.raises(IndexSpecError, match="rebuild"):
        GalleryIndex.load(tmp_path / "idx", spec=backbone_spec("efficientnet_lite2", "pooled"))


def test_broken_index_folders_give_clear_errors(tmp_path):
    with pytest.raises(GalleryIndexError, match="not a Vasari index"):
        GalleryIndex.load(tmp_path)
    x, meta, _, _ = _clustered(n_per=5)
    GalleryIndex.build(x, meta).save(tmp_path / "idx")
    csv_path = tmp_path / "idx" / "metadata.csv"
    lines = csv_path.read_text().splitlines()
    csv_path.write_text("\n".join(lines[:-2]) + "\n")
    with pytest.raises(GalleryIndexError, match="metadata rows"):
        GalleryIndex.load(tmp_path / "idx")
    (tmp_path / "idx" / "index.json").write_text("{not json")
    with pytest.raises(GalleryIndexError, match="unreadable"):
        GalleryIndex.load(tmp_path / "idx")


def test_headerless_metadata_is_refused_naming_the_file(tmp_path):
    x, meta, _, _ = _clustered(n_per=5)
    GalleryIndex.build(x, meta).save(tmp_path / "idx")
    csv_path = tmp_path / "idx" / "metadata.csv"
    lines = csv_path.read_text().splitlines()
    # the header dropped and one row duplicated so that the row count still matches
    csv_path.write_text("\n".join(lines[1:] + lines[-1:]) + "\n")
    with pytest.raises(GalleryIndexError, match="metadata.csv: no header row"):
        GalleryIndex.load(tmp_path / "idx")
    lines[3] = "," + lines[3].split(",", 1)[1]  # the third work loses its artwork_id
    csv_path.write_text("\n".join(lines) + "\n")
    with pytest.raises(GalleryIndexError, match="metadata.csv: line 4 has no artwork_id"):
        GalleryIndex.load(tmp_path / "idx")


@pytest.mark.parametrize("name", ["vectors.npy", "explained.npy", "negatives.npy"])
def test_complex_arrays_are_refused_naming_the_file(tmp_path, name):
    x, meta, _, offset = _clustered(n_per=5)
    refs = offset + np.random.default_rng(3).normal(size=(4, x.shape[1]))
    GalleryIndex.build(x, meta, negatives=refs, negative_labels=["sculpture"] * 4).save(tmp_path / "idx")
    target = tmp_path / "idx" / name
    np.save(target, np.load(target).astype(np.complex64))
    with pytest.raises(GalleryIndexError, match=f"{name}: complex64 values"):
        GalleryIndex.load(tmp_path / "idx")


def test_complex_projection_is_refused_naming_the_file(tmp_path):
    x, meta, _, _ = _clustered(n_per=5)
    GalleryIndex.build(x, meta).save(tmp_path / "idx")
    target = tmp_path / "idx" / "projection.npz"
    with np.load(target) as z:
        arrays = {k: z[k] for k in z.files}
    arrays["mean"] = arrays["mean"].astype(np.complex128)
    np.savez(target, **arrays)
    with pytest.raises(GalleryIndexError, match="projection.npz: complex128 values"):
        GalleryIndex.load(tmp_path / "idx")


def test_index_without_a_spec_is_refused_when_a_model_asks_for_one(tmp_path):
    spec = backbone_spec()
    x, meta, _, _ = _clustered(n_per=5)
    x = np.pad(x, ((0, 0), (0, spec.dim - x.shape[1])))
    GalleryIndex.build(x, meta, spec).save(tmp_path / "idx")
    info_path = tmp_path / "idx" / "index.json"
    info = json.loads(info_path.read_text())
    info.pop("spec")
    info_path.write_text(json.dumps(info))
    with pytest.raises(IndexSpecError, match="index.json: records no backbone spec"):
        GalleryIndex.load(tmp_path / "idx", spec=spec)
    assert len(GalleryIndex.load(tmp_path / "idx")) == len(meta)  # no model asks: nothing to check


def test_thumbnails_written_and_image_fallback(tmp_path):
    x, meta, _, _ = _clustered(n_per=3)
    rng = np.random.default_rng(1)
    for i, m in enumerate(meta[:6]):
        path = tmp_path / "img" / f"{i}.jpg"
        path.parent.mkdir(exist_ok=True)
        Image.fromarray(rng.integers(0, 255, (300, 200, 3), dtype=np.uint8)).save(path)
        m["image"] = str(path)
    meta[6]["image"] = str(tmp_path / "missing.jpg")
    index = GalleryIndex.build(x, meta, config=IndexConfig(thumbnails=True, thumb_size=64))
    index.save(tmp_path / "idx")
    thumbs = sorted((tmp_path / "idx" / "thumbs").glob("*.jpg"))
    assert len(thumbs) == 6
    assert max(Image.open(thumbs[0]).size) == 64
    loaded = GalleryIndex.load(tmp_path / "idx")
    assert loaded.thumbnail(0) == str(tmp_path / "idx" / "thumbs" / "0.jpg")
    assert loaded.thumbnail(6) is None  # image gone, no thumbnail
    # without thumbnails the local image itself is shown, when present
    GalleryIndex.build(x, meta, config=IndexConfig(thumbnails=False)).save(tmp_path / "bare")
    bare = GalleryIndex.load(tmp_path / "bare")
    assert not (tmp_path / "bare" / "thumbs").exists()
    assert bare.thumbnail(0) == meta[0]["image"] and bare.thumbnail(7) is None


def test_affinity_ranks_the_right_artist_with_evidence():
    x, meta, centres, offset = _clustered(n_per=25)
    index = GalleryIndex.build(x, meta, config=IndexConfig(pca_dim=None))
    cal = index.calibration
    assert cal["affinity_top1"] > 0.95 and 0 < cal["temperature"] < 1
    rng = np.random.default_rng(5)
    query = offset + centres[2] + rng.normal(size=x.shape[1]) * 0.6
    rows = index.affinity(query, k=4, evidence=2)
    assert rows[0]["artist"] == ARTISTS[2]
    assert sum(r["score"] for r in rows) <= 1.0 + 1e-6
    assert [r["score"] for r in rows] == sorted((r["score"] for r in rows), reverse=True)
    assert len(rows[0]["evidence"]) == 2
    ids = {m["artwork_id"]: m["artist"] for m in meta}
    assert all(ids[e["artwork_id"]] == ARTISTS[2] for e in rows[0]["evidence"])


def test_artist_head_is_pooled_into_affinity():
    x, meta, centres, offset = _clustered(n_per=30, spread=1.6, seed=4)
    index = GalleryIndex.build(x, meta, config=IndexConfig(pca_dim=None))
    between = offset + 0.5 * (centres[0] + centres[2])
    plain = {r["artist"]: r["score"] for r in index.affinity(between, k=4)}
    head = {ARTISTS[0]: 0.97, ARTISTS[2]: 0.01, ARTISTS[1]: 0.01, ARTISTS[3]: 0.01}
    pooled = index.affinity(between, artist_probs=head, k=4)
    assert pooled[0]["artist"] == ARTISTS[0]
    assert pooled[0]["score"] > plain.get(ARTISTS[0], 0.0)
    assert sum(r["score"] for r in pooled) <= 1.0 + 1e-6
    # a head that knows none of the gallery's artists changes nothing
    same = index.affinity(between, artist_probs={"Nobody": 1.0}, k=4)
    assert [r["artist"] for r in same] == sorted(plain, key=plain.get, reverse=True)


def test_calibrated_affinity_is_not_overconfident():
    """Overlapping clusters: the mean top-1 probability should track top-1 accuracy."""
    x, meta, _, _ = _clustered(n_per=40, spread=1.6, seed=3)
    index = GalleryIndex.build(x, meta, config=IndexConfig(pca_dim=None))
    rows, sims = index.leave_group_out()
    scores = index._artist_scores(sims)
    p = np.exp((scores - scores.max(1, keepdims=True)) / index.calibration["temperature"])
    p /= p.sum(1, keepdims=True)
    target = np.array([index.artists.index(meta[r]["artist"]) for r in rows])
    acc = (p.argmax(1) == target).mean()
    assert abs(p.max(1).mean() - acc) < 0.1


def test_novelty_flags_far_vectors_not_members():
    x, meta, centres, offset = _clustered(n_per=30)
    index = GalleryIndex.build(x, meta, config=IndexConfig(pca_dim=None))
    thr = index.calibration["novelty_threshold"]
    assert 0 < thr < 1
    rng = np.random.default_rng(9)
    members = offset + centres[rng.integers(0, 4, 50)] + rng.normal(size=(50, x.shape[1])) * 0.6
    far = offset + rng.normal(size=(50, x.shape[1])) * 4.0
    assert index.is_novel(members).mean() < 0.1
    assert index.is_novel(far).mean() > 0.9
    n = index.novelty(far[0])
    assert n["novel"] and n["score"] > n["threshold"]


def test_known_non_paintings_sharpen_novelty(tmp_path):
    """Photos of buildings are near paintings in feature space; references of them catch
    the ones a distance threshold alone would let through."""
    x, meta, centres, offset = _clustered(n_per=30, dim=64)
    rng = np.random.default_rng(11)
    building = offset + rng.normal(size=64) * 2.0  # a manner no painting has, close to the gallery
    refs = building + rng.normal(size=(40, 64)) * 0.6
    plain = GalleryIndex.build(x, meta, config=IndexConfig(pca_dim=None))
    index = GalleryIndex.build(x, meta, config=IndexConfig(pca_dim=None), negatives=refs,
                               negative_labels=["architecture"] * len(refs))
    assert "negative_margin" in index.calibration and index.calibration["negatives"] == 40
    queries = building + rng.normal(size=(30, 64)) * 0.6
    members = offset + centres[rng.integers(0, 4, 30)] + rng.normal(size=(30, 64)) * 0.6
    assert index.is_novel(queries).mean() >= 0.9
    assert index.is_novel(queries).mean() >= plain.is_novel(queries).mean()
    assert index.is_novel(members).mean() <= 0.1
    row = index.novelty(queries[0])
    assert row["novel"] and row["score"] > row["threshold"] and row["reason"] == "far from every known painting"
    # the references alone catch them too, and say what they look like: with the distance
    # rule out of the way (no cosine distance exceeds 2), the reason must name architecture
    by_references = GalleryIndex(index.vectors, index.metadata, index.projection, config=index.config,
                                 calibration=dict(index.calibration, novelty_threshold=2.0),
                                 negatives=index.negatives, negative_labels=index.negative_labels)
    row = by_references.novelty(queries[0])
    assert row["novel"] and "architecture" in row["reason"] and row["score"] < row["threshold"]
    assert by_references.is_novel(queries).mean() >= 0.9 and by_references.is_novel(members).mean() <= 0.1
    # negatives are never returned as similar works, and survive save/load
    assert all(h.artwork_id.startswith("t:") for h in index.search(queries[:3], 5)[0])
    index.save(tmp_path / "idx")
    loaded = GalleryIndex.load(tmp_path / "idx")
    assert loaded.negatives is not None and loaded.negative_labels[0] == "architecture"
    assert (loaded.is_novel(queries) == index.is_novel(queries)).all()


def test_groups_are_left_out_in_calibration():
    """A near-duplicate of each work must not make the gallery look closer than it is."""
    x, meta, _, _ = _clustered(n_per=20)
    dup = x + 1e-3
    meta2 = [dict(m, artwork_id=m["artwork_id"] + "-copy") for m in meta]
    for m, m2 in zip(meta, meta2):
        m["group"] = m2["group"] = m["artwork_id"]
    grouped = GalleryIndex.build(np.concatenate([x, dup]), meta + meta2, config=IndexConfig(pca_dim=None))
    ungrouped_meta = [{k: v for k, v in m.items() if k != "group"} for m in meta + meta2]
    ungrouped = GalleryIndex.build(np.concatenate([x, dup]), ungrouped_meta, config=IndexConfig(pca_dim=None))
    assert grouped.calibration["novelty_threshold"] > 10 * ungrouped.calibration["novelty_threshold"]


def test_image_paths_under_shared_data_are_portable(tmp_path, monkeypatch):
    data = tmp_path / "data"
    (data / "set").mkdir(parents=True)
    (data / "README.md").write_text("shared data")
    monkeypatch.setenv("VASARI_DATA", str(data))
    x, meta, _, _ = _clustered(n_per=3)
    Image.new("RGB", (40, 30), (200, 10, 10)).save(data / "set" / "a.jpg")
    meta[0]["image"] = str(data / "set" / "a.jpg")
    meta[1]["image"] = str(tmp_path / "elsewhere.jpg")
    GalleryIndex.build(x, meta, config=IndexConfig(thumbnails=False)).save(tmp_path / "idx")
    text = (tmp_path / "idx" / "metadata.csv").read_text()
    assert "shared-data:set/a.jpg" in text and str(data) not in text
    loaded = GalleryIndex.load(tmp_path / "idx")
    assert loaded.metadata[0]["image"] == str(data / "set" / "a.jpg")
    assert loaded.thumbnail(0) == str(data / "set" / "a.jpg")
    assert loaded.metadata[1]["image"] == str(tmp_path / "elsewhere.jpg")


def test_loading_looks_the_shared_data_folder_up_once_not_per_row(tmp_path, monkeypatch):
    """It was looked up per metadata row: 8,697 look-ups, ~2 s of every `vasari predict`."""
    import vasari.core.paths

    data = tmp_path / "data"
    (data / "set").mkdir(parents=True)
    (data / "README.md").write_text("shared data")
    monkeypatch.setenv("VASARI_DATA", str(data))
    x, meta, _, _ = _clustered(n_per=5)
    for i, row in enumerate(meta):
        row["image"] = str(data / "set" / f"{i}.jpg")
    GalleryIndex.build(x, meta, config=IndexConfig(thumbnails=False)).save(tmp_path / "idx")
    calls = []
    real = vasari.core.paths.shared_data_dir
    monkeypatch.setattr(vasari.core.paths, "shared_data_dir", lambda: calls.append(1) or real())
    loaded = GalleryIndex.load(tmp_path / "idx")
    assert len(calls) == 1
    assert [r["image"] for r in loaded.metadata] == [str(data / "set" / f"{i}.jpg") for i in range(len(meta))]


def test_enrich_predictions_adds_similar_affinity_novelty_and_abstains():
    x, meta, centres, offset = _clustered(n_per=20)
    index = GalleryIndex.build(x, meta, config=IndexConfig(pca_dim=None))
    rng = np.random.default_rng(2)
    member = offset + centres[1] + rng.normal(size=x.shape[1]) * 0.6
    far = offset + rng.normal(size=x.shape[1]) * 4.0
    preds = [
        {"image": "a.jpg", "predictions": {"artist": [{"label": ARTISTS[1], "score": 0.8}]},
         "verdict": {"type": "portrait", "artist": ARTISTS[1]}},
        {"image": "bad.jpg", "error": {"code": "corrupt", "message": "bad.jpg: corrupt"}},
        {"image": "junk.png", "predictions": {}, "verdict": {"type": "portrait"}},
    ]
    feats = np.stack([member, np.full_like(member, np.nan), far])
    _enrich(preds, index, feats, k_similar=3, k_affinity=2)
    a, bad, junk = preds
    assert len(a["similar"]) == 3 and a["similar"][0]["artist"] == ARTISTS[1]
    assert a["affinity"][0]["artist"] == ARTISTS[1] and len(a["affinity"]) == 2
    assert a["novelty"]["novel"] is False and a["verdict"]["artist"] == ARTISTS[1]
    assert "similar" not in bad and "novelty" not in bad
    assert junk["novelty"]["novel"] is True and junk["verdict"] == {"type": "unknown"}
    json.dumps(preds)  # JSON-ready


def test_batch_enrichment_equals_per_image_enrichment():
    """enrich_predictions works on the whole batch at once; each picture must get what it
    gets alone, and what the per-query API (similar, affinity, novelty) says about it."""
    import copy

    x, meta, centres, offset = _clustered(n_per=20)
    rng = np.random.default_rng(4)
    refs = offset + rng.normal(size=x.shape[1]) * 2.0 + rng.normal(size=(10, x.shape[1])) * 0.6
    index = GalleryIndex.build(x, meta, config=IndexConfig(pca_dim=16), negatives=refs,
                               negative_labels=["sculpture"] * len(refs))
    queries = np.concatenate([offset + centres[rng.integers(0, len(ARTISTS), 10)] + rng.normal(size=(10, x.shape[1])) * 0.6,
                              offset + rng.normal(size=(3, x.shape[1])) * 4.0, refs[:2] + 0.1])
    preds = []
    for i in range(len(queries)):
        head = [{"label": ARTISTS[i % len(ARTISTS)], "score": 0.6}, {"label": "Somebody Else", "score": 0.3}]
        preds.append({"image": f"{i}.jpg", "predictions": {"artist": head} if i % 2 else {},
                      "verdict": {"type": "portrait"}})
    batch = _enrich(copy.deepcopy(preds), index, queries, k_similar=4, k_affinity=3)
    assert any(b["novelty"]["novel"] for b in batch) and not all(b["novelty"]["novel"] for b in batch)
    for pred, query, got in zip(preds, queries, batch):
        alone = _enrich([copy.deepcopy(pred)], index, query[None], k_similar=4, k_affinity=3)[0]
        head = {r["label"]: r["score"] for r in pred["predictions"].get("artist", [])} or None
        for other in (alone, {"similar": index.similar(query, 4), "affinity": index.affinity(query, head, k=3),
                              "novelty": index.novelty(query)}):
            assert [h["artwork_id"] for h in got["similar"]] == [h["artwork_id"] for h in other["similar"]]
            assert [h["score"] for h in got["similar"]] == pytest.approx([h["score"] for h in other["similar"]], abs=2e-4)
            assert [a["artist"] for a in got["affinity"]] == [a["artist"] for a in other["affinity"]]
            assert [a["score"] for a in got["affinity"]] == pytest.approx([a["score"] for a in other["affinity"]], abs=2e-4)
            assert ([[e["artwork_id"] for e in a["evidence"]] for a in got["affinity"]]
                    == [[e["artwork_id"] for e in a["evidence"]] for a in other["affinity"]])
            assert got["novelty"]["novel"] == other["novelty"]["novel"]
            assert got["novelty"]["score"] == pytest.approx(other["novelty"]["score"], abs=2e-4)
            assert got["novelty"].get("reason") == other["novelty"].get("reason")
        assert got["verdict"] == alone["verdict"]
        assert got["verdict"] == ({"type": "unknown"} if got["novelty"]["novel"] else {"type": "portrait"})


def test_load_bundle_index(tmp_path):
    assert load_bundle_index(tmp_path) is None
    x, meta, _, _ = _clustered(n_per=3)
    GalleryIndex.build(x, meta).save(tmp_path / "index")
    assert len(load_bundle_index(tmp_path)) == len(meta)


@pytest.mark.skipif(_faiss() is None, reason="faiss is not installed (optional: pip install faiss-cpu)")
def test_faiss_gives_the_same_neighbours():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(3000, 48)).astype(np.float32)
    meta = [{"artwork_id": str(i)} for i in range(len(x))]
    index = GalleryIndex.build(x, meta, config=IndexConfig(pca_dim=None, dtype="float32"), calibrate=False)
    q = x[:20] + rng.normal(size=(20, 48)).astype(np.float32) * 0.5
    s_np, r_np = index.search_rows(q, 10, use_faiss=False)
    s_f, r_f = index.search_rows(q, 10, use_faiss=True)
    assert (r_np == r_f).mean() > 0.99
    assert np.allclose(s_np, s_f, atol=1e-4)


# --------------------------------------------------------------------------- with the real backbone


def _picture(seed: int, kind: int, size=(240, 200)) -> Image.Image:
    """Three recognisable 'manners': stripes, blobs, checks, in varying colours."""
    rng = np.random.default_rng(seed)
    w, h = size
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    base = rng.uniform(40, 215, 3)
    if kind == 0:
        f = np.sin(xx / rng.uniform(4, 8))[..., None]
    elif kind == 1:
        f = (np.sin(xx / 40 + rng.uniform(0, 6)) * np.cos(yy / 35))[..., None]
    else:
        f = (((xx // rng.uniform(15, 25)) + (yy // rng.uniform(15, 25))) % 2 * 2 - 1)[..., None]
    img = base + 60 * f * rng.uniform(0.6, 1.0, 3)
    return Image.fromarray(np.clip(img, 0, 255).astype(np.uint8))


@pytest.fixture(scope="module")
def gallery_folder(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("gallery")
    for kind, artist in enumerate(("Rembrandt", "Claude Monet", "Edward Hopper")):
        sub = root / "images" / "images" / artist.replace(" ", "_")
        sub.mkdir(parents=True)
        for i in range(6):
            _picture(kind * 100 + i, kind).save(sub / f"{artist.replace(' ', '_')}_{i + 1}.jpg")
    (root / "artists.csv").write_text(
        "id,name,years,genre,nationality,bio,wikipedia,paintings\n"
        "0,Rembrandt,1606 - 1669,Baroque,Dutch,,,6\n"
        "1,Claude Monet,1840 - 1926,Impressionism,French,,,6\n"
        "2,Edward Hopper,1882 - 1967,Realism,American,,,6\n"
    )
    return root


@pytest.mark.slow
def test_cli_build_similar_affinity(gallery_folder, tmp_path, monkeypatch):
    from typer.testing import CliRunner

    from vasari.cli import app

    monkeypatch.setenv("VASARI_CACHE", str(tmp_path / "cache"))
    runner = CliRunner()
    out = tmp_path / "idx"
    neg = tmp_path / "neg" / "sculpture"
    neg.mkdir(parents=True)
    for i in range(4):
        Image.new("RGB", (200, 240), (200 - 20 * i, 190, 180)).save(neg / f"s{i}.jpg")
    res = runner.invoke(app, ["index", "build", f"kaggle:{gallery_folder}", "--out", str(out), "--no-dedupe",
                              "--negatives", f"folder:{tmp_path / 'neg'}?task=type"])
    assert res.exit_code == 0, res.output
    info = json.loads((out / "index.json").read_text())
    assert info["count"] == 18 and info["thumbnails"] == 18 and info["artists"] == 3 and info["negatives"] == 4

    query = tmp_path / "q.jpg"
    _picture(999, 0).save(query)
    res = runner.invoke(app, ["similar", str(query), "--index", str(out), "-k", "3", "--json"])
    assert res.exit_code == 0, res.output
    data = json.loads(res.output)
    assert len(data["similar"]) == 3 and data["similar"][0]["artist"] == "Rembrandt"
    assert data["similar"][0]["thumbnail"].startswith(str(out))
    assert data["novelty"]["novel"] is False

    res = runner.invoke(app, ["affinity", str(query), "--index", str(out), "-k", "2", "--json"])
    assert res.exit_code == 0, res.output
    data = json.loads(res.output)
    assert data["affinity"][0]["artist"] == "Rembrandt" and len(data["affinity"]) == 2
    assert data["affinity"][0]["evidence"]

    table = runner.invoke(app, ["similar", str(query), "--index", str(out)])
    assert table.exit_code == 0 and "Rembrandt" in table.output
    info_out = runner.invoke(app, ["index", "info", str(out)])
    assert info_out.exit_code == 0 and '"count": 18' in info_out.output

    missing = runner.invoke(app, ["similar", str(query), "--index", str(tmp_path / "nothing")])
    assert missing.exit_code == 2 and "not a Vasari index" in missing.output
    bad = tmp_path / "bad.jpg"
    bad.write_text("no")
    res = runner.invoke(app, ["similar", str(bad), "--index", str(out)])
    assert res.exit_code == 2 and "bad.jpg" in res.output


@pytest.mark.slow
def test_bundle_with_index_predictor_and_cli(gallery_folder, tmp_path, monkeypatch):
    """A bundle carrying an index: the Predictor adds similar/affinity/novelty (and crop),
    and `vasari affinity --model` pools the bundle's artist head."""
    from typer.testing import CliRunner

    from vasari.bundle import save_bundle
    from vasari.catalog import read_catalog
    from vasari.cli import app
    from vasari.features.embedder import Embedder
    from vasari.inference.predictor import Predictor
    from vasari.heads.train import train_heads

    monkeypatch.setenv("VASARI_CACHE", str(tmp_path / "cache"))
    arts = read_catalog(f"kaggle:{gallery_folder}").artworks
    embedder = Embedder()
    x = embedder.embed_paths([a.image for a in arts], progress=False).features
    # the artist head is fitted on four works per artist and calibrated (temperature,
    # abstention threshold) on the other two, never on the works it was fitted on
    number = [int(Path(a.image).stem.rsplit("_", 1)[1]) for a in arts]
    train = np.array([n <= 4 for n in number])
    artists = np.array([a.artist for a in arts])
    assert train.sum() == 12 and set(artists[~train]) == set(artists[train])
    heads = train_heads(x[train], {"artist": list(artists[train])}, None,
                        x[~train], {"artist": list(artists[~train])}, None)
    assert (heads.classifiers["artist"].info["train_rows"], heads.classifiers["artist"].info["val_rows"]) == (12, 6)
    index = GalleryIndex.build(x, arts, embedder.spec, IndexConfig(thumbnails=False))
    bundle = save_bundle(heads=heads, spec=embedder.spec, card={"name": "test"}, metrics={}, index=index,
                         out_dir=tmp_path / "bundle")
    assert (bundle / "index" / "index.json").is_file() and not (bundle / "index" / "thumbs").exists()

    predictor = Predictor.load(bundle, crop=True)
    query = tmp_path / "q.jpg"
    _picture(998, 2).save(query)
    obj = predictor.predict_paths([str(query)], top_k=2)[0]
    assert obj["similar"][0]["artist"] == "Edward Hopper"
    if obj["novelty"]["novel"]:  # issue #14: a novel picture makes no resemblance claim
        assert obj["affinity"] == []
    else:
        assert obj["affinity"][0]["artist"] == "Edward Hopper" and obj["affinity"][0]["evidence"]
    assert "novel" in obj["novelty"] and set(obj["crop"]) >= {"found", "box"}

    res = CliRunner().invoke(app, ["affinity", str(query), "--model", str(bundle), "--json"])
    assert res.exit_code == 0, res.output
    data = json.loads(res.output)
    assert data["artist_head"] is True and data["affinity"][0]["artist"] == "Edward Hopper"
    res = CliRunner().invoke(app, ["similar", str(query), "--model", str(bundle), "-k", "2", "--json"])
    assert res.exit_code == 0, res.output
    assert json.loads(res.output)["similar"][0]["artist"] == "Edward Hopper"


def test_cli_names_an_unknown_catalog_kind(tmp_path):
    from typer.testing import CliRunner

    from vasari.cli import app

    res = CliRunner().invoke(app, ["index", "build", f"bogus:{tmp_path}", "--out", str(tmp_path / "idx")])
    assert res.exit_code == 2
    assert "unknown catalog kind 'bogus'; kinds are wga, kaggle, folder, manifest, wikiart" in " ".join(res.output.split())
    assert "no such file" not in res.output and not (tmp_path / "idx").exists()


def test_cli_help_has_examples():
    from typer.testing import CliRunner

    from vasari.cli import app

    runner = CliRunner()
    for args in (["index", "build", "--help"], ["index", "info", "--help"], ["similar", "--help"], ["affinity", "--help"]):
        res = runner.invoke(app, args)
        assert res.exit_code == 0 and "Example" in res.output, args


# --------------------------------------------------------------------------- real paintings


@pytest.mark.shared_data
@pytest.mark.slow
def test_artists7_neighbours_and_novelty(shared_data, tmp_path):
    """15 paintings per artist of artists7: the nearest other painting is mostly by the same
    artist, and blank or noise pictures are flagged as novel while paintings are not."""
    from vasari.catalog import read_catalog
    from vasari.features.embedder import Embedder

    cat = read_catalog(f"kaggle:{shared_data / 'artists7'}")
    by: dict[str, list] = {}
    for a in cat.artworks:
        if len(by.setdefault(a.artist, [])) < 16:
            by[a.artist].append(a)
    arts = [a for rows in by.values() for a in rows]
    embedder = Embedder(cache_dir=tmp_path)
    x = embedder.embed_paths([a.image for a in arts], progress=False).features
    gallery = [i for i in range(len(arts)) if i % 8 != 0]
    held = [i for i in range(len(arts)) if i % 8 == 0]
    index = GalleryIndex.build(x[gallery], [arts[i] for i in gallery], embedder.spec, IndexConfig(pca_dim=64))
    hits = index.search(x[held], 1)
    acc = np.mean([h[0].artist == arts[i].artist for h, i in zip(hits, held)])
    assert acc >= 0.5, acc  # 7 artists: chance is 1/7
    rng = np.random.default_rng(0)
    junk = [Image.new("RGB", (300, 300), c) for c in ((255, 255, 255), (0, 0, 0), (90, 140, 200))]
    junk += [Image.fromarray(rng.integers(0, 255, (300, 300, 3), dtype=np.uint8)) for _ in range(3)]
    assert index.is_novel(embedder.embed_images(junk)).mean() >= 0.8
    assert index.is_novel(x[held]).mean() <= 0.25


def test_a_work_by_an_artist_outside_the_vocabulary_shows_its_catalog_artist(tmp_path):
    """Issue #14: AIC's "Pond in the Woods" is by Diaz de la Peña, an artist the vocabulary
    dropped (rare class). The dataset keeps the catalog's name (``Artwork.extra``); the index
    shows it for the similar work, through a save and a load, and never feeds it to affinity;
    an index written before the column existed still loads (no artist shown, as before)."""
    from vasari.catalog.records import Artwork
    from vasari.dataset.clean import CATALOG_ARTIST

    x, meta, _, _ = _clustered(n_per=6)
    arts = [Artwork(m["artwork_id"], "t", title=m["title"], artist=m["artist"], year=m["year"]) for m in meta]
    arts[0] = Artwork("aic:95993", "aic", title="Pond in the Woods", year=1862,
                      extra={CATALOG_ARTIST: "Narcisse Virgile Diaz de la Peña"})
    index = GalleryIndex.build(x, arts, calibrate=False)
    hit = index.search(x[:1], k=1)[0][0].to_dict()
    assert (hit["artwork_id"], hit["artist"], hit["title"]) == ("aic:95993", "Narcisse Virgile Diaz de la Peña", "Pond in the Woods")
    assert "Narcisse Virgile Diaz de la Peña" not in index.artists
    index.save(tmp_path / "index")
    again = GalleryIndex.load(tmp_path / "index")
    assert again.search(x[:1], k=1)[0][0].to_dict()["artist"] == "Narcisse Virgile Diaz de la Peña"
    csv_path = tmp_path / "index" / "metadata.csv"
    lines = csv_path.read_text(encoding="utf-8").splitlines()
    old = [",".join(line.split(",")[:-1]) for line in lines]  # no catalog_artist column, as before
    assert lines[0].endswith(",catalog_artist") and old[0].endswith(",url")
    csv_path.write_text("\n".join(old) + "\n", encoding="utf-8")
    before = GalleryIndex.load(tmp_path / "index")
    assert before.search(x[:1], k=1)[0][0].to_dict()["artist"] is None
