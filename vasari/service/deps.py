"""Dependencies of the routes (FastAPI's Annotated style): the app's ``ServiceState``.

A router test mounts a router on a minimal app and either sets ``app.state.vasari`` or
overrides ``service_state`` (``app.dependency_overrides[service_state] = ...``).
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from vasari.service.state import ServiceState


def service_state(request: Request) -> ServiceState:
    """The state of the app serving ``request``."""
    return request.app.state.vasari


State = Annotated[ServiceState, Depends(service_state)]
