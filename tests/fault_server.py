"""A local, fault-injecting HTTP server for the downloader's tests and benchmark.

It listens on 127.0.0.1 only (an ephemeral port), serves generated images and misbehaves
on request: 5xx, 429 with Retry-After (seconds or HTTP-date), stalls longer than the
client's timeout, bodies cut short of their Content-Length, dropped connections, HTML in
place of an image, redirects and 404s. It counts requests per path, keeps their times and
User-Agents, and shuts itself down after ``lifetime`` seconds even if a test forgets to.
"""

from __future__ import annotations

import email.utils
import io
import random
import socket
import threading
import time
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from PIL import Image

HTML = b"<!DOCTYPE html><html><head><title>Web Gallery of Art</title></head><body>frames</body></html>\n"


def make_image(width: int = 96, height: int = 64, fmt: str = "JPEG", seed: int = 0) -> bytes:
    """A small, distinct picture (a gradient with coloured noise) encoded as ``fmt``."""
    rng = random.Random(seed)
    img = Image.linear_gradient("L").resize((width, height)).convert("RGB")
    noise = Image.effect_noise((width, height), 40 + seed % 50).convert("RGB")
    tint = Image.new("RGB", (width, height), (rng.randrange(256), rng.randrange(256), rng.randrange(256)))
    img = Image.blend(Image.blend(img, noise, 0.3), tint, 0.4)
    out = io.BytesIO()
    img.save(out, format=fmt, **({"quality": 85} if fmt == "JPEG" else {}))
    return out.getvalue()


@dataclass
class Route:
    """What one path serves. ``faults`` are used up one per request, in order; after them
    every request gets ``always`` (a fault) if set, else the normal response."""

    body: bytes = b""
    content_type: str = "image/jpeg"
    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)
    faults: list[str] = field(default_factory=list)
    always: str | None = None
    delay: float = 0.0  # seconds before answering, on every request


class FaultServer:
    """``with FaultServer() as server: server.add("/art/a/x.jpg", make_image()); server.url(...)``.

    Fault names: ``500``/``502``/``503`` (any status code), ``429:N`` (Retry-After N
    seconds), ``429-date:N`` (Retry-After as an HTTP-date N seconds ahead), ``stall:S``
    (sleep S seconds before answering), ``truncate`` (send half the body with the full
    Content-Length, then hang up), ``reset`` (hang up without answering), ``html`` (200
    text/html page).
    """

    def __init__(self, latency: float = 0.0, lifetime: float = 120.0):
        self.latency = latency
        self.routes: dict[str, Route] = {}
        self.hits: Counter[str] = Counter()
        self.times: dict[str, list[float]] = defaultdict(list)
        self.user_agents: set[str] = set()
        self._lock = threading.Lock()
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args) -> None:  # quiet
                pass

            def do_GET(self) -> None:  # noqa: N802 - http.server's name
                server._serve(self)

        class Server(ThreadingHTTPServer):
            daemon_threads = True
            request_queue_size = 128  # the default 5 drops SYNs under 16 concurrent clients

        self.httpd = Server(("127.0.0.1", 0), Handler)
        self.port = self.httpd.server_address[1]
        self._thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self._timer = threading.Timer(lifetime, self.stop)
        self._timer.daemon = True
        self._stopped = False

    # -- set-up ---------------------------------------------------------------------
    def add(self, path: str, body: bytes = b"", **route) -> str:
        self.routes[path] = Route(body=body, **route)
        return self.url(path)

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def start(self) -> "FaultServer":
        self._thread.start()
        self._timer.start()
        return self

    def stop(self) -> None:
        with self._lock:
            if self._stopped:
                return
            self._stopped = True
        self._timer.cancel()
        self.httpd.shutdown()
        self.httpd.server_close()

    def __enter__(self) -> "FaultServer":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    # -- serving --------------------------------------------------------------------
    def _serve(self, h: BaseHTTPRequestHandler) -> None:
        path = h.path.split("?")[0]
        with self._lock:
            self.hits[path] += 1
            self.times[path].append(time.monotonic())
            self.user_agents.add(h.headers.get("User-Agent", ""))
            route = self.routes.get(path)
            fault = None
            if route is not None:
                fault = route.faults.pop(0) if route.faults else route.always
        try:
            if self.latency:
                time.sleep(self.latency)
            if route is None:
                return self._send(h, 404, b"not found\n", "text/plain")
            if route.delay:
                time.sleep(route.delay)
            if fault is None:
                return self._send(h, route.status, route.body, route.content_type, route.headers)
            name, _, arg = fault.partition(":")
            if name == "429":
                return self._send(h, 429, b"slow down\n", "text/plain", {"Retry-After": arg or "1"})
            if name.isdigit():
                return self._send(h, int(name), b"server error\n", "text/plain")
            if name == "429-date":
                when = email.utils.formatdate(time.time() + float(arg or 1), usegmt=True)
                return self._send(h, 429, b"slow down\n", "text/plain", {"Retry-After": when})
            if name == "stall":
                time.sleep(float(arg or 1))
                return self._send(h, route.status, route.body, route.content_type, route.headers)
            if name == "html":
                return self._send(h, 200, HTML, "text/html; charset=utf-8")
            if name == "truncate":
                return self._send(h, 200, route.body, route.content_type, route.headers, cut=len(route.body) // 2)
            if name == "reset":
                h.close_connection = True
                h.connection.shutdown(socket.SHUT_RDWR)
                return None
            raise ValueError(f"unknown fault {fault!r}")
        except (BrokenPipeError, ConnectionResetError, OSError):
            h.close_connection = True  # the client gave up (its timeout): nothing to do

    @staticmethod
    def _send(h, status: int, body: bytes, ctype: str, headers: dict[str, str] | None = None, cut: int | None = None) -> None:
        h.send_response(status)
        h.send_header("Content-Type", ctype)
        h.send_header("Content-Length", str(len(body)))
        for key, value in (headers or {}).items():
            h.send_header(key, value)
        if cut is not None:
            h.send_header("Connection", "close")
        h.end_headers()
        h.wfile.write(body if cut is None else body[:cut])
        h.wfile.flush()
        if cut is not None:
            h.close_connection = True
            h.connection.shutdown(socket.SHUT_RDWR)
