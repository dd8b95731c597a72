"""Each router of the service on its own: mounted on a minimal FastAPI app with the error
handlers and a ``ServiceState`` around the REAL default bundle (vasari/models/default), or a
state not loaded yet given by a dependency override. No mocked model."""

from __future__ import annotations

import io

import pytest
from fastapi import APIRouter, FastAPI
from fastapi.testclient import TestClient
from PIL import Image

from vasari.inference.schema import BatchPredictions, Prediction
from vasari.service import ServiceConfig, ServiceState
from vasari.service.deps import service_state
from vasari.service.errors import install_error_handlers
from vasari.service.routers import model, ops, pages, predict


@pytest.fixture(scope="module")
def predictor():
    from vasari.inference.predictor import Predictor

    return Predictor.load()


def mounted(router: APIRouter, state: ServiceState, with_lifespan: bool = True) -> FastAPI:
    """A minimal app serving only ``router``, its state loaded and warmed at start-up."""
    app = FastAPI(lifespan=state.lifespan if with_lifespan else None, docs_url=None, redoc_url=None)
    install_error_handlers(app)
    app.include_router(router)
    app.state.vasari = state
    return app


def jpeg(size=(320, 240), colour=(140, 90, 60)) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", size, colour).save(buf, "JPEG")
    return buf.getvalue()


def test_ops_router_alone(predictor):
    with TestClient(mounted(ops.router, ServiceState(ServiceConfig(warmup=False), predictor))) as client:
        assert client.get("/healthz").json() == {"status": "ok"}
        ready = client.get("/readyz")
        assert ready.status_code == 200 and ready.json()["status"] == "ready"
        assert client.head("/readyz").status_code == 200


def test_ops_router_not_ready_by_dependency_override(predictor):
    """A state whose model has not loaded: /readyz says 503 + Retry-After, /healthz 200."""
    app = mounted(ops.router, ServiceState(ServiceConfig(), predictor), with_lifespan=False)
    loading = ServiceState(ServiceConfig(), predictor)
    loading.error = "BundleError: no heads.npz"
    app.dependency_overrides[service_state] = lambda: loading
    with TestClient(app) as client:
        assert client.get("/healthz").status_code == 200
        r = client.get("/readyz")
        assert r.status_code == 503 and r.headers["retry-after"] == "5"
        assert r.json() == {"error": {"code": "not_ready", "message": "BundleError: no heads.npz"}}


def test_model_router_alone(predictor):
    with TestClient(mounted(model.router, ServiceState(ServiceConfig(warmup=False), predictor))) as client:
        info = client.get("/api/v1/model").json()
        assert info["labels"] and info["service"]["max_top_k"] == 100 and "/" not in info.get("model", "")
        card = client.get("/api/v1/model/card")
        assert card.status_code == 200 and card.headers["content-type"].startswith("text/markdown")
        missing = client.get("/api/v1/thumbnails/0123456789abcdef0123")
        assert missing.status_code == 404 and missing.json()["error"]["code"] == "not_found"


def test_predict_router_alone(predictor):
    config = ServiceConfig(max_top_k=5, default_top_k=2)
    with TestClient(mounted(predict.build_router(config), ServiceState(config, predictor))) as client:
        one = client.post("/api/v1/predict", files={"file": ("a.jpg", jpeg(), "image/jpeg")})
        assert one.status_code == 200, one.text
        body = one.json()
        assert body["image"] == "a.jpg" and all(len(v) <= 2 for v in body["predictions"].values())
        assert "decode;dur=" in one.headers["server-timing"]
        many = client.post("/api/v1/predict/batch?top_k=1", files=[("files", ("b.jpg", jpeg(), "image/jpeg")),
                                                                    ("files", ("c.txt", b"text", "text/plain"))])
        assert many.status_code == 200
        good, bad = many.json()
        assert good["image"] == "b.jpg" and bad["error"]["code"] == "not_an_image"
        # the answers are the documented contract (the routes' response_model), field for field
        assert Prediction.model_validate(body).model_dump(mode="json") == body
        assert BatchPredictions.model_validate(many.json()).model_dump(mode="json") == many.json()
        too_many = client.post("/api/v1/predict?top_k=6", content=jpeg(), headers={"content-type": "image/jpeg"})
        assert too_many.status_code == 400 and too_many.json()["error"]["code"] == "bad_parameter"


def test_pages_router_alone(predictor, monkeypatch):
    monkeypatch.setattr(pages, "swagger_assets", lambda: None)
    app = mounted(pages.router, ServiceState(ServiceConfig(warmup=False), predictor), with_lifespan=False)
    pages.mount_assets(app)
    with TestClient(app) as client:
        for path in ("/", "/about"):
            r = client.get(path)
            assert r.status_code == 200 and r.headers["content-type"].startswith("text/html")
        guide = client.get("/api")
        assert "http://testserver" in guide.text and "__ORIGIN__" not in guide.text
        docs = client.get("/docs", follow_redirects=False)
        assert docs.status_code == 307 and docs.headers["location"] == "/api"
        assert client.get("/static/favicon.svg").status_code == 200
        assert client.get("/openapi.json").json()["paths"] == {}  # pages are not API operations
