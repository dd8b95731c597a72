"""Where the real paintings live: ``$VASARI_DATA``, else ``../shared/data`` beside the checkout.

A folder counts as shared data when it holds at least one known source in its expected
layout (``SOURCE_MARKERS``) or the README.md of the original folder, so a user's own copy
of some sources works without that README.md.
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path

#: Relative paths whose presence marks the shared data layout (a known source, or the README.md).
SOURCE_MARKERS: tuple[str, ...] = (
    "README.md", "louvre/train", "louvre/val", "louvre/photos", "wga/catalog.csv", "wga_thumbs/catalog.csv",
    "aic/metadata.csv", "artists7/artists.csv", "wikiart",
)


def known_sources(folder: Path) -> list[str]:
    """The entries of ``SOURCE_MARKERS`` present in ``folder`` (empty: not a shared data folder)."""
    return [marker for marker in SOURCE_MARKERS if (folder / marker).exists()]


def shared_data_dir() -> Path | None:
    """The shared data folder if present, else None (tests then skip with a reason).

    A $VASARI_DATA without any known source is ignored with a warning that says what was
    expected, rather than silently: the user then knows why ../shared/data was used instead.
    """
    env = os.environ.get("VASARI_DATA")
    if env and not known_sources(Path(env)):
        warnings.warn(f"VASARI_DATA={env} is ignored: it holds none of the known sources "
                      f"({', '.join(SOURCE_MARKERS)})", stacklevel=2)
    candidates = [Path(env)] if env else []
    repo = Path(__file__).resolve().parent.parent.parent
    candidates += [repo.parent / "shared" / "data", Path.cwd().parent / "shared" / "data", Path.cwd() / "shared" / "data"]
    for candidate in candidates:
        if known_sources(candidate):
            return candidate.resolve()
    return None
