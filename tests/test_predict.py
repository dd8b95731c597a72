"""Predictor on a bundle trained on generated paintings, through the real backbone."""

from __future__ import annotations


import pytest
from PIL import Image

from learn_data import learn_bundle, learn_world
from vasari.bundle import BundleError
from vasari.inference.predictor import Predictor, default_model_dir


@pytest.fixture(scope="module")
def predictor():
    path, _ = learn_bundle()
    return Predictor.load(path)


def check_contract(obj: dict, top_k: int) -> None:
    assert set(obj) <= {"image", "predictions", "verdict", "year", "similar", "affinity", "crop", "novelty"}
    assert set(obj["predictions"]) == {"type"} == set(obj["verdict"])
    rows = obj["predictions"]["type"]
    assert len(rows) == top_k
    assert all(set(r) == {"label", "score"} and 0.0 <= r["score"] <= 1.0 for r in rows)
    assert sum(r["score"] for r in rows) <= 1.0 + 1e-6
    assert [r["score"] for r in rows] == sorted((r["score"] for r in rows), reverse=True)
    assert obj["verdict"]["type"] in ("unknown", rows[0]["label"])
    y = obj.get("year")  # omitted when null (docs/contract.md)
    if (obj.get("novelty") or {}).get("novel"):  # issue #14: a novel picture has no year
        assert y is None
        return
    assert set(y) == {"estimate", "low", "high"} and 1401 <= y["low"] <= y["estimate"] <= y["high"] <= 1900


def test_predict_paths_with_a_corrupt_image(predictor, tmp_path):
    w = learn_world()
    test = [i for i, s in enumerate(w.split) if s == "test"]
    bad = tmp_path / "broken.jpg"
    bad.write_bytes(b"\xff\xd8\xff\xe0 definitely not a jpeg")
    paths = [w.paths[test[0]], str(bad), w.paths[test[1]], w.paths[test[-1]]]
    out = predictor.predict_paths(paths, top_k=2)
    assert [o["image"] for o in out] == paths
    assert set(out[1]) == {"image", "error"} and out[1]["error"]["code"] in ("not_an_image", "corrupt")
    assert str(bad) in out[1]["error"]["message"]
    for o, i in zip([out[0], out[2], out[3]], [test[0], test[1], test[-1]]):
        check_contract(o, 2)
        assert o["predictions"]["type"][0]["label"] == w.labels[i]


def test_predict_images_matches_paths_and_accuracy(predictor):
    w = learn_world()
    test = [i for i, s in enumerate(w.split) if s == "test"]
    images = [Image.open(w.paths[i]) for i in test]
    out = predictor.predict_images(images, top_k=3, names=[w.paths[i] for i in test])
    right = sum(o["predictions"]["type"][0]["label"] == w.labels[i] for o, i in zip(out, test))
    assert right / len(test) >= 0.9
    for o in out:
        check_contract(o, 3)


def test_top_k_validation(predictor):
    image = [Image.new("RGB", (64, 64), (200, 30, 30))]
    for bad in (0, 4, -1):
        with pytest.raises(ValueError, match="top_k"):
            predictor.predict_images(image, top_k=bad)
    with pytest.raises(ValueError, match="top_k"):
        predictor.predict_paths([learn_world().paths[0]], top_k=0)


def test_foreign_pictures_abstain(predictor):
    # a blank page and pure noise are unlike the generated paintings: every verdict unknown
    import numpy as np

    rng = np.random.default_rng(1)
    noise = Image.fromarray(rng.integers(0, 256, (128, 128, 3), dtype=np.uint8))
    out = predictor.predict_images([Image.new("RGB", (128, 128), "white"), noise], top_k=1)
    for o in out:
        assert o["novelty"]["novel"] is True
        assert o["verdict"] == {"type": "unknown"}


