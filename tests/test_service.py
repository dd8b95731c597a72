"""The web service (vasari.service) against a REAL predictor.

The predictor is the default bundle shipped in vasari/models/default when it loads, else a
small real bundle trained here on generated pictures with the real backbone (see
``service_bundle``). Every endpoint is exercised, then a long list of bad inputs, each with
its status, error code, and the server still answering /healthz afterwards.
"""

from __future__ import annotations

import io
import json
import re
import socket
import struct
import threading
import time
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from vasari.service import ServiceConfig, create_app

# --------------------------------------------------------------------------- real model

_BUNDLE: dict[str, object] = {}


def _painting_like(rng: np.random.Generator, kind: int, size: tuple[int, int] = (320, 240)) -> Image.Image:
    """Two visually distinct generated 'genres': warm dark portraits vs bright green landscapes."""
    w, h = size
    y, x = np.mgrid[0:h, 0:w].astype(np.float32)
    if kind == 0:  # dark warm background, a light oval "face"
        img = np.stack([60 + 20 * np.sin(x / 40), 40 + 10 * np.cos(y / 30), 25 + 0 * x], -1)
        cy, cx = h * rng.uniform(0.3, 0.45), w * rng.uniform(0.4, 0.6)
        mask = ((x - cx) / (w * 0.15)) ** 2 + ((y - cy) / (h * 0.22)) ** 2 < 1
        img[mask] = rng.uniform(190, 230, 3) * np.array([1.0, 0.8, 0.65])
    else:  # blue sky over green fields
        horizon = h * rng.uniform(0.35, 0.6)
        sky = np.stack([120 + 0 * x, 170 + 0 * x, 230 - y / 4], -1)
        land = np.stack([50 + 15 * np.sin(x / 15), 120 + 30 * np.cos(x / 25 + y / 20), 40 + 0 * x], -1)
        img = np.where((y < horizon)[..., None], sky, land)
    img = img + rng.normal(0, 10, img.shape)
    return Image.fromarray(np.clip(img, 0, 255).astype(np.uint8))


def _train_small_bundle(out: Path) -> Path:
    """A real (small) bundle: real backbone features of generated pictures, real heads."""
    from vasari.features import Embedder
    from vasari.predict import Predictor  # noqa: F401 - fail early if the predictor is missing
    from vasari.train import HeadConfig, train_heads
    from vasari.bundle import save_bundle

    from vasari.index import GalleryIndex

    rng = np.random.default_rng(0)
    kinds = [i % 2 for i in range(40)]
    images = [_painting_like(rng, k) for k in kinds]
    embedder = Embedder()
    X = embedder.embed_images(images)
    names = ["portrait", "landscape"]
    schools = ["Dutch", "Italian"]
    painters = ["Painter of Portraits", "Painter of Landscapes"]
    years = [1640 + 10 * (i % 5) if k == 0 else 1850 + 5 * (i % 5) for i, k in enumerate(kinds)]
    labels = {
        "type": [names[k] for k in kinds],
        "school": [schools[k] for k in kinds],
        "timeframe": ["1601-1650" if y <= 1650 else ("1651-1700" if y <= 1700 else "1851-1900") for y in years],
        "artist": [painters[k] for k in kinds],
    }
    gallery = out.parent / f"{out.name}-gallery"
    gallery.mkdir(parents=True, exist_ok=True)
    works = []
    for i, (img, k) in enumerate(zip(images, kinds)):
        img.save(gallery / f"{i}.jpg", quality=85)
        works.append({"artwork_id": f"test:{i}", "title": f"Generated {names[k]} no. {i}", "artist": painters[k],
                      "year": years[i], "type": names[k], "school": schools[k], "image": str(gallery / f"{i}.jpg")})
    index = GalleryIndex.build(X, works, embedder.spec)
    train, val = slice(0, 28), slice(28, 40)
    heads = train_heads(
        X[train], {t: v[train] for t, v in labels.items()}, years[train],
        X[val], {t: v[val] for t, v in labels.items()}, years[val],
        config=HeadConfig(min_kept=2, novelty=False),
    )
    card = {
        "name": "test-bundle",
        "description": "A small bundle trained by tests/test_service.py on generated pictures.",
        "data": {"images": len(images), "sources": ["generated"]},
    }
    save_bundle(heads=heads, spec=embedder.spec, card=card, metrics={}, index=index, out_dir=out)
    return out


