"""``POST /api/v1/explain`` on the app around a REAL bundle (the quadrant bundle of
``explain_data``: its "type" head reads a coloured square), and ``MicroBatcher.submit_call``,
which runs an explanation as one job on the batcher's workers."""

from __future__ import annotations

import base64
import io
import threading
import time

import numpy as np
import pytest
from fastapi.testclient import TestClient
from PIL import Image

from explain_data import quadrant_predictor
from vasari.explain.sanity import quadrant_picture, quadrant_share
from vasari.service import ServiceConfig, create_app
from vasari.service.batching import MicroBatcher
from vasari.service.errors import ServiceError


def png_bytes(image: Image.Image) -> bytes:
    out = io.BytesIO()
    image.save(out, "PNG")
    return out.getvalue()


@pytest.fixture(scope="module")
def client():
    with TestClient(create_app(quadrant_predictor(), ServiceConfig(shed_wait_s=None))) as c:
        yield c


@pytest.fixture(scope="module")
def blue_bottom_right() -> bytes:
    return png_bytes(quadrant_picture(np.random.default_rng(11), "still-life", "bottom-right"))


def test_explain_json_has_the_grid_and_a_decodable_overlay(client, blue_bottom_right):
    r = client.post("/api/v1/explain", files={"file": ("blue.png", blue_bottom_right, "image/png")},
                    data={"task": "type"})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["image"] == "blue.png" and body["task"] == "type" and body["label"] == "still-life"
    assert np.asarray(body["grid"]).shape == (7, 7)
    assert quadrant_share(np.asarray(body["grid"]), "bottom-right") >= 0.5
    overlay = Image.open(io.BytesIO(base64.b64decode(body["overlay_png"])))
    assert overlay.format == "PNG" and overlay.width >= 292


def test_explain_png_from_a_raw_body_with_query_task_and_label(client, blue_bottom_right):
    r = client.post("/api/v1/explain?task=type&label=portrait&format=png", content=blue_bottom_right,
                    headers={"content-type": "image/png"})
    assert r.status_code == 200 and r.headers["content-type"] == "image/png"
    assert Image.open(io.BytesIO(r.content)).height > 292


@pytest.mark.parametrize("query,data,status,code", [
    ("?task=artist", {}, 400, "bad_input"),          # this bundle answers "type" only
    ("?task=type&label=Rembrandt", {}, 400, "bad_input"),
    ("", {"task": "style"}, 400, "bad_input"),       # the form field overrides the query
])
def test_bad_task_or_label_is_400(client, blue_bottom_right, query, data, status, code):
    r = client.post(f"/api/v1/explain{query}", files={"file": ("b.png", blue_bottom_right, "image/png")}, data=data)
    assert r.status_code == status and r.json()["error"]["code"] == code


def test_upload_guards_are_those_of_predict(client):
    assert client.post("/api/v1/explain?task=type", files={"file": ("x.jpg", b"not an image", "image/jpeg")}
                       ).status_code == 415
    missing = client.post("/api/v1/explain", files={"other": ("x.png", b"x", "image/png")})
    assert missing.status_code == 400 and missing.json()["error"]["code"] == "missing_file"
    assert client.post("/api/v1/explain", content=b"", headers={"content-type": "image/png"}).status_code == 400


def test_openapi_documents_the_route_and_its_statuses(client):
    op = client.get("/openapi.json").json()["paths"]["/api/v1/explain"]["post"]
    assert {"200", "400", "408", "413", "415", "422", "500", "503"} <= set(op["responses"])
    assert {"application/json", "image/png"} <= set(op["responses"]["200"]["content"])
    assert "multipart/form-data" in op["requestBody"]["content"]


