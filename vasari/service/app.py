"""The web service: a page for museum visitors and a REST API for developers.

``create_app(predictor)`` builds a FastAPI app around one loaded ``Predictor``:

- ``POST /api/v1/predict``: one image (multipart field ``file``, or the raw image bytes as
  the body with an ``image/*`` or ``application/octet-stream`` content type) -> the
  prediction object of ``vasari predict --json``; ``?top_k=``.
- ``POST /api/v1/predict/batch``: several images (multipart field ``files``) -> an array.
- ``POST /api/v1/explain``: one image and a task -> the regions that drove its answer (JSON
  grid + PNG overlay, or ``?format=png``).
- ``GET /api/v1/model``: tasks, labels, backbone and model card.
- ``POST /api/v1/artists``: enrol a new artist from 5-20 images behind the operator's
  ``VASARI_ADMIN_TOKEN`` (``routers/artists.py``); the new bundle is then served.
- ``GET /healthz`` (the process answers), ``GET /readyz`` (the model is loaded and warm).
- ``GET /docs`` (Swagger UI from locally served assets) and ``GET /openapi.json``.
- ``GET /`` and ``GET /about``: the visitor page and the page explaining tasks, classes and
  the model card; every asset is served from ``vasari/web`` (nothing from a CDN).

Every error is ``{"error": {"code": ..., "message": ...}}`` with a precise status: 400 bad
parameters or request shape (malformed HTTP included), 405 wrong method, 408 upload stalled,
413 body too large (checked on Content-Length before reading, and again while streaming),
415 not an image, 422 corrupt or truncated image or decompression bomb, 503 not ready or
overloaded (with Retry-After). No input takes the server down: ``uvicorn_config`` serves
with header and body timeouts, a connection cap and a graceful-shutdown period, and the
work of clients that left is dropped before it is computed.

The pieces, as in FastAPI's full-stack template: ``config`` (ServiceConfig, the
environment), ``state`` + ``deps`` (the loaded model as a typed object), ``batching``
(MicroBatcher), ``middleware`` (body limits, security headers, clients that leave),
``server`` (uvicorn's protocol with header timeouts), ``errors``, ``uploads``,
``thumbnails`` and ``routers/`` (predict, model, ops, pages).
"""

from __future__ import annotations

from functools import partial
from typing import Any

from fastapi import FastAPI

import vasari
from vasari.service.config import API_PREFIX, ServiceConfig, model_from_env
from vasari.service.errors import install_error_handlers
from vasari.service.middleware import BodyLimitMiddleware, SecurityHeadersMiddleware
from vasari.service.routers import artists, explain, model, ops, pages, predict
from vasari.service.state import ServiceState

DESCRIPTION = (
    "Attribute European paintings (1401-1900) from an image: type, school, period, style "
    "and artist with calibrated probabilities, a year estimate with an interval, similar "
    "works and artist affinities. Errors are `{\"error\": {\"code\", \"message\"}}`."
)


def body_limit(config: ServiceConfig, path: str) -> int | None:
    """Largest body accepted on ``path``: a batch, one image, or 1 MB anywhere else."""
    if path.rstrip("/") in (f"{API_PREFIX}/predict/batch", f"{API_PREFIX}/artists"):
        return config.max_batch_upload_bytes
    if path.startswith(API_PREFIX):
        return config.max_upload_bytes
    return 1024 * 1024


def create_app(predictor: Any, config: ServiceConfig | None = None) -> FastAPI:
    """The FastAPI app serving ``predictor``.

    ``predictor`` is a loaded ``vasari.inference.predictor.Predictor`` (anything with
    ``predict_images(images, top_k)`` and ``info()``; with ``prepare_image`` and
    ``predict_prepared`` too, pictures are prepared in the decode threads), or a zero-argument callable (or a
    class, whose ``load()`` is called) that loads one: it is then loaded at start-up in a
    worker thread while ``/healthz`` already answers and ``/readyz`` says 503 until the
    model is warm.
    """
    config = config if config is not None else ServiceConfig()
    state = ServiceState(config, predictor)
    app = FastAPI(
        title="Vasari",
        version=vasari.__version__,
        description=DESCRIPTION,
        docs_url=None,
        redoc_url=None,
        openapi_url="/openapi.json",
        lifespan=state.lifespan,
    )
    app.state.vasari = state
    app.state.batcher = state.batcher
    app.state.config = config
    app.add_middleware(BodyLimitMiddleware, limit_for=partial(body_limit, config), timeout_s=config.body_timeout_s)
    install_error_handlers(app)
    app.include_router(predict.build_router(config))
    app.include_router(explain.router)
    app.include_router(model.router)
    app.include_router(artists.build_router())
    app.include_router(ops.router)
    app.include_router(pages.router)
    pages.mount_assets(app)
    app.add_middleware(SecurityHeadersMiddleware)
    return app


def create_app_from_env() -> FastAPI:
    """App factory for ``uvicorn --factory vasari.service.app:create_app_from_env``.

    Reads ``VASARI_MODEL`` (bundle dir; default bundle when unset), ``VASARI_CROP`` (1: crop
    museum photos to the painting), ``VASARI_MAX_UPLOAD_MB``, ``VASARI_BATCH_WINDOW_MS``,
    ``VASARI_MAX_BATCH`` and ``VASARI_INFERENCE_WORKERS``; the model loads in the background.
    """
    model_dir, crop = model_from_env()
    return create_app(partial(_load_predictor, model_dir, crop), ServiceConfig.from_env())


def _load_predictor(model_dir, crop: bool):
    """The predictor ``create_app_from_env`` serves (loaded at start-up, in the background)."""
    from vasari.inference.predictor import Predictor

    return Predictor.load(model_dir, crop=crop)
