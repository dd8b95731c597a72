"""A concurrent, resumable, polite image downloader.

``download_images(jobs, out_dir)`` fetches ``(url, relative path)`` jobs into ``out_dir``:

- **polite**: bounded concurrency, a per-host token bucket (``rate`` requests per second),
  retries with exponential backoff and jitter on 429/5xx, timeouts and connection errors,
  ``Retry-After`` honoured (seconds or HTTP-date; it pauses the whole host), and a
  User-Agent naming Vasari, its version and the project URL.
- **safe**: each body streams into ``<name>.tmp-<pid>-<random>`` beside its destination and is
  checked (HTTP status, ``image/*`` content type, complete body against Content-Length,
  a decode with ``vasari.core.images.load_image``, JPEGs at reduced scale, which still reads
  every byte) before ``os.replace`` puts it in place, optionally resized. A truncated or
  HTML body never lands under an image's name, and no temp file outlives a run (stale
  ones from a killed run are removed at the start).
- **resumable**: every finished job appends one line to ``out_dir/manifest.jsonl``
  (flushed and fsync'ed; lines that finish together share one fsync), so a re-run skips
  what is done (the file must still exist with the recorded size, or the recorded sha256
  with ``verify``) and retries the rest; the jobs that failed are listed in
  ``out_dir/failed.csv``, which can be fed back in.

The jobs are independent of any catalog: ``jobs_from_urls`` and ``jobs_from_csv`` build them
from plain URLs or any CSV with a URL column (paths come from the URL path, see
``url_to_path``); the CLI also reads ``vasari.catalog`` specs.
"""

from __future__ import annotations

import asyncio
import contextlib
import csv
import email.utils
import hashlib
import io
import json
import math
import os
import random
import re
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, replace
from datetime import datetime, timezone
from pathlib import Path, PurePosixPath
from urllib.parse import unquote, urlsplit

import httpx
from PIL import Image
from rich.table import Table

from vasari import __version__
from vasari.core.fileio import TEMP_NAME_RE, atomic_open, temp_path
from vasari.core.images import ImageError, ImageLimits, load_image
from vasari.errors import VasariDownloadError

PROJECT_URL = "https://pypi.org/project/vasari-art/"
USER_AGENT = f"Vasari/{__version__} (+{PROJECT_URL}; image downloader)"

MANIFEST_NAME = "manifest.jsonl"
FAILED_NAME = "failed.csv"
LOCK_NAME = ".vasari-download.lock"
_RESERVED = frozenset({MANIFEST_NAME, FAILED_NAME, LOCK_NAME})
_UNSAFE_CHARS = re.compile(r'[<>:"|?*\x00-\x1f]')
_SAVE_FORMATS = frozenset({"JPEG", "PNG", "WEBP", "GIF", "BMP", "TIFF"})
_OCTET_TYPES = frozenset({"application/octet-stream", "binary/octet-stream"})
_NAME_MAX = 255  # bytes in one file or folder name (Linux, macOS, Windows)
_FILE_NAME_MAX = _NAME_MAX - 24  # room for temp_path's ".tmp-<pid>-<6 hex>" (pid up to 7 digits) and slack
_CHECK_SIDE = 64  # JPEGs are checked by decoding at a reduced scale (Image.draft), not below this
_URL_COLUMNS = ("url", "image_url", "img_url", "jpg_link", "image", "link", "href")


class DownloadError(VasariDownloadError):
    """The download cannot start: bad input file, output folder in use, bad settings."""