def test_info(predictor):
    info = predictor.info()
    assert info["tasks"] == ["type"] and info["labels"]["type"] == ["landscape", "portrait", "still-life"]
    assert info["backbone"]["name"] == "efficientnet_lite2" and info["year"] is True
    assert "test" in info["metrics"]


def test_default_model_location():
    path = default_model_dir()
    assert path.parts[-3:] == ("vasari", "models", "default")
    if not (path / "bundle.json").is_file():
        with pytest.raises(BundleError, match="default model"):
            Predictor.load(None)


@pytest.mark.parametrize("views", ["flip", "multicrop"])
def test_bundle_trained_with_views_predicts_with_them(views, tmp_path):
    import json

    import numpy as np

    from vasari.bundle import load_bundle, save_bundle
    from vasari.catalog import Artwork
    from vasari.features.embedder import Embedder
    from vasari.heads.train import HeadConfig
    from vasari.pipeline import fit_dataset

    w = learn_world()
    take = {"train": 6, "val": 4, "test": 2}
    rows, seen = [], {}
    for i, (split, label) in enumerate(zip(w.split, w.labels)):
        if seen.get((split, label), 0) < take[split]:
            seen[(split, label)] = seen.get((split, label), 0) + 1
            rows.append(i)
    arts = [Artwork(artwork_id=f"gen:{i}", source="generated", image=w.paths[i], type=w.labels[i], year=w.years[i])
            for i in rows]
    fit = fit_dataset(arts, [w.split[i] for i in rows], Embedder(views=views), None,
                      HeadConfig(tasks=("type",), min_kept=3), progress=False)
    path = save_bundle(fit.bundle, tmp_path / f"bundle-{views}")
    assert json.loads((path / "bundle.json").read_text())["backbone"]["views"] == views
    predictor = Predictor.load(path)
    assert predictor.embedder.views == views == predictor.info()["backbone"]["views"]
    # a training picture: predict_paths embeds it exactly as training did (no flag to remember)
    first = rows[0]
    assert w.split[first] == "train"
    got = predictor.predict_paths([w.paths[first]], top_k=3)[0]
    want = predictor.predict_features(fit.features[:1], top_k=3, names=[w.paths[first]])[0]
    assert got["predictions"] == want["predictions"] and got.get("year") == want.get("year")
    from vasari.core.images import load_image

    again = predictor.embedder.embed_images([load_image(w.paths[first], min_side=predictor.bundle.spec.draft_min_side)])
    np.testing.assert_allclose(again, fit.features[:1], rtol=1e-5, atol=1e-5)
    # the centre-crop features (what predict used to feed these heads) differ
    assert np.abs(w.features[first] - fit.features[0]).max() > 1e-3
    # a running backbone with other views is refused
    with pytest.raises(BundleError, match="views"):
        load_bundle(path, expected_spec=Embedder().spec)


# ---------------------------------------------------------------------------- decisions
# Hand-built heads on 2-d features whose answers are known in closed form: the "type" head
# gives p(a) = 1 / (1 + exp(-2 x0)) (0.881 at x0 = 1, 0.550 at x0 = 0.1), the novelty
# detector scores (x0^2 + x1^2) / 2 against a threshold of 4, and the gallery index holds
# two works pointing along +x0 and calls anything more than 0.1 cosine distance away novel.


def _hand_predictor(threshold: float = 0.7, index: bool = False) -> Predictor:
    import numpy as np

    from vasari.bundle import Bundle
    from vasari.gallery import GalleryIndex, Projection
    from vasari.heads.train import Heads, LinearHead, NoveltyDetector, Transform

    head = LinearHead("type", ["a", "b"], np.array([[1, 0], [-1, 0]], np.float32), np.zeros(2, np.float32),
                      temperature=1.0, threshold=threshold)
    novelty = NoveltyDetector(np.array([[1, 0]], np.float32), np.ones(1, np.float32), 1.0, threshold=4.0)
    heads = Heads(Transform(np.zeros(2, np.float32), np.ones(2, np.float32)), {"type": head}, novelty=novelty)
    gallery = None
    if index:
        angle = np.deg2rad(10)
        vectors = np.array([[1, 0], [np.cos(angle), np.sin(angle)]], np.float32)
        gallery = GalleryIndex(vectors, [{"artwork_id": "g:0"}, {"artwork_id": "g:1"}],
                               Projection(np.zeros(2, np.float32), np.ones(2, np.float32)),
                               calibration={"novelty_threshold": 0.1})
    return Predictor(Bundle(heads, spec=None), index=gallery)


