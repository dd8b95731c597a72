"""Augmented views (vasari.features.augment): deterministic per picture and view, bounded
changes, cached and resumable embeddings; ``vasari train --augment-views`` (the views as type
rows). Pictures are generated; the backbone is the real default one (exported once per module)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from vasari.catalog.records import Artwork
from vasari.errors import InputError
from vasari.features import Embedder, EmbeddingCache
from vasari.features.augment import AugmentConfig, AugmentError, augment_image, embed_augmented, view_rng
from vasari.heads.config import HeadConfig, TrainError
from vasari.heads.train import train_heads, with_augmented_views
from vasari.pipeline import fit_dataset


def _distinct(i: int, size) -> Image.Image:
    """Four pictures unlike each other: stripes, checks, rings, diagonals (each its colours)."""
    w, h = size
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    pattern = [np.sin(yy / 6.0), np.sign(np.sin(xx / 15.0) * np.sin(yy / 15.0)),
               np.sin(np.hypot(xx - w / 2, yy - h / 2) / 9.0),
               np.sin((xx + yy) / 20.0)][i]
    colours = np.array([[200, 40, 40], [40, 160, 60], [50, 60, 200], [220, 200, 60]], np.float32)
    img = 127 + 0.45 * pattern[..., None] * (colours[i] - 127) * 2
    return Image.fromarray(np.clip(img, 0, 255).astype(np.uint8), "RGB")


@pytest.fixture(scope="module")
def embedder(tmp_path_factory) -> Embedder:
    return Embedder("efficientnet_lite2", "stats", engine="onnx", cache_dir=tmp_path_factory.mktemp("onnx"))


@pytest.fixture
def pictures(tmp_path) -> list[Path]:
    paths = []
    for i in range(4):
        path = tmp_path / f"p{i}.jpg"
        _distinct(i, [(320, 240), (240, 320)][i % 2]).save(path, quality=95)
        paths.append(path)
    return paths


def test_a_view_is_a_function_of_picture_view_and_config():
    img, config = _distinct(0, (320, 240)), AugmentConfig()
    a = np.asarray(augment_image(img, view_rng("abc", 0, config), config))
    again = np.asarray(augment_image(img, view_rng("abc", 0, config), config))
    other_view = np.asarray(augment_image(img, view_rng("abc", 1, config), config))
    other_seed = AugmentConfig(seed=1)
    assert np.array_equal(a, again)
    assert a.shape != other_view.shape or not np.array_equal(a, other_view)
    assert config.key() != other_seed.key()
    assert AugmentConfig(views=5).key() == config.key()  # more views reuse the first ones


def test_views_keep_most_of_the_picture_and_stay_rgb():
    img, config = _distinct(1, (400, 300)), AugmentConfig()
    for v in range(20):
        out = augment_image(img, view_rng("x", v, config), config)
        assert out.mode == "RGB"
        w, h = out.size
        # crop keeps >= 60% of the area and the resolution drops to >= 40%: never a sliver
        assert min(w, h) >= 0.4 * 0.6 * 300 - 1
        assert 0.4 < (w / h) / (400 / 300) < 2.5


def test_strength_zero_is_only_a_jpeg_recompression():
    img = _distinct(2, (320, 240))
    config = AugmentConfig(strength=0.0, jpeg_quality=(90, 90))
    out = augment_image(img, view_rng("x", 0, config), config)
    assert out.size == img.size
    diff = np.abs(np.asarray(out, float) - np.asarray(img, float)).mean()
    assert diff < 3.0
    strong = AugmentConfig(strength=1.0)
    changed = [np.abs(np.asarray(augment_image(img, view_rng("x", v, strong), strong).resize(img.size), float)
                      - np.asarray(img, float)).mean() for v in range(5)]
    assert np.mean(changed) > 3 * diff


@pytest.mark.parametrize("kwargs", [{"views": -1}, {"strength": 2.0}, {"jpeg_quality": (90, 30)},
                                    {"crop": 1.0}, {"downscale": 1.2}])
def test_bad_settings_are_input_errors(kwargs):
    with pytest.raises(AugmentError) as info:
        AugmentConfig(**kwargs)
    assert isinstance(info.value, InputError)


def test_embedded_views_stay_near_their_own_picture(embedder, pictures):
    views = embed_augmented(embedder, pictures, AugmentConfig(views=2), progress=False)
    base = embedder.embed_paths(pictures, progress=False).features
    assert views.shape == (4, 2, embedder.dim) and np.isfinite(views).all()
    unit = lambda a: a / np.linalg.norm(a, axis=-1, keepdims=True)  # noqa: E731
    sim = np.einsum("nkd,md->nkm", unit(views), unit(base))  # view of picture n vs original m
    own = sim[np.arange(4), :, np.arange(4)]
    assert (sim.argmax(axis=2) == np.arange(4)[:, None]).all()  # nearest original is its own
    assert (own < 0.9999).all()  # but it did change


def test_cached_views_resume_and_extend(embedder, pictures, tmp_path):
    bad = tmp_path / "broken.jpg"
    bad.write_bytes(b"not a picture")
    paths = pictures[:2] + [bad]
    with EmbeddingCache(tmp_path / "cache", embedder.spec) as cache:
        one = embed_augmented(embedder, paths, AugmentConfig(views=1), cache=cache, progress=False)
        assert len(cache) == 2  # the broken file gives NaN and nothing cached
    assert np.isnan(one[2]).all() and np.isfinite(one[:2]).all()
    with EmbeddingCache(tmp_path / "cache", embedder.spec) as cache:
        two = embed_augmented(embedder, paths, AugmentConfig(views=2), cache=cache, progress=False)
        assert len(cache) == 4  # view 0 reused, view 1 added
    np.testing.assert_array_equal(two[:2, 0], one[:2, 0])
    fresh = embed_augmented(embedder, pictures[:2], AugmentConfig(views=2), progress=False)
    np.testing.assert_allclose(fresh, two[:2], atol=1e-4)


def test_views_are_labelled_for_the_chosen_tasks_only():
    X = np.arange(6, dtype=np.float32).reshape(3, 2)
    views = np.stack([X + 100, X + 200], axis=1)  # (3 rows, 2 views, 2 dims)
    labels = {"type": ["portrait", "landscape", None], "school": ["Italian", "Dutch", "French"]}
    Xa, la, ya = with_augmented_views(X, labels, [1500, None, 1700], views, ("type",))
    assert Xa.shape == (9, 2)
    np.testing.assert_array_equal(Xa[3:6], X + 100)
    np.testing.assert_array_equal(Xa[6:], X + 200)
    assert la["type"] == ["portrait", "landscape", None] * 3  # each view keeps its picture's type
    assert la["school"] == ["Italian", "Dutch", "French"] + [None] * 6  # and nothing else
    assert ya == [1500, None, 1700] + [None] * 6
    with pytest.raises(TrainError):
        with_augmented_views(X, labels, None, views[:2], ("type",))


def test_views_train_the_chosen_heads_but_not_the_shared_transform():
    """Views shifted far from their pictures: the type head learns from them (twice the rows),
    but the standardisation every head shares, the school head, the year head and novelty are
    exactly what the original rows alone give (docs/trust-research.md 3b: views that moved the
    shared transform cost school 8 points of out-of-source precision)."""
    rng = np.random.default_rng(1)
    n, d = 40, 6
    X = rng.normal(size=(n, d)).astype(np.float32)
    labels = {"type": ["a", "b"] * (n // 2), "school": ["x", "x", "y", "y"] * (n // 4)}
    X[:, 0] += np.where(np.array(labels["type"]) == "a", 2.0, -2.0)
    X[:, 1] += np.where(np.array(labels["school"]) == "x", 2.0, -2.0)
    years = [1500 + 10 * i for i in range(n)]
    views = (X + 5.0 + rng.normal(scale=0.1, size=X.shape)).astype(np.float32)[:, None, :]
    views[3] = np.nan  # a view that failed to embed is dropped, its picture kept
    config = HeadConfig(tasks=("type", "school"), year=True, novelty=True, augment_views=1, novelty_components=2)
    plain = train_heads(X, labels, years, config=config)
    viewed = train_heads(X, labels, years, config=config, views_train=views)
    assert viewed.classifiers["type"].info["train_rows"] == 2 * n - 1
    assert viewed.classifiers["school"].info["train_rows"] == n
    np.testing.assert_allclose(viewed.transform.mean, X.mean(axis=0), rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(viewed.transform.scale, plain.transform.scale, rtol=1e-6)
    np.testing.assert_allclose(viewed.classifiers["school"].coef, plain.classifiers["school"].coef, rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(viewed.year.coef, plain.year.coef, rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(viewed.novelty.components, plain.novelty.components, rtol=1e-4, atol=1e-6)
    assert np.abs(viewed.classifiers["type"].coef - plain.classifiers["type"].coef).max() > 1e-3
    with pytest.raises(TrainError):
        train_heads(X, labels, years, config=config, views_train=views[:5])


def test_train_with_augment_views_adds_type_rows_that_learn(embedder, tmp_path):
    """Two types (stripes vs rings, any colour) and two schools (warm vs cool colours): with one
    view per train picture the type head sees twice the rows, the school head only the originals,
    and both still learn the generated labels."""
    rng = np.random.default_rng(0)
    arts, splits = [], []
    for i in range(60):
        kind, warm = i % 2, (i // 2) % 2
        w, h = int(rng.integers(220, 330)), int(rng.integers(220, 330))
        yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
        pattern = np.sin(yy / rng.uniform(4, 8)) if kind == 0 else np.sin(np.hypot(xx - w / 2, yy - h / 2) / rng.uniform(6, 10))
        colour = rng.uniform([150, 40, 20], [240, 120, 60]) if warm else rng.uniform([20, 60, 150], [70, 140, 240])
        img = np.clip(127 + pattern[..., None] * (colour - 127), 0, 255).astype(np.uint8)
        path = tmp_path / f"a{i}.jpg"
        Image.fromarray(img, "RGB").save(path, quality=92)
        arts.append(Artwork(f"gen:{i}", "gen", image=str(path), type=["portrait", "landscape"][kind],
                            school=["Dutch", "Italian"][warm]))
        splits.append("train" if i < 40 else ("val" if i < 50 else "test"))
    config = HeadConfig(tasks=("type", "school"), year=False, novelty=False, augment_views=1)
    fit = fit_dataset(arts, splits, embedder, None, config, evaluate_splits=("test",), progress=False)
    heads = fit.bundle.heads
    assert heads.classifiers["type"].info["train_rows"] == 80
    assert heads.classifiers["school"].info["train_rows"] == 40
    assert fit.bundle.card["head_config"]["augment_views"] == 1
    test = fit.evaluations[0].metrics["tasks"]
    assert test["type"]["top1"] >= 0.8 and test["school"]["top1"] >= 0.8


def test_cli_train_augment_views(tmp_path):
    """`vasari train --augment-views 1`: the type head trains on the views too, the card says so,
    and a negative count is one clear error line."""
    from typer.testing import CliRunner

    from learn_data import learn_world
    from test_cli_learn import saved_dataset
    from vasari.bundle import load_bundle
    from vasari.cli import app

    runner, w = CliRunner(), learn_world()
    ds, model = saved_dataset(tmp_path), tmp_path / "model"
    res = runner.invoke(app, ["train", str(ds), "--out", str(model), "--augment-views", "1", "--cache", str(w.cache_dir)])
    assert res.exit_code == 0, res.output
    bundle = load_bundle(model)
    assert bundle.heads.classifiers["type"].info["train_rows"] == 2 * w.split.count("train")
    assert bundle.card["head_config"]["augment_views"] == 1
    assert bundle.metrics["test"]["tasks"]["type"]["top1"] >= 0.9
    res = runner.invoke(app, ["train", str(ds), "--out", str(tmp_path / "bad"), "--augment-views", "-1"])
    assert res.exit_code == 2 and "--augment-views" in res.output



def test_out_of_source_refits_and_protocol_folds_train_on_the_views_too(tmp_path):
    """The shipped recipe with views: `vasari train --augment-views 1 --abstention out-of-source
    --protocols leave-source-out` trains, chooses out-of-source thresholds and writes the protocol
    into the card; a fold refit (the same code as both) trains its type head on its rows' views and
    the other heads on the originals; a protocol run without the views is refused."""
    from typer.testing import CliRunner

    from learn_data import learn_world
    from test_cli_learn import saved_dataset
    from vasari.bundle import load_bundle
    from vasari.cli import app
    from vasari.heads.abstention import Rows
    from vasari.protocols import _train_like_the_bundle, evaluate_protocol

    runner, w = CliRunner(), learn_world()
    ds, model = saved_dataset(tmp_path), tmp_path / "model"
    res = runner.invoke(app, ["train", str(ds), "--out", str(model), "--augment-views", "1", "--cache", str(w.cache_dir),
                              "--abstention", "out-of-source", "--protocols", "leave-source-out"])
    assert res.exit_code == 0, res.output
    bundle = load_bundle(model)
    assert "threshold_out_of_source" in bundle.heads.classifiers["type"].info
    assert "leave-source-out" in bundle.card["protocols"]
    # `vasari evaluate --protocol` embeds the train pictures' views itself and gives the card's figures
    res = runner.invoke(app, ["evaluate", str(ds), "--model", str(model), "--out", str(tmp_path / "lso"),
                              "--cache", str(w.cache_dir), "--protocol", "leave-source-out"])
    assert res.exit_code == 0, res.output
    import json

    report = json.loads((tmp_path / "lso" / "protocol.json").read_text())
    card = bundle.card["protocols"]["leave-source-out"]
    assert abs(report["tasks"]["type"]["pooled"]["top1"] - card["tasks"]["type"]["top1"]) < 1e-9, (report, card)

    rng = np.random.default_rng(0)
    n, d = 24, 8
    labels = {"type": ["a", "b"] * (n // 2), "school": ["x", "y", "y", "x"] * (n // 4)}
    views = rng.normal(size=(n, 1, d)).astype(np.float32)
    rows = Rows(rng.normal(size=(n, d)).astype(np.float32), labels, [None] * n,
                np.array(["s1", "s2"] * (n // 2)), np.array(["train"] * n, dtype=object), views)
    config = HeadConfig(tasks=("type", "school"), year=False, novelty=False, augment_views=1)
    heads = _train_like_the_bundle(rows.take(np.arange(12)), rows.take(np.arange(12, 24)), rows, config)
    assert heads.classifiers["type"].info["train_rows"] == 24 and heads.classifiers["school"].info["train_rows"] == 12
    with pytest.raises(TrainError, match="augmented view"):
        evaluate_protocol("leave-source-out", bundle, [], [], np.zeros((0, bundle.spec.dim), np.float32), {})


def test_views_need_a_backbone_embedder():
    """Training and `vasari evaluate --protocol` both ask ``views_of_rows`` for the views; a
    fine-tuned or precomputed extractor gets one clear error there, before any picture is read."""
    from vasari.features.augment import views_of_rows

    class Precomputed:
        dim = 4

    with pytest.raises(AugmentError, match="backbone Embedder, not Precomputed"):
        views_of_rows(Precomputed(), ["a.jpg"], np.array([True]), 1)
