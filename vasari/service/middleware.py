"""ASGI middleware and the request pieces that guard the server against its clients.

``BodyLimitMiddleware`` answers oversized bodies with 413 and stalled ones with 408;
``SecurityHeadersMiddleware`` adds nosniff and a same-origin Content-Security-Policy;
``result_unless_gone`` drops the work of a client that left before its answer.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
from typing import Callable

from fastapi import Request
from fastapi.responses import JSONResponse
from starlette.requests import ClientDisconnect

from vasari.service.errors import BodyTimeout, BodyTooLarge, error_body


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



async def until_disconnected(request: Request) -> None:
    """Returns when the client has gone (the body is read: the next message is the disconnect)."""
    while (await request.receive())["type"] != "http.disconnect":
        pass


async def result_unless_gone(request: Request, future: concurrent.futures.Future) -> list[dict]:
    """The batcher's result, or ``ClientDisconnect`` (and the job dropped unless already
    running) when the client leaves first."""
    result = asyncio.wrap_future(future)
    gone = asyncio.ensure_future(until_disconnected(request))
    try:
        await asyncio.wait({result, gone}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        gone.cancel()
    if result.done():
        return result.result()
    future.cancel()
    result.cancel()
    raise ClientDisconnect()