def service_bundle(tmp_root: Path) -> Path | None:
    """The bundle the service tests serve: None = the default bundle (it loads), else a
    small bundle trained once per session under ``tmp_root``."""
    if "dir" in _BUNDLE:
        return _BUNDLE["dir"]  # type: ignore[return-value]
    from vasari.predict import Predictor

    try:
        Predictor.load()
        _BUNDLE["dir"] = None
    except Exception:  # noqa: BLE001 - no default bundle yet: train a small real one
        _BUNDLE["dir"] = _train_small_bundle(tmp_root / "service-bundle")
    return _BUNDLE["dir"]  # type: ignore[return-value]


@pytest.fixture(scope="session")
def predictor(tmp_path_factory):
    pytest.importorskip("vasari.predict", reason="the learning stage (vasari/predict.py) is not in this checkout yet")
    from vasari.predict import Predictor

    return Predictor.load(service_bundle(tmp_path_factory.getbasetemp()))


CONFIG = ServiceConfig(max_upload_bytes=20 * 1024 * 1024)


@pytest.fixture(scope="module")
def client(predictor):
    from fastapi.testclient import TestClient

    with TestClient(create_app(predictor, CONFIG), raise_server_exceptions=False) as c:
        yield c


@pytest.fixture(scope="module")
def info(client):
    r = client.get("/api/v1/model")
    assert r.status_code == 200, r.text
    return r.json()


# --------------------------------------------------------------------------- pictures


def encode(img: Image.Image, fmt: str = "JPEG", **kw) -> bytes:
    buf = io.BytesIO()
    img.save(buf, fmt, **kw)
    return buf.getvalue()


def sample(size=(400, 300), seed=1) -> Image.Image:
    return _painting_like(np.random.default_rng(seed), seed % 2, size)


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)


def png_header_only(width: int, height: int, idat: bytes = b"") -> bytes:
    """A PNG whose IHDR claims ``width`` x ``height`` (greyscale, 8 bit)."""
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + _png_chunk(b"IHDR", ihdr) + _png_chunk(b"IDAT", idat) + _png_chunk(b"IEND", b"")


