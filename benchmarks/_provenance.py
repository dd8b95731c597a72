"""When and from which code a benchmark number was produced, stamped on every JSON row.

Why: ``results/*.json`` keep rows of earlier runs beside new ones (``accuracy.py`` keeps the
experiments it did not re-run), and a number without its date and git commit cannot be
compared with another or traced to the code that made it. Every benchmark writes through
``write_result``, which adds ``date`` and ``commit`` to the payload and to each row (dict)
of its top-level lists that does not carry them yet. Rows kept from an earlier run go
through ``kept_rows`` first, so they keep their own provenance (or say it is unknown)
instead of borrowing this run's.
"""

from __future__ import annotations

import datetime as dt
import json
import subprocess
from pathlib import Path
from typing import Any, Iterable

from vasari.core.fileio import atomic_write_text

ROOT = Path(__file__).resolve().parent.parent
#: What rows written before provenance existed say instead of a date or commit.
UNKNOWN = "unknown (before provenance)"
FIELDS = ("date", "commit")


def git_commit(root: Path = ROOT) -> str:
    """``HEAD``'s hash, with ``+dirty`` when tracked files differ from it (the numbers then
    come from code no commit holds); ``"unknown (no git)"`` outside a checkout."""
    def git(*args: str) -> str:
        return subprocess.run(["git", "-C", str(root), *args], capture_output=True, text=True, check=True).stdout.strip()

    try:
        commit = git("rev-parse", "HEAD")
        dirty = git("status", "--porcelain", "--untracked-files=no")
    except (OSError, subprocess.CalledProcessError):
        return "unknown (no git)"
    return commit + ("+dirty" if dirty else "")


def provenance() -> dict[str, str]:
    """``{"date": UTC ISO time, "commit": git_commit()}`` of this run."""
    return {"date": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"), "commit": git_commit()}


def kept_rows(rows: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    """Rows carried over from an earlier result file: their own date and commit, or UNKNOWN."""
    return [{**row, **{f: row.get(f, UNKNOWN) for f in FIELDS}} for row in rows]


def stamp(payload: dict[str, Any], stamp_: dict[str, str] | None = None) -> dict[str, Any]:
    """``payload`` with this run's provenance on it and on every row (dict) of its top-level
    lists that has none yet; rows that have one keep it."""
    stamp_ = stamp_ or provenance()
    out: dict[str, Any] = {**payload, **stamp_}
    for key, value in payload.items():
        if isinstance(value, list):
            out[key] = [{**stamp_, **row} if isinstance(row, dict) else row for row in value]
    return out


def write_result(path: str | Path, payload: dict[str, Any], **json_options: Any) -> dict[str, Any]:
    """Stamp ``payload`` (``stamp``) and write it atomically as JSON (``json.dumps`` options,
    ``indent=2`` unless given); returns what was written."""
    stamped = stamp(payload)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(path, json.dumps(stamped, **{"indent": 2, **json_options}) + "\n")
    return stamped