@dataclass(frozen=True)
class DownloadConfig:
    """How to fetch: concurrency, politeness, retries, timeouts and what to save."""

    concurrency: int = 16  #: requests in flight at once (all hosts together)
    rate: float | None = 10.0  #: requests per second per host (None: no limit)
    burst: int = 1  #: requests a host may receive at once after an idle spell
    retries: int = 4  #: extra attempts after the first on 429/5xx/timeouts/connection errors
    backoff: float = 0.5  #: first retry delay in seconds, doubled each retry, with jitter
    backoff_max: float = 30.0  #: longest backoff delay
    retry_after_max: float = 120.0  #: longest Retry-After honoured (longer ones are capped)
    connect_timeout: float = 10.0
    read_timeout: float = 30.0  #: longest wait for the next bytes of a response
    attempt_timeout: float = 300.0  #: longest one attempt may take in all (slow-drip bodies)
    max_redirects: int = 10
    max_side: int | None = None  #: downscale saved images so the long side is at most this
    jpeg_quality: int = 90  #: quality when a resized JPEG/WebP is re-encoded
    max_bytes: int = ImageLimits().max_bytes  #: larger bodies are refused
    verify: bool = False  #: on resume, check finished files' sha256 (default: size only)
    user_agent: str = USER_AGENT
    trust_env: bool = True  #: use proxy settings from the environment

    def __post_init__(self) -> None:
        if self.concurrency < 1:
            raise DownloadError(f"concurrency must be at least 1, not {self.concurrency}")
        if self.rate is not None and not self.rate > 0:
            raise DownloadError(f"rate must be positive or None (no limit), not {self.rate}")
        if self.burst < 1 or self.retries < 0 or self.max_redirects < 0:
            raise DownloadError("burst must be >= 1, retries and max_redirects >= 0")
        if self.max_side is not None and self.max_side < 1:
            raise DownloadError(f"max_side must be positive, not {self.max_side}")


@dataclass(frozen=True)
class DownloadJob:
    """One image to fetch: its URL and its destination relative to the output folder."""

    url: str
    path: str


@dataclass
class DownloadRecord:
    """What happened to one job; one manifest line per fetched or failed job.

    ``status`` is ``ok`` (fetched now), ``skipped`` (already there; ``reason`` ``done``,
    ``existing`` or ``duplicate``) or ``failed`` (``reason`` a short code such as
    ``http_404``, ``timeout``, ``truncated``, ``content_type``, ``not_an_image``, ``corrupt``,
    ``too_large``, ``connection``, ``bad_path`` (unsafe or too long), ``write`` (the folder cannot hold
    the file); ``detail`` says more).
    """

    url: str
    path: str
    status: str
    reason: str = ""
    detail: str = ""
    bytes: int = 0
    sha256: str = ""
    attempts: int = 0
    time: str = ""


@dataclass
class DownloadSummary:
    """The outcome of one run: a record per input job, in input order."""

    out_dir: Path
    records: list[DownloadRecord]
    elapsed: float = 0.0
    stale_removed: int = 0

    def count(self, status: str) -> int:
        return sum(r.status == status for r in self.records)

    @property
    def ok(self) -> int:
        return self.count("ok")

    @property
    def skipped(self) -> int:
        return self.count("skipped")

    @property
    def failed(self) -> int:
        return self.count("failed")

    @property
    def bytes(self) -> int:
        return sum(r.bytes for r in self.records if r.status == "ok")

    def reasons(self, status: str) -> Counter[str]:
        return Counter(r.reason for r in self.records if r.status == status)

    def as_table(self) -> Table:
        table = Table(title=f"vasari download -> {self.out_dir}")
        table.add_column("status")
        table.add_column("reason")
        table.add_column("images", justify="right")
        table.add_row("ok", f"{self.bytes / 1e6:.1f} MB in {self.elapsed:.1f} s", str(self.ok))
        for status in ("skipped", "failed"):
            for reason, n in sorted(self.reasons(status).items(), key=lambda kv: (-kv[1], kv[0])):
                table.add_row(status, reason, str(n), style="red" if status == "failed" else None)
        table.add_row("total", "", str(len(self.records)), style="bold")
        return table


# ---------------------------------------------------------------------------- jobs


def url_to_path(url: str, strip_prefix: str | None = "art") -> str:
    """A safe relative destination for a URL, from its path.

    ``http://www.wga.hu/art/a/abbate/deerhunt.jpg`` -> ``a/abbate/deerhunt.jpg`` (a leading
    ``strip_prefix`` folder is dropped). Percent-escapes are decoded, characters that are
    unsafe in file names become ``_``, a query string adds a short hash to the name, a name
    too long for the file system is cut short and given a hash of the whole, and a path that
    climbs out with ``..`` or has no file name raises ``ValueError``.
    """
    parts = urlsplit(url.strip())
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ValueError(f"{url!r} is not an http(s) URL")
    segments = [s for raw in parts.path.split("/") for s in re.split(r"[\\/]", unquote(raw))]
    segments = [s for s in segments if s not in ("", ".")]
    if ".." in segments:
        raise ValueError(f"{url!r}: path climbs out with '..'")
    if strip_prefix and len(segments) > 1 and segments[0] == strip_prefix:
        segments = segments[1:]
    segments = [_UNSAFE_CHARS.sub("_", s).rstrip(" .") or "_" for s in segments]
    if not segments or parts.path.endswith("/"):
        raise ValueError(f"{url!r} has no file name in its path")
    if parts.query:
        stem, ext = os.path.splitext(segments[-1])
        segments[-1] = f"{stem}-{hashlib.sha1(parts.query.encode()).hexdigest()[:8]}{ext}"
    segments = [_shorten(s, _NAME_MAX) for s in segments[:-1]] + [_shorten(segments[-1], _FILE_NAME_MAX)]
    return "/".join(segments)