def zero_bomb_png(side: int = 30000, block_rows: int = 100) -> bytes:
    """A valid all-black ``side`` x ``side`` PNG of under 1 MB (900 MB once decoded).

    Built without compressing 900 MB: a block of zero rows is deflated once with a full
    flush (so the compressed segment is self-contained) and repeated; the Adler-32 of n
    zero bytes is ((n mod 65521) << 16) | 1.
    """
    row = side + 1  # filter byte + pixels
    assert side % block_rows == 0
    c = zlib.compressobj(9, zlib.DEFLATED, -15)
    segment = c.compress(bytes(row * block_rows)) + c.flush(zlib.Z_FULL_FLUSH)
    final = c.flush(zlib.Z_FINISH)
    n = row * side
    stream = b"\x78\xda" + segment * (side // block_rows) + final + struct.pack(">I", ((n % 65521) << 16) | 1)
    return png_header_only(side, side, stream)


def huge_exif_jpeg() -> bytes:
    img = sample((300, 200))
    exif = Image.Exif()
    exif[0x010E] = "x" * 60000  # ImageDescription: ~60 KB, near the 64 KB APP1 limit
    exif[0x0112] = 6  # orientation: rotate 90
    return encode(img, "JPEG", exif=exif.tobytes())


def animated_gif() -> bytes:
    frames = [sample((200, 150), seed=s).convert("P") for s in range(3)]
    return encode(frames[0], "GIF", save_all=True, append_images=frames[1:], duration=100, loop=0)


def sixteen_bit_png() -> bytes:
    arr = (np.linspace(0, 65535, 256 * 192).reshape(192, 256)).astype(np.uint16)
    img = Image.fromarray(arr)  # mode I;16
    data = encode(img, "PNG")
    assert Image.open(io.BytesIO(data)).mode.startswith("I")
    return data


def cmyk_jpeg() -> bytes:
    data = encode(sample((300, 200)).convert("CMYK"), "JPEG")
    assert Image.open(io.BytesIO(data)).mode == "CMYK"
    return data


@pytest.fixture(scope="module")
def jpeg() -> bytes:
    return encode(sample((640, 480)), "JPEG", quality=90)


def assert_error(r, status: int, code: str | None = None) -> dict:
    assert r.status_code == status, f"expected {status}, got {r.status_code}: {r.text[:300]}"
    body = r.json()
    assert set(body) == {"error"}, body
    assert set(body["error"]) == {"code", "message"}, body
    assert body["error"]["message"], body
    if code is not None:
        assert body["error"]["code"] == code, body
    return body


def assert_prediction(result: dict, info: dict, top_k: int = 3) -> None:
    tasks = list(info["tasks"])
    assert tasks, info
    assert set(result["predictions"]) == set(tasks)
    for task in tasks:
        items = result["predictions"][task]
        assert 1 <= len(items) <= top_k
        assert len(items) == min(top_k, len(info["labels"][task]))
        scores = [item["score"] for item in items]
        assert all(0.0 <= s <= 1.0 for s in scores)
        assert scores == sorted(scores, reverse=True)
        assert sum(scores) <= 1.0 + 1e-6
        assert all(item["label"] in info["labels"][task] for item in items)
        verdict = result["verdict"][task]
        assert verdict == "unknown" or verdict == items[0]["label"]
    if "year" in result and result["year"] is not None:
        y = result["year"]
        assert y["low"] <= y["estimate"] <= y["high"]


# --------------------------------------------------------------------------- endpoints


def test_healthz_and_readyz(client):
    assert client.get("/healthz").json() == {"status": "ok"}
    r = client.get("/readyz")
    assert r.status_code == 200 and r.json()["status"] == "ready"


def test_model_endpoint(info):
    assert info["tasks"], info
    for task in info["tasks"]:
        assert len(info["labels"][task]) >= 2
    assert "backbone" in info and info["backbone"]
    card = info.get("card") or info.get("model_card")
    assert isinstance(card, dict) and card, info.keys()
    assert info["service"]["max_upload_bytes"] == CONFIG.max_upload_bytes


def test_model_card_markdown(client):
    r = client.get("/api/v1/model/card")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/markdown")
    assert r.text.lstrip().startswith("#")


def test_predict_multipart(client, info, jpeg):
    r = client.post("/api/v1/predict", files={"file": ("painting.jpg", jpeg, "image/jpeg")})
    assert r.status_code == 200, r.text
    result = r.json()
    assert result["image"] == "painting.jpg"
    assert_prediction(result, info)


def test_predict_raw_body_and_top_k(client, info, jpeg):
    r = client.post("/api/v1/predict?top_k=1", content=jpeg, headers={"content-type": "image/jpeg", "x-filename": "x.jpg"})
    assert r.status_code == 200, r.text
    assert r.json()["image"] == "x.jpg"
    assert_prediction(r.json(), info, top_k=1)
    r = client.post("/api/v1/predict?top_k=5", content=jpeg, headers={"content-type": "application/octet-stream"})
    assert r.status_code == 200, r.text
    assert_prediction(r.json(), info, top_k=5)


def test_predict_is_deterministic_and_same_as_predictor(client, predictor, jpeg):
    """The service returns what the library returns for the same decoded picture."""
    from vasari.images import load_image

    a = client.post("/api/v1/predict", files={"file": ("a.jpg", jpeg)}).json()
    b = client.post("/api/v1/predict", files={"file": ("a.jpg", jpeg)}).json()
    assert a["predictions"] == b["predictions"]
    min_side = client.app.state.vasari["min_side"]
    direct = predictor.predict_images([load_image(jpeg, min_side=min_side)], top_k=3)[0]
    for task, items in direct["predictions"].items():
        assert [i["label"] for i in items] == [i["label"] for i in a["predictions"][task]]
        assert np.allclose([i["score"] for i in items], [i["score"] for i in a["predictions"][task]], atol=1e-6)


def test_predict_batch(client, info, jpeg):
    files = [
        ("files", ("one.jpg", jpeg, "image/jpeg")),
        ("files", ("two.png", encode(sample((256, 256), seed=2), "PNG"), "image/png")),
        ("files", ("notes.txt", b"not a picture", "text/plain")),
    ]
    r = client.post("/api/v1/predict/batch?top_k=2", files=files)
    assert r.status_code == 200, r.text
    out = r.json()
    assert [o["image"] for o in out] == ["one.jpg", "two.png", "notes.txt"]
    assert_prediction(out[0], info, top_k=2)
    assert_prediction(out[1], info, top_k=2)
    assert out[2]["error"]["code"] == "not_an_image"


def test_batch_bad_requests(client, jpeg):
    assert_error(client.post("/api/v1/predict/batch", files={"file": ("a.jpg", jpeg)}), 400, "missing_file")
    assert_error(client.post("/api/v1/predict/batch", content=jpeg, headers={"content-type": "image/jpeg"}), 415)
    too_many = [("files", (f"{i}.jpg", jpeg)) for i in range(CONFIG.max_batch_files + 1)]
    assert_error(client.post("/api/v1/predict/batch", files=too_many), 400, "bad_multipart")
    assert client.get("/healthz").status_code == 200


def test_concurrent_requests_are_batched(client, predictor, jpeg):
    """Concurrent requests all succeed and agree with sequential ones (micro-batching)."""
    from concurrent.futures import ThreadPoolExecutor

    pictures = [encode(sample((320, 240), seed=s), "JPEG") for s in range(8)]
    sequential = [client.post("/api/v1/predict", files={"file": ("p.jpg", p)}).json() for p in pictures]
    batches_before = client.app.state.batcher.batches
    with ThreadPoolExecutor(8) as pool:
        concurrent = list(pool.map(lambda p: client.post("/api/v1/predict", files={"file": ("p.jpg", p)}).json(), pictures))
    batches = client.app.state.batcher.batches - batches_before
    assert 1 <= batches <= 8
    for s, c in zip(sequential, concurrent):
        for task in s["predictions"]:
            assert [i["label"] for i in s["predictions"][task]] == [i["label"] for i in c["predictions"][task]]
            assert np.allclose([i["score"] for i in s["predictions"][task]], [i["score"] for i in c["predictions"][task]], atol=1e-4)


def test_openapi_and_docs_are_offline(client):
    spec = client.get("/openapi.json").json()
    for path in ("/api/v1/predict", "/api/v1/predict/batch", "/api/v1/model", "/healthz", "/readyz"):
        assert path in spec["paths"], path
    assert "multipart/form-data" in spec["paths"]["/api/v1/predict"]["post"]["requestBody"]["content"]
    r = client.get("/docs", follow_redirects=True)
    assert r.status_code == 200
    html = r.text
    assert not re.search(r"""(src|href)=["']?(https?:)?//""", html), "docs load something from another site"
    for asset in re.findall(r"""(?:src|href)=["']([^"']+)["']""", html):
        assert client.get(asset).status_code == 200, asset


def test_docs_without_swagger_assets_fall_back_to_the_api_page(predictor, monkeypatch):
    """Without the optional offline Swagger UI assets (fastapi-offline), /docs is the
    built-in API page: never a CDN."""
    from fastapi.testclient import TestClient

    import vasari.service as service

    monkeypatch.setattr(service, "_swagger_assets", lambda: None)
    with TestClient(service.create_app(predictor, ServiceConfig(warmup=False))) as c:
        r = c.get("/docs", follow_redirects=False)
        assert r.status_code in (302, 307) and r.headers["location"] == "/api"
        page = c.get("/docs")
        assert page.status_code == 200 and "curl" in page.text and "cdn" not in page.text.lower()


def test_pages_and_assets_are_local(client):
    for page in ("/", "/about", "/api"):
        r = client.get(page)
        assert r.status_code == 200 and "text/html" in r.headers["content-type"]
        assert "default-src 'self'" in r.headers["content-security-policy"]
        html = r.text
        assert not re.search(r"""(src|href)=["']?(https?:)?//""", html), page
        for asset in re.findall(r"""(?:src|href)=["'](/static/[^"']+)["']""", html):
            assert client.get(asset).status_code == 200, asset
    index = client.get("/").text
    assert 'capture="environment"' in index and 'accept="image/*"' in index
    for asset in ("/static/app.js", "/static/about.js", "/static/style.css"):
        text = client.get(asset).text
        assert not re.search(r"""(fetch\(|url\(|import\s)["']?(https?:)?//""", text), asset
    glossary = client.get("/static/glossary.json").json()
    assert {"type", "school", "timeframe", "style", "artist"} <= set(glossary["tasks"])
    assert "flemish" in glossary["labels"]["school"] and "genre" in glossary["labels"]["type"]
    assert "rococo" in glossary["labels"]["style"]


def test_glossary_explains_every_label_of_the_vocabularies(client):
    """Each class of the fixed vocabularies has plain words on the explanation page."""
    from vasari import labels as vocab

    glossary = client.get("/static/glossary.json").json()["labels"]

    def key(label: str) -> str:
        return re.sub(r"[^a-z0-9]+", "-", label.lower()).strip("-")

    for task, names in (("type", vocab.TYPES), ("school", vocab.SCHOOLS), ("style", vocab.STYLES), ("timeframe", vocab.TIMEFRAMES)):
        missing = [n for n in names if key(n) not in glossary[task]]
        assert not missing, f"{task}: no explanation for {missing}"


def test_similar_paintings_and_thumbnails(client, info, jpeg):
    """With a gallery index in the bundle: similar works and affinities, thumbnails served
    by opaque URLs of this server (never a server path), unknown thumbnails 404."""
    if not info.get("index"):
        pytest.skip("the served bundle has no gallery index")
    result = client.post("/api/v1/predict", files={"file": ("a.jpg", jpeg)}).json()
    assert result["similar"] and result["affinity"]
    for item in result["similar"]:
        assert {"artwork_id", "title", "artist", "year", "score"} <= set(item)
        if "thumbnail" in item:
            assert item["thumbnail"].startswith("/api/v1/thumbnails/"), item
            r = client.get(item["thumbnail"])
            assert r.status_code == 200 and r.headers["content-type"] == "image/jpeg"
            assert Image.open(io.BytesIO(r.content)).size[0] > 0
    from vasari.shared import shared_data_dir

    if shared_data_dir() is not None:  # gallery images (or the index's thumbs/) are on disk here
        assert any("thumbnail" in item for item in result["similar"])
    for aff in result["affinity"]:
        assert aff["artist"] and 0 <= aff["score"] <= 1
    assert_error(client.get("/api/v1/thumbnails/0123456789abcdef0123"), 404, "not_found")
    assert_error(client.get("/api/v1/thumbnails/..%2F..%2Fetc%2Fpasswd"), 404)
    assert "/" not in str(client.get("/api/v1/model").json().get("model") or "")


# --------------------------------------------------------------------------- bad inputs

TEXT = b"Dear visitor,\nthis is a text file, not a painting.\n"
HTML_AS_JPG = b"<!doctype html><html><body><h1>404 Not Found</h1></body></html>"


def _png_wrong_extension():
    return {"files": {"file": ("painting.jpg", encode(sample(), "PNG"), "image/jpeg")}}


# (id, request kwargs or builder, expected status, expected error code or None for success)
BAD_INPUTS = [
    ("empty raw body", lambda: {"content": b"", "headers": {"content-type": "image/jpeg"}}, 400, "empty"),
    ("empty file field", lambda: {"files": {"file": ("empty.jpg", b"", "image/jpeg")}}, 400, "empty"),
    ("text file", lambda: {"files": {"file": ("notes.txt", TEXT, "text/plain")}}, 415, "not_an_image"),
    ("text file named .jpg", lambda: {"files": {"file": ("painting.jpg", TEXT, "image/jpeg")}}, 415, "not_an_image"),
    ("html saved as .jpg", lambda: {"content": HTML_AS_JPG, "headers": {"content-type": "image/jpeg"}}, 415, "not_an_image"),
    ("text/plain raw body", lambda: {"content": TEXT, "headers": {"content-type": "text/plain"}}, 415, "unsupported_media_type"),
    ("json body", lambda: {"json": {"image": "painting.jpg"}}, 415, "unsupported_media_type"),
    ("png with .jpg extension", _png_wrong_extension, 200, None),
    ("truncated jpeg", lambda: {"files": {"file": ("cut.jpg", encode(sample((800, 600)), "JPEG")[:6000])}}, 422, "corrupt"),
    ("jpeg header then garbage", lambda: {"files": {"file": ("bad.jpg", b"\xff\xd8\xff\xe0" + bytes(range(256)) * 8)}}, 422, "corrupt"),
    ("30000x30000 png bomb", lambda: {"files": {"file": ("bomb.png", zero_bomb_png())}}, 422, "decompression_bomb"),
    ("9000x9000 png over the pixel limit", lambda: {"files": {"file": ("big.png", png_header_only(9000, 9000, zlib.compress(b"")))}}, 422, "decompression_bomb"),
    ("0x0 png", lambda: {"files": {"file": ("zero.png", png_header_only(0, 0, zlib.compress(b"")))}}, 422, "corrupt"),
    ("1x1 png", lambda: {"files": {"file": ("dot.png", encode(Image.new("RGB", (1, 1), (90, 60, 30)), "PNG"))}}, 200, None),
    ("huge exif with rotation", lambda: {"files": {"file": ("exif.jpg", huge_exif_jpeg())}}, 200, None),
    ("animated gif", lambda: {"files": {"file": ("anim.gif", animated_gif())}}, 200, None),
    ("cmyk jpeg", lambda: {"files": {"file": ("cmyk.jpg", cmyk_jpeg())}}, 200, None),
    ("16-bit png", lambda: {"files": {"file": ("deep.png", sixteen_bit_png())}}, 200, None),
    ("rgba png", lambda: {"files": {"file": ("alpha.png", encode(sample().convert("RGBA"), "PNG"))}}, 200, None),
    ("webp", lambda: {"files": {"file": ("p.webp", encode(sample(), "WEBP"))}}, 200, None),
    ("tiff", lambda: {"files": {"file": ("p.tif", encode(sample(), "TIFF"))}}, 200, None),
    ("wrong field name", lambda: {"files": {"image": ("painting.jpg", encode(sample()))}}, 400, "missing_file"),
    ("file field sent as text", lambda: {"data": {"file": "painting.jpg"}, "files": {"other": ("x.txt", b"x")}}, 400, "missing_file"),
    ("multipart without boundary", lambda: {"content": b"--x\r\n", "headers": {"content-type": "multipart/form-data"}}, 400, None),
    ("top_k=0", lambda: {"params": {"top_k": "0"}, "files": {"file": ("p.jpg", encode(sample()))}}, 400, "bad_parameter"),
    ("top_k=-1", lambda: {"params": {"top_k": "-1"}, "files": {"file": ("p.jpg", encode(sample()))}}, 400, "bad_parameter"),
    ("top_k=abc", lambda: {"params": {"top_k": "abc"}, "files": {"file": ("p.jpg", encode(sample()))}}, 400, "bad_parameter"),
    ("top_k=1000", lambda: {"params": {"top_k": "1000"}, "files": {"file": ("p.jpg", encode(sample()))}}, 400, "bad_parameter"),
    ("25 MB body", lambda: {"content": b"\xff\xd8\xff" + bytes(25 * 2**20), "headers": {"content-type": "image/jpeg"}}, 413, "too_large"),
    ("25 MB multipart file", lambda: {"files": {"file": ("big.jpg", bytes(25 * 2**20))}}, 413, "too_large"),
    ("25 MB streamed without Content-Length", lambda: {"content": (bytes(2**20) for _ in range(25)), "headers": {"content-type": "image/jpeg"}}, 413, "too_large"),
]


@pytest.mark.parametrize("name,build,status,code", BAD_INPUTS, ids=[b[0] for b in BAD_INPUTS])
def test_bad_input(client, info, name, build, status, code):
    r = client.post("/api/v1/predict", **build())
    if status == 200:
        assert r.status_code == 200, f"{name}: {r.status_code} {r.text[:300]}"
        assert_prediction(r.json(), info)
    else:
        assert_error(r, status, code)
    assert client.get("/healthz").status_code == 200
    assert client.get("/readyz").status_code == 200


@pytest.mark.parametrize(
    "method,path,status",
    [("GET", "/api/v1/predict", 405), ("PUT", "/api/v1/predict", 405), ("DELETE", "/api/v1/predict/batch", 405),
     ("POST", "/api/v1/model", 405), ("POST", "/healthz", 405), ("GET", "/api/v1/nothing", 404)],
)
def test_wrong_method_or_path(client, method, path, status):
    assert_error(client.request(method, path), status)
    assert client.get("/healthz").status_code == 200


def test_still_predicts_after_all_bad_inputs(client, info, jpeg):
    r = client.post("/api/v1/predict", files={"file": ("again.jpg", jpeg)})
    assert r.status_code == 200
    assert_prediction(r.json(), info)


def test_png_sniffed_not_extension(client):
    """Same picture as PNG named .jpg and as JPEG named .png: both are read by content."""
    pic = sample((300, 300), seed=7)
    a = client.post("/api/v1/predict", files={"file": ("x.jpg", encode(pic, "PNG"), "image/jpeg")})
    b = client.post("/api/v1/predict", files={"file": ("x.png", encode(pic, "JPEG", quality=95), "image/png")})
    assert a.status_code == b.status_code == 200


def test_blas_is_single_threaded_while_serving(predictor, jpeg):
    """Small matrix products (heads, gallery search) run with 1 BLAS thread in the
    prediction threads while serving; the limits are restored afterwards."""
    threadpoolctl = pytest.importorskip("threadpoolctl")
    from fastapi.testclient import TestClient

    def blas_threads():
        return {i["num_threads"] for i in threadpoolctl.threadpool_info() if i["user_api"] == "blas"}

    before = blas_threads()
    if not before:
        pytest.skip("numpy reports no BLAS library to limit")
    seen: list[set[int]] = []

    class Watching:  # the real predictor, noting the BLAS threads its calls run with
        def predict_images(self, images, top_k=3):
            seen.append(blas_threads())
            return predictor.predict_images(images, top_k=top_k)

        def info(self):
            return predictor.info()

    with TestClient(create_app(Watching(), ServiceConfig())) as c:
        assert c.post("/api/v1/predict", content=jpeg, headers={"content-type": "image/jpeg"}).status_code == 200
    assert seen and all(s == {1} for s in seen), seen
    assert blas_threads() == before


def test_upload_limit_is_configurable(predictor, jpeg):
    from fastapi.testclient import TestClient

    small = ServiceConfig(max_upload_bytes=len(jpeg) - 1, warmup=False)
    with TestClient(create_app(predictor, small)) as c:
        assert_error(c.post("/api/v1/predict", content=jpeg, headers={"content-type": "image/jpeg"}), 413, "too_large")
        assert c.get("/healthz").status_code == 200


def test_not_ready_until_loaded(predictor, jpeg):
    """A lazily loaded model: /healthz answers at once, /readyz and predict say 503 until ready."""
    from fastapi.testclient import TestClient

    gate = threading.Event()

    def slow_load():
        gate.wait(30)
        return predictor

    with TestClient(create_app(slow_load, ServiceConfig(warmup=False))) as c:
        assert c.get("/healthz").status_code == 200
        assert_error(c.get("/readyz"), 503, "not_ready")
        assert_error(c.post("/api/v1/predict", content=jpeg, headers={"content-type": "image/jpeg"}), 503, "not_ready")
        gate.set()
        deadline = time.monotonic() + 30
        while c.get("/readyz").status_code != 200 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert c.get("/readyz").status_code == 200
        assert c.post("/api/v1/predict", content=jpeg, headers={"content-type": "image/jpeg"}).status_code == 200


def test_model_failing_to_load_is_reported(jpeg):
    from fastapi.testclient import TestClient

    def broken():
        raise FileNotFoundError("no bundle at /nowhere")

    with TestClient(create_app(broken)) as c:
        assert c.get("/healthz").status_code == 200
        body = assert_error(c.get("/readyz"), 503, "not_ready")
        assert "no bundle" in body["error"]["message"]


# --------------------------------------------------------------------------- live server


class LiveServer:
    """uvicorn serving ``app`` on 127.0.0.1 and a free port, in a background thread."""

    def __init__(self, app):
        import uvicorn

        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self.app_state = app.state.vasari  # the service's state: predictor, info, readiness
        config = uvicorn.Config(app, host="127.0.0.1", port=self.port, log_level="warning", lifespan="on")
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def __enter__(self) -> "LiveServer":
        import httpx

        self.thread.start()
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"{self.url}/readyz", timeout=2).status_code == 200:
                    return self
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        raise TimeoutError("the live server did not become ready")

    def __exit__(self, *exc) -> None:
        self.server.should_exit = True
        self.thread.join(15)


