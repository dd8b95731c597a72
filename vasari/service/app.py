"""The web service: a page for museum visitors and a REST API for developers.

``create_app(predictor)`` builds a FastAPI app around one loaded ``Predictor``:

- ``POST /api/v1/predict``: one image (multipart field ``file``, or the raw image bytes as
  the body with an ``image/*`` or ``application/octet-stream`` content type) -> the
  prediction object of ``vasari predict --json``; ``?top_k=``.
- ``POST /api/v1/predict/batch``: several images (multipart field ``files``) -> an array.
- ``GET /api/v1/model``: tasks, labels, backbone and model card.
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

Inference never runs on the event loop: images are decoded in the thread pool and handed to
a ``MicroBatcher`` thread that feeds the predictor. When several requests are waiting it
runs them as one embedder batch (and waits at most ``batch_window_ms`` for requests that
are still being decoded), so concurrent clients share one forward pass.
"""

from __future__ import annotations

import asyncio
import collections
import concurrent.futures
import contextlib
import hashlib
import html
import json
import logging
import math
import os
import queue
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

from fastapi import FastAPI, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import FileResponse, HTMLResponse, JSONResponse, PlainTextResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.requests import ClientDisconnect

import vasari
from vasari.core.images import ImageError, ImageLimits, load_image

log = logging.getLogger("vasari.service.app")

WEB_DIR = Path(__file__).resolve().parent.parent / "web"
API_PREFIX = "/api/v1"


@dataclass(frozen=True)
class ServiceConfig:
    """Limits and tuning of the service (``vasari serve`` flags map onto these)."""

    #: Largest body accepted by ``/api/v1/predict`` (and largest single file in a batch).
    max_upload_bytes: int = 20 * 1024 * 1024
    #: Largest body accepted by ``/api/v1/predict/batch``, all files together.
    max_batch_upload_bytes: int = 64 * 1024 * 1024
    #: Most files in one batch request.
    max_batch_files: int = 16
    default_top_k: int = 3
    max_top_k: int = 100
    #: Most images the micro-batcher puts into one predictor call.
    max_batch_size: int = 8
    #: How long the batcher waits for requests still being decoded before it runs a batch.
    batch_window_ms: float = 5.0
    #: Batches run at once (threads calling the predictor).
    inference_workers: int = 1
    #: Decode JPEGs at the smallest 1/2^k scale keeping this short side (None: derived from
    #: the backbone's input size and crop; 0: always decode at full resolution).
    decode_min_side: int | None = None
    #: Pixel limit against decompression bombs (width x height).
    max_pixels: int = ImageLimits().max_pixels
    #: Run one prediction at start-up so the first visitor does not pay for lazy set-up.
    warmup: bool = True
    #: BLAS threads while serving (None: leave as is). The heads and the gallery search are
    #: small matrix products: multi-threaded OpenBLAS spends ~30x more CPU on them spinning
    #: on a busy 2-core machine (measured: 171 ms -> 5 ms per two pictures with the default
    #: bundle), and onnxruntime has its own threads for the backbone.
    blas_threads: int | None = 1
    #: Shed a prediction request at once (503 + Retry-After) when the queue ahead of it is
    #: expected to take longer than this (seconds; measured seconds per image x images
    #: waiting). A client that gives up after a few seconds is better served by a fast 503
    #: than by an answer computed after it left. None: never shed.
    shed_wait_s: float | None = 1.0
    #: Longest pause while a request body is arriving (seconds): a stalled upload is then
    #: answered 408 and its connection closed.
    body_timeout_s: float = 15.0
    #: Longest time from connection (or end of the previous response) to complete request
    #: headers (seconds): slowloris connections are closed after it.
    header_timeout_s: float = 10.0
    #: Idle keep-alive connections are closed after this many seconds.
    keep_alive_s: float = 5.0
    #: Most open connections: beyond it the oldest connection without a request in
    #: progress is closed (so idle or slow clients cannot lock out /healthz).
    max_connections: int = 512
    #: On SIGTERM, requests in progress get this many seconds to finish, then are cancelled.
    graceful_shutdown_s: float = 10.0
    #: Folders thumbnails may be served from, besides the shared data folder and the
    #: bundle's own folder (a tampered gallery metadata row cannot point anywhere else).
    thumbnail_roots: tuple[str, ...] = ()


class ServiceError(Exception):
    """An error answered as ``{"error": {"code", "message"}}`` with ``status``."""

    def __init__(self, status: int, code: str, message: str, headers: dict[str, str] | None = None):
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.headers = headers


class BodyTimeout(ServiceError):
    def __init__(self, seconds: float, received: int):
        super().__init__(
            408,
            "body_timeout",
            f"the request body stalled: nothing arrived for {seconds:g} s after {received} bytes",
            headers={"Connection": "close"},
        )


class BodyTooLarge(ServiceError):
    def __init__(self, limit: int, size: int | None = None):
        what = f" ({size} bytes)" if size is not None else ""
        super().__init__(
            413, "too_large", f"request body{what} exceeds the {limit}-byte limit ({limit / 2**20:.4g} MB)"
        )


#: How each ImageError code is answered.
IMAGE_ERROR_STATUS = {
    "empty": 400,
    "not_an_image": 415,
    "too_large": 413,
    "corrupt": 422,
    "decompression_bomb": 422,
}


#: Leading bytes of the formats Vasari reads: an upload starting with one of these that
#: still cannot be opened is a damaged image (422), not "not an image" (415).
IMAGE_MAGIC: tuple[tuple[bytes, str], ...] = (
    (b"\x89PNG\r\n\x1a\n", "PNG"),
    (b"\xff\xd8\xff", "JPEG"),
    (b"GIF87a", "GIF"),
    (b"GIF89a", "GIF"),
    (b"BM", "BMP"),
    (b"II*\x00", "TIFF"),
    (b"MM\x00*", "TIFF"),
)


