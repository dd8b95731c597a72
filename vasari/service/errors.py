"""Every error the service answers: ``{"error": {"code": ..., "message": ...}}`` with a precise status.

``ServiceError`` carries its status, code and headers. Library errors are mapped by family
(``vasari.errors``): an ``ImageError`` by its code (``IMAGE_ERROR_STATUS``), any other
``InputError`` is the client's (400), a ``ModelError`` or ``CacheError`` is the server's
(500). ``install_error_handlers`` puts these, the request-validation and HTTP handlers and
the catch-all 500 on an app (or on the minimal app of a router test).
"""

from __future__ import annotations

import logging

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.requests import ClientDisconnect

from vasari.errors import InputError, VasariError

log = logging.getLogger(__name__)


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


def prediction_failed(exc: Exception) -> ServiceError:
    """500 prediction_failed: the model (or the preparing of its input) failed on a picture."""
    return ServiceError(500, "prediction_failed", f"the model failed on this image: {type(exc).__name__}: {exc}")


#: How each ImageError code is answered.
IMAGE_ERROR_STATUS = {
    "empty": 400,
    "not_an_image": 415,
    "too_large": 413,
    "corrupt": 422,
    "decompression_bomb": 422,
}

#: Codes of the HTTP errors raised by Starlette itself (unknown path, wrong method...).
HTTP_ERROR_CODES = {400: "bad_request", 404: "not_found", 405: "method_not_allowed", 413: "too_large"}


def error_body(code: str, message: str) -> dict:
    return {"error": {"code": code, "message": message}}


#: The OpenAPI description of an error answer (the ``content`` of a documented response).
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


def documented(description: str) -> dict:
    """An OpenAPI response entry for an error answer described by ``description``."""
    return {"description": description, **ERROR_SCHEMA}


def service_error_for(exc: VasariError) -> ServiceError:
    """A library error as the service answers it, by family: the client's input (4xx) or
    the server's model or cache (500)."""
    code = getattr(exc, "code", None)
    if code in IMAGE_ERROR_STATUS:
        return ServiceError(IMAGE_ERROR_STATUS[code], code, str(exc))
    if isinstance(exc, InputError):
        return ServiceError(400, "bad_input", str(exc))
    return ServiceError(500, "model_error", f"{type(exc).__name__}: {exc}")


async def _service_error(request: Request, exc: ServiceError):
    return JSONResponse(error_body(exc.code, exc.message), exc.status, headers=exc.headers)


async def _library_error(request: Request, exc: VasariError):
    if not isinstance(exc, InputError):
        log.exception("library error on %s", request.url.path, exc_info=exc)
    return await _service_error(request, service_error_for(exc))


async def _validation_error(request: Request, exc: RequestValidationError):
    parts = []
    for err in exc.errors():
        loc = [str(x) for x in err.get("loc", ()) if x not in ("query", "body", "path", "header")]
        value = err.get("input")
        shown = f" (got {value!r})" if isinstance(value, (str, int, float)) else ""
        parts.append(f"{'.'.join(loc) or 'request'}: {err.get('msg', 'invalid')}{shown}")
    return JSONResponse(error_body("bad_parameter", "; ".join(parts) or "invalid request"), 400)


async def _http_error(request: Request, exc: StarletteHTTPException):
    code = HTTP_ERROR_CODES.get(exc.status_code, f"http_{exc.status_code}")
    message = exc.detail if isinstance(exc.detail, str) else str(exc.detail)
    if exc.status_code == 405:
        message = f"{request.method} is not allowed on {request.url.path}"
    elif exc.status_code == 404:
        message = f"no such page or endpoint: {request.url.path}"
    return JSONResponse(error_body(code, message), exc.status_code, headers=getattr(exc, "headers", None))


async def _client_left(request: Request, exc: ClientDisconnect):
    """A client that leaves mid-upload (or while its picture waits) is no server error:
    one log line, nothing more is computed for it, and nobody is there to answer."""
    client = f"{request.client.host}:{request.client.port}" if request.client else "a client"
    log.info("%s left before the answer to %s %s", client, request.method, request.url.path)
    return Response(status_code=499)


async def _internal_error(request: Request, exc: Exception):
    log.exception("unhandled error on %s", request.url.path)
    return JSONResponse(error_body("internal", f"internal error: {type(exc).__name__}"), 500)


def install_error_handlers(app: FastAPI) -> None:
    """Answer every error of ``app`` as ``{"error": {"code", "message"}}``."""
    app.add_exception_handler(ServiceError, _service_error)
    app.add_exception_handler(VasariError, _library_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(ClientDisconnect, _client_left)
    app.add_exception_handler(Exception, _internal_error)
