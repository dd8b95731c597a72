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
import time
from collections.abc import Callable, Iterable
from pathlib import Path

from rich.progress import ProgressColumn, Task
from rich.text import Text

from vasari.download.fetch import Fetcher
from vasari.download.jobs import (
    DownloadConfig,
    DownloadJob,
    DownloadRecord,
    DownloadSummary,
    as_job,
    safe_destination,
)
from vasari.download.manifest import Manifest, RunLock, remove_stale_temps, write_failed


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
    todo_all = [j if isinstance(j, DownloadJob) else DownloadJob(*j) if isinstance(j, tuple) else as_job(j) for j in jobs]
    lock = RunLock(out)
    try:
        stale = remove_stale_temps(out)
        manifest = Manifest(out)
        try:
            records, todo, slots = _plan(out, todo_all, manifest, config)
            with _ProgressBar(progress, len(todo)) as on_done:
                done = asyncio.run(Fetcher(out, config, manifest, on_done).run(todo)) if todo else []
            for slot, record in zip(slots, done):
                records[slot] = record
            write_failed(out, manifest.failed())
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


class ImageRate(ProgressColumn):
    """The progress bar's download speed in images per second."""

    def render(self, task: Task) -> Text:
        speed = task.finished_speed or task.speed
        return Text(f"{speed:.1f} img/s" if speed else "- img/s", style="progress.data.speed")


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
            TextColumn,
            TimeElapsedColumn,
            TimeRemainingColumn,
        )

        from vasari.core.progress import make_progress

        self.progress = make_progress(
            TextColumn("[bold]download"), BarColumn(), MofNCompleteColumn(), ImageRate(),
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
