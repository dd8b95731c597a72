"""Serving with uvicorn: connection limits and timeouts that ASGI middleware cannot see.

uvicorn times out idle keep-alive connections but not a client that sends its headers a
byte at a time (slowloris): such connections pile up until no descriptor is left and
``/healthz`` stops answering. ``GuardedProtocol`` closes a connection whose request
headers are not complete ``header_timeout_s`` after it opened (or after its previous
response), caps open connections, refuses request headers over ``max_header_bytes`` and
answers malformed requests with the service's JSON 400.

It is uvicorn's httptools protocol (the llhttp parser, in C): at saturation the pure-Python
h11 parser cost ~1–2 ms of CPU per upload, several percent of the service's throughput on
2 cores (measured side by side, benchmarks/load.py). This module imports uvicorn, so the
app itself does not need it.
"""

from __future__ import annotations

import json
import math

import uvicorn
from uvicorn.protocols.http.httptools_impl import STATUS_LINE, HttpToolsProtocol

from vasari.service.config import ServiceConfig
from vasari.service.errors import error_body


def _between_requests(connection) -> bool:
    """True for a connection waiting for its next request (closable without losing work)."""
    if connection.transport is None or connection.transport.is_closing():
        return False  # already on its way out (closed earlier in this burst of accepts)
    cycle = getattr(connection, "cycle", False)
    return cycle is None or bool(getattr(cycle, "response_complete", False))


class GuardedProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol with a header timeout, a header size limit, a connection
    cap and JSON 400s; its ``service_config`` is set by ``guarded_protocol``."""

    service_config: ServiceConfig

    def connection_made(self, transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._header_bytes = 0  # bytes received since the current request began, until its headers end
        self._in_headers = True
        self._arm_header_timer()
        if len(self.connections) > self.service_config.max_connections:
            idle = [c for c in self.connections if c is not self and _between_requests(c)]
            if idle:
                min(idle, key=lambda c: getattr(c, "_waiting_since", 0.0)).transport.close()

    def data_received(self, data: bytes) -> None:
        counted = self._in_headers
        if counted:
            self._header_bytes += len(data)
        super().data_received(data)
        # checked after parsing: one read may hold the end of the headers and a body
        if counted and self._in_headers and self._header_bytes > self.service_config.max_header_bytes:
            if not self.transport.is_closing():
                self.send_400_response(f"request headers over {self.service_config.max_header_bytes} bytes")

    def on_headers_complete(self) -> None:
        self._in_headers = False
        super().on_headers_complete()

    def on_message_complete(self) -> None:
        super().on_message_complete()
        self._in_headers, self._header_bytes = True, 0

    def on_response_complete(self) -> None:
        super().on_response_complete()
        if not self.transport.is_closing():
            self._arm_header_timer()

    def _arm_header_timer(self) -> None:
        """Close the connection unless a new request has begun ``header_timeout_s`` from now."""
        self._waiting_since = self.loop.time()
        armed_for = self.cycle
        self.loop.call_later(self.service_config.header_timeout_s, self._headers_overdue, armed_for)

    def _headers_overdue(self, armed_for) -> None:
        if self.cycle is armed_for and not self.transport.is_closing():
            self.logger.info("closing %s: no complete request headers within %g s",
                             "%s:%d" % self.client if self.client else "a connection",
                             self.service_config.header_timeout_s)
            self.transport.close()

    def send_400_response(self, msg: str) -> None:
        body = json.dumps(error_body("bad_request", msg)).encode()
        head = [STATUS_LINE[400]]
        for name, value in self.server_state.default_headers:
            head += [name, b": ", value, b"\r\n"]
        head += [b"content-type: application/json\r\n", b"content-length: %d\r\n" % len(body),
                 b"connection: close\r\n", b"\r\n"]
        self.transport.write(b"".join(head) + body)
        self.transport.close()


def guarded_protocol(config: ServiceConfig) -> type:
    """``GuardedProtocol`` bound to ``config``'s header timeout, header limit and connection cap."""
    return type("GuardedProtocol", (GuardedProtocol,), {"service_config": config})


def uvicorn_config(app, config: ServiceConfig, host: str = "127.0.0.1", port: int = 8000, log_level: str = "info"):
    """The ``uvicorn.Config`` to serve ``app`` with ``config``'s connection limits and timeouts."""
    return uvicorn.Config(
        app,
        host=host,
        port=port,
        log_level=log_level,
        http=guarded_protocol(config),
        timeout_keep_alive=max(1, math.ceil(config.keep_alive_s)),
        timeout_graceful_shutdown=max(1, math.ceil(config.graceful_shutdown_s)),
        workers=1,
    )