def test_cards_of_one_upload_share_one_network_run_and_the_cache_is_bounded(monkeypatch, blue_bottom_right):
    """The page's "Why?" under each card sends the same picture: only the first runs the
    network (counted on the REAL predictor's embedder); another picture runs it again, and
    past ``explain_cache_size`` pictures the least recently explained one is forgotten."""
    predictor = quadrant_predictor()
    runs = []
    forward = predictor.embedder.forward
    monkeypatch.setattr(predictor.embedder, "forward", lambda batch: runs.append(len(batch)) or forward(batch))
    rng = np.random.default_rng(12)
    red, green = (png_bytes(quadrant_picture(rng, label, "top-left")) for label in ("portrait", "landscape"))
    with TestClient(create_app(predictor, ServiceConfig(shed_wait_s=None, explain_cache_size=2, warmup=False))) as c:
        batcher, costs = c.app.state.vasari.batcher, []
        submit_call = batcher.submit_call
        monkeypatch.setattr(batcher, "submit_call", lambda fn, cost: costs.append(cost) or submit_call(fn, cost))

        def explain(data: bytes, **form) -> dict:
            r = c.post("/api/v1/explain", files={"file": ("p.png", data, "image/png")}, data=form)
            assert r.status_code == 200, r.text
            return r.json()

        first = explain(blue_bottom_right, task="type")
        again = explain(blue_bottom_right, task="type")
        asked = explain(blue_bottom_right, task="type", label="portrait")
        assert runs == [65]  # one run: the picture and its 64 occluded copies
        assert costs == [65, 1, 1]  # booked (and shed) at what each will cost: a cached one is one picture
        assert {k: v for k, v in again.items() if k != "seconds"} == {k: v for k, v in first.items() if k != "seconds"}
        assert asked["label"] == "portrait" and not asked["answered"] and asked["grid"] != first["grid"]

        explain(red, task="type")
        assert len(runs) == 2  # another upload: its own run
        explain(green, task="type")  # 3 pictures, room for 2: the blue one (least recent) goes
        assert len(runs) == 3 and len(c.app.state.vasari.explain_cache) == 2
        explain(green, task="type")
        assert len(runs) == 3
        assert explain(blue_bottom_right, task="type")["grid"] == first["grid"]
        assert len(runs) == 4


def test_the_score_cache_forgets_the_least_recent_and_another_predictors_scores():
    from vasari.errors import InputError
    from vasari.explain.cache import ScoreCache, Scores

    class Model:  # anything a weak reference can point to
        pass

    old, new = Model(), Model()
    cache = ScoreCache(2)
    for key in "abc":
        cache.put(key, old, Scores({"type": np.zeros((1, 3))}, None))
        cache.get("a", old)  # "a" stays the most recent
    assert len(cache) == 2 and cache.get("b", old) is None and cache.get("a", old) is not None
    assert cache.get("c", new) is None and len(cache) == 1  # scored by the model served before
    off = ScoreCache(0)
    off.put("a", old, Scores({}, None))
    assert len(off) == 0
    with pytest.raises(InputError, match="cache size"):
        ScoreCache(-1)


def test_a_predictor_without_heads_cannot_be_explained():
    class Minimal:
        def predict_images(self, images, top_k):
            return [{"predictions": {}, "verdict": {}} for _ in images]

        def info(self):
            return {}

    with TestClient(create_app(Minimal(), ServiceConfig(warmup=False))) as c:
        r = c.post("/api/v1/explain", content=b"x", headers={"content-type": "image/png"})
    assert r.status_code == 503 and r.json()["error"]["code"] == "not_supported"


# ----------------------------------------------------------------------------- submit_call


def test_submit_call_runs_alone_in_queue_order_and_counts_its_cost():
    seen: list = []
    gate = threading.Event()

    def predict(images, top_k):
        gate.wait(5)
        seen.append(list(images))
        return [{"predictions": {}} for _ in images]

    batcher = MicroBatcher(predict, max_batch=8, workers=1)
    batcher.start()
    try:
        first = batcher.submit(["a"], 1)  # holds the worker until the gate opens
        time.sleep(0.05)
        call = batcher.submit_call(lambda: seen.append("call") or "done", cost=65)
        after = batcher.submit(["b"], 1)
        assert batcher.pending_images == 67
        gate.set()
        assert call.result(5) == "done" and first.result(5) and after.result(5)
        assert seen == [["a"], "call", ["b"]] and batcher.pending_images == 0
        failing = batcher.submit_call(lambda: 1 / 0, cost=3)
        with pytest.raises(ZeroDivisionError):
            failing.result(5)
        assert batcher.pending_images == 0
    finally:
        batcher.stop()
    with pytest.raises(ServiceError, match="not running"):
        batcher.submit_call(lambda: None, cost=1).result(1)
