"""The web service (vasari.service) against a REAL predictor: the default bundle shipped in
vasari/models/default. Every endpoint is exercised, then a long list of bad inputs, each with
its status, error code, and the server still answering /healthz afterwards; then overload,
stalled and vanishing clients against a real uvicorn server on 127.0.0.1.
"""

from __future__ import annotations

import io
import json
import logging
import re
import socket
import struct
import threading
import time
import zlib

import numpy as np
import pytest
from PIL import Image

from vasari.service import ServiceConfig, create_app, uvicorn_config

# --------------------------------------------------------------------------- real model

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


@pytest.fixture(scope="session")
def predictor():
    """The default bundle shipped in vasari/models/default, loaded strictly: a shipped
    bundle that does not load fails these tests (no fallback model)."""
    from vasari.inference.predictor import Predictor

    return Predictor.load()


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
    from vasari.core.images import load_image

    a = client.post("/api/v1/predict", files={"file": ("a.jpg", jpeg)}).json()
    b = client.post("/api/v1/predict", files={"file": ("a.jpg", jpeg)}).json()
    assert a["predictions"] == b["predictions"]
    min_side = client.app.state.vasari.min_side
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


def assert_same_predictions(a: dict, b: dict, atol: float = 1e-6) -> None:
    """Same labels in the same order and the same scores, task by task."""
    assert set(a["predictions"]) == set(b["predictions"])
    for task, items in a["predictions"].items():
        assert [i["label"] for i in items] == [i["label"] for i in b["predictions"][task]], task
        assert np.allclose([i["score"] for i in items], [i["score"] for i in b["predictions"][task]], atol=atol), task


#: A picture of exactly this size makes ``Gated`` raise, as a predictor failing on one image would.
POISON_SIZE = (123, 77)


class Gated:
    """The REAL predictor behind a gate: each call records how many images it got, then
    waits for ``gate``; a batch holding a ``POISON_SIZE`` picture raises."""

    def __init__(self, predictor):
        self.predictor = predictor
        self.bundle = predictor.bundle
        self.gate = threading.Event()
        self.gate.set()
        self.calls: list[int] = []

    def predict_images(self, images, top_k=3):
        self.calls.append(len(images))
        assert self.gate.wait(60), "the test never opened the gate"
        if any(image.size == POISON_SIZE for image in images):
            raise ValueError("poisoned picture")
        return self.predictor.predict_images(images, top_k=top_k)

    def info(self):
        return self.predictor.info()


class GatedPrepared(Gated):
    """``Gated`` with the predictor's split into ``prepare_image`` (run by the service in its
    decode threads, whose names are noted; a ``POISON_SIZE`` picture raises there) and
    ``predict_prepared`` (held by the gate, like ``Gated.predict_images``)."""

    def __init__(self, predictor):
        super().__init__(predictor)
        self.prepared_in: list[str] = []

    def prepare_image(self, image):
        self.prepared_in.append(threading.current_thread().name)
        if image.size == POISON_SIZE:
            raise ValueError("poisoned picture")
        return self.predictor.prepare_image(image)

    def predict_prepared(self, items, top_k=3):
        self.calls.append(len(items))
        assert self.gate.wait(60), "the test never opened the gate"
        return self.predictor.predict_prepared(items, top_k=top_k)


def wait_until(condition, what: str, seconds: float = 60) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting until {what}"
        time.sleep(0.01)


#: One inference worker: while the gate holds the first batch, every later request must queue
#: (with the default two, a second worker would take some of them as a batch of its own).
ONE_WORKER = ServiceConfig(warmup=False, inference_workers=1)


