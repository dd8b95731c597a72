"""Shared fixtures: the real paintings in ../shared/data (skipped when absent)."""

from __future__ import annotations

from pathlib import Path

import pytest

from vasari.shared import shared_data_dir


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """The ../shared/data folder; tests using it skip with a reason when it is absent."""
    path = shared_data_dir()
    if path is None:
        pytest.skip("../shared/data is absent (set VASARI_DATA to point at it)")
    return path
