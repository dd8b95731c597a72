"""Predictions: ``POST /api/v1/predict`` (one image) and ``POST /api/v1/predict/batch``.

The routes depend on the config (the ``top_k`` bounds, the batch size in the docs), so the
router is built by ``build_router(config)``. Images are decoded in the thread pool, then
queued on the state's ``MicroBatcher``; a client that leaves before its answer has its
work dropped.
"""

from __future__ import annotations

import concurrent.futures
import time
from typing import Any

from fastapi import APIRouter, Query, Request
from fastapi.responses import JSONResponse
from starlette.requests import ClientDisconnect

from vasari.inference.schema import BatchPredictions, Prediction
from vasari.service.config import API_PREFIX, ServiceConfig
from vasari.service.deps import State
from vasari.service.errors import ServiceError, documented, prediction_failed
from vasari.service.middleware import result_unless_gone
from vasari.service.state import ServiceState, json_safe
from vasari.service.uploads import (
    content_type,
    decode_upload,
    missing_file,
    read_body,
    read_form,
    upload_name,
)

BINARY = {"schema": {"type": "string", "format": "binary"}}
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
            "image/*": BINARY,
            "application/octet-stream": BINARY,
        },
    }
}


def openapi_batch(max_files: int) -> dict:
    """The batch request body: repeated field ``files``, 1 to ``max_files`` of them."""
    files = {"type": "array", "minItems": 1, "maxItems": max_files, "items": {"type": "string", "format": "binary"}}
    return {
        "requestBody": {
            "required": True,
            "content": {
                "multipart/form-data": {
                    "schema": {"type": "object", "required": ["files"], "properties": {"files": files}}
                }
            },
        }
    }


OPENAPI_BATCH = openapi_batch(ServiceConfig.default("max_batch_files"))
#: Every answer of the predict routes but the prediction itself (one place, for
#: ``response_model`` too).
PREDICT_ERRORS = {
    400: documented("bad parameter, empty body or missing field"),
    408: documented("the upload stalled (nothing arrived for the body timeout); the connection is closed"),
    413: documented("body too large"),
    415: documented("not an image"),
    422: documented("corrupt or truncated image, or decompression bomb"),
    500: documented("the model failed on this image"),
    503: documented("model not loaded yet, or overloaded (with Retry-After)"),
}


def server_timing(timing: dict[str, float]) -> dict[str, str]:
    """A Server-Timing header (shown by browsers' dev tools; read by benchmarks/load.py)."""
    parts = [f"{k};dur={v:.1f}" for k, v in timing.items() if k != "batch"]
    if "batch" in timing:
        parts.append(f'batch;desc="{int(timing["batch"])} image(s) in the forward pass"')
    return {"Server-Timing": ", ".join(parts)}


def finish_result(state: ServiceState, result: dict, name: str, size: tuple[int, int] | None = None) -> dict:
    """The prediction as the client gets it: JSON-safe, named, thumbnails as URLs of this server."""
    out = json_safe(result)
    out["image"] = name
    if isinstance(out.get("crop"), dict) and size:
        out["crop"]["image_size"] = list(size)  # the pixels "box" refers to (after decoding)
    for item in out.get("similar") or []:
        state.thumbnails.link(item)
    for aff in out.get("affinity") or []:
        for item in (aff.get("evidence") or []) if isinstance(aff, dict) else []:
            state.thumbnails.link(item)
    return out


async def run_prediction(
    state: ServiceState, request: Request, images: list, top_k: int, timing: dict[str, float] | None = None
) -> list[dict]:
    """The batcher's predictions for ``images`` (500 prediction_failed when the model fails)."""
    future: concurrent.futures.Future = state.batcher.submit(images, top_k)
    try:
        results = await result_unless_gone(request, future)
    except (ServiceError, ClientDisconnect):
        raise
    except Exception as exc:  # noqa: BLE001
        raise prediction_failed(exc) from exc
    if timing is not None:
        job = future.job  # type: ignore[attr-defined]
        timing["queue"] = (job.started - job.submitted) * 1000
        timing["infer"] = (job.finished - job.started) * 1000
        timing["batch"] = job.batch_size
    return results