def held_batch(predictor, requests: list[dict], config: ServiceConfig = ONE_WORKER, gated_class: type = Gated,
               queued: int | None = None):
    """Post a first picture, hold the predictor on it until every one of ``requests``
    (kwargs of ``client.post("/api/v1/predict", ...)``) is queued (``queued`` of them when
    some are refused before the queue), then let all run.
    Returns (responses in order, images per predictor call, the app)."""
    from concurrent.futures import ThreadPoolExecutor

    from fastapi.testclient import TestClient

    queued = len(requests) if queued is None else queued
    gated = gated_class(predictor)
    app = create_app(gated, config)
    batcher = app.state.batcher
    first = {"files": {"file": ("first.jpg", encode(sample((320, 240), seed=40)))}}
    with TestClient(app, raise_server_exceptions=False) as c, ThreadPoolExecutor(len(requests) + 1) as pool:
        gated.gate.clear()
        held = pool.submit(c.post, "/api/v1/predict", **first)
        wait_until(lambda: gated.calls == [1], "the first picture reached the predictor")
        futures = [pool.submit(c.post, "/api/v1/predict", **kw) for kw in requests]
        wait_until(lambda: batcher.pending_images == 1 + queued, "every request is queued")
        if queued < len(requests):  # the refused ones are answered without the predictor
            wait_until(lambda: sum(f.done() for f in futures) == len(requests) - queued, "the refusals are answered")
        gated.gate.set()
        assert held.result(timeout=120).status_code == 200
        return [f.result(timeout=120) for f in futures], gated.calls, app


def test_waiting_requests_share_one_forward_pass(predictor):
    """Seven requests queued behind a running one go through the predictor as ONE batch of
    seven, each answered exactly as a lone request is answered."""
    pictures = [encode(sample((320, 240), seed=s), "JPEG") for s in range(7)]
    responses, calls, app = held_batch(predictor, [{"files": {"file": (f"{i}.jpg", p)}} for i, p in enumerate(pictures)])
    assert calls == [1, 7]
    assert app.state.batcher.batches == 2
    from vasari.core.images import load_image

    min_side = app.state.vasari.min_side
    for r, picture in zip(responses, pictures):
        assert r.status_code == 200, r.text
        assert 'batch;desc="7 image(s)' in r.headers["server-timing"]
        alone = predictor.predict_images([load_image(picture, min_side=min_side)], top_k=3)[0]
        assert_same_predictions(r.json(), alone, atol=1e-4)


def test_one_failing_image_does_not_fail_its_batch(predictor):
    """A micro-batch with one picture the model fails on: the others get 200 and their own
    predictions, the bad one a 500 naming the model's error."""
    from vasari.core.images import load_image

    good = [encode(sample((320, 240), seed=s), "PNG") for s in (11, 12)]
    poison = encode(Image.new("RGB", POISON_SIZE, (120, 90, 60)), "PNG")
    bodies = [good[0], poison, good[1]]
    responses, calls, app = held_batch(predictor, [{"files": {"file": (f"{i}.png", b)}} for i, b in enumerate(bodies)])
    assert calls[:2] == [1, 3] and sorted(calls[2:]) == [1, 1, 1]  # the batch failed, then one by one
    body = assert_error(responses[1], 500, "prediction_failed")
    assert "poisoned picture" in body["error"]["message"]
    min_side = app.state.vasari.min_side
    for r, data in ((responses[0], good[0]), (responses[2], good[1])):
        assert r.status_code == 200, r.text
        assert_same_predictions(r.json(), predictor.predict_images([load_image(data, min_side=min_side)], top_k=3)[0], 1e-4)


def test_mixed_top_k_in_one_batch(predictor, info):
    """Requests asking top_k 1, 2 and 5 computed in one batch each get their own length."""
    picture = encode(sample((320, 240), seed=5))
    asked = [1, 2, 5]
    requests = [{"params": {"top_k": k}, "files": {"file": ("p.jpg", picture)}} for k in asked]
    responses, calls, _ = held_batch(predictor, requests)
    assert calls == [1, 3]
    longest = responses[-1].json()["predictions"]
    for k, r in zip(asked, responses):
        assert r.status_code == 200, r.text
        for task, items in r.json()["predictions"].items():
            assert len(items) == min(k, len(info["labels"][task])), (k, task)
            assert items == longest[task][: len(items)]