def sniff_format(data: bytes) -> str | None:
    """The image format the bytes claim to be by their signature, or None."""
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "WebP"
    for magic, name in IMAGE_MAGIC:
        if data.startswith(magic):
            return name
    return None


def error_body(code: str, message: str) -> dict:
    return {"error": {"code": code, "message": message}}


def _plain(obj: Any) -> Any:
    """Make predictor output JSON-safe (numpy scalars/arrays, tuples, paths, NaN -> None)."""
    if isinstance(obj, dict):
        return {str(k): _plain(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_plain(v) for v in obj]
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, (str, int, bool)) or obj is None:
        return obj
    if isinstance(obj, Path):
        return str(obj)
    tolist = getattr(obj, "tolist", None)  # numpy scalar or array
    if callable(tolist):
        return _plain(tolist())
    if hasattr(obj, "__dataclass_fields__"):
        return _plain(asdict(obj))
    return str(obj)


# --------------------------------------------------------------------------- batching


@dataclass
class _Job:
    images: list
    top_k: int
    future: concurrent.futures.Future = field(default_factory=concurrent.futures.Future)
    submitted: float = field(default_factory=time.perf_counter)
    started: float = 0.0  # when its batch began (queue wait = started - submitted)
    finished: float = 0.0
    batch_size: int = 0


def _truncate(result: dict, top_k: int) -> dict:
    predictions = result.get("predictions")
    if isinstance(predictions, dict):
        result = dict(result)
        result["predictions"] = {task: list(items)[:top_k] for task, items in predictions.items()}
    return result


class MicroBatcher:
    """Worker thread(s) that own the predictor and group waiting requests into batches.

    ``submit`` returns a ``concurrent.futures.Future`` with one prediction dict per image.
    The worker takes every job already queued (up to ``max_batch`` images); if requests are
    known to be on their way (inside ``expecting()`` and not submitted yet) it waits up to
    ``window_s`` for them. A lone request therefore never waits. ``workers`` > 1 runs that
    many batches at once (for predictors whose engine uses fewer threads than there are
    cores; the predictor must then be thread-safe, as onnxruntime sessions are).
    """

    def __init__(
        self,
        predict_fn: Callable[[list, int], list[dict]],
        max_batch: int = 8,
        window_s: float = 0.005,
        workers: int = 1,
        thread_setup: Callable[[], Callable[[], None] | None] | None = None,
    ):
        self._predict = predict_fn
        #: run in each worker thread before its first and after its first batch (libraries
        #: loaded by the first prediction); returns an undo function run when it stops
        self._thread_setup = thread_setup
        self.max_batch = max(1, max_batch)
        self.window_s = max(0.0, window_s)
        self.workers = max(1, workers)
        self._queue: queue.Queue[_Job | None] = queue.Queue()
        self._incoming = 0
        self._lock = threading.Lock()
        self._threads: list[threading.Thread] = []
        self.batches = 0
        self.images = 0
        #: jobs dropped before computing because their client had left
        self.dropped = 0
        #: images queued or being computed (the work ahead of a new request)
        self.pending_images = 0
        #: moving average of seconds per image of the batches computed (None: none yet)
        self.seconds_per_image: float | None = None
        self._started = False

    def start(self) -> None:
        if not self._started:
            self._started = True
            self._threads = [
                threading.Thread(target=self._run, name=f"vasari-batcher-{i}", daemon=True) for i in range(self.workers)
            ]
            for thread in self._threads:
                thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        if self._started:
            for _ in self._threads:
                self._queue.put(None)
            for thread in self._threads:
                thread.join(timeout)
            self._started = False

    @contextlib.contextmanager
    def expecting(self):
        """Announce a request that is decoding and will ``submit`` soon (or fail)."""
        with self._lock:
            self._incoming += 1
        try:
            yield
        finally:
            with self._lock:
                self._incoming -= 1

    def submit(self, images: Sequence, top_k: int) -> concurrent.futures.Future:
        """Queue images for prediction; the future's ``job`` attribute has the timings.

        Cancelling the future before its batch starts drops the job (its client left)."""
        job = _Job(list(images), top_k)
        job.future.job = job  # type: ignore[attr-defined]
        if not self._started:
            job.future.set_exception(ServiceError(503, "not_ready", "the model is not running"))
        else:
            with self._lock:
                self.pending_images += len(job.images)
            self._queue.put(job)
        return job.future

    def expected_wait(self) -> float:
        """Seconds a new request would wait before its batch starts: the images already
        waiting or being computed (and requests still decoding) at the measured seconds per
        image. 0 when nothing is ahead, so an idle server never sheds."""
        with self._lock:
            ahead = self.pending_images + self._incoming
            per_image = self.seconds_per_image
        if per_image is None:
            return 0.0
        return ahead * per_image / self.workers

    def _record(self, images: int, seconds: float) -> None:
        """Count a computed batch and update the seconds-per-image average."""
        with self._lock:
            self.batches += 1
            self.images += images
            per_image = seconds / max(1, images)
            old = self.seconds_per_image
            self.seconds_per_image = per_image if old is None else 0.8 * old + 0.2 * per_image

    def _take(self, job: _Job) -> bool:
        """Start a queued job; False (and off the books) when its client left (cancelled)."""
        if job.future.set_running_or_notify_cancel():
            return True
        with self._lock:
            self.pending_images -= len(job.images)
            self.dropped += 1
        return False

    def _run(self) -> None:
        undo: list[Callable[[], None]] = []

        def setup() -> None:
            if self._thread_setup is not None:
                try:
                    done = self._thread_setup()
                except Exception:  # noqa: BLE001 - tuning only
                    log.exception("worker thread set-up failed")
                    return
                if done is not None:
                    undo.append(done)

        setup()
        try:
            self._loop(after_first=setup)
        finally:
            for done in reversed(undo):
                try:
                    done()
                except Exception:  # noqa: BLE001
                    log.exception("worker thread clean-up failed")

    def _loop(self, after_first: Callable[[], None]) -> None:
        first_batch = True
        while True:
            first = self._queue.get()
            if first is None:
                return
            if not self._take(first):
                continue
            jobs, count, stop = [first], len(first.images), False
            deadline = time.monotonic() + self.window_s
            while count < self.max_batch:
                try:
                    job = self._queue.get_nowait()
                except queue.Empty:
                    with self._lock:
                        incoming = self._incoming
                    remaining = deadline - time.monotonic()
                    if incoming <= 0 or remaining <= 0:
                        break
                    try:
                        job = self._queue.get(timeout=min(remaining, 0.001))
                    except queue.Empty:
                        continue
                if job is None:
                    stop = True
                    break
                if self._take(job):
                    jobs.append(job)
                    count += len(job.images)
            self._execute(jobs)
            with self._lock:
                self.pending_images -= count
            if first_batch:
                first_batch = False
                after_first()
            if stop:
                return

    def _execute(self, jobs: list[_Job]) -> None:
        images = [image for job in jobs for image in job.images]
        started = time.perf_counter()
        for job in jobs:
            job.started, job.batch_size = started, len(images)
        try:
            results = self._predict(images, max(job.top_k for job in jobs))
            if len(results) != len(images):
                raise RuntimeError(f"predictor returned {len(results)} results for {len(images)} images")
        except Exception as exc:  # noqa: BLE001 - one failing batch must not fail its neighbours
            if len(jobs) > 1:
                for job in jobs:
                    self._execute([job])
                return
            log.exception("prediction failed")
            jobs[0].future.set_exception(exc)
            return
        finished = time.perf_counter()
        self._record(len(images), finished - started)
        start = 0
        for job in jobs:
            chunk = results[start : start + len(job.images)]
            start += len(job.images)
            job.finished = finished
            job.future.set_result([_truncate(r, job.top_k) for r in chunk])


