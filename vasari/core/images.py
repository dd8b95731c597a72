"""Safe, fast image decoding shared by every stage that reads pictures.

Real inputs are messy: truncated downloads, HTML saved as .jpg, CMYK scans, 16-bit PNGs,
animated GIFs, phone photos with EXIF rotation, and decompression bombs. Everything that
opens an image goes through ``load_image`` so that each of these gives one clear
``ImageError`` (with a machine-readable ``code``) or a clean RGB picture.
"""

from __future__ import annotations

import io
import math
import os
import stat
import threading
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from vasari.errors import InputError


@dataclass(frozen=True)
class ImageLimits:
    """Bounds that protect memory: a 30000x30000 PNG is 3 GB once decoded.

    Pixels alone undercount: a 16-bit or 32-bit image holds 2 or 4 bytes per pixel before it
    becomes 8-bit, so ``max_decoded_bytes`` bounds what one decode may hold, and
    ``max_bytes`` bounds every read (a file, an upload, a device such as ``/dev/zero``).
    """

    max_pixels: int = 64_000_000
    max_bytes: int = 50 * 1024 * 1024  #: largest file or upload read
    max_decoded_bytes: int = 256_000_000  #: pixels x bytes per pixel of the decoded mode


class ImageError(InputError):
    """An input that is not a usable image.

    ``code`` is one of ``not_found`` / ``unreadable`` (the file itself, or not a regular
    file), ``not_an_image``, ``corrupt``, ``too_large`` (bytes of the file),
    ``decompression_bomb`` (pixels, or bytes once decoded) or ``empty``.
    """

    def __init__(self, code: str, message: str):
        super().__init__(message)
        self.code = code


class DecodeBudget:
    """A semaphore weighted by decoded bytes: how much pixel memory decodes may hold at once.

    A count of decodes is a poor bound (sixteen thumbnails are nothing, three 64-megapixel
    PNGs are not), so each decode takes its own size from the budget and waits while the
    others hold too much. One decode larger than the whole budget still runs, alone.
    """

    def __init__(self, total_bytes: int):
        self.total = total_bytes
        self.in_use = 0
        self.waiting = 0
        self._cond = threading.Condition()

    @contextmanager
    def hold(self, nbytes: int) -> Iterator[None]:
        need = min(nbytes, self.total)
        with self._cond:
            self.waiting += 1
            self._cond.wait_for(lambda: self.in_use + need <= self.total)
            self.waiting -= 1
            self.in_use += need
        try:
            yield
        finally:
            with self._cond:
                self.in_use -= need
                self._cond.notify_all()


#: Shared by every decode in the process (service uploads, the downloader's checks, features).
DECODE_BUDGET = DecodeBudget(512 * 1024 * 1024)

#: Pillow allocates pixels in blocks (16 MB by default); blocks above glibc's largest mmap
#: threshold (32 MB) are mapped and unmapped on their own, so the memory of a large decode
#: goes back to the system when it is freed instead of staying in a thread's malloc arena.
#: A small image still gets one block of its own size. PILLOW_BLOCK_SIZE, when set, wins.
_PILLOW_BLOCK_BYTES = 64 * 1024 * 1024
if "PILLOW_BLOCK_SIZE" not in os.environ:
    Image.core.set_block_size(_PILLOW_BLOCK_BYTES)

_WIDE_MODES = frozenset({"I;16", "I;16B", "I;16L", "I", "F"})  # more than 8 bits per sample
_STRIP_BYTES = 2 * 1024 * 1024  # float64 working memory per strip when narrowing wide modes


def _bytes_per_pixel(mode: str) -> int:
    """What Pillow stores per pixel: 1 for L/P/1, 2 for I;16, 4 for the rest (RGB is RGBX)."""
    if mode in ("1", "L", "P"):
        return 1
    return 2 if mode.startswith("I;16") else 4


def _open(data: bytes, name: str, limits: ImageLimits) -> Image.Image:
    try:
        with warnings.catch_warnings():  # Vasari checks its own pixel limit once the size is known
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            return Image.open(io.BytesIO(data))
    except UnidentifiedImageError as exc:
        raise ImageError("not_an_image", f"{name}: not a recognised image format") from exc
    except Image.DecompressionBombError as exc:  # Pillow's own hard stop, far above Vasari's limit
        raise ImageError("decompression_bomb", f"{name}: image exceeds the {limits.max_pixels}-pixel limit") from exc
    except Exception as exc:  # PIL raises many types for malformed headers
        raise ImageError("corrupt", f"{name}: cannot read image header ({exc})") from exc


def _read_file(path: Path, limits: ImageLimits) -> bytes:
    """The bytes of a regular file, at most ``limits.max_bytes``.

    FIFOs, sockets, devices and folders are refused before any read: a FIFO would block
    forever and ``/dev/zero`` never ends. O_NONBLOCK keeps the open of a FIFO from waiting.
    """
    name = str(path)
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
    except OSError as exc:
        code = "not_found" if isinstance(exc, FileNotFoundError) else "unreadable"
        raise ImageError(code, f"{name}: cannot read file ({exc.strerror})") from exc
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise ImageError("unreadable", f"{name}: not a regular file ({_file_kind(info.st_mode)}); refusing to read it")
        if info.st_size > limits.max_bytes:
            raise ImageError("too_large", f"{name}: {info.st_size} bytes exceeds the {limits.max_bytes}-byte limit")
        with os.fdopen(fd, "rb", closefd=False) as fh:
            return fh.read(limits.max_bytes + 1)  # +1: a file that grew past the limit is caught by the caller
    except OSError as exc:
        raise ImageError("unreadable", f"{name}: cannot read file ({exc.strerror or exc})") from exc
    finally:
        os.close(fd)


