"""The service's decode stage and its micro-batch gathering.

Uploads are decoded AND prepared for the network (``Predictor.prepare_image``: crop, views)
in the decode threads, so an inference worker finds its batch ready and only runs the
forward pass and the heads (``Predictor.predict_prepared``). A worker waits for requests
still decoding only while another batch keeps the cores busy. Against the REAL default
bundle (no mocked model), except for the batcher's own rules, which are shown on a plain
function of numbers.
"""

from __future__ import annotations

import threading

import numpy as np
from PIL import Image

from test_service import (  # noqa: F401  (predictor: a session-scoped fixture)
    POISON_SIZE,
    GatedPrepared,
    assert_error,
    assert_same_predictions,
    encode,
    held_batch,
    predictor,
    sample,
    wait_until,
)
from vasari.service import MicroBatcher, ServiceConfig, create_app


# --------------------------------------------------------------------------- the batcher's rules


def numbers_times_ten(items, top_k):
    return [{"value": 10 * item} for item in items]


def test_a_worker_does_not_wait_for_decoding_requests_when_nothing_else_computes():
    """A lone queued request runs at once even while another is still decoding (and its
    window is a minute): with no other batch running, waiting would only idle the cores."""
    batcher = MicroBatcher(numbers_times_ten, window_s=60.0, workers=1)
    batcher.start()
    try:
        with batcher.expecting():  # a request decoding, which will not arrive while we wait
            assert batcher.submit([4], 1).result(timeout=20) == [{"value": 40}]
        assert batcher.batches == 1 and batcher.computing == 0 and batcher.pending_images == 0
    finally:
        batcher.stop()


def test_a_worker_waits_for_decoding_requests_while_another_batch_computes():
    """While one worker's batch holds the cores, the next worker gathers the requests that
    finish decoding into one batch instead of running the first alone."""
    gate = threading.Event()
    calls: list[list[int]] = []

    def held_on_zero(items, top_k):
        calls.append(list(items))
        if items == [0]:
            assert gate.wait(60), "the test never opened the gate"
        return numbers_times_ten(items, top_k)

    batcher = MicroBatcher(held_on_zero, window_s=60.0, workers=2)
    batcher.start()
    try:
        held = batcher.submit([0], 1)
        wait_until(lambda: calls == [[0]] and batcher.computing == 1, "the first batch is computing")
        with batcher.expecting():  # two requests decoding; they are submitted one after the other
            first = batcher.submit([1], 1)
            second = batcher.submit([2], 1)
        assert first.result(timeout=20) == [{"value": 10}] and second.result(timeout=20) == [{"value": 20}]
        assert calls[1] == [1, 2], calls
        gate.set()
        assert held.result(timeout=20) == [{"value": 0}]
        assert batcher.pending_images == 0
    finally:
        gate.set()
        batcher.stop()


# --------------------------------------------------------------------------- the predictor's split


def test_predict_prepared_is_predict_images(predictor):
    """Preparing pictures apart and predicting them later gives the same answers as
    ``predict_images`` (the service's answers are those of the CLI)."""
    pictures = [sample((320, 240), seed=s) for s in (3, 4, 5)]
    prepared = [predictor.prepare_image(p) for p in pictures]
    assert all(item.views.dtype == np.uint8 and item.views.ndim == 4 for item in prepared)
    together = predictor.predict_prepared(prepared, top_k=3)
    for got, want in zip(together, predictor.predict_images(pictures, top_k=3)):
        assert_same_predictions(got, want, atol=1e-5)


# --------------------------------------------------------------------------- the service


def test_uploads_are_prepared_in_the_decode_threads(predictor):
    """Seven requests queued behind a running one are prepared outside the inference
    workers and reach the predictor as one batch of seven prepared pictures, each answered
    exactly as the predictor answers that picture alone."""
    from vasari.core.images import load_image

    pictures = [encode(sample((320, 240), seed=s), "JPEG") for s in range(20, 27)]
    requests = [{"files": {"file": (f"{i}.jpg", p)}} for i, p in enumerate(pictures)]
    responses, calls, app = held_batch(predictor, requests, gated_class=GatedPrepared)
    assert calls == [1, 7]
    gated = app.state.vasari.predictor
    assert len(gated.prepared_in) == 8 and not any(n.startswith("vasari-batcher") for n in gated.prepared_in)
    min_side = app.state.vasari.min_side
    for r, picture in zip(responses, pictures):
        assert r.status_code == 200, r.text
        alone = predictor.predict_images([load_image(picture, min_side=min_side)], top_k=3)[0]
        assert_same_predictions(r.json(), alone, atol=1e-4)