# --------------------------------------------------------------------------- body limit


class BodyLimitMiddleware:
    """Reject oversized or stalled bodies: on Content-Length before reading, and while streaming.

    ``limit_for(path)`` gives the byte limit for a path (None: unlimited). An oversized
    Content-Length is answered at once with 413 without reading the body; a body that grows
    past the limit while streaming (chunked or lying Content-Length) raises ``BodyTooLarge``
    inside the endpoint, which answers 413 as well. A body from which nothing arrives for
    ``timeout_s`` raises ``BodyTimeout`` (408, connection closed): a client that stops
    sending mid-upload must not hold a connection and a request task forever.
    """

    def __init__(self, app, limit_for: Callable[[str], int | None], timeout_s: float | None = None):
        self.app = app
        self.limit_for = limit_for
        self.timeout_s = timeout_s

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http" or scope.get("method") not in ("POST", "PUT", "PATCH"):
            await self.app(scope, receive, send)
            return
        limit = self.limit_for(scope.get("path", ""))
        if limit is None:
            await self.app(scope, receive, send)
            return
        length = None
        for name, value in scope.get("headers", []):
            if name == b"content-length":
                try:
                    length = int(value)
                except ValueError:
                    response = JSONResponse(error_body("bad_request", "invalid Content-Length header"), 400)
                    await response(scope, receive, send)
                    return
        if length is not None and length > limit:
            exc = BodyTooLarge(limit, length)
            response = JSONResponse(error_body(exc.code, exc.message), 413, headers={"Connection": "close"})
            await response(scope, receive, send)
            return
        received, complete = 0, False

        async def limited_receive():
            nonlocal received, complete
            if complete or not self.timeout_s:
                message = await receive()  # after the body: waits for the disconnect
            else:
                try:
                    message = await asyncio.wait_for(receive(), self.timeout_s)
                except asyncio.TimeoutError:
                    raise BodyTimeout(self.timeout_s, received) from None
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                complete = not message.get("more_body", False)
                if received > limit:
                    raise BodyTooLarge(limit)
            return message

        await self.app(scope, limited_receive, send)


# --------------------------------------------------------------------------- connections


def guarded_protocol(config: ServiceConfig) -> type:
    """uvicorn's h11 protocol with a header timeout, a connection cap and JSON 400s.

    uvicorn times out idle keep-alive connections but not a client that sends its headers
    a byte at a time (slowloris): such connections pile up until no descriptor is left and
    ``/healthz`` stops answering. Here a connection must complete its request headers within
    ``header_timeout_s`` of opening (or of its previous response), and beyond
    ``max_connections`` the oldest connection without a request in progress is closed.
    Malformed requests get the service's JSON error body instead of uvicorn's plain text.
    """
    from uvicorn.protocols.http.h11_impl import H11Protocol

    class GuardedH11Protocol(H11Protocol):
        def connection_made(self, transport) -> None:  # type: ignore[override]
            super().connection_made(transport)
            self._arm_header_timer()
            if len(self.connections) > config.max_connections:
                idle = [c for c in self.connections if c is not self and _between_requests(c)]
                if idle:
                    min(idle, key=lambda c: getattr(c, "_waiting_since", 0.0)).transport.close()

        def on_response_complete(self) -> None:
            super().on_response_complete()
            if not self.transport.is_closing():
                self._arm_header_timer()

        def _arm_header_timer(self) -> None:
            """Close the connection unless a new request has begun ``header_timeout_s`` from now."""
            self._waiting_since = self.loop.time()
            armed_for = self.cycle
            self.loop.call_later(config.header_timeout_s, self._headers_overdue, armed_for)

        def _headers_overdue(self, armed_for) -> None:
            if self.cycle is armed_for and not self.transport.is_closing():
                self.logger.info("closing %s: no complete request headers within %g s",
                                 "%s:%d" % self.client if self.client else "a connection", config.header_timeout_s)
                self.transport.close()

        def send_400_response(self, msg: str) -> None:
            import h11

            body = json.dumps(error_body("bad_request", msg)).encode()
            headers = [(b"content-type", b"application/json"), (b"connection", b"close")]
            for event in (h11.Response(status_code=400, headers=headers), h11.Data(data=body), h11.EndOfMessage()):
                self.transport.write(self.conn.send(event))
            self.transport.close()

    def _between_requests(connection) -> bool:
        if connection.transport is None or connection.transport.is_closing():
            return False  # already on its way out (closed earlier in this burst of accepts)
        cycle = getattr(connection, "cycle", False)
        return cycle is None or bool(getattr(cycle, "response_complete", False))

    return GuardedH11Protocol


