"""What to download and how: ``DownloadConfig`` (validated on construction), the jobs
(``url_to_path``, ``jobs_from_urls``, ``jobs_from_csv``), the destination check
(``safe_destination``) and the records and summary a run returns."""

from __future__ import annotations

import csv
import hashlib
import os
import re
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from urllib.parse import unquote, urlsplit

from rich.table import Table

from vasari import __version__
from vasari.core.fileio import TEMP_NAME_RE
from vasari.core.images import ImageLimits
from vasari.errors import VasariDownloadError

PROJECT_URL = "https://pypi.org/project/vasari-art/"
USER_AGENT = f"Vasari/{__version__} (+{PROJECT_URL}; image downloader)"

MANIFEST_NAME = "manifest.jsonl"
FAILED_NAME = "failed.csv"
LOCK_NAME = ".vasari-download.lock"
_RESERVED = frozenset({MANIFEST_NAME, FAILED_NAME, LOCK_NAME})
_UNSAFE_CHARS = re.compile(r'[<>:"|?*\x00-\x1f]')
_NAME_MAX = 255  # bytes in one file or folder name (Linux, macOS, Windows)
_FILE_NAME_MAX = _NAME_MAX - 24  # room for temp_path's ".tmp-<pid>-<6 hex>" (pid up to 7 digits) and slack
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


def as_job(url: str, path: str | None = None) -> DownloadJob:
    """A job; a URL with no safe path still becomes a job, which fails as ``bad_path``."""
    if path:
        return DownloadJob(url, path)
    try:
        return DownloadJob(url, url_to_path(url))
    except ValueError:
        return DownloadJob(url, "")


def jobs_from_urls(urls: Iterable[str]) -> list[DownloadJob]:
    """Jobs for plain URLs (blank entries are ignored), paths from ``url_to_path``."""
    return [as_job(u.strip()) for u in urls if u and u.strip()]


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
        as_job(row[column].strip(), (row.get(path_column) or "").strip() if path_column else None)
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