def test_verdict_abstains_below_the_task_threshold_and_names_the_label_above():
    import numpy as np

    predictor = _hand_predictor(threshold=0.7)
    confident, unsure, other = predictor.predict_features(np.array([[1, 0], [0.1, 0], [-1, 0]]), top_k=2)
    assert confident["predictions"]["type"][0] == {"label": "a", "score": pytest.approx(0.8808, abs=1e-4)}
    assert confident["verdict"] == {"type": "a"}
    assert unsure["predictions"]["type"][0] == {"label": "a", "score": pytest.approx(0.5498, abs=1e-4)}
    assert unsure["verdict"] == {"type": "unknown"}  # 0.55 < 0.7
    assert other["verdict"] == {"type": "b"}
    assert not any(o["novelty"]["novel"] for o in (confident, unsure, other))
    # the same input on either side of the threshold: the verdict follows the bundle's threshold
    assert _hand_predictor(threshold=0.5).predict_features(np.array([[0.1, 0]]), top_k=1)[0]["verdict"] == {"type": "a"}
    assert _hand_predictor(threshold=0.9).predict_features(np.array([[1, 0]]), top_k=1)[0]["verdict"] == {"type": "unknown"}


def test_either_novelty_detector_makes_a_picture_novel():
    import numpy as np

    predictor = _hand_predictor(threshold=0.7, index=True)
    # typical: near the gallery (distance 0) and heads' score 0.5 < 4
    # heads only: along the gallery (distance 0) but heads' score 12.5 > 4
    # index only: opposite the gallery (distance 1 + cos 10° > 0.1) but heads' score 0.5 < 4
    typical, heads_only, index_only = predictor.predict_features(np.array([[1, 0], [5, 0], [-1, 0]]), top_k=1)
    assert typical["verdict"] == {"type": "a"} and typical["novelty"]["novel"] is False
    assert heads_only["novelty"]["novel"] is True
    assert heads_only["novelty"]["reason"] == "unlike the paintings the model was trained on"
    assert heads_only["novelty"]["score"] == pytest.approx(12.5) and heads_only["verdict"] == {"type": "unknown"}
    assert index_only["novelty"]["novel"] is True
    assert index_only["novelty"]["reason"] == "far from every known painting"
    assert index_only["novelty"]["score"] == pytest.approx(1 + np.cos(np.deg2rad(10)), abs=1e-3)  # nearest: g:1
    assert heads_only["novelty"]["detector"] == "heads" and index_only["novelty"]["detector"] == "gallery"
    assert typical["novelty"]["reason"] is None  # one shape: every field, whichever detector answers
    assert index_only["predictions"]["type"][0]["label"] == "b" and index_only["verdict"] == {"type": "unknown"}
    assert [h["artwork_id"] for h in typical["similar"]] == ["g:0", "g:1"]


def test_a_broken_index_is_a_bundle_error_naming_its_file_once(tmp_path):
    import shutil

    path, _ = learn_bundle()
    bundle = tmp_path / "bundle"
    shutil.copytree(path, bundle)
    (bundle / "index").mkdir()
    (bundle / "index" / "index.json").write_text('{"format": 99}')
    with pytest.raises(BundleError) as caught:
        Predictor.load(bundle, lazy=True)
    message = str(caught.value)
    assert message.startswith(f"{bundle / 'index' / 'index.json'}: index format 99")
    assert message.count(str(bundle / "index")) == 1