def uvicorn_config(app, config: ServiceConfig, host: str = "127.0.0.1", port: int = 8000, log_level: str = "info"):
    """The ``uvicorn.Config`` to serve ``app`` with ``config``'s connection limits and timeouts."""
    import uvicorn

    return uvicorn.Config(
        app,
        host=host,
        port=port,
        log_level=log_level,
        http=guarded_protocol(config),
        timeout_keep_alive=max(1, math.ceil(config.keep_alive_s)),
        timeout_graceful_shutdown=max(1, math.ceil(config.graceful_shutdown_s)),
        h11_max_incomplete_event_size=64 * 1024,  # request line + headers
        workers=1,
    )


CSP = (
    "default-src 'self'; img-src 'self' data: blob:; style-src 'self'; script-src 'self'; "
    "connect-src 'self'; object-src 'none'; base-uri 'self'; frame-ancestors 'none'"
)


class SecurityHeadersMiddleware:
    """Adds nosniff everywhere and a same-origin-only Content-Security-Policy to our pages
    (Swagger UI at /docs needs an inline script, so it is left without the CSP)."""

    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        with_csp = not scope.get("path", "").startswith("/docs")

        async def send_with_headers(message):
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                names = {name.lower() for name, _ in headers}
                if b"x-content-type-options" not in names:
                    headers.append((b"x-content-type-options", b"nosniff"))
                if with_csp and b"content-security-policy" not in names:
                    headers.append((b"content-security-policy", CSP.encode()))
                message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, send_with_headers)


# --------------------------------------------------------------------------- app


def _decode_min_side(info: dict, config: ServiceConfig) -> int | None:
    if config.decode_min_side is not None:
        return config.decode_min_side or None
    pre = (info.get("backbone") or {}).get("preprocess") or {}
    try:
        size, crop = float(pre.get("size", 260)), float(pre.get("crop", 1.0)) or 1.0
        upscale = max(1.0, float(pre.get("max_draft_upscale", 1.0)))
    except (TypeError, ValueError):
        return 300
    resize_to = int(math.floor(size / crop))  # Preprocess.resize_to
    # BackboneSpec.draft_min_side: how the Embedder decodes files (training features included)
    side = int(math.ceil(resize_to / upscale))
    if (info.get("backbone") or {}).get("views") == "multicrop":  # crops of the picture at 2 x size
        side = max(side, int(math.ceil(2 * size / upscale)))
    return side


def _filename(name: str | None) -> str:
    name = (name or "").replace("\\", "/").rsplit("/", 1)[-1].strip()
    return name[:200] or "upload"


OPENAPI_SINGLE = {
    "requestBody": {
        "required": True,
        "content": {
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "required": ["file"],
                    "properties": {"file": {"type": "string", "format": "binary", "description": "the image"}},
                }
            },
            "image/*": {"schema": {"type": "string", "format": "binary"}},
            "application/octet-stream": {"schema": {"type": "string", "format": "binary"}},
        },
    }
}
OPENAPI_BATCH = {
    "requestBody": {
        "required": True,
        "content": {
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "required": ["files"],
                    "properties": {
                        "files": {"type": "array", "items": {"type": "string", "format": "binary"}},
                    },
                }
            }
        },
    }
}
ERROR_SCHEMA = {
    "content": {
        "application/json": {
            "schema": {
                "type": "object",
                "properties": {
                    "error": {
                        "type": "object",
                        "properties": {"code": {"type": "string"}, "message": {"type": "string"}},
                    }
                },
            }
        }
    }
}
PREDICT_ERRORS = {
    400: {"description": "bad parameter, empty body or missing field", **ERROR_SCHEMA},
    413: {"description": "body too large", **ERROR_SCHEMA},
    415: {"description": "not an image", **ERROR_SCHEMA},
    422: {"description": "corrupt or truncated image, or decompression bomb", **ERROR_SCHEMA},
    503: {"description": "model not loaded yet", **ERROR_SCHEMA},
}


def _card_markdown(predictor: Any, info: dict) -> str:
    """MODEL_CARD.md of the predictor's bundle (written with it, else generated from it)."""
    bundle = getattr(predictor, "bundle", None)
    path = getattr(bundle, "path", None)
    if path is not None and (Path(path) / "MODEL_CARD.md").is_file():
        return (Path(path) / "MODEL_CARD.md").read_text(encoding="utf-8")
    if bundle is not None:
        try:
            from vasari.bundle import model_card

            return model_card(bundle)
        except Exception:  # noqa: BLE001 - fall back to a minimal card
            pass
    card = info.get("card") or {}
    lines = [f"# Model card: {card.get('name', 'model')}", ""]
    lines += [f"- {k}: {v}" for k, v in card.items() if isinstance(v, (str, int, float))]
    return "\n".join(lines) + "\n"