def test_a_bad_upload_among_queued_requests_fails_alone(predictor):
    """A truncated JPEG and a picture the model cannot prepare, sent among good ones while
    a batch is running: each gets its own error (422 corrupt, 500 prediction_failed) from
    the decode stage, and the good ones are computed together and answered 200."""
    good = [encode(sample((320, 240), seed=s), "PNG") for s in (31, 32)]
    truncated = encode(sample((320, 240), seed=33), "JPEG")[:200]
    poison = encode(Image.new("RGB", POISON_SIZE, (120, 90, 60)), "PNG")
    bodies = [good[0], truncated, poison, good[1]]
    requests = [{"files": {"file": (f"{i}.png", b)}} for i, b in enumerate(bodies)]
    responses, calls, _ = held_batch(predictor, requests, gated_class=GatedPrepared, queued=2)
    assert calls == [1, 2]
    assert_error(responses[1], 422, "corrupt")
    body = assert_error(responses[2], 500, "prediction_failed")
    assert "poisoned picture" in body["error"]["message"]
    assert responses[0].status_code == 200 and responses[3].status_code == 200


def test_batch_request_with_a_picture_that_cannot_be_prepared(predictor):
    """In /predict/batch the picture the model cannot prepare gets its own error object in
    its place, the others their predictions, and the server keeps answering."""
    from fastapi.testclient import TestClient

    gated = GatedPrepared(predictor)
    poison = encode(Image.new("RGB", POISON_SIZE, (120, 90, 60)), "PNG")
    files = [
        ("files", ("one.jpg", encode(sample((320, 240), seed=41)), "image/jpeg")),
        ("files", ("bad.png", poison, "image/png")),
        ("files", ("two.jpg", encode(sample((320, 240), seed=42)), "image/jpeg")),
    ]
    with TestClient(create_app(gated, ServiceConfig(warmup=False))) as c:
        r = c.post("/api/v1/predict/batch", files=files)
        assert r.status_code == 200, r.text
        out = r.json()
        assert [o["image"] for o in out] == ["one.jpg", "bad.png", "two.jpg"]
        assert out[1]["error"]["code"] == "prediction_failed" and "poisoned picture" in out[1]["error"]["message"]
        assert "predictions" in out[0] and "predictions" in out[2]
        assert gated.calls == [2]
        assert c.get("/healthz").status_code == 200


def test_museum_photo_is_cropped_in_the_decode_stage(predictor):
    """With a cropping predictor the painting is found while the upload is prepared; the
    answer has the crop (its box in the decoded picture's pixels) and equals the predictor's."""
    from fastapi.testclient import TestClient

    from vasari.core.images import load_image
    from vasari.inference.predictor import Predictor

    cropping = Predictor.load(predictor.bundle.path, crop=True)
    wall = Image.new("RGB", (800, 600), (214, 200, 176))
    rng = np.random.default_rng(3)
    wall.paste(Image.fromarray((rng.random((300, 300, 3)) * 60 + np.array([60, 90, 40])).astype(np.uint8)), (250, 150))
    photo = encode(wall, "JPEG", quality=92)
    with TestClient(create_app(cropping, ServiceConfig(warmup=False))) as c:
        answer = c.post("/api/v1/predict", files={"file": ("photo.jpg", photo)}).json()
        min_side = c.app.state.vasari.min_side
    decoded = load_image(photo, min_side=min_side)
    assert answer["crop"]["found"] and answer["crop"]["image_size"] == list(decoded.size), answer["crop"]
    alone = cropping.predict_images([decoded], top_k=3)[0]
    assert answer["crop"]["box"] == alone["crop"]["box"]
    assert_same_predictions(answer, alone, atol=1e-4)
