"""Fetching, politely: per-host token buckets, ``Retry-After``, retries with exponential
backoff and jitter, and ``Fetcher``, the asyncio/httpx worker pool that streams each body
through ``vasari.download.files`` and queues its record for the manifest."""

from __future__ import annotations

import asyncio
import email.utils
import math
import random
import re
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from datetime import datetime, timezone
from pathlib import Path
from urllib.parse import urlsplit

import httpx

from vasari.core.fileio import temp_path
from vasari.download.files import (
    FetchFailure,
    adopt_existing,
    discard_temp,
    finish_temp,
    open_temp,
    sha256_file,
)
from vasari.download.jobs import (
    DownloadConfig,
    DownloadError,
    DownloadJob,
    DownloadRecord,
    safe_destination,
    url_to_path,
)
from vasari.download.manifest import Manifest

_OCTET_TYPES = frozenset({"application/octet-stream", "binary/octet-stream"})


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


class Fetcher:
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
                if self.config.verify and await asyncio.to_thread(sha256_file, dest) == previous.get("sha256"):
                    return DownloadRecord(job.url, job.path, "skipped", "done", bytes=previous.get("bytes", 0),
                                          sha256=previous.get("sha256", ""), time=stamp)
            else:
                adopted = await asyncio.to_thread(adopt_existing, dest, self.config)
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
                    exc = exc if isinstance(exc, FetchFailure) else FetchFailure("error", f"{type(exc).__name__}: {exc}")
                    discard_temp(tmp)
                    if not exc.retry or attempt > self.config.retries:
                        return DownloadRecord(job.url, job.path, "failed", exc.reason, exc.detail, attempts=attempt, time=stamp)
                    delay = backoff_delay(attempt, self.config, exc.retry_after)
                    if exc.retry_after is not None:
                        self.bucket(job.url).pause(delay)
                    await asyncio.sleep(delay)
        except asyncio.CancelledError:  # Ctrl-C: leave no partial file behind
            discard_temp(tmp)
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
                    with await asyncio.to_thread(open_temp, tmp) as f:
                        async for chunk in response.aiter_bytes():
                            size += len(chunk)
                            if size > self.config.max_bytes:
                                raise FetchFailure("too_large", f"body exceeds {self.config.max_bytes} bytes")
                            f.write(chunk)
                    got = response.num_bytes_downloaded  # as sent, before any Content-Encoding
                    if expected is not None and expected.isdigit() and got != int(expected):
                        raise FetchFailure("truncated", f"got {got} of {expected} bytes", retry=True)
        except TimeoutError as exc:
            raise FetchFailure("timeout", f"no complete response within {self.config.attempt_timeout:g} s", retry=True) from exc
        except httpx.TimeoutException as exc:
            raise FetchFailure("timeout", f"{type(exc).__name__}: {exc or 'timed out'}", retry=True) from exc
        except httpx.TooManyRedirects as exc:
            raise FetchFailure("redirects", str(exc)) from exc
        except (httpx.UnsupportedProtocol, httpx.InvalidURL, httpx.LocalProtocolError) as exc:
            raise FetchFailure("bad_url", str(exc)) from exc
        except httpx.TransportError as exc:  # connection refused/reset, server hung up mid-body
            reason = "truncated" if in_body else "connection"
            raise FetchFailure(reason, f"{type(exc).__name__}: {exc}", retry=True) from exc
        except httpx.DecodingError as exc:
            raise FetchFailure("corrupt", f"content-encoding: {exc}") from exc
        return await asyncio.to_thread(finish_temp, tmp, dest, self.config)

    def check_response(self, response: httpx.Response) -> None:
        code = response.status_code
        if code != 200:
            retry_after = parse_retry_after(response.headers.get("retry-after")) if code in (429, 503) else None
            raise FetchFailure(f"http_{code}", f"{code} {response.reason_phrase}", retry=_retryable_status(code),
                           retry_after=retry_after)
        ctype = response.headers.get("content-type", "").split(";")[0].strip().lower()
        if ctype and not ctype.startswith("image/") and ctype not in _OCTET_TYPES:
            raise FetchFailure("content_type", f"server sent {ctype}, not an image")
        length = response.headers.get("content-length")
        if length and length.isdigit() and int(length) > self.config.max_bytes:
            raise FetchFailure("too_large", f"Content-Length {length} exceeds {self.config.max_bytes} bytes")
