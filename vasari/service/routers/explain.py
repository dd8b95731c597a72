"""Explanations: ``POST /api/v1/explain``, the regions of a picture that drove one task's answer.

The upload goes through the same limits and decoding guards as a prediction
(``vasari.service.uploads``); the explanation itself (~65 pictures through the backbone) runs
on the batcher's worker threads as one job (``MicroBatcher.submit_call``), so the worker count,
the queue and load shedding cover it like any prediction. The scores of an upload are kept by
its sha256 (``ServiceState.explain_cache``): the page's "Why?" under a second card sends the
same picture again, and its explanation then costs no network run.
"""

from __future__ import annotations

import base64
import copy
import hashlib
from typing import Literal

from fastapi import APIRouter, Query, Request
from fastapi.responses import JSONResponse, Response
from starlette.datastructures import UploadFile

from vasari.explain import ExplainConfig, Explainer, ExplanationWithOverlay, overlay_png
from vasari.service.config import API_PREFIX
from vasari.service.deps import State
from vasari.service.errors import ServiceError
from vasari.service.middleware import result_unless_gone
from vasari.service.routers.predict import OPENAPI_SINGLE, PREDICT_ERRORS, read_single_upload
from vasari.service.state import ServiceState
from vasari.service.uploads import content_type, decode_upload, missing_file, read_form, upload_name


def openapi_explain() -> dict:
    """The request body of predict (multipart ``file`` or raw image bytes) with the form
    fields ``task`` and ``label``."""
    body = copy.deepcopy(OPENAPI_SINGLE)
    fields = body["requestBody"]["content"]["multipart/form-data"]["schema"]["properties"]
    fields["task"] = {"type": "string", "description": "the task to explain (overrides the query)"}
    fields["label"] = {"type": "string", "description": "the label to explain (overrides the query)"}
    return body


EXPLAIN_ANSWERS = {
    **PREDICT_ERRORS,
    200: {"description": "The explanation (JSON), or with `format=png` the overlay alone",
          "content": {"image/png": {"schema": {"type": "string", "format": "binary"}}}},
    400: {**PREDICT_ERRORS[400], "description": "bad parameter (a task this model does not answer, a label "
                                                 "not of the task), empty body or missing field"},
}


async def read_explain_upload(request: Request) -> tuple[bytes, str, dict[str, str]]:
    """The image bytes, their name and the text fields (``task``, ``label``) of the request."""
    if content_type(request) != "multipart/form-data":
        data, name = await read_single_upload(request)
        return data, name, {}
    form = await read_form(request, max_files=4)
    upload = form.get("file")
    if not isinstance(upload, UploadFile):
        raise missing_file(form, "send the image in multipart field 'file'")
    fields = {key: value for key in ("task", "label") if isinstance(value := form.get(key), str) and value}
    data = await upload.read()
    await form.close()
    return data, upload_name(upload.filename), fields


def explainer_of(state: ServiceState) -> Explainer:
    """An explainer of the served predictor (503 when the predictor cannot be explained)."""
    predictor = state.predictor
    if not hasattr(predictor, "heads") or not hasattr(predictor, "embedder"):
        raise ServiceError(503, "not_supported", "this server's model cannot be explained (no heads or backbone)")
    return Explainer(predictor, ExplainConfig(), cache=state.explain_cache)


async def explain_upload(request: Request, state: ServiceState, task: str, label: str | None) -> dict:
    """The explanation of one upload with its overlay (base64 PNG)."""
    state.require_ready()
    state.admit()
    explainer = explainer_of(state)
    with state.batcher.expecting():
        data, name, fields = await read_explain_upload(request)
        image = await decode_upload(state, data, name, prepare=False)
    task = fields.get("task", task)
    label = fields.get("label", label)
    tasks = explainer.check_tasks([task])
    if label is not None:
        explainer.check_label(task, label)

    key = hashlib.sha256(data).hexdigest()  # the next card's "Why?" sends the same bytes

    def run() -> dict:
        result = explainer.explain(image, tasks, {task: label} if label else None, key=key)[0]
        png = base64.b64encode(overlay_png(image, result)).decode("ascii")
        return {"image": name, **result.model_dump(mode="json"), "overlay_png": png}

    future = state.batcher.submit_call(run, cost=explainer.cost(key))
    return await result_unless_gone(request, future)


router = APIRouter(prefix=API_PREFIX, tags=["explain"])


@router.post(
    "/explain",
    summary="Why this answer? Explain one task's answer for an image",
    description=(
        "Send the image as multipart field `file` (with optional fields `task` and `label`), or "
        "as the raw body with an `image/*` or `application/octet-stream` content type. Each region "
        "of the square the model sees is hidden in turn; `grid` gives each region's share of the "
        "drop in the probability of the answer (the top class when the answer is \"unknown\", "
        "or `label`). Returns the explanation with a base64 PNG overlay, or with `format=png` "
        "the overlay alone. Takes about a second: ~65 occluded copies go through the backbone."
    ),
    openapi_extra=openapi_explain(),
    response_model=ExplanationWithOverlay,
    responses=EXPLAIN_ANSWERS,
)
async def explain(
    request: Request,
    state: State,
    task: str = Query("artist", min_length=1, max_length=40, description="the task whose answer to explain"),
    label: str | None = Query(None, min_length=1, max_length=200,
                              description="explain this label of the task instead of the answer"),
    format: Literal["json", "png"] = Query("json", description="`png`: answer with the overlay alone (image/png)"),
):
    out = await explain_upload(request, state, task, label)
    if format == "png":
        return Response(base64.b64decode(out["overlay_png"]), media_type="image/png")
    return JSONResponse(out)