@pytest.mark.parametrize("gated_class", [Gated, GatedPrepared])
def test_overload_is_shed_early_with_retry_after(predictor, jpeg, gated_class):
    """With pictures waiting longer than shed_wait_s (by the measured seconds per image),
    a new request is answered 503 + Retry-After at once; below it, it is served (whether
    or not the predictor has its pictures prepared in the decode threads)."""
    from concurrent.futures import ThreadPoolExecutor

    from fastapi.testclient import TestClient

    gated = gated_class(predictor)
    app = create_app(gated, ServiceConfig(warmup=False, shed_wait_s=1.5, inference_workers=1))
    batcher = app.state.batcher
    with TestClient(app) as c, ThreadPoolExecutor(2) as pool:
        gated.gate.clear()
        held = pool.submit(c.post, "/api/v1/predict", content=jpeg, headers={"content-type": "image/jpeg"})
        wait_until(lambda: gated.calls == [1], "the first picture reached the predictor")
        batcher.seconds_per_image = 2.0  # one picture ahead at 2 s each: 2 s expected > 1.5 s
        r = c.post("/api/v1/predict", content=jpeg, headers={"content-type": "image/jpeg"})
        body = assert_error(r, 503, "overloaded")
        assert r.headers["retry-after"] == "2" and "busy" in body["error"]["message"]
        assert_error(c.post("/api/v1/predict/batch", files=[("files", ("a.jpg", jpeg))]), 503, "overloaded")
        assert c.get("/healthz").status_code == 200
        batcher.seconds_per_image = 1.0  # 1 s expected <= 1.5 s: admitted
        admitted = pool.submit(c.post, "/api/v1/predict", content=jpeg, headers={"content-type": "image/jpeg"})
        wait_until(lambda: batcher.pending_images == 2, "the admitted request is queued")
        gated.gate.set()
        assert held.result(timeout=120).status_code == 200 and admitted.result(timeout=120).status_code == 200
    assert gated.calls == [1, 1]


def test_default_bundle_recognises_a_known_painting(client, shared_data):
    """The shipped bundle on a Monet of the shared data: artist, style, school and period
    right with a wide margin, and similar works by Monet."""
    path = shared_data / "artists7" / "images" / "images" / "Claude_Monet" / "Claude_Monet_10.jpg"
    if not path.is_file():
        pytest.skip(f"{path} is not in this copy of the shared data")
    r = client.post("/api/v1/predict", files={"file": (path.name, path.read_bytes(), "image/jpeg")})
    assert r.status_code == 200, r.text
    result = r.json()
    expected = {"artist": "Claude Monet", "style": "Impressionism", "school": "French", "timeframe": "1851-1900"}
    for task, label in expected.items():
        top = result["predictions"][task][0]
        assert top["label"] == label and top["score"] > 0.7, (task, result["predictions"][task])
        assert result["verdict"][task] in (label, "unknown")  # out-of-source thresholds: never a wrong claim
    assert 1820 <= result["year"]["estimate"] <= 1926
    assert result["similar"][0]["artist"] == "Claude Monet"


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

    from vasari.service.routers import pages

    monkeypatch.setattr(pages, "swagger_assets", lambda: None)
    with TestClient(create_app(predictor, ServiceConfig(warmup=False))) as c:
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
    from vasari.core import labels as vocab

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
    assert result["similar"] and (result["affinity"] or result["novelty"]["novel"])  # issue #14: none when novel
    for item in result["similar"]:
        assert {"artwork_id", "title", "artist", "year", "score"} <= set(item)
        if "thumbnail" in item:
            assert item["thumbnail"].startswith("/api/v1/thumbnails/"), item
            r = client.get(item["thumbnail"])
            assert r.status_code == 200 and r.headers["content-type"] == "image/jpeg"
            assert Image.open(io.BytesIO(r.content)).size[0] > 0
    from vasari.core.paths import shared_data_dir

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


