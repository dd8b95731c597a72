"""``vasari index build --from-embeddings DIR``: a gallery index from Parquet embedding shards."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Optional

from rich.console import Console

from vasari.cli.common import fail
from vasari.gallery.config import IndexConfig


def build_index_from_embeddings(folder: Path, specs: Optional[list[str]], out: Path, config: IndexConfig,
                                backbone: str, feature: str, console: Console) -> None:
    """Build ``out`` from the shards in ``folder``; they must come from ``backbone``/``feature``
    (errors reach the user as one line through the CLI's ``VasariError`` handler)."""
    if specs:
        fail("give either catalog SPECs or --from-embeddings DIR, not both")
    from vasari.features import backbone_spec
    from vasari.gallery.shards import build_from_shards

    t0 = time.perf_counter()
    spec = backbone_spec(backbone, feature)
    index = build_from_shards(folder, out, spec, config, progress=True)
    threshold = index.calibration.get("novelty_threshold", float("nan"))
    console.print(f"wrote {out}: {len(index)} works from {folder}, {index.kind} search, {index.dim}-d "
                  f"{index.vectors.dtype}; novelty threshold {threshold:.3f} · {time.perf_counter() - t0:.0f}s")
