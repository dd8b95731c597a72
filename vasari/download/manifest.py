"""A run's state on disk, which makes it resumable: ``manifest.jsonl`` (one line per finished
job, flushed and fsync'ed), ``failed.csv`` (the jobs to retry), the folder lock and the
clean-up of temp files a killed run left."""

from __future__ import annotations

import csv
import json
import os
import threading
from dataclasses import asdict
from pathlib import Path

from vasari.core.fileio import TEMP_NAME_RE, atomic_open
from vasari.download.jobs import (
    FAILED_NAME,
    LOCK_NAME,
    MANIFEST_NAME,
    DownloadError,
    DownloadJob,
    DownloadRecord,
    jobs_from_csv,
)

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


def write_failed(out_dir: Path, failed: list[dict]) -> None:
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


class RunLock:
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