@pytest.mark.parametrize("fmt", ["PNG", "JPEG"])
def test_format_sniffed_not_extension(client, fmt):
    """The same bytes under an honest and a lying name / content type (multipart and raw
    body) give the same prediction: images are read by content."""
    data = encode(sample((1024, 768), seed=7), fmt)  # big enough for a reduced JPEG decode
    honest, liar = (("x.png", "image/png"), ("x.jpg", "image/jpeg"))[:: 1 if fmt == "PNG" else -1]
    answers = [
        client.post("/api/v1/predict", files={"file": (honest[0], data, honest[1])}),
        client.post("/api/v1/predict", files={"file": (liar[0], data, liar[1])}),
        client.post("/api/v1/predict", content=data, headers={"content-type": liar[1]}),
        client.post("/api/v1/predict", content=data, headers={"content-type": "application/octet-stream"}),
    ]
    assert [r.status_code for r in answers] == [200] * 4, [r.text[:200] for r in answers]
    for r in answers[1:]:
        assert_same_predictions(answers[0].json(), r.json())


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
        self.server = uvicorn.Server(uvicorn_config(app, app.state.config, port=self.port, log_level="warning"))
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


def raw_connection(live: "LiveServer", timeout: float = 10.0) -> socket.socket:
    return socket.create_connection(("127.0.0.1", live.port), timeout=timeout)


def read_until_closed(sock: socket.socket, seconds: float) -> tuple[bytes, bool]:
    """Everything the server sends until it closes the connection (True) or ``seconds`` pass."""
    data, deadline = b"", time.monotonic() + seconds
    while time.monotonic() < deadline:
        sock.settimeout(max(0.05, deadline - time.monotonic()))
        try:
            chunk = sock.recv(65536)
        except socket.timeout:
            break
        except ConnectionResetError:
            return data, True
        if not chunk:
            return data, True
        data += chunk
    return data, False


def half_upload(sock: socket.socket, sent: int = 18 * 1024, declared: int = 2**20) -> None:
    """Headers declaring ``declared`` bytes of JPEG, then only ``sent`` of them."""
    head = f"POST /api/v1/predict HTTP/1.1\r\nHost: x\r\nContent-Type: image/jpeg\r\nContent-Length: {declared}\r\n\r\n"
    sock.sendall(head.encode() + b"\xff\xd8\xff" + bytes(sent - 3))


class Recorded(logging.Handler):
    """Log records of the service and of uvicorn, while a test runs."""

    NAMES = ("vasari.service", "uvicorn", "uvicorn.error")

    def __init__(self):
        super().__init__(logging.DEBUG)
        self.records: list[logging.LogRecord] = []

    def emit(self, record):
        self.records.append(record)

    def __enter__(self):
        self.levels = {}
        for name in self.NAMES:
            logger = logging.getLogger(name)
            self.levels[name] = logger.level
            logger.setLevel(logging.INFO)
            logger.addHandler(self)
        return self

    def __exit__(self, *exc):
        for name in self.NAMES:
            logging.getLogger(name).removeHandler(self)
            logging.getLogger(name).setLevel(self.levels[name])

    def lines(self, level: int = logging.DEBUG) -> list[str]:
        return [r.getMessage() for r in self.records if r.levelno >= level]


def test_stalled_body_is_dropped_within_the_body_timeout(predictor):
    """18 KB of a declared 1 MB, then nothing: 408 JSON and the connection closed after the
    (short, configured) body timeout, while other clients are served."""
    import httpx

    with LiveServer(create_app(predictor, ServiceConfig(warmup=False, body_timeout_s=2))) as live:
        with raw_connection(live) as sock:
            half_upload(sock)
            data, closed = read_until_closed(sock, 10)
        assert closed, "the stalled upload was not dropped within 10 s"
        assert data.startswith(b"HTTP/1.1 408"), data[:200]
        assert json.loads(data.split(b"\r\n\r\n", 1)[1])["error"]["code"] == "body_timeout"
        assert httpx.get(f"{live.url}/healthz", timeout=10).status_code == 200


