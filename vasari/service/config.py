"""Limits and tuning of the service: ``ServiceConfig``, its defaults stated once.

``vasari serve`` takes its flag defaults from here (``ServiceConfig.default``) and
``ServiceConfig.from_env`` is the one place the ``VASARI_*`` settings of
``create_app_from_env`` are read. Importing this module is cheap (no FastAPI, no numpy):
the CLI imports it to build ``vasari serve --help``.
"""

from __future__ import annotations

import os
from dataclasses import MISSING, dataclass, field
from pathlib import Path
from typing import Any, Mapping

#: Where every page and asset of the visitor site lives (nothing is served from a CDN).
WEB_DIR = Path(__file__).resolve().parent.parent / "web"
API_PREFIX = "/api/v1"


def _image_pixel_limit() -> int:
    """``ImageLimits``' own pixel limit, imported when a config is made (numpy stays out of
    ``vasari --help``)."""
    from vasari.core.images import ImageLimits

    return ImageLimits().max_pixels


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
    #: How long the batcher waits for requests still being decoded before it runs a batch
    #: (only while another batch is computing: with the cores idle it starts at once).
    batch_window_ms: float = 5.0
    #: Batches run at once (threads calling the predictor). Several: one batch's heads and gallery
    #: enrichment (Python, one core) overlap other batches' network runs; with 1 the two ONNX
    #: streams sat idle ~32% of the time (benchmarks/load.py --saturation on 2 cores, share of
    #: `vasari embed`, 8 / 32 clients: 1 worker 63% / 73%, 2 workers 73% / 78%, 3 workers 76% / 82%).
    inference_workers: int = 3
    #: Uploads decoded at once (None: one per usable core, as ``vasari embed`` decodes). More
    #: decode threads than cores only take turns with the network's streams for the same cores.
    decode_threads: int | None = None
    #: Decode JPEGs at the smallest 1/2^k scale keeping this short side (None: derived from
    #: the backbone's input size and crop; 0: always decode at full resolution).
    decode_min_side: int | None = None
    #: Pixel limit against decompression bombs (width x height; default: ``ImageLimits``').
    max_pixels: int = field(default_factory=_image_pixel_limit)
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
    #: Largest request line + headers (bytes): more is answered 400 and the connection closed
    #: (a client streaming endless headers cannot grow the server's memory).
    max_header_bytes: int = 64 * 1024
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
    #: Bearer token of ``POST /api/v1/artists`` (enrolment). None: enrolment is off and the
    #: endpoint answers 403 to everyone; with a token, a missing or wrong one gets 401.
    admin_token: str | None = field(default=None, repr=False)
    #: Writable folder where enrolment writes new bundles (None: ``<user cache>/bundles``).
    bundle_dir: str | None = None
    #: Pictures whose explanation scores are kept (``vasari.explain.cache``): the "Why?" of
    #: a second card for the same upload then skips the ~1 s of network work. A few KB each
    #: (every task's probabilities on ~65 copies); 0 turns the cache off.
    explain_cache_size: int = 32

    @classmethod
    def default(cls, name: str) -> Any:
        """The default of field ``name``, without making a config (for CLI flag defaults)."""
        spec = cls.__dataclass_fields__[name]
        return spec.default_factory() if spec.default is MISSING else spec.default

    @classmethod
    def from_env(cls, environ: Mapping[str, str] = os.environ) -> "ServiceConfig":
        """The config set by ``VASARI_MAX_UPLOAD_MB``, ``VASARI_BATCH_WINDOW_MS``,
        ``VASARI_MAX_BATCH``, ``VASARI_INFERENCE_WORKERS``, ``VASARI_ADMIN_TOKEN`` (enrolment's
        bearer token) and ``VASARI_BUNDLE_DIR`` (where enrolled bundles go); unset ones keep
        the defaults."""
        settings: dict[str, Any] = {}
        if "VASARI_MAX_UPLOAD_MB" in environ:
            settings["max_upload_bytes"] = int(float(environ["VASARI_MAX_UPLOAD_MB"]) * 1024 * 1024)
        if "VASARI_BATCH_WINDOW_MS" in environ:
            settings["batch_window_ms"] = float(environ["VASARI_BATCH_WINDOW_MS"])
        if "VASARI_MAX_BATCH" in environ:
            settings["max_batch_size"] = int(environ["VASARI_MAX_BATCH"])
        if "VASARI_INFERENCE_WORKERS" in environ:
            settings["inference_workers"] = int(environ["VASARI_INFERENCE_WORKERS"])
        return cls(**settings, **enrolment_from_env(environ))


def enrolment_from_env(environ: Mapping[str, str] = os.environ) -> dict[str, str]:
    """``admin_token`` from ``VASARI_ADMIN_TOKEN`` and ``bundle_dir`` from ``VASARI_BUNDLE_DIR``,
    where set (also read by ``vasari serve``: a token never belongs on a command line)."""
    names = {"admin_token": "VASARI_ADMIN_TOKEN", "bundle_dir": "VASARI_BUNDLE_DIR"}
    return {field_name: environ[var] for field_name, var in names.items() if environ.get(var)}


def model_from_env(environ: Mapping[str, str] = os.environ) -> tuple[Path | None, bool]:
    """``VASARI_MODEL`` (bundle folder; None: the default bundle) and ``VASARI_CROP`` (1, true
    or yes: crop museum photos to the painting)."""
    model = environ.get("VASARI_MODEL") or None
    crop = environ.get("VASARI_CROP", "").lower() in ("1", "true", "yes")
    return (Path(model) if model else None), crop