def test_live_server_limits_and_survival(predictor, jpeg):
    """Over real HTTP: a 25 MB body is refused from its Content-Length, a chunked one while
    streaming, concurrent clients are served, and the server keeps answering."""
    import httpx
    from concurrent.futures import ThreadPoolExecutor

    with LiveServer(create_app(predictor, CONFIG)) as live:
        with httpx.Client(base_url=live.url, timeout=60) as http:
            r = http.post("/api/v1/predict", content=bytes(25 * 2**20), headers={"content-type": "image/jpeg"})
            assert_error(r, 413, "too_large")
            r = http.post("/api/v1/predict", content=(bytes(2**20) for _ in range(25)), headers={"content-type": "image/jpeg"})
            assert_error(r, 413, "too_large")
            assert http.get("/healthz").json() == {"status": "ok"}

            def one(i):
                with httpx.Client(base_url=live.url, timeout=60) as c:
                    return c.post("/api/v1/predict", files={"file": (f"{i}.jpg", jpeg, "image/jpeg")}).status_code

            with ThreadPoolExecutor(4) as pool:
                assert list(pool.map(one, range(12))) == [200] * 12
            assert http.get("/readyz").status_code == 200
            assert json.loads(http.get("/api/v1/model").text)["tasks"]


# --------------------------------------------------------------------------- CLI