def _file_kind(mode: int) -> str:
    kinds = ((stat.S_ISDIR, "a folder"), (stat.S_ISFIFO, "a FIFO"), (stat.S_ISCHR, "a character device"),
             (stat.S_ISBLK, "a block device"), (stat.S_ISSOCK, "a socket"))
    return next((kind for test, kind in kinds if test(mode)), "not a plain file")


def _narrow_wide(img: Image.Image, factor: int) -> Image.Image:
    """A 16/32-bit image (I;16, I, F) as 8-bit L, reduced by ``factor``, in bounded memory.

    Values scale as before (0..65535 or 0..255 onto 0..255), but strip by strip: the old
    full-image float64 copies cost 8 bytes per pixel, three times over.
    """
    top = 65535.0 if img.mode.startswith("I;16") or img.getextrema()[1] > 255 else 255.0
    width, height = img.size
    rows = max(factor, _STRIP_BYTES // (8 * width) // factor * factor)
    out = Image.new("L", (math.ceil(width / factor), math.ceil(height / factor)))
    for y in range(0, height, rows):
        strip = np.asarray(img.crop((0, y, width, min(height, y + rows))), dtype=np.float64)
        part = Image.fromarray(np.clip(strip / top * 255.0, 0, 255).astype(np.uint8), "L")
        out.paste(part.reduce(factor) if factor > 1 else part, (0, y // factor))
    return out


def _to_rgb(img: Image.Image, min_side: int | None = None) -> Image.Image:
    """Convert any PIL mode to 8-bit RGB; transparency is composited on white.

    Wide modes become 8-bit first, reduced by a whole factor that keeps both sides >=
    ``min_side`` (what ``Image.draft`` does for JPEG); 8-bit images are never resampled here.
    """
    if img.mode in _WIDE_MODES:
        factor = max(1, min(img.size) // min_side) if min_side else 1
        return _narrow_wide(img, factor).convert("RGB")
    if img.mode in ("RGBA", "LA", "PA") or (img.mode == "P" and "transparency" in img.info):
        rgba = img.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(background, rgba).convert("RGB")
    return img.convert("RGB") if img.mode != "RGB" else img


def _decode_cost(img: Image.Image) -> int:
    """Pixel memory a decode may hold at its peak: the source, plus an RGB copy when converting."""
    pixels = img.width * img.height
    return pixels * _bytes_per_pixel(img.mode) + (4 * pixels if img.mode != "RGB" else 0)


def _check_size(img: Image.Image, name: str, limits: ImageLimits) -> None:
    """Refuse empty images, too many pixels, or too many decoded bytes (16/32-bit modes)."""
    width, height = img.size
    if width <= 0 or height <= 0:
        raise ImageError("corrupt", f"{name}: image has zero size ({width}x{height})")
    if width * height > limits.max_pixels:
        raise ImageError(
            "decompression_bomb",
            f"{name}: {width}x{height} = {width * height} pixels exceeds the {limits.max_pixels}-pixel limit",
        )
    decoded = width * height * _bytes_per_pixel(img.mode)
    if decoded > limits.max_decoded_bytes:
        raise ImageError(
            "decompression_bomb",
            f"{name}: {width}x{height} {img.mode} decodes to {decoded} bytes, over the {limits.max_decoded_bytes}-byte limit",
        )


def load_image(
    source: str | Path | bytes,
    *,
    min_side: int | None = None,
    limits: ImageLimits = ImageLimits(),
    budget: DecodeBudget = DECODE_BUDGET,
) -> Image.Image:
    """Decode a file path or raw bytes into an RGB ``PIL.Image`` or raise ``ImageError``.

    ``min_side`` lets decoding skip resolution it does not need (``Image.draft`` decodes a
    JPEG at 1/2, 1/4 or 1/8 scale while keeping both sides >= ``min_side``; 16-bit and
    32-bit images are reduced likewise), which is the main cost of feeding a 260 px network
    from multi-megapixel photos. Decoding waits for room in ``budget`` (pixel memory held by
    all decodes in the process together), so concurrent large images queue instead of
    running out of memory.
    """
    if isinstance(source, (bytes, bytearray)):
        data, name = bytes(source), "<bytes>"
    else:
        data, name = _read_file(Path(source), limits), str(source)
    if not data:
        raise ImageError("empty", f"{name}: empty file")
    if len(data) > limits.max_bytes:
        raise ImageError("too_large", f"{name}: {len(data)} bytes exceeds the {limits.max_bytes}-byte limit")
    img = _open(data, name, limits)
    _check_size(img, name, limits)
    if getattr(img, "n_frames", 1) > 1:
        img.seek(0)  # animated GIF/WebP/APNG: the first frame stands for the work
    if min_side and img.format == "JPEG":
        img.draft("RGB", (min_side, min_side))
    with budget.hold(_decode_cost(img)):
        try:
            img.load()
            ImageOps.exif_transpose(img, in_place=True)  # in place: no full-size copy when upright
        except Exception as exc:  # truncated data, broken chunks, bad EXIF
            raise ImageError("corrupt", f"{name}: image data is corrupt or truncated ({exc})") from exc
        return _to_rgb(img, min_side)


IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".webp", ".bmp", ".tif", ".tiff", ".gif"})


def is_image_file(path: str | Path) -> bool:
    """Whether a path has an image extension Vasari reads (a cheap pre-filter for folders)."""
    return Path(path).suffix.lower() in IMAGE_SUFFIXES
