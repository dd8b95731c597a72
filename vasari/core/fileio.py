"""Atomic file writes shared by every stage that saves something.

A reader (or a re-run after Ctrl-C / SIGKILL) must see either the old file or the new one,
never half of one: every write goes to ``<name>.tmp-<pid>-<random>`` beside the target, is
optionally fsynced, then renamed over it with ``os.replace`` (atomic on POSIX).
"""

from __future__ import annotations

import os
import re
import shutil
import uuid
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Iterator


#: The names ``temp_path`` gives (and the ``<name>.tmp-<pid>`` of earlier versions): what the
#: clean-up after a killed run may delete, and what no user file may be called.
TEMP_NAME_RE = re.compile(r"\.tmp-\d+(?:-[0-9a-f]{6})?$")


def temp_path(path: Path) -> Path:
    """A unique temporary name beside ``path`` (same filesystem, so the rename is atomic)."""
    return path.with_name(f"{path.name}.tmp-{os.getpid()}-{uuid.uuid4().hex[:6]}")


@contextmanager
def atomic_open(path: str | Path, mode: str = "wb", fsync: bool = False, **kwargs) -> Iterator[IO]:
    """Open a temporary file for writing; it replaces ``path`` only if the block succeeds."""
    path = Path(path)
    tmp = temp_path(path)
    try:
        with open(tmp, mode, **kwargs) as fh:
            yield fh
            if fsync:
                fh.flush()
                os.fsync(fh.fileno())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def atomic_write_bytes(path: str | Path, data: bytes, fsync: bool = False) -> None:
    """Write ``data`` to ``path`` atomically."""
    with atomic_open(path, "wb", fsync=fsync) as fh:
        fh.write(data)


def atomic_write_text(path: str | Path, text: str, fsync: bool = False) -> None:
    """Write UTF-8 ``text`` to ``path`` atomically."""
    atomic_write_bytes(path, text.encode("utf-8"), fsync=fsync)


@contextmanager
def atomic_directory(path: str | Path) -> Iterator[Path]:
    """Build a directory under a hidden temporary name beside ``path`` and swap it in.

    On success the old ``path`` (if any) is moved aside, the new one renamed into place and
    the old one removed, so readers see the old directory or the new one, never a mix. On
    failure the temporary directory is removed and ``path`` is left as it was.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = temp_path(path.with_name(f".{path.name}"))
    tmp.mkdir()
    try:
        yield tmp
        old = None
        if path.exists():
            old = path.with_name(f".{path.name}.old-{os.getpid()}-{uuid.uuid4().hex[:6]}")
            os.replace(path, old)
        os.replace(tmp, path)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)
