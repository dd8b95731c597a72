"""Probes for orchestrators: ``/healthz`` (the process answers) and ``/readyz`` (the model is warm)."""

from __future__ import annotations

from fastapi import APIRouter

from vasari.service.deps import State
from vasari.service.errors import documented

router = APIRouter(tags=["ops"])

#: The documented answers of each route (one place, for ``response_model`` too).
HEALTHZ_RESPONSES: dict = {}
READYZ_RESPONSES: dict = {503: documented("not ready")}


@router.get("/healthz", summary="Liveness", responses=HEALTHZ_RESPONSES)
async def healthz():
    """200 while the process answers."""
    return {"status": "ok"}


@router.get("/readyz", summary="Readiness", responses=READYZ_RESPONSES)
async def readyz(state: State):
    """200 once the model is loaded and warm, 503 before (or if loading failed)."""
    state.require_ready()
    return {"status": "ready", "batches": state.batcher.batches, "images": state.batcher.images}


for _path, _probe in (("/healthz", healthz), ("/readyz", readyz)):  # uptime checks often probe with HEAD
    router.add_api_route(_path, _probe, methods=["HEAD"], include_in_schema=False)