def test_slow_headers_are_dropped_within_the_header_timeout(predictor):
    """Headers sent a byte every 0.1 s (slowloris) are cut off after the header timeout."""
    request = b"GET /healthz HTTP/1.1\r\nHost: x\r\n" + b"X-Slow: " + b"a" * 200
    with LiveServer(create_app(predictor, ServiceConfig(warmup=False, header_timeout_s=2))) as live:
        with raw_connection(live) as sock:
            closed = False
            for byte in request:  # at most ~20 s of bytes; the server must close within ~2 s
                try:
                    sock.sendall(bytes([byte]))
                except OSError:
                    closed = True
                    break
                data, closed = read_until_closed(sock, 0.1)
                if closed:
                    break
        assert closed, "a client sending headers a byte at a time was never cut off"


def test_idle_connections_are_capped_and_healthz_answers(predictor):
    """Three times more idle half-open connections than ``max_connections``: the oldest
    idle ones are closed, the server keeps at most the cap, /healthz answers."""
    import httpx

    cap = 40
    config = ServiceConfig(warmup=False, max_connections=cap, header_timeout_s=120)
    with LiveServer(create_app(predictor, config)) as live:
        idle = []
        try:
            for _ in range(3 * cap):
                sock = raw_connection(live)
                sock.sendall(b"GET /healthz HTTP/1.1\r\nHo")
                idle.append(sock)
            r = httpx.get(f"{live.url}/healthz", timeout=10)
            assert r.status_code == 200 and r.json() == {"status": "ok"}
            wait_until(lambda: len(live.server.server_state.connections) <= cap, "the server holds at most the cap", 10)
            assert read_until_closed(idle[0], 5)[1], "the oldest idle connection is still open"
        finally:
            for sock in idle:
                sock.close()


def test_malformed_request_gets_a_json_400(predictor):
    with LiveServer(create_app(predictor, ServiceConfig(warmup=False))) as live:
        with raw_connection(live) as sock:
            sock.sendall(b"THIS IS NOT HTTP\r\n\r\n")
            data, closed = read_until_closed(sock, 10)
    head, _, body = data.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 400") and closed, data[:300]
    assert b"content-type: application/json" in head.lower()
    assert json.loads(body)["error"]["code"] == "bad_request"