def _shorten(name: str, limit: int) -> str:
    """``name`` if it fits in ``limit`` bytes, else its start, a hash of all of it, and its extension."""
    if len(os.fsencode(name)) <= limit:
        return name
    stem, ext = os.path.splitext(name)
    ext = ext if len(os.fsencode(ext)) <= 16 else ""
    tag = "-" + hashlib.sha1(os.fsencode(name)).hexdigest()[:8]
    room = limit - len(os.fsencode(ext)) - len(tag)
    return os.fsencode(stem)[:room].decode("utf-8", "ignore") + tag + ext


def _job(url: str, path: str | None = None) -> DownloadJob:
    """A job; a URL with no safe path still becomes a job, which fails as ``bad_path``."""
    if path:
        return DownloadJob(url, path)
    try:
        return DownloadJob(url, url_to_path(url))
    except ValueError:
        return DownloadJob(url, "")


def jobs_from_urls(urls: Iterable[str]) -> list[DownloadJob]:
    """Jobs for plain URLs (blank entries are ignored), paths from ``url_to_path``."""
    return [_job(u.strip()) for u in urls if u and u.strip()]


def _pick_url_column(path: Path, header: list[str], rows: list[dict[str, str]]) -> str:
    by_lower = {h.lower().strip(): h for h in header}
    for name in _URL_COLUMNS:
        if name in by_lower:
            return by_lower[name]
    for h in header:  # any column whose filled values are mostly http(s) URLs
        values = [r.get(h) or "" for r in rows[:200] if (r.get(h) or "").strip()]
        if values and sum(v.strip().startswith(("http://", "https://")) for v in values) >= 0.8 * len(values):
            return h
    raise DownloadError(f"{path}: no URL column found among {', '.join(header)}; name it with --url-column")


def jobs_from_csv(path: str | Path, url_column: str | None = None, path_column: str | None = None) -> list[DownloadJob]:
    """Jobs from any CSV with a URL column (found by name or content when not given).

    ``path_column`` names a column of relative destinations (else they come from the URL,
    as in ``failed.csv``, which has both). Rows with an empty URL are ignored.
    """
    path = Path(path)
    try:
        with path.open(newline="", encoding="utf-8-sig") as f:
            reader = csv.DictReader(f)
            header = list(reader.fieldnames or [])
            rows = list(reader)
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise DownloadError(f"{path}: cannot read CSV ({exc})") from exc
    if not header:
        raise DownloadError(f"{path}: empty CSV (no header row)")
    for name in (url_column, path_column):
        if name is not None and name not in header:
            raise DownloadError(f"{path}: no column {name!r}; columns are {', '.join(header)}")
    column = url_column or _pick_url_column(path, header, rows)
    return [
        _job(row[column].strip(), (row.get(path_column) or "").strip() if path_column else None)
        for row in rows
        if (row.get(column) or "").strip()
    ]


def safe_destination(out_dir: Path, relpath: str) -> Path:
    """``out_dir / relpath``, refusing paths that escape ``out_dir`` or clash with its files."""
    if not relpath or "\x00" in relpath:
        raise ValueError("empty destination path" if not relpath else "NUL in destination path")
    rel = PurePosixPath(relpath.replace("\\", "/"))
    if rel.is_absolute() or re.match(r"^[A-Za-z]:", relpath) or ".." in rel.parts:
        raise ValueError(f"{relpath!r} escapes the output folder")
    if str(rel) in _RESERVED or TEMP_NAME_RE.search(rel.name):
        raise ValueError(f"{relpath!r} is a name the downloader keeps for itself")
    for part in rel.parts:  # the file's temp name beside it must fit too
        limit = _FILE_NAME_MAX if part == rel.name else _NAME_MAX
        if len(os.fsencode(part)) > limit:
            raise ValueError(f"{relpath[:60]!r}...: a name of {len(os.fsencode(part))} bytes, over the {limit}-byte limit")
    root = out_dir.resolve()
    dest = (root / rel).resolve()
    if dest == root or not dest.is_relative_to(root):
        raise ValueError(f"{relpath!r} escapes the output folder (through a link?)")
    return dest


