"""Reading uploads (multipart or raw body) and decoding them into images.

The format is sniffed from the bytes, never from the file name: an upload starting with
a known signature that still cannot be opened is a damaged image (422), not "not an image"
(415). Decoding runs in the thread pool, at the smallest JPEG draft scale the model needs,
and so does the preparing of the network's input (``ServiceState.prepare``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import anyio
from fastapi import Request
from starlette.exceptions import HTTPException as StarletteHTTPException

from vasari.core.images import ImageError, load_image
from vasari.service.errors import IMAGE_ERROR_STATUS, BodyTooLarge, ServiceError

if TYPE_CHECKING:
    from vasari.service.state import ServiceState, Upload

#: Leading bytes of the formats Vasari reads: an upload starting with one of these that
#: still cannot be opened is a damaged image (422), not "not an image" (415).
IMAGE_MAGIC: tuple[tuple[bytes, str], ...] = (
    (b"\x89PNG\r\n\x1a\n", "PNG"),
    (b"\xff\xd8\xff", "JPEG"),
    (b"GIF87a", "GIF"),
    (b"GIF89a", "GIF"),
    (b"BM", "BMP"),
    (b"II*\x00", "TIFF"),
    (b"MM\x00*", "TIFF"),
)


def sniff_format(data: bytes) -> str | None:
    """The image format the bytes claim to be by their signature, or None."""
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "WebP"
    for magic, name in IMAGE_MAGIC:
        if data.startswith(magic):
            return name
    return None


def upload_name(name: str | None) -> str:
    """The file name shown back to the client: its last path part, at most 200 characters."""
    name = (name or "").replace("\\", "/").rsplit("/", 1)[-1].strip()
    return name[:200] or "upload"


def content_type(request: Request) -> str:
    """The request's media type, lower case, without parameters."""
    return request.headers.get("content-type", "").split(";", 1)[0].strip().lower()


async def read_body(request: Request) -> bytes:
    """The whole raw body (its size is bounded by ``BodyLimitMiddleware``)."""
    chunks = []
    async for chunk in request.stream():
        chunks.append(chunk)
    return b"".join(chunks)


async def read_form(request: Request, max_files: int):
    """The multipart form, or 400 bad_multipart naming what could not be parsed."""
    try:
        return await request.form(max_files=max_files, max_fields=32)
    except StarletteHTTPException as exc:
        raise ServiceError(400, "bad_multipart", f"cannot parse the multipart body: {exc.detail}") from exc


def missing_file(form: Any, what: str) -> ServiceError:
    """400 missing_file: ``what`` to send, and the fields the form did have."""
    fields = sorted(set(form.keys()))
    got = f"; got field(s) {', '.join(fields)}" if fields else "; the form was empty"
    return ServiceError(400, "missing_file", f"{what}{got}")


def decode_and_prepare(state: "ServiceState", data: bytes) -> "Upload":
    """Decode the bytes (as the model's training files were decoded) and make the picture
    ready for the network, in one thread-pool call: both run while the inference workers
    are busy with earlier pictures, so a batch is ready when a worker frees."""
    return state.prepare(decode_only(state, data))


def decode_only(state: "ServiceState", data: bytes) -> Any:
    """The decoded picture (PIL), under the service's limits, for routes that need the
    picture itself rather than the batcher's prepared form (explain, enrol)."""
    return load_image(data, min_side=state.min_side, limits=state.image_limits)


async def decode_upload(state: "ServiceState", data: bytes, name: str, prepare: bool = True) -> Any:
    """The uploaded bytes decoded and prepared for the batcher (``Upload``: ``size`` is the
    decoded picture's), or with ``prepare=False`` the decoded PIL picture; a
    ``ServiceError`` with the status of what is wrong with them otherwise."""
    config = state.config
    if not data:
        raise ServiceError(400, "empty", f"{name}: the upload is empty (0 bytes)")
    if len(data) > config.max_upload_bytes:
        raise BodyTooLarge(config.max_upload_bytes, len(data))
    try:
        image = await anyio.to_thread.run_sync(decode_and_prepare if prepare else decode_only, state, data,
                                               limiter=state.decode_limiter())
    except ImageError as exc:
        message = str(exc).replace("<bytes>", name)
        code = exc.code
        claimed = sniff_format(data) if code == "not_an_image" else None
        if claimed:  # e.g. a PNG header declaring 0x0 pixels: damaged, not "not an image"
            code, message = "corrupt", f"{name}: starts like a {claimed} file but cannot be decoded ({message})"
        raise ServiceError(IMAGE_ERROR_STATUS.get(code, 422), code, message) from exc
    return image
