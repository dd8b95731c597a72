"""Safe, fast image decoding shared by every stage that reads pictures.

Real inputs are messy: truncated downloads, HTML saved as .jpg, CMYK scans, 16-bit PNGs,
animated GIFs, phone photos with EXIF rotation, and decompression bombs. Everything that
opens an image goes through ``load_image`` so that each of these gives one clear
``ImageError`` (with a machine-readable ``code``) or a clean RGB picture.
"""

from __future__ import annotations

import io
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError


@dataclass(frozen=True)
class ImageLimits:
    """Bounds that protect memory: a 30000x30000 PNG is 3 GB once decoded."""

    max_pixels: int = 64_000_000
    max_bytes: int = 50 * 1024 * 1024


class ImageError(ValueError):
    """An input that is not a usable image.

    ``code`` is one of ``not_found`` / ``unreadable`` (the file itself), ``not_an_image``,
    ``corrupt``, ``too_large`` (bytes), ``decompression_bomb`` (pixels) or ``empty``.
    """

    def __init__(self, code: str, message: str):
        super().__init__(message)
        self.code = code


def _open(data: bytes, name: str) -> Image.Image:
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            return Image.open(io.BytesIO(data))
    except (UnidentifiedImageError, Image.DecompressionBombWarning, Image.DecompressionBombError) as exc:
        if isinstance(exc, UnidentifiedImageError):
            raise ImageError("not_an_image", f"{name}: not a recognised image format") from exc
        raise ImageError("decompression_bomb", f"{name}: {exc}") from exc
    except Exception as exc:  # PIL raises many types for malformed headers
        raise ImageError("corrupt", f"{name}: cannot read image header ({exc})") from exc


def _to_rgb(img: Image.Image) -> Image.Image:
    """Convert any PIL mode to 8-bit RGB; transparency is composited on white."""
    if img.mode in ("I;16", "I;16B", "I;16L", "I", "F"):
        arr = np.asarray(img, dtype=np.float64)
        top = 65535.0 if img.mode.startswith("I;16") or arr.max() > 255 else 255.0
        arr = np.clip(arr / top * 255.0, 0, 255).astype(np.uint8)
        return Image.fromarray(arr, "L").convert("RGB")
    if img.mode in ("RGBA", "LA", "PA") or (img.mode == "P" and "transparency" in img.info):
        rgba = img.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(background, rgba).convert("RGB")
    return img.convert("RGB") if img.mode != "RGB" else img


def load_image(
    source: str | Path | bytes,
    *,
    min_side: int | None = None,
    limits: ImageLimits = ImageLimits(),
) -> Image.Image:
    """Decode a file path or raw bytes into an RGB ``PIL.Image`` or raise ``ImageError``.

    ``min_side`` lets JPEG decoding skip resolution it does not need (``Image.draft``
    decodes at 1/2, 1/4 or 1/8 scale while keeping both sides >= ``min_side``), which is
    the main cost of feeding a 260 px network from multi-megapixel photos.
    """
    if isinstance(source, (bytes, bytearray)):
        data, name = bytes(source), "<bytes>"
    else:
        path = Path(source)
        name = str(path)
        try:
            size = path.stat().st_size
        except OSError as exc:
            code = "not_found" if isinstance(exc, FileNotFoundError) else "unreadable"
            raise ImageError(code, f"{name}: cannot read file ({exc.strerror})") from exc
        if size > limits.max_bytes:
            raise ImageError("too_large", f"{name}: {size} bytes exceeds the {limits.max_bytes}-byte limit")
        data = path.read_bytes()
    if not data:
        raise ImageError("empty", f"{name}: empty file")
    if len(data) > limits.max_bytes:
        raise ImageError("too_large", f"{name}: {len(data)} bytes exceeds the {limits.max_bytes}-byte limit")
    img = _open(data, name)
    width, height = img.size
    if width <= 0 or height <= 0:
        raise ImageError("corrupt", f"{name}: image has zero size ({width}x{height})")
    if width * height > limits.max_pixels:
        raise ImageError(
            "decompression_bomb",
            f"{name}: {width}x{height} = {width * height} pixels exceeds the {limits.max_pixels}-pixel limit",
        )
    if getattr(img, "n_frames", 1) > 1:
        img.seek(0)  # animated GIF/WebP/APNG: the first frame stands for the work
    if min_side and img.format == "JPEG":
        img.draft("RGB", (min_side, min_side))
    try:
        img.load()
        img = ImageOps.exif_transpose(img)
    except Exception as exc:  # truncated data, broken chunks, bad EXIF
        raise ImageError("corrupt", f"{name}: image data is corrupt or truncated ({exc})") from exc
    return _to_rgb(img)


IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".webp", ".bmp", ".tif", ".tiff", ".gif"})


def is_image_file(path: str | Path) -> bool:
    """Whether a path has an image extension Vasari reads (a cheap pre-filter for folders)."""
    return Path(path).suffix.lower() in IMAGE_SUFFIXES