def _missing_file(form: Any, what: str) -> ServiceError:
    """400 missing_file: ``what`` to send, and the fields the form did have."""
    fields = sorted(set(form.keys()))
    got = f"; got field(s) {', '.join(fields)}" if fields else "; the form was empty"
    return ServiceError(400, "missing_file", f"{what}{got}")


def _swagger_assets() -> Path | None:
    """Swagger UI's JS/CSS from an installed package (fastapi-offline), if any."""
    try:
        import fastapi_offline  # type: ignore[import-not-found]
    except ImportError:
        return None
    static = Path(fastapi_offline.__file__).resolve().parent / "static"
    return static if (static / "swagger-ui-bundle.js").is_file() else None


def create_app(predictor: Any, config: ServiceConfig = ServiceConfig()):
    """The FastAPI app serving ``predictor``.

    ``predictor`` is a loaded ``vasari.inference.predictor.Predictor`` (anything with
    ``predict_images(images, top_k)`` and ``info()``), or a zero-argument callable (or a
    class, whose ``load()`` is called) that loads one: it is then loaded at start-up in a
    worker thread while ``/healthz`` already answers and ``/readyz`` says 503 until the
    model is warm.
    """

    state: dict[str, Any] = {
        "predictor": None, "info": {}, "ready": False, "error": None, "min_side": None, "most_classes": config.max_top_k,
    }
    def _run_predictor(images: list, top_k: int) -> list[dict]:
        # asking for more labels than a task has gives all of them (the predictor refuses)
        return state["predictor"].predict_images(images, top_k=max(1, min(top_k, state["most_classes"])))

    def _limit_blas() -> Callable[[], None] | None:
        """BLAS threads for this thread (OpenMP builds count per thread) and the process."""
        if not config.blas_threads:
            return None
        try:
            from threadpoolctl import threadpool_limits

            limiter = threadpool_limits(limits=config.blas_threads, user_api="blas")
        except Exception:  # noqa: BLE001 - threadpoolctl missing or no BLAS found: fine
            return None
        return limiter.restore_original_limits

    batcher = MicroBatcher(
        _run_predictor,
        max_batch=config.max_batch_size,
        window_s=config.batch_window_ms / 1000.0,
        workers=config.inference_workers,
        thread_setup=_limit_blas,
    )
    limits = ImageLimits(max_pixels=config.max_pixels, max_bytes=max(config.max_upload_bytes, 1))

    lazy = isinstance(predictor, type) or (callable(predictor) and not hasattr(predictor, "predict_images"))

    def _load() -> None:
        if isinstance(predictor, type):  # a class: Predictor -> Predictor.load()
            pred = predictor.load() if hasattr(predictor, "load") else predictor()
        elif lazy:
            pred = predictor()
        else:
            pred = predictor
        state["predictor"] = pred
        info = _plain(pred.info()) if hasattr(pred, "info") else {}
        info = info if isinstance(info, dict) else {"info": info}
        if isinstance(info.get("model"), str):  # the server's own path is nobody's business
            info["model"] = Path(info["model"]).name
        state["info"] = info
        labels = info.get("labels")
        if isinstance(labels, dict) and labels:
            state["most_classes"] = max((len(v) for v in labels.values() if isinstance(v, list)), default=1) or 1
        state["min_side"] = _decode_min_side(state["info"], config)
        if getattr(pred, "crop", False) and state["min_side"] and config.decode_min_side is None:
            # museum photos: the painting is only part of the picture, keep pixels for the crop
            state["min_side"] *= 2

    async def _warmup() -> None:
        try:
            await run_in_threadpool(_load)
            if config.warmup:
                from PIL import Image

                probe = Image.new("RGB", (320, 320), (128, 110, 90))
                await asyncio.wrap_future(batcher.submit([probe], 1))
                batcher.seconds_per_image = None  # the first batch pays for lazy set-up: not typical
            state["ready"] = True
            log.info("model ready")
        except Exception as exc:  # noqa: BLE001 - reported by /readyz
            log.exception("model failed to load")
            state["error"] = f"{type(exc).__name__}: {exc}"

    @contextlib.asynccontextmanager
    async def lifespan(app):
        undo_limit = _limit_blas()
        batcher.start()
        task = asyncio.create_task(_warmup())
        if not lazy:
            await task  # an already-loaded predictor: be ready before serving
        try:
            yield
        finally:
            task.cancel()
            await run_in_threadpool(batcher.stop)
            if undo_limit is not None:
                undo_limit()

    app = FastAPI(
        title="Vasari",
        version=vasari.__version__,
        description=(
            "Attribute European paintings (1401-1900) from an image: type, school, period, style "
            "and artist with calibrated probabilities, a year estimate with an interval, similar "
            "works and artist affinities. Errors are `{\"error\": {\"code\", \"message\"}}`."
        ),
        docs_url=None,
        redoc_url=None,
        openapi_url="/openapi.json",
        lifespan=lifespan,
    )
    app.state.vasari = state
    app.state.batcher = batcher
    app.state.config = config

    def limit_for(path: str) -> int | None:
        if path.rstrip("/") == f"{API_PREFIX}/predict/batch":
            return config.max_batch_upload_bytes
        if path.startswith(API_PREFIX):
            return config.max_upload_bytes
        return 1024 * 1024

    app.add_middleware(BodyLimitMiddleware, limit_for=limit_for, timeout_s=config.body_timeout_s)

    # ---------------------------------------------------------------- errors

    @app.exception_handler(ServiceError)
    async def _service_error(request: Request, exc: ServiceError):
        return JSONResponse(error_body(exc.code, exc.message), exc.status, headers=exc.headers)

    @app.exception_handler(RequestValidationError)
    async def _validation_error(request: Request, exc: RequestValidationError):
        parts = []
        for err in exc.errors():
            loc = [str(x) for x in err.get("loc", ()) if x not in ("query", "body", "path", "header")]
            value = err.get("input")
            shown = f" (got {value!r})" if isinstance(value, (str, int, float)) else ""
            parts.append(f"{'.'.join(loc) or 'request'}: {err.get('msg', 'invalid')}{shown}")
        return JSONResponse(error_body("bad_parameter", "; ".join(parts) or "invalid request"), 400)

    STATUS_CODES = {400: "bad_request", 404: "not_found", 405: "method_not_allowed", 413: "too_large"}

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(request: Request, exc: StarletteHTTPException):
        code = STATUS_CODES.get(exc.status_code, f"http_{exc.status_code}")
        message = exc.detail if isinstance(exc.detail, str) else str(exc.detail)
        if exc.status_code == 405:
            message = f"{request.method} is not allowed on {request.url.path}"
        elif exc.status_code == 404:
            message = f"no such page or endpoint: {request.url.path}"
        return JSONResponse(error_body(code, message), exc.status_code, headers=getattr(exc, "headers", None))

    @app.exception_handler(ClientDisconnect)
    async def _client_left(request: Request, exc: ClientDisconnect):
        """A client that leaves mid-upload (or while its picture waits) is no server error:
        one log line, nothing more is computed for it, and nobody is there to answer."""
        client = f"{request.client.host}:{request.client.port}" if request.client else "a client"
        log.info("%s left before the answer to %s %s", client, request.method, request.url.path)
        return Response(status_code=499)

    @app.exception_handler(Exception)
    async def _internal_error(request: Request, exc: Exception):
        log.exception("unhandled error on %s", request.url.path)
        return JSONResponse(error_body("internal", f"internal error: {type(exc).__name__}"), 500)

    # ---------------------------------------------------------------- helpers

    def _require_ready() -> None:
        if not state["ready"]:
            detail = state["error"] or "the model is still loading"
            raise ServiceError(503, "not_ready", detail, headers={"Retry-After": "5"})

    async def _read_raw(request: Request) -> bytes:
        chunks = []
        async for chunk in request.stream():
            chunks.append(chunk)
        return b"".join(chunks)

    async def _form(request: Request, max_files: int):
        try:
            return await request.form(max_files=max_files, max_fields=32)
        except StarletteHTTPException as exc:
            raise ServiceError(400, "bad_multipart", f"cannot parse the multipart body: {exc.detail}") from exc

    def _content_type(request: Request) -> str:
        return request.headers.get("content-type", "").split(";", 1)[0].strip().lower()

    async def _decode(data: bytes, name: str):
        if not data:
            raise ServiceError(400, "empty", f"{name}: the upload is empty (0 bytes)")
        if len(data) > config.max_upload_bytes:
            raise BodyTooLarge(config.max_upload_bytes, len(data))
        try:
            image = await run_in_threadpool(load_image, data, min_side=state["min_side"], limits=limits)
        except ImageError as exc:
            message = str(exc).replace("<bytes>", name)
            code = exc.code
            claimed = sniff_format(data) if code == "not_an_image" else None
            if claimed:  # e.g. a PNG header declaring 0x0 pixels: damaged, not "not an image"
                code, message = "corrupt", f"{name}: starts like a {claimed} file but cannot be decoded ({message})"
            raise ServiceError(IMAGE_ERROR_STATUS.get(code, 422), code, message) from exc
        return image

    def _admit() -> None:
        """Shed the request now (503) when the queue ahead would outlast ``shed_wait_s``."""
        if config.shed_wait_s is None:
            return
        wait = batcher.expected_wait()
        if wait > config.shed_wait_s:
            retry = max(1, math.ceil(wait))
            raise ServiceError(
                503,
                "overloaded",
                f"the server is busy: about {wait:.1f} s of pictures are waiting (limit {config.shed_wait_s:g} s); "
                f"retry in {retry} s",
                headers={"Retry-After": str(retry)},
            )

    async def _until_disconnected(request: Request) -> None:
        """Returns when the client has gone (the body is read: the next message is the disconnect)."""
        while (await request.receive())["type"] != "http.disconnect":
            pass

    async def _result_unless_gone(request: Request, future: concurrent.futures.Future) -> list[dict]:
        """The batcher's result, or ``ClientDisconnect`` (and the job dropped unless already
        running) when the client leaves first."""
        result = asyncio.wrap_future(future)
        gone = asyncio.ensure_future(_until_disconnected(request))
        try:
            await asyncio.wait({result, gone}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            gone.cancel()
        if result.done():
            return result.result()
        future.cancel()
        result.cancel()
        raise ClientDisconnect()

    async def _predict(
        request: Request, images: list, top_k: int, timing: dict[str, float] | None = None
    ) -> list[dict]:
        future = batcher.submit(images, top_k)
        try:
            results = await _result_unless_gone(request, future)
        except (ServiceError, ClientDisconnect):
            raise
        except Exception as exc:  # noqa: BLE001
            raise ServiceError(500, "prediction_failed", f"the model failed on this image: {type(exc).__name__}: {exc}") from exc
        if timing is not None:
            job = future.job  # type: ignore[attr-defined]
            timing["queue"] = (job.started - job.submitted) * 1000
            timing["infer"] = (job.finished - job.started) * 1000
            timing["batch"] = job.batch_size
        return results

    def _server_timing(timing: dict[str, float]) -> dict[str, str]:
        """A Server-Timing header (shown by browsers' dev tools; read by benchmarks/load.py)."""
        parts = [f"{k};dur={v:.1f}" for k, v in timing.items() if k != "batch"]
        if "batch" in timing:
            parts.append(f'batch;desc="{int(timing["batch"])} image(s) in the forward pass"')
        return {"Server-Timing": ", ".join(parts)}

    thumbnails: "collections.OrderedDict[str, str]" = collections.OrderedDict()

    def _thumbnail_roots() -> list[Path]:
        """Folders thumbnails may come from: the shared data, the bundle, configured ones."""
        from vasari.core.paths import shared_data_dir

        bundle_dir = getattr(getattr(state["predictor"], "bundle", None), "path", None)
        roots = [shared_data_dir(), bundle_dir, *config.thumbnail_roots]
        return [Path(r).resolve() for r in roots if r is not None]

    def _thumbnail_url(path: Any) -> str | None:
        """A server-local thumbnail path -> an opaque URL of this server. Only paths the
        predictor returned that resolve (links followed) inside ``_thumbnail_roots`` are
        served: a tampered gallery row ("/etc/passwd", "../../..") gets no thumbnail."""
        if not isinstance(path, str) or not path:
            return None
        if path.startswith(("data:image/", "/api/")):
            return path
        resolved = Path(path).resolve()
        if not resolved.is_file() or not any(resolved.is_relative_to(root) for root in _thumbnail_roots()):
            return None
        path = str(resolved)
        key = hashlib.sha1(path.encode("utf-8", "surrogatepass")).hexdigest()[:20]
        thumbnails[key] = path
        thumbnails.move_to_end(key)
        while len(thumbnails) > 4096:
            thumbnails.popitem(last=False)
        return f"{API_PREFIX}/thumbnails/{key}"

    def _finish(result: dict, name: str, size: tuple[int, int] | None = None) -> dict:
        out = _plain(result)
        out["image"] = name
        if isinstance(out.get("crop"), dict) and size:
            out["crop"]["image_size"] = list(size)  # the pixels "box" refers to (after decoding)
        for item in out.get("similar") or []:
            if isinstance(item, dict) and "thumbnail" in item:
                url = _thumbnail_url(item["thumbnail"])
                if url:
                    item["thumbnail"] = url
                else:
                    item.pop("thumbnail")
        for aff in out.get("affinity") or []:
            for item in (aff.get("evidence") or []) if isinstance(aff, dict) else []:
                if isinstance(item, dict) and "thumbnail" in item:
                    url = _thumbnail_url(item["thumbnail"])
                    if url:
                        item["thumbnail"] = url
                    else:
                        item.pop("thumbnail")
        return out

    top_k_query = Query(
        config.default_top_k,
        ge=1,
        le=config.max_top_k,
        description="how many labels to return per task",
    )

    # ---------------------------------------------------------------- API

    @app.post(
        f"{API_PREFIX}/predict",
        summary="Predict one image",
        description=(
            "Send the image as multipart field `file`, or as the raw body with an `image/*` or "
            "`application/octet-stream` content type. The format is sniffed from the bytes, "
            "never from the file name. Returns the prediction object of `vasari predict --json`."
        ),
        openapi_extra=OPENAPI_SINGLE,
        responses=PREDICT_ERRORS,
        tags=["predict"],
    )
    async def predict(request: Request, top_k: int = top_k_query):
        _require_ready()
        _admit()
        with batcher.expecting():
            kind = _content_type(request)
            if kind == "multipart/form-data":
                form = await _form(request, max_files=4)
                upload = form.get("file")
                if upload is None or isinstance(upload, str):
                    hint = " (a text value, not a file)" if isinstance(upload, str) else ""
                    raise _missing_file(form, f"send the image in multipart field 'file'{hint}")
                name = _filename(upload.filename)
                data = await upload.read()
                await form.close()
            elif kind.startswith("image/") or kind in ("application/octet-stream", ""):
                data = await _read_raw(request)
                name = _filename(request.headers.get("x-filename"))
            else:
                raise ServiceError(
                    415,
                    "unsupported_media_type",
                    f"content type {kind!r} is not accepted: send multipart/form-data with field 'file', "
                    "or the image bytes with an image/* content type",
                )
            t0 = time.perf_counter()
            image = await _decode(data, name)
            timing = {"decode": (time.perf_counter() - t0) * 1000}
        result = (await _predict(request, [image], top_k, timing))[0]
        return JSONResponse(_finish(result, name, image.size), headers=_server_timing(timing))

    @app.post(
        f"{API_PREFIX}/predict/batch",
        summary="Predict several images",
        description=(
            "Send the images as repeated multipart field `files` (at most "
            f"{config.max_batch_files}). Returns an array of prediction objects in upload order; "
            "an image that cannot be read gives `{\"image\", \"error\": {\"code\", \"message\"}}` "
            "in its place while the others are predicted."
        ),
        openapi_extra=OPENAPI_BATCH,
        responses=PREDICT_ERRORS,
        tags=["predict"],
    )
    async def predict_batch(request: Request, top_k: int = top_k_query):
        _require_ready()
        _admit()
        if _content_type(request) != "multipart/form-data":
            raise ServiceError(
                415, "unsupported_media_type", "send multipart/form-data with one or more 'files' fields"
            )
        with batcher.expecting():
            form = await _form(request, max_files=config.max_batch_files)
            uploads = [u for u in form.getlist("files") if not isinstance(u, str)]
            if not uploads:
                raise _missing_file(form, "send the images in multipart field 'files'")
            items: list[tuple[str, Any]] = []
            for upload in uploads:
                name = _filename(upload.filename)
                data = await upload.read()
                try:
                    items.append((name, await _decode(data, name)))
                except ServiceError as exc:
                    items.append((name, exc))
            await form.close()
        good = [image for _, image in items if not isinstance(image, ServiceError)]
        results = iter(await _predict(request, good, top_k) if good else [])
        out = []
        for name, image in items:
            if isinstance(image, ServiceError):
                out.append({"image": name, "error": {"code": image.code, "message": image.message}})
            else:
                out.append(_finish(next(results), name, image.size))
        return JSONResponse(out)

    @app.get(f"{API_PREFIX}/model", summary="The loaded model", tags=["model"])
    async def model_info():
        """Tasks, labels per task, backbone and preprocessing, model card and metrics."""
        _require_ready()
        info = dict(state["info"])
        info["service"] = {
            "version": vasari.__version__,
            "max_upload_bytes": config.max_upload_bytes,
            "max_batch_files": config.max_batch_files,
            "max_top_k": config.max_top_k,
            "default_top_k": config.default_top_k,
        }
        return JSONResponse(info)

    @app.get(
        f"{API_PREFIX}/model/card",
        summary="The model card (Markdown)",
        tags=["model"],
        response_class=PlainTextResponse,
        responses={200: {"content": {"text/markdown": {}}}},
    )
    async def model_card_markdown():
        """The bundle's MODEL_CARD.md: data, splits, evaluation, intended use, limitations."""
        _require_ready()
        text = state.get("card_markdown")
        if text is None:
            text = await run_in_threadpool(_card_markdown, state["predictor"], state["info"])
            state["card_markdown"] = text
        return PlainTextResponse(text, media_type="text/markdown; charset=utf-8")

    @app.get(
        f"{API_PREFIX}/thumbnails/{{key}}",
        summary="Thumbnail of a similar painting",
        description="The URLs come in the `thumbnail` fields of `similar` (and affinity evidence).",
        tags=["model"],
        responses={404: {"description": "unknown thumbnail", **ERROR_SCHEMA}},
    )
    async def thumbnail(key: str):
        path = thumbnails.get(key)
        if path is None or not Path(path).is_file():
            raise ServiceError(404, "not_found", f"no thumbnail {key!r} (thumbnail URLs come from a prediction)")
        return FileResponse(path, headers={"Cache-Control": "public, max-age=86400"})

    @app.get("/healthz", summary="Liveness", tags=["ops"])
    async def healthz():
        """200 while the process answers."""
        return {"status": "ok"}

    @app.get("/readyz", summary="Readiness", tags=["ops"], responses={503: {"description": "not ready", **ERROR_SCHEMA}})
    async def readyz():
        """200 once the model is loaded and warm, 503 before (or if loading failed)."""
        _require_ready()
        return {"status": "ready", "batches": batcher.batches, "images": batcher.images}

    for path, probe in (("/healthz", healthz), ("/readyz", readyz)):  # uptime checks often probe with HEAD
        app.add_api_route(path, probe, methods=["HEAD"], include_in_schema=False)

    # ---------------------------------------------------------------- docs

    assets = _swagger_assets()
    if assets is not None:
        app.mount("/docs-assets", StaticFiles(directory=assets), name="docs-assets")

    @app.get("/docs", include_in_schema=False)
    async def docs():
        if assets is None:
            return RedirectResponse("/api")
        page = get_swagger_ui_html(
            openapi_url="/openapi.json",
            title="Vasari API",
            swagger_js_url="/docs-assets/swagger-ui-bundle.js",
            swagger_css_url="/docs-assets/swagger-ui.css",
            swagger_favicon_url="/static/favicon.svg",
            swagger_ui_parameters={"validatorUrl": None, "defaultModelsExpandDepth": 0},
        )
        back = '<p style="margin:12px 20px;font-family:sans-serif"><a href="/">&larr; Vasari</a> &middot; <a href="/api">API guide</a></p>'
        return HTMLResponse(page.body.decode("utf-8").replace("<body>", "<body>\n" + back, 1))

    # ---------------------------------------------------------------- pages

    def _page(name: str):
        async def page():
            return FileResponse(WEB_DIR / name, media_type="text/html")

        return page

    for route, page_file in (("/", "index.html"), ("/about", "about.html")):
        app.add_api_route(route, _page(page_file), methods=["GET"], include_in_schema=False, response_class=HTMLResponse)

    @app.get("/api", include_in_schema=False, response_class=HTMLResponse)
    async def api_page(request: Request):
        """The API guide, its curl examples pointing at this server as the visitor reached it."""
        origin = html.escape(str(request.base_url).rstrip("/"), quote=True)
        return HTMLResponse((WEB_DIR / "api.html").read_text(encoding="utf-8").replace("__ORIGIN__", origin))
    app.mount("/static", StaticFiles(directory=WEB_DIR), name="static")

    app.add_middleware(SecurityHeadersMiddleware)

    return app


def create_app_from_env():
    """App factory for ``uvicorn --factory vasari.service.app:create_app_from_env``.

    Reads ``VASARI_MODEL`` (bundle dir; default bundle when unset), ``VASARI_CROP`` (1: crop
    museum photos to the painting), ``VASARI_MAX_UPLOAD_MB``, ``VASARI_BATCH_WINDOW_MS``,
    ``VASARI_MAX_BATCH`` and ``VASARI_INFERENCE_WORKERS``; the model loads in the background.
    """
    config = ServiceConfig(
        max_upload_bytes=int(float(os.environ.get("VASARI_MAX_UPLOAD_MB", "20")) * 1024 * 1024),
        batch_window_ms=float(os.environ.get("VASARI_BATCH_WINDOW_MS", "5")),
        max_batch_size=int(os.environ.get("VASARI_MAX_BATCH", "8")),
        inference_workers=int(os.environ.get("VASARI_INFERENCE_WORKERS", "1")),
    )
    model = os.environ.get("VASARI_MODEL") or None
    crop = os.environ.get("VASARI_CROP", "").lower() in ("1", "true", "yes")

    def load():
        from vasari.inference.predictor import Predictor

        return Predictor.load(Path(model) if model else None, crop=crop)

    return create_app(load, config)
