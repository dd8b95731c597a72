"""The loaded model: ``/api/v1/model`` (tasks, labels, backbone, card, metrics),
``/api/v1/model/card`` (MODEL_CARD.md) and the thumbnails of similar paintings."""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter
from fastapi.responses import FileResponse, JSONResponse, PlainTextResponse
from starlette.concurrency import run_in_threadpool

import vasari
from vasari.service.config import API_PREFIX
from vasari.service.deps import State
from vasari.service.errors import ServiceError, documented
from vasari.service.state import read_model_card

router = APIRouter(prefix=API_PREFIX, tags=["model"])

NOT_READY = {503: documented("model not loaded yet")}
#: The documented answers of each route (one place, for ``response_model`` too).
MODEL_RESPONSES: dict = {**NOT_READY}
CARD_RESPONSES: dict = {200: {"content": {"text/markdown": {}}}, **NOT_READY}
THUMBNAIL_RESPONSES: dict = {
    200: {
        "description": "the thumbnail image (the format of the gallery's file)",
        "content": {"image/*": {"schema": {"type": "string", "format": "binary"}}},
    },
    404: documented("unknown thumbnail"),
}


@router.get("/model", summary="The loaded model", responses=MODEL_RESPONSES)
async def model_info(state: State):
    """Tasks, labels per task, backbone and preprocessing, model card and metrics."""
    state.require_ready()
    config = state.config
    info = dict(state.info)
    info["service"] = {
        "version": vasari.__version__,
        "max_upload_bytes": config.max_upload_bytes,
        "max_batch_files": config.max_batch_files,
        "max_top_k": config.max_top_k,
        "default_top_k": config.default_top_k,
    }
    return JSONResponse(info)


@router.get(
    "/model/card", summary="The model card (Markdown)", response_class=PlainTextResponse, responses=CARD_RESPONSES
)
async def model_card_markdown(state: State):
    """The bundle's MODEL_CARD.md: data, splits, evaluation, intended use, limitations."""
    state.require_ready()
    if state.card_markdown is None:
        state.card_markdown = await run_in_threadpool(read_model_card, state.predictor, state.info)
    return PlainTextResponse(state.card_markdown, media_type="text/markdown; charset=utf-8")


@router.get(
    "/thumbnails/{key}",
    summary="Thumbnail of a similar painting",
    description="The URLs come in the `thumbnail` fields of `similar` (and affinity evidence).",
    response_class=FileResponse,
    responses=THUMBNAIL_RESPONSES,
)
async def thumbnail(key: str, state: State):
    path = state.thumbnails.path_of(key)
    if path is None or not Path(path).is_file():
        raise ServiceError(404, "not_found", f"no thumbnail {key!r} (thumbnail URLs come from a prediction)")
    return FileResponse(path, headers={"Cache-Control": "public, max-age=86400"})