# ---------------------------------------------------------------------------- politeness


def parse_rate(text: str | float | None) -> float | None:
    """``"10"``, ``"10/s"``, ``"600/min"``, ``"2/h"`` -> requests per second; ``0``/``off``/``none`` -> None."""
    if text is None:
        return None
    if isinstance(text, (int, float)):
        return float(text) if text > 0 else None
    value = text.strip().lower()
    if value in ("", "0", "off", "none", "inf", "unlimited"):
        return None
    match = re.fullmatch(r"([0-9]*\.?[0-9]+)\s*(?:/\s*(s|sec|second|m|min|minute|h|hour))?", value)
    if not match:
        raise DownloadError(f"rate {text!r} is not like 10/s, 600/min or off")
    per = {"m": 60, "min": 60, "minute": 60, "h": 3600, "hour": 3600}.get(match.group(2) or "s", 1)
    rate = float(match.group(1)) / per
    return rate if rate > 0 else None


def parse_retry_after(value: str | None, now: float | None = None) -> float | None:
    """Seconds to wait from a Retry-After header (delta-seconds or HTTP-date), or None."""
    if not value or not value.strip():
        return None
    value = value.strip()
    try:
        seconds = float(value)
    except ValueError:
        try:
            when = email.utils.parsedate_to_datetime(value)
        except (TypeError, ValueError, IndexError):
            return None
        if when.tzinfo is None:
            when = when.replace(tzinfo=timezone.utc)
        return max(0.0, when.timestamp() - (time.time() if now is None else now))
    return max(0.0, seconds) if math.isfinite(seconds) else None


def backoff_delay(attempt: int, config: DownloadConfig, retry_after: float | None = None) -> float:
    """Delay before retry number ``attempt`` (1, 2, ...): Retry-After when the server gave one
    (capped by ``retry_after_max``), else exponential backoff with "equal" jitter."""
    if retry_after is not None:
        return min(retry_after, config.retry_after_max)
    delay = min(config.backoff_max, config.backoff * 2 ** (attempt - 1))
    return delay / 2 + random.uniform(0, delay / 2)


class TokenBucket:
    """A per-host limiter: ``rate`` tokens per second, at most ``burst`` saved up.

    ``pause(seconds)`` stops the host altogether (a 429/503 with Retry-After); waiters are
    served in order.
    """

    def __init__(self, rate: float | None, burst: int = 1):
        self.rate, self.capacity = rate, float(max(1, burst))
        self.tokens, self.stamp, self.paused_until = self.capacity, time.monotonic(), 0.0
        self._lock = asyncio.Lock()

    def pause(self, seconds: float) -> None:
        self.paused_until = max(self.paused_until, time.monotonic() + seconds)

    async def acquire(self) -> None:
        async with self._lock:
            while True:
                now = time.monotonic()
                if now < self.paused_until:
                    await asyncio.sleep(self.paused_until - now)
                    continue
                if self.rate is None:
                    return
                self.tokens = min(self.capacity, self.tokens + (now - self.stamp) * self.rate)
                self.stamp = now
                if self.tokens >= 1:
                    self.tokens -= 1
                    return
                await asyncio.sleep((1 - self.tokens) / self.rate)


def _retryable_status(code: int) -> bool:
    return code in (408, 425, 429) or (500 <= code <= 599 and code not in (501, 505))


# ---------------------------------------------------------------------------- state on disk