async def read_single_upload(request: Request) -> tuple[bytes, str]:
    """The bytes and name of the one image of a predict request (multipart field ``file``,
    or the raw body)."""
    kind = content_type(request)
    if kind == "multipart/form-data":
        form = await read_form(request, max_files=4)
        upload = form.get("file")
        if upload is None or isinstance(upload, str):
            hint = " (a text value, not a file)" if isinstance(upload, str) else ""
            raise missing_file(form, f"send the image in multipart field 'file'{hint}")
        name = upload_name(upload.filename)
        data = await upload.read()
        await form.close()
        return data, name
    if kind.startswith("image/") or kind in ("application/octet-stream", ""):
        return await read_body(request), upload_name(request.headers.get("x-filename"))
    raise ServiceError(
        415,
        "unsupported_media_type",
        f"content type {kind!r} is not accepted: send multipart/form-data with field 'file', "
        "or the image bytes with an image/* content type",
    )


async def predict_one(request: Request, state: ServiceState, top_k: int) -> JSONResponse:
    state.require_ready()
    state.admit()
    with state.batcher.expecting():
        data, name = await read_single_upload(request)
        t0 = time.perf_counter()
        image = await decode_upload(state, data, name)
        timing = {"decode": (time.perf_counter() - t0) * 1000}
    result = (await run_prediction(state, request, [image], top_k, timing))[0]
    return JSONResponse(finish_result(state, result, name, image.size), headers=server_timing(timing))


async def predict_many(request: Request, state: ServiceState, top_k: int) -> JSONResponse:
    state.require_ready()
    state.admit()
    if content_type(request) != "multipart/form-data":
        raise ServiceError(415, "unsupported_media_type", "send multipart/form-data with one or more 'files' fields")
    with state.batcher.expecting():
        form = await read_form(request, max_files=state.config.max_batch_files)
        uploads = [u for u in form.getlist("files") if not isinstance(u, str)]
        if not uploads:
            raise missing_file(form, "send the images in multipart field 'files'")
        items: list[tuple[str, Any]] = []
        for upload in uploads:
            name = upload_name(upload.filename)
            data = await upload.read()
            try:
                items.append((name, await decode_upload(state, data, name)))
            except ServiceError as exc:
                items.append((name, exc))
        await form.close()
    good = [image for _, image in items if not isinstance(image, ServiceError)]
    results = iter(await run_prediction(state, request, good, top_k) if good else [])
    out = []
    for name, image in items:
        if isinstance(image, ServiceError):
            out.append({"image": name, "error": {"code": image.code, "message": image.message}})
        else:
            out.append(finish_result(state, next(results), name, image.size))
    return JSONResponse(out)


def build_router(config: ServiceConfig) -> APIRouter:
    """The predict routes, their ``top_k`` bounded by ``config``."""
    router = APIRouter(prefix=API_PREFIX, tags=["predict"])
    top_k_query = Query(config.default_top_k, ge=1, le=config.max_top_k, description="how many labels to return per task")

    @router.post(
        "/predict",
        summary="Predict one image",
        description=(
            "Send the image as multipart field `file`, or as the raw body with an `image/*` or "
            "`application/octet-stream` content type. The format is sniffed from the bytes, "
            "never from the file name. Returns the prediction object of `vasari predict --json`."
        ),
        openapi_extra=OPENAPI_SINGLE,
        response_model=Prediction,
        responses=PREDICT_ERRORS,
    )
    async def predict(request: Request, state: State, top_k: int = top_k_query):
        return await predict_one(request, state, top_k)

    @router.post(
        "/predict/batch",
        summary="Predict several images",
        description=(
            "Send the images as repeated multipart field `files` (at most "
            f"{config.max_batch_files}). Returns an array of prediction objects in upload order; "
            "an image that cannot be read gives `{\"image\", \"error\": {\"code\", \"message\"}}` "
            "in its place while the others are predicted."
        ),
        openapi_extra=openapi_batch(config.max_batch_files),
        response_model=BatchPredictions,
        responses=PREDICT_ERRORS,
    )
    async def predict_batch(request: Request, state: State, top_k: int = top_k_query):
        return await predict_many(request, state, top_k)

    return router
