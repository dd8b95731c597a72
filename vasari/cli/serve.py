"""CLI verb of the "serve" area: ``vasari serve`` (web page + REST API)."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer
from rich.console import Console

from vasari.service.config import ServiceConfig, enrolment_from_env

#: The flags' defaults are ServiceConfig's (stated once, there).
DEFAULT = ServiceConfig.default


def serve(
    host: str = typer.Option("127.0.0.1", "--host", help="Interface to listen on (0.0.0.0: every interface, e.g. for a phone on the same network)."),
    port: int = typer.Option(8000, "--port", min=0, max=65535, help="TCP port."),
    model: Optional[Path] = typer.Option(None, "--model", help="Bundle folder (default: the bundle shipped with Vasari)."),
    crop: bool = typer.Option(False, "--crop/--no-crop", help="Find the painting in museum photos (frame, wall, perspective) before predicting; ~0.1-0.4 s more per picture on 2 cores."),
    max_upload_mb: float = typer.Option(DEFAULT("max_upload_bytes") / 2**20, "--max-upload-mb", min=0.001, help="Largest image upload accepted, in MB (bigger: 413)."),
    batch_window_ms: float = typer.Option(DEFAULT("batch_window_ms"), "--batch-window-ms", min=0.0, help="How long to wait for concurrent requests to share one forward pass."),
    max_batch: int = typer.Option(DEFAULT("max_batch_size"), "--max-batch", min=1, help="Most images per forward pass."),
    inference_workers: int = typer.Option(DEFAULT("inference_workers"), "--inference-workers", min=1, help="Forward passes run at once."),
    decode_threads: Optional[int] = typer.Option(DEFAULT("decode_threads"), "--decode-threads", min=1, help="Uploads decoded at once (default: one per core)."),
    shed_wait_s: float = typer.Option(DEFAULT("shed_wait_s"), "--shed-wait-s", min=0.0, help="Answer 503 + Retry-After at once when the pictures already waiting would take longer than this (seconds); 0: never shed."),
    body_timeout_s: float = typer.Option(DEFAULT("body_timeout_s"), "--body-timeout-s", min=0.1, help="Close an upload from which nothing arrives for this long (408)."),
    header_timeout_s: float = typer.Option(DEFAULT("header_timeout_s"), "--header-timeout-s", min=0.1, help="Close a connection whose request headers are not complete after this long."),
    max_connections: int = typer.Option(DEFAULT("max_connections"), "--max-connections", min=1, help="Open connections kept; beyond it the oldest idle one is closed."),
    graceful_shutdown_s: float = typer.Option(DEFAULT("graceful_shutdown_s"), "--graceful-shutdown-s", min=0.0, help="On SIGTERM/Ctrl-C, time given to requests in progress before they are cancelled."),
    log_level: str = typer.Option("info", "--log-level", help="uvicorn log level: critical, error, warning, info, debug."),
) -> None:
    """Serve the visitor page and the REST API (one process; the model is loaded once).

    Example: vasari serve --port 8000 --model runs/model --crop
    Then open http://127.0.0.1:8000/ (API docs at /docs).
    """
    console = Console(stderr=True, soft_wrap=True)
    try:
        import uvicorn

        from vasari.inference.predictor import Predictor
        from vasari.service.app import create_app
        from vasari.service.server import uvicorn_config
    except ImportError as exc:  # pragma: no cover - broken install
        console.print(f"[red]vasari serve: {exc}")
        raise typer.Exit(1) from None
    if model is not None and not model.is_dir():
        console.print(f"[red]vasari serve: --model {model}: no such bundle folder")
        raise typer.Exit(2)
    with console.status(f"loading the model {model or '(default bundle)'}…"):
        try:
            predictor = Predictor.load(model, crop=crop)
        except Exception as exc:  # BundleError, missing files, wrong backbone...
            console.print(f"[red]vasari serve: cannot load the model {model or '(default bundle)'}: {exc}")
            raise typer.Exit(1) from None
    config = ServiceConfig(
        max_upload_bytes=int(max_upload_mb * 1024 * 1024),
        batch_window_ms=batch_window_ms,
        max_batch_size=max_batch,
        inference_workers=inference_workers,
        decode_threads=decode_threads,
        shed_wait_s=shed_wait_s or None,
        body_timeout_s=body_timeout_s,
        header_timeout_s=header_timeout_s,
        max_connections=max_connections,
        graceful_shutdown_s=graceful_shutdown_s,
        **enrolment_from_env(),  # POST /api/v1/artists: VASARI_ADMIN_TOKEN, VASARI_BUNDLE_DIR
    )
    app = create_app(predictor, config)
    console.print(f"Vasari on http://{host}:{port}/  (API docs: http://{host}:{port}/docs)")
    uvicorn.Server(uvicorn_config(app, config, host=host, port=port, log_level=log_level.lower())).run()


def register(app: typer.Typer) -> None:
    app.command("serve")(serve)
