"""Enrolment over HTTP: ``POST /api/v1/artists`` teaches the served model a new artist.

Behind a bearer token the operator configures (``VASARI_ADMIN_TOKEN`` -> ``ServiceConfig.
admin_token``): without one configured, enrolment is off and every request is answered 403
(nobody can be authorised); with one, a missing or wrong ``Authorization: Bearer`` header is
answered 401 before the body is read. Either way nothing changes.

On success the new bundle is written under ``ServiceConfig.bundle_dir`` (``VASARI_BUNDLE_DIR``;
default ``<user cache>/bundles``), loaded, and swapped in: requests already in a batch finish
on the old model, the next ones use the new one. A failed enrolment (too few or too many
images, an image that does not decode, a name already known, a bundle that cannot enrol)
leaves the served model exactly as it was. One enrolment runs at a time; the refit and the
loading run in the thread pool, not on the event loop.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import re
import time
from pathlib import Path

from fastapi import APIRouter, Request
from pydantic import BaseModel, Field
from starlette.concurrency import run_in_threadpool

from vasari.service.config import API_PREFIX
from vasari.service.deps import State
from vasari.service.errors import ServiceError, documented
from vasari.service.state import ServiceState
from vasari.service.uploads import decode_upload, read_form, upload_name

MAX_FILES = 20


class Enrolled(BaseModel):
    """What ``POST /api/v1/artists`` answers after the new bundle is being served."""

    artist: str = Field(description="the artist's name as answers now show it")
    class_index: int = Field(description="the artist's class in the artist head")
    version: int = Field(description="the new bundle's version (the served one before it + 1)")
    bundle: str = Field(description="the new bundle's folder name")
    images: int
    images_named: int = Field(description="enrolled images the new model names (a fit check, not a test)")
    cv_answered: float = Field(description="share of held-out images named in cross-validation")
    seconds: float


FORM = {"type": "object", "required": ["name", "files"], "properties": {
    "name": {"type": "string", "minLength": 1, "maxLength": 100, "description": "the artist's name"},
    "files": {"type": "array", "minItems": 5, "maxItems": MAX_FILES,
              "items": {"type": "string", "format": "binary"}, "description": "5-20 images of the artist's works"},
    "years": {"type": "string", "description": "active years FIRST-LAST, e.g. 1606-1669"},
    "school": {"type": "string", "description": "school recorded in the gallery, e.g. Dutch"}}}
OPENAPI = {
    "requestBody": {"required": True, "content": {"multipart/form-data": {"schema": FORM}}},
    "parameters": [{"name": "Authorization", "in": "header", "required": False, "schema": {"type": "string"},
                    "description": "Bearer <VASARI_ADMIN_TOKEN>"}],
}
ERRORS = {
    400: documented("bad form: too few or too many images, a bad name or years"),
    401: documented("missing or wrong bearer token (WWW-Authenticate: Bearer); nothing changed"),
    403: documented("enrolment is off: the operator configured no VASARI_ADMIN_TOKEN; nothing changed"),
    408: documented("the upload stalled"),
    409: documented("the model already knows an artist of that name; nothing changed"),
    413: documented("body too large"),
    415: documented("a file is not an image"),
    422: documented("a corrupt or truncated image, or a decompression bomb"),
    503: documented("model not loaded yet"),
}


def check_token(state: ServiceState, request: Request) -> None:
    """403 when enrolment is off, 401 unless the bearer token matches (constant time)."""
    token = state.config.admin_token
    if not token:
        raise ServiceError(403, "enrolment_disabled",
                           "enrolment is off on this server: its operator has set no VASARI_ADMIN_TOKEN")
    given = request.headers.get("authorization", "")
    scheme, _, value = given.partition(" ")
    if scheme.lower() != "bearer" or not hmac.compare_digest(value.strip().encode(), token.encode()):
        raise ServiceError(401, "unauthorized", "a valid admin token is required (Authorization: Bearer <token>)",
                           headers={"WWW-Authenticate": "Bearer"})


def bundle_dir(state: ServiceState) -> Path:
    if state.config.bundle_dir:
        return Path(state.config.bundle_dir)
    from vasari.features.spec import default_cache_dir

    return default_cache_dir() / "bundles"


async def read_images(state: ServiceState, request: Request) -> tuple[dict[str, str], list, list]:
    """The form's text fields, decoded images and their sources ("upload:<file name>" + sha256)."""
    from vasari.enrol import ImageSource

    form = await read_form(request, MAX_FILES + 1)
    files = [f for f in form.getlist("files") if hasattr(f, "read")]
    if not 5 <= len(files) <= MAX_FILES:
        raise ServiceError(400, "bad_file_count", f"{len(files)} file(s) in field 'files': send 5 to {MAX_FILES}")
    fields = {k: str(form.get(k) or "") for k in ("name", "years", "school")}
    images, sources = [], []
    for upload in files:
        data, name = await upload.read(), upload_name(upload.filename)
        images.append(await decode_upload(state, data, name, prepare=False))
        sources.append(ImageSource(f"upload:{name}", hashlib.sha256(data).hexdigest()))  # a name, never a server path
    return fields, images, sources


def enrol_and_load(state: ServiceState, fields: dict[str, str], images: list, sources: list):
    """Embed, enrol and load the new predictor (in a worker thread); the served one is untouched."""
    from vasari.enrol import enrol_features
    from vasari.inference.predictor import Predictor

    old = state.predictor
    features = old.embedder.embed_images(images)
    slug = re.sub(r"[^a-z0-9]+", "-", fields["name"].casefold()).strip("-")[:40] or "artist"
    out = bundle_dir(state) / f"{time.strftime('%Y%m%d-%H%M%S')}-{slug}-{hashlib.sha256(repr(sources).encode()).hexdigest()[:8]}"
    result = enrol_features(old.bundle, fields["name"], features, sources, out, years=fields["years"] or None,
                            school=fields["school"] or None)
    return result, Predictor.load(result.path, crop=getattr(old, "crop", False))


def build_router() -> APIRouter:
    router = APIRouter(prefix=API_PREFIX, tags=["enrolment"])
    lock = asyncio.Lock()

    @router.post("/artists", response_model=Enrolled, responses=ERRORS, openapi_extra=OPENAPI,
                 summary="Teach the model a new artist from 5-20 images (admin token)")
    async def enrol_artist(request: Request, state: State) -> Enrolled:
        """Multipart ``name``, ``files`` (5-20 images), optional ``years`` and ``school``.
        The served model is replaced by the new bundle only when everything succeeded."""
        check_token(state, request)
        state.require_ready()
        from vasari.enrol import EnrolError

        started = time.perf_counter()
        fields, images, sources = await read_images(state, request)
        async with lock:
            try:
                result, predictor = await run_in_threadpool(enrol_and_load, state, fields, images, sources)
            except EnrolError as exc:
                raise ServiceError(409 if exc.code == "duplicate_artist" else 400, exc.code, str(exc)) from exc
            state.adopt(predictor)
        info = result.info
        return Enrolled(artist=result.artist, class_index=result.class_index, version=result.version,
                        bundle=result.path.name, images=len(images), images_named=info["images_named"],
                        cv_answered=info["fit"]["cv_answered"], seconds=round(time.perf_counter() - started, 2))

    return router
