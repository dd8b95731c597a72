"""The web service: a page for visitors and a REST API for developers (FastAPI).

The public names are imported on first use, so ``vasari.service.config`` (which the CLI
reads for ``vasari serve --help``) does not pull in FastAPI.
"""

from __future__ import annotations

import importlib
from typing import Any

_HOMES = {
    "log": "errors",
    "WEB_DIR": "config",
    "API_PREFIX": "config",
    "ServiceConfig": "config",
    "ServiceError": "errors",
    "BodyTimeout": "errors",
    "BodyTooLarge": "errors",
    "IMAGE_ERROR_STATUS": "errors",
    "ERROR_SCHEMA": "errors",
    "error_body": "errors",
    "IMAGE_MAGIC": "uploads",
    "sniff_format": "uploads",
    "MicroBatcher": "batching",
    "BodyLimitMiddleware": "middleware",
    "CSP": "middleware",
    "SecurityHeadersMiddleware": "middleware",
    "guarded_protocol": "server",
    "uvicorn_config": "server",
    "OPENAPI_SINGLE": "routers.predict",
    "OPENAPI_BATCH": "routers.predict",
    "PREDICT_ERRORS": "routers.predict",
    "ServiceState": "state",
    "create_app": "app",
    "create_app_from_env": "app",
}

__all__ = sorted(_HOMES)


def __getattr__(name: str) -> Any:
    home = _HOMES.get(name)
    if home is None:
        raise AttributeError(f"module 'vasari.service' has no attribute {name!r}")
    value = getattr(importlib.import_module(f"vasari.service.{home}"), name)
    globals()[name] = value
    return value
