"""Writing one fetched body: its temp file beside the destination, the image check (a decode,
JPEGs at reduced scale), the optional resize, the rename into place, and the adoption of a file
a killed run had already put in place."""

from __future__ import annotations

import contextlib
import hashlib
import io
import os
from pathlib import Path

from PIL import Image

from vasari.core.images import ImageError, ImageLimits, load_image
from vasari.download.jobs import DownloadConfig

_SAVE_FORMATS = frozenset({"JPEG", "PNG", "WEBP", "GIF", "BMP", "TIFF"})
_CHECK_SIDE = 64  # JPEGs are checked by decoding at a reduced scale (Image.draft), not below this


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


class FetchFailure(Exception):
    def __init__(self, reason: str, detail: str, retry: bool = False, retry_after: float | None = None):
        super().__init__(detail)
        self.reason, self.detail, self.retry, self.retry_after = reason, detail, retry, retry_after


def _resized(data: bytes, img: Image.Image, max_side: int, quality: int) -> bytes | None:
    """``img`` scaled so its long side is ``max_side``, encoded like the original (None: small enough).

    Whether it is small enough is the original's size: ``img`` may be decoded at reduced scale.
    ``img`` is shrunk in place (the caller's decode, not needed afterwards)."""
    with Image.open(io.BytesIO(data)) as original:
        fmt, icc, size = original.format, original.info.get("icc_profile") if original.mode == "RGB" else None, original.size
    if max(size) <= max_side:
        return None
    img.thumbnail((max_side, max_side), Image.Resampling.LANCZOS)
    fmt = fmt if fmt in _SAVE_FORMATS else "PNG"
    options: dict = {"icc_profile": icc} if icc and fmt in ("JPEG", "PNG", "WEBP") else {}
    if fmt in ("JPEG", "WEBP"):
        options["quality"] = quality
    out = io.BytesIO()
    img.save(out, format=fmt, **options)
    return out.getvalue()


def open_temp(tmp: Path):
    try:
        tmp.parent.mkdir(parents=True, exist_ok=True)
        return tmp.open("wb")
    except OSError as exc:  # e.g. a file where the destination needs a folder
        raise FetchFailure("write", f"cannot write {tmp.parent}: {exc.strerror or exc}") from exc


def discard_temp(tmp: Path) -> None:
    """Remove a job's temp file if it exists. Never raises: a clean-up error must not end the
    run (nor hide the job's own failure); a temp file left behind goes at the next start."""
    with contextlib.suppress(OSError):
        tmp.unlink(missing_ok=True)


def finish_temp(tmp: Path, dest: Path, config: DownloadConfig) -> tuple[int, str]:
    """Decode the downloaded body, resize if asked, and move it into place (runs in a thread)."""
    data = tmp.read_bytes()
    try:  # a reduced-scale JPEG decode still reads every byte, so it still catches truncation
        img = load_image(data, min_side=config.max_side or _CHECK_SIDE, limits=ImageLimits(max_bytes=config.max_bytes))
    except ImageError as exc:
        raise FetchFailure(exc.code, str(exc).replace("<bytes>", "body")) from exc
    smaller = _resized(data, img, config.max_side, config.jpeg_quality) if config.max_side else None
    with tmp.open("r+b") as f:
        if smaller is not None:
            data = smaller
            f.write(data)
            f.truncate()
            f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, dest)
    return len(data), hashlib.sha256(data).hexdigest()


def adopt_existing(dest: Path, config: DownloadConfig) -> tuple[int, str] | None:
    """A valid image already at ``dest`` with no manifest record (e.g. killed right after
    the rename): its size and sha256, or None if it is not a usable image."""
    try:
        load_image(dest, min_side=_CHECK_SIDE, limits=ImageLimits(max_bytes=config.max_bytes))
    except ImageError:
        return None
    return dest.stat().st_size, sha256_file(dest)
