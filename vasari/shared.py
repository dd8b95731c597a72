"""Where the real paintings live: ``../shared/data`` beside the checkout, or $VASARI_DATA."""

from __future__ import annotations

import os
from pathlib import Path


def shared_data_dir() -> Path | None:
    """The shared data folder if present, else None (tests then skip with a reason)."""
    env = os.environ.get("VASARI_DATA")
    candidates = [Path(env)] if env else []
    repo = Path(__file__).resolve().parent.parent
    candidates += [repo.parent / "shared" / "data", Path.cwd().parent / "shared" / "data", Path.cwd() / "shared" / "data"]
    for candidate in candidates:
        if (candidate / "README.md").is_file():
            return candidate.resolve()
    return None