def test_endless_headers_get_a_json_400_and_a_body_in_the_same_read_does_not(predictor, jpeg):
    """Headers streamed past ``max_header_bytes`` without an end: 400 JSON, connection
    closed. A request whose small headers and 3 body-sized reads arrive at once is served."""
    config = ServiceConfig(warmup=False, max_header_bytes=8 * 1024)
    with LiveServer(create_app(predictor, config)) as live:
        with raw_connection(live) as sock:
            sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * (64 * 1024))
            data, closed = read_until_closed(sock, 10)
        head, _, body = data.partition(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 400") and closed, data[:300]
        assert "8192 bytes" in json.loads(body)["error"]["message"]
        picture = jpeg * 3 if len(jpeg) > config.max_header_bytes else jpeg + bytes(3 * config.max_header_bytes)
        with raw_connection(live, timeout=60) as sock:  # the JPEG decoder ignores bytes after its end marker
            sock.sendall(b"POST /api/v1/predict HTTP/1.1\r\nHost: x\r\nContent-Type: image/jpeg\r\n"
                         b"Connection: close\r\nContent-Length: %d\r\n\r\n" % len(picture) + picture)
            data, closed = read_until_closed(sock, 60)
        assert data.startswith(b"HTTP/1.1 200"), data[:300]


def test_client_leaving_mid_upload_is_one_log_line_not_a_500(predictor, jpeg):
    """3 bytes of a declared 1000, then the client closes: one INFO line, no error logged."""
    import httpx

    with Recorded() as logs, LiveServer(create_app(predictor, ServiceConfig(warmup=False))) as live:
        with raw_connection(live) as sock:
            half_upload(sock, sent=3, declared=1000)
        wait_until(lambda: any("left before the answer" in line for line in logs.lines()), "the departure is logged", 10)
        assert httpx.post(f"{live.url}/api/v1/predict", content=jpeg, headers={"content-type": "image/jpeg"}, timeout=60).status_code == 200
    assert logs.lines(logging.WARNING) == []
    assert sum("left before the answer" in line for line in logs.lines()) == 1
    assert not any(r.exc_info for r in logs.records)


@pytest.mark.parametrize("gated_class", [Gated, GatedPrepared])
def test_work_of_a_client_that_left_is_dropped(predictor, jpeg, gated_class):
    """A client that sent its picture and left while it waited in the queue: the picture is
    never computed (the predictor only sees the request that stayed) and its place in the
    queue is freed, prepared in the decode threads or not."""
    import httpx
    from concurrent.futures import ThreadPoolExecutor

    gated = gated_class(predictor)
    app = create_app(gated, ONE_WORKER)
    with Recorded() as logs, LiveServer(app) as live, ThreadPoolExecutor(1) as pool:
        gated.gate.clear()
        stays = pool.submit(httpx.post, f"{live.url}/api/v1/predict", content=jpeg,
                            headers={"content-type": "image/jpeg"}, timeout=60)
        wait_until(lambda: gated.calls == [1], "the first picture reached the predictor")
        with raw_connection(live) as sock:
            head = f"POST /api/v1/predict HTTP/1.1\r\nHost: x\r\nContent-Type: image/jpeg\r\nContent-Length: {len(jpeg)}\r\n\r\n"
            sock.sendall(head.encode() + jpeg)
            wait_until(lambda: app.state.batcher.pending_images == 2, "the leaving client's picture is queued")
        wait_until(lambda: any("left before the answer" in line for line in logs.lines()), "the departure is noticed", 10)
        gated.gate.set()
        assert stays.result(timeout=120).status_code == 200
        wait_until(lambda: app.state.batcher.dropped == 1, "the queued job is dropped", 10)
        assert gated.calls == [1] and app.state.batcher.pending_images == 0


def test_head_probes_and_api_page_origin_and_docs_link(client):
    assert client.head("/healthz").status_code == 200
    assert client.head("/readyz").status_code == 200
    page = client.get("/api", headers={"host": "vasari.example.org:9123"}).text
    assert "http://vasari.example.org:9123/api/v1/predict" in page and "127.0.0.1:8000" not in page
    assert "__ORIGIN__" not in page
    docs = client.get("/docs").text
    if "swagger" in docs.lower():  # the offline Swagger UI is installed
        assert '<a href="/">' in docs


def test_unexpected_error_is_a_json_500(predictor):
    """An exception no handler expects is answered 500 in the JSON error format, without
    the exception's message (which may hold server paths)."""
    from fastapi.testclient import TestClient

    app = create_app(predictor, ServiceConfig(warmup=False))

    async def broken():
        raise RuntimeError("secret /srv/path")

    app.add_api_route("/broken", broken)
    with Recorded() as logs, TestClient(app, raise_server_exceptions=False) as c:
        body = assert_error(c.get("/broken"), 500, "internal")
        assert body["error"]["message"] == "internal error: RuntimeError"
        assert c.get("/healthz").status_code == 200
    assert any("unhandled error on /broken" in line for line in logs.lines(logging.ERROR))


def test_tampered_gallery_cannot_serve_files_outside_the_data(predictor, tmp_path, jpeg):
    """Gallery metadata rows pointing at /etc/passwd or escaping the data folder with
    shared-data:../..: no thumbnail URL is handed out and nothing outside is served."""
    import csv
    import shutil

    from fastapi.testclient import TestClient

    from vasari.inference.predictor import Predictor

    bundle = tmp_path / "bundle"
    shutil.copytree(predictor.bundle.path, bundle)
    secret = tmp_path / "secret.jpg"
    secret.write_bytes(jpeg)  # a real picture, outside every allowed folder
    meta = bundle / "index" / "metadata.csv"
    with meta.open(newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    fields = list(rows[0])
    escapes = [str(secret), "shared-data:" + "../" * 12 + str(secret).lstrip("/"), "/etc/passwd"]
    for i, row in enumerate(rows):
        row["image"] = escapes[i % len(escapes)]
    with meta.open("w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, fieldnames=fields)
        writer.writeheader()
        writer.writerows(rows)
    tampered = Predictor.load(bundle)
    with TestClient(create_app(tampered, ServiceConfig(warmup=False))) as c:
        result = c.post("/api/v1/predict", content=jpeg, headers={"content-type": "image/jpeg"}).json()
        assert result["similar"], result
        items = result["similar"] + [e for a in result.get("affinity") or [] for e in a.get("evidence") or []]
        assert not [item for item in items if "thumbnail" in item], items
        assert c.app.state.vasari.predictor is tampered
    assert tampered.index.metadata[1]["image"] is None  # the escaping shared-data row resolves to nothing


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
    """`vasari serve` in a subprocess answers /readyz and a prediction; on SIGTERM with an
    upload stalled half-way (and a body timeout far away) it exits after its grace period."""
    import subprocess
    import sys

    import httpx

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    model = predictor.bundle.path
    cmd = [sys.executable, "-c", "from vasari.cli import app; app()", "serve", "--port", str(port),
           "--max-upload-mb", "2", "--graceful-shutdown-s", "2", "--body-timeout-s", "300",
           "--log-level", "warning"] + (["--model", str(model)] if model else [])
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
        assert_error(httpx.post(f"{url}/api/v1/predict", content=bytes(3 * 2**20), headers={"content-type": "image/jpeg"}), 413)
        with socket.create_connection(("127.0.0.1", port), timeout=10) as stalled:
            half_upload(stalled)
            time.sleep(0.5)  # the request is in the app, waiting for the rest of its body
            proc.terminate()
            try:
                proc.wait(30)  # grace period 2 s; without one uvicorn waits for the body forever
            except subprocess.TimeoutExpired:
                pytest.fail("vasari serve did not exit within 30 s of SIGTERM with a half-sent upload")
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(20)


def test_decode_min_side_follows_the_bundle_views():
    # uploads are decoded like the files the heads were trained on (multicrop: crops at 2 x size)
    from vasari.features import VIEWS, backbone_spec
    from vasari.service.state import decode_min_side

    sides = {}
    for views in VIEWS:
        spec = backbone_spec().with_views(views)
        sides[views] = decode_min_side({"backbone": spec.to_dict()}, ServiceConfig())
        assert sides[views] == spec.draft_min_side
    assert sides == {"center": 234, "flip": 234, "multicrop": 416}


def test_uploads_decode_at_most_decode_threads_at_once(predictor, jpeg, monkeypatch):
    """Eight requests at once with ``decode_threads=2``: every one is answered, and no more
    than two decodes ever run together (more threads than cores only take turns with the
    network's streams: the service's CPU per request rose)."""
    import threading
    import time
    from concurrent.futures import ThreadPoolExecutor

    from fastapi.testclient import TestClient

    from vasari.service import uploads

    lock, running, most = threading.Lock(), [0], [0]
    decode = uploads.load_image

    def counted(*args, **kwargs):
        with lock:
            running[0] += 1
            most[0] = max(most[0], running[0])
        try:
            time.sleep(0.2)  # long enough for the others to pile up behind the limiter
            return decode(*args, **kwargs)
        finally:
            with lock:
                running[0] -= 1

    monkeypatch.setattr(uploads, "load_image", counted)
    for threads, bound in ((2, lambda m: m <= 2), (8, lambda m: m > 2)):  # 8: the requests do overlap here
        most[0] = 0
        app = create_app(predictor, ServiceConfig(decode_threads=threads, warmup=False, shed_wait_s=None))
        with TestClient(app) as c, ThreadPoolExecutor(8) as pool:
            post = lambda _: c.post("/api/v1/predict", files={"file": ("a.jpg", jpeg, "image/jpeg")}).status_code
            assert list(pool.map(post, range(8))) == [200] * 8
        assert bound(most[0]), (threads, most[0])