class Manifest:
    """``manifest.jsonl``: one JSON record per line, appended durably (flush + fsync).

    A line torn by a kill is cut off when the manifest is opened; the latest record of a
    path wins. Thread-safe.
    """

    def __init__(self, out_dir: Path):
        self.path = out_dir / MANIFEST_NAME
        self.latest, end, size = _load_manifest(self.path)
        if end < size:  # a torn last line: drop it so the next record starts clean
            with self.path.open("r+b") as f:
                f.truncate(end)
        self._file = self.path.open("a", encoding="utf-8")
        self._lock = threading.Lock()

    def append(self, *records: DownloadRecord) -> None:
        """Write records and make them durable (one fsync for all of them)."""
        rows = [asdict(r) for r in records]
        with self._lock:
            self._file.write("".join(json.dumps(row, ensure_ascii=False) + "\n" for row in rows))
            self._file.flush()
            os.fsync(self._file.fileno())
            self.latest.update((row["path"], row) for row in rows)

    def close(self) -> None:
        self._file.close()

    def failed(self) -> list[dict]:
        return [r for r in self.latest.values() if r.get("status") == "failed"]


def _load_manifest(path: Path) -> tuple[dict[str, dict], int, int]:
    """The latest record per path, where the last whole line ends, and the file's size."""
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return {}, 0, 0
    end = data.rfind(b"\n") + 1
    latest: dict[str, dict] = {}
    for line in data[:end].splitlines():
        try:
            record = json.loads(line)
        except ValueError:
            continue
        if isinstance(record, dict) and isinstance(record.get("path"), str):
            latest[record["path"]] = record
    return latest, end, len(data)


def read_download_manifest(out_dir: str | Path) -> dict[str, dict]:
    """The latest manifest record per destination path of an output folder (read only)."""
    return _load_manifest(Path(out_dir) / MANIFEST_NAME)[0]


