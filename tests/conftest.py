"""Shared fixtures: the real paintings in ../shared/data (skipped when absent), and a
per-session cache directory instead of the user's ``~/.cache/vasari``."""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

import pytest

from vasari.core.paths import shared_data_dir

#: Set by ``scripts/mutation.py`` to one cache shared by its many short test sessions, so
#: the ONNX export is not repeated per mutant; unset, each session gets a fresh one.
TEST_CACHE_ENV = "VASARI_TEST_CACHE"

_session_cache: dict[str, object] = {}


def pytest_configure(config: pytest.Config) -> None:
    """Point ``VASARI_CACHE`` (ONNX exports, embedding caches) at a directory of this test
    session before any test module is imported: tests never read a stale export from, nor
    write one into, the user cache, and subprocesses (CLI, servers) inherit the variable."""
    given = os.environ.get(TEST_CACHE_ENV)
    path = Path(given) if given else Path(tempfile.mkdtemp(prefix="vasari-test-cache-"))
    path.mkdir(parents=True, exist_ok=True)
    _session_cache.update(path=path, owned=not given, previous=os.environ.get("VASARI_CACHE"))
    os.environ["VASARI_CACHE"] = str(path)


def pytest_unconfigure(config: pytest.Config) -> None:
    """Restore the caller's ``VASARI_CACHE`` and remove the session's own cache directory."""
    if "path" not in _session_cache:
        return
    previous = _session_cache.pop("previous")
    if previous is None:
        os.environ.pop("VASARI_CACHE", None)
    else:
        os.environ["VASARI_CACHE"] = previous
    if _session_cache.pop("owned"):
        shutil.rmtree(_session_cache["path"], ignore_errors=True)
    _session_cache.clear()


@pytest.fixture(scope="session")
def vasari_cache() -> Path:
    """The session's cache directory (``$VASARI_CACHE`` during the tests)."""
    return _session_cache["path"]


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """The ../shared/data folder; tests using it skip with a reason when it is absent."""
    path = shared_data_dir()
    if path is None:
        pytest.skip("../shared/data is absent (set VASARI_DATA to point at it)")
    return path