def test_serve_cli_rejects_bad_model(tmp_path):
    from typer.testing import CliRunner

    from vasari.cli import app

    runner = CliRunner()
    r = runner.invoke(app, ["serve", "--model", str(tmp_path / "missing")])
    assert r.exit_code == 2 and "no such bundle folder" in " ".join(r.output.split())
    (tmp_path / "empty").mkdir()
    r = runner.invoke(app, ["serve", "--model", str(tmp_path / "empty")])
    assert r.exit_code == 1 and "cannot load the model" in " ".join(r.output.split())
    assert "Example: vasari serve" in runner.invoke(app, ["serve", "--help"]).output


def test_serve_cli_serves(predictor, tmp_path):
    """`vasari serve` in a subprocess answers /readyz and a prediction, then stops on SIGTERM."""
    import subprocess
    import sys

    import httpx

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    model = predictor.bundle.path
    cmd = [sys.executable, "-c", "from vasari.cli import app; app()", "serve", "--port", str(port),
           "--max-upload-mb", "1", "--log-level", "warning"] + (["--model", str(model)] if model else [])
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 180
        while True:
            assert proc.poll() is None, proc.stdout.read().decode(errors="replace")
            try:
                if httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert time.monotonic() < deadline, "vasari serve did not become ready"
            time.sleep(0.2)
        url = f"http://127.0.0.1:{port}"
        r = httpx.post(f"{url}/api/v1/predict", files={"file": ("p.jpg", encode(sample()))}, timeout=60)
        assert r.status_code == 200 and r.json()["predictions"]
        assert_error(httpx.post(f"{url}/api/v1/predict", content=bytes(2 * 2**20), headers={"content-type": "image/jpeg"}), 413)
    finally:
        proc.terminate()
        proc.wait(20)


def test_decode_min_side_follows_the_bundle_views():
    # uploads are decoded like the files the heads were trained on (multicrop: crops at 2 x size)
    from vasari.backbones import VIEWS, backbone_spec
    from vasari.service import _decode_min_side

    sides = {}
    for views in VIEWS:
        spec = backbone_spec().with_views(views)
        sides[views] = _decode_min_side({"backbone": spec.to_dict()}, ServiceConfig())
        assert sides[views] == spec.draft_min_side
    assert sides == {"center": 234, "flip": 234, "multicrop": 416}