def _write_failed(out_dir: Path, failed: list[dict]) -> None:
    target = out_dir / FAILED_NAME
    if not failed:
        target.unlink(missing_ok=True)
        return
    columns = ("url", "path", "reason", "detail", "attempts")
    with atomic_open(target, "w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, fieldnames=columns, extrasaction="ignore")
        writer.writeheader()
        writer.writerows(failed)


def failed_jobs(out_dir: str | Path) -> list[DownloadJob]:
    """The jobs listed in ``out_dir/failed.csv`` (none when it is absent)."""
    path = Path(out_dir) / FAILED_NAME
    return jobs_from_csv(path, url_column="url", path_column="path") if path.exists() else []


class _Lock:
    """An exclusive lock on the output folder, released by the OS if the process dies."""

    def __init__(self, out_dir: Path):
        self._file = (out_dir / LOCK_NAME).open("a+")
        try:
            import fcntl
        except ImportError:  # Windows: no advisory locks; one run per folder is on the user
            return
        try:
            fcntl.flock(self._file.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            self._file.close()
            raise DownloadError(f"{out_dir} is in use by another vasari download") from exc

    def release(self) -> None:
        self._file.close()


def remove_stale_temps(out_dir: Path) -> int:
    """Delete the temporary files a killed run left (``fileio.TEMP_NAME_RE``); returns how many."""
    removed = 0
    for folder, _, files in os.walk(out_dir):
        for name in files:
            if TEMP_NAME_RE.search(name):
                Path(folder, name).unlink(missing_ok=True)
                removed += 1
    return removed


def _sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


# ---------------------------------------------------------------------------- fetching


class _Failure(Exception):
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


def _open_temp(tmp: Path):
    try:
        tmp.parent.mkdir(parents=True, exist_ok=True)
        return tmp.open("wb")
    except OSError as exc:  # e.g. a file where the destination needs a folder
        raise _Failure("write", f"cannot write {tmp.parent}: {exc.strerror or exc}") from exc


def _discard(tmp: Path) -> None:
    """Remove a job's temp file if it exists. Never raises: a clean-up error must not end the
    run (nor hide the job's own failure); a temp file left behind goes at the next start."""
    with contextlib.suppress(OSError):
        tmp.unlink(missing_ok=True)


def _finish(tmp: Path, dest: Path, config: DownloadConfig) -> tuple[int, str]:
    """Decode the downloaded body, resize if asked, and move it into place (runs in a thread)."""
    data = tmp.read_bytes()
    try:  # a reduced-scale JPEG decode still reads every byte, so it still catches truncation
        img = load_image(data, min_side=config.max_side or _CHECK_SIDE, limits=ImageLimits(max_bytes=config.max_bytes))
    except ImageError as exc:
        raise _Failure(exc.code, str(exc).replace("<bytes>", "body")) from exc
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


def _adopt(dest: Path, config: DownloadConfig) -> tuple[int, str] | None:
    """A valid image already at ``dest`` with no manifest record (e.g. killed right after
    the rename): its size and sha256, or None if it is not a usable image."""
    try:
        load_image(dest, min_side=_CHECK_SIDE, limits=ImageLimits(max_bytes=config.max_bytes))
    except ImageError:
        return None
    return dest.stat().st_size, _sha256_file(dest)


class _Downloader:
    def __init__(self, out_dir: Path, config: DownloadConfig, manifest: Manifest, on_done: Callable[[DownloadRecord], None]):
        self.out_dir, self.config, self.manifest, self.on_done = out_dir, config, manifest, on_done
        self.buckets: dict[str, TokenBucket] = {}
        self.unsaved: list[DownloadRecord] = []
        self.writer: asyncio.Task | None = None

    def bucket(self, url: str) -> TokenBucket:
        host = urlsplit(url).netloc.lower()
        if host not in self.buckets:
            self.buckets[host] = TokenBucket(self.config.rate, self.config.burst)
        return self.buckets[host]

    def save(self, record: DownloadRecord) -> None:
        """Queue ``record`` for the manifest. A background task appends what is queued, one
        fsync per batch (group commit), so workers never wait on the disk for it; a record
        lost to a kill only costs a decode on the next run (the file is adopted)."""
        if self.writer is not None and self.writer.done():
            self.writer.result()  # a failed write (disk full): stop the run here
        self.unsaved.append(record)
        if self.writer is None or self.writer.done():
            self.writer = asyncio.create_task(self._write())

    async def _write(self) -> None:
        while self.unsaved:
            batch, self.unsaved = self.unsaved, []
            await asyncio.to_thread(self.manifest.append, *batch)

    async def run(self, jobs: list[DownloadJob]) -> list[DownloadRecord]:
        c = self.config
        # decoding, fsync and hashing run in threads: one per request in flight (+1 for the manifest)
        asyncio.get_running_loop().set_default_executor(ThreadPoolExecutor(c.concurrency + 1, "vasari-download"))
        timeout = httpx.Timeout(connect=c.connect_timeout, read=c.read_timeout, write=c.read_timeout, pool=None)
        limits = httpx.Limits(max_connections=c.concurrency, max_keepalive_connections=c.concurrency)
        results: list[DownloadRecord | None] = [None] * len(jobs)
        queue = iter(enumerate(jobs))
        async with httpx.AsyncClient(
            headers={"User-Agent": c.user_agent, "Accept": "image/*,*/*;q=0.5"},
            timeout=timeout,
            limits=limits,
            follow_redirects=True,
            max_redirects=c.max_redirects,
            trust_env=c.trust_env,
        ) as client:

            async def worker() -> None:
                for i, job in queue:
                    results[i] = record = await self.job(client, job)
                    if record.status != "skipped":
                        self.save(record)
                    elif record.reason == "existing":  # adopted: later runs skip it by size
                        self.save(replace(record, status="ok"))
                    self.on_done(record)

            await asyncio.gather(*(worker() for _ in range(min(c.concurrency, max(1, len(jobs))))))
            if self.writer is not None:
                await self.writer
        return [r for r in results if r is not None]

    async def job(self, client: httpx.AsyncClient, job: DownloadJob) -> DownloadRecord:
        stamp = datetime.now(timezone.utc).isoformat(timespec="seconds")
        try:
            if not job.path:
                url_to_path(job.url)  # raises with the reason the URL gave no path
            dest = safe_destination(self.out_dir, job.path)
        except ValueError as exc:
            return DownloadRecord(job.url, job.path, "failed", "bad_path", str(exc), time=stamp)
        previous = self.manifest.latest.get(job.path)
        if dest.is_file():
            if previous and previous.get("status") == "ok":  # size already differed, or verify is on
                if self.config.verify and await asyncio.to_thread(_sha256_file, dest) == previous.get("sha256"):
                    return DownloadRecord(job.url, job.path, "skipped", "done", bytes=previous.get("bytes", 0),
                                          sha256=previous.get("sha256", ""), time=stamp)
            else:
                adopted = await asyncio.to_thread(_adopt, dest, self.config)
                if adopted:
                    return DownloadRecord(job.url, job.path, "skipped", "existing", bytes=adopted[0],
                                          sha256=adopted[1], time=stamp)
        tmp = temp_path(dest)
        attempt = 0
        try:
            while True:
                attempt += 1
                try:
                    size, sha = await self.attempt(client, job.url, tmp, dest)
                    return DownloadRecord(job.url, job.path, "ok", bytes=size, sha256=sha, attempts=attempt, time=stamp)
                except Exception as exc:  # noqa: BLE001 - one job's surprise must not end the run
                    exc = exc if isinstance(exc, _Failure) else _Failure("error", f"{type(exc).__name__}: {exc}")
                    _discard(tmp)
                    if not exc.retry or attempt > self.config.retries:
                        return DownloadRecord(job.url, job.path, "failed", exc.reason, exc.detail, attempts=attempt, time=stamp)
                    delay = backoff_delay(attempt, self.config, exc.retry_after)
                    if exc.retry_after is not None:
                        self.bucket(job.url).pause(delay)
                    await asyncio.sleep(delay)
        except asyncio.CancelledError:  # Ctrl-C: leave no partial file behind
            _discard(tmp)
            raise

    async def attempt(self, client: httpx.AsyncClient, url: str, tmp: Path, dest: Path) -> tuple[int, str]:
        await self.bucket(url).acquire()
        in_body = False
        try:
            async with asyncio.timeout(self.config.attempt_timeout):
                async with client.stream("GET", url) as response:
                    self.check_response(response)
                    expected = response.headers.get("content-length")
                    in_body = True
                    size = 0
                    with await asyncio.to_thread(_open_temp, tmp) as f:
                        async for chunk in response.aiter_bytes():
                            size += len(chunk)
                            if size > self.config.max_bytes:
                                raise _Failure("too_large", f"body exceeds {self.config.max_bytes} bytes")
                            f.write(chunk)
                    got = response.num_bytes_downloaded  # as sent, before any Content-Encoding
                    if expected is not None and expected.isdigit() and got != int(expected):
                        raise _Failure("truncated", f"got {got} of {expected} bytes", retry=True)
        except TimeoutError as exc:
            raise _Failure("timeout", f"no complete response within {self.config.attempt_timeout:g} s", retry=True) from exc
        except httpx.TimeoutException as exc:
            raise _Failure("timeout", f"{type(exc).__name__}: {exc or 'timed out'}", retry=True) from exc
        except httpx.TooManyRedirects as exc:
            raise _Failure("redirects", str(exc)) from exc
        except (httpx.UnsupportedProtocol, httpx.InvalidURL, httpx.LocalProtocolError) as exc:
            raise _Failure("bad_url", str(exc)) from exc
        except httpx.TransportError as exc:  # connection refused/reset, server hung up mid-body
            reason = "truncated" if in_body else "connection"
            raise _Failure(reason, f"{type(exc).__name__}: {exc}", retry=True) from exc
        except httpx.DecodingError as exc:
            raise _Failure("corrupt", f"content-encoding: {exc}") from exc
        return await asyncio.to_thread(_finish, tmp, dest, self.config)

    def check_response(self, response: httpx.Response) -> None:
        code = response.status_code
        if code != 200:
            retry_after = parse_retry_after(response.headers.get("retry-after")) if code in (429, 503) else None
            raise _Failure(f"http_{code}", f"{code} {response.reason_phrase}", retry=_retryable_status(code),
                           retry_after=retry_after)
        ctype = response.headers.get("content-type", "").split(";")[0].strip().lower()
        if ctype and not ctype.startswith("image/") and ctype not in _OCTET_TYPES:
            raise _Failure("content_type", f"server sent {ctype}, not an image")
        length = response.headers.get("content-length")
        if length and length.isdigit() and int(length) > self.config.max_bytes:
            raise _Failure("too_large", f"Content-Length {length} exceeds {self.config.max_bytes} bytes")


# ---------------------------------------------------------------------------- entry point


def download_images(
    jobs: Iterable[DownloadJob | tuple[str, str] | str],
    out_dir: str | Path,
    config: DownloadConfig = DownloadConfig(),
    *,
    progress: bool = True,
) -> DownloadSummary:
    """Fetch ``jobs`` (``DownloadJob``, ``(url, path)`` or a bare URL) into ``out_dir``.

    Resumes from ``out_dir/manifest.jsonl``; writes ``out_dir/failed.csv`` with the jobs
    whose latest attempt failed (removed when there are none). Returns a summary with one
    record per job; never raises for a bad URL or image (those are failed records).
    """
    started = time.monotonic()
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    todo_all = [j if isinstance(j, DownloadJob) else DownloadJob(*j) if isinstance(j, tuple) else _job(j) for j in jobs]
    lock = _Lock(out)
    try:
        stale = remove_stale_temps(out)
        manifest = Manifest(out)
        try:
            records, todo, slots = _plan(out, todo_all, manifest, config)
            with _ProgressBar(progress, len(todo)) as on_done:
                done = asyncio.run(_Downloader(out, config, manifest, on_done).run(todo)) if todo else []
            for slot, record in zip(slots, done):
                records[slot] = record
            _write_failed(out, manifest.failed())
        finally:
            manifest.close()
    finally:
        lock.release()
    return DownloadSummary(out, records, time.monotonic() - started, stale)


def _plan(out: Path, jobs: list[DownloadJob], manifest: Manifest, config: DownloadConfig):
    """Split jobs into those already done (a cheap size check) and those to run."""
    records: list[DownloadRecord] = [None] * len(jobs)  # type: ignore[list-item]
    todo, slots, seen = [], [], set()
    for i, job in enumerate(jobs):
        if job.path and job.path in seen:
            records[i] = DownloadRecord(job.url, job.path, "skipped", "duplicate", "another job has this destination")
            continue
        seen.add(job.path)
        previous = manifest.latest.get(job.path) if job.path else None
        if previous and previous.get("status") == "ok" and not config.verify:
            try:
                size = safe_destination(out, job.path).stat().st_size
            except (OSError, ValueError):
                size = -1
            if size == previous.get("bytes"):
                records[i] = DownloadRecord(job.url, job.path, "skipped", "done", bytes=size, sha256=previous.get("sha256", ""),
                                            attempts=0, time=previous.get("time", ""))
                continue
        todo.append(job)
        slots.append(i)
    return records, todo, slots


class _ProgressBar:
    """A rich progress bar (images, img/s, MB, ETA) or nothing; yields the per-record callback."""

    def __init__(self, enabled: bool, total: int):
        self.enabled, self.total, self.bytes = enabled and total > 0, total, 0

    def __enter__(self) -> Callable[[DownloadRecord], None]:
        if not self.enabled:
            return lambda record: None
        from rich.console import Console
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            ProgressColumn,
            TextColumn,
            TimeElapsedColumn,
            TimeRemainingColumn,
        )
        from rich.text import Text

        from vasari.core.progress import make_progress

        class Rate(ProgressColumn):
            def render(self, task) -> Text:
                speed = task.finished_speed or task.speed
                return Text(f"{speed:.1f} img/s" if speed else "- img/s", style="progress.data.speed")

        self.progress = make_progress(
            TextColumn("[bold]download"), BarColumn(), MofNCompleteColumn(), Rate(),
            TextColumn("{task.fields[mb]:.1f} MB  {task.fields[failed]} failed"),
            TimeElapsedColumn(), TextColumn("ETA"), TimeRemainingColumn(),
            console=Console(stderr=True), transient=False,
        )
        self.progress.start()
        self.task = self.progress.add_task("download", total=self.total, mb=0.0, failed=0)
        self.failed = 0

        def on_done(record: DownloadRecord) -> None:
            self.bytes += record.bytes if record.status == "ok" else 0
            self.failed += record.status == "failed"
            self.progress.update(self.task, advance=1, mb=self.bytes / 1e6, failed=self.failed)

        return on_done

    def __exit__(self, *exc) -> None:
        if self.enabled:
            self.progress.stop()


__all__ = [
    "DownloadConfig", "DownloadError", "DownloadJob", "DownloadRecord", "DownloadSummary", "Manifest", "TokenBucket",
    "download_images", "failed_jobs", "jobs_from_csv", "jobs_from_urls", "parse_rate", "parse_retry_after",
    "read_download_manifest", "remove_stale_temps", "safe_destination", "url_to_path", "USER_AGENT",
]
