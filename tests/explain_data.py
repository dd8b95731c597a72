"""A bundle whose "type" head reads a coloured square drawn in one quadrant
(``vasari.explain.sanity``), trained once per test session on REAL backbone features, for the
explanation tests (library, CLI, service and page)."""

from __future__ import annotations

import functools
import tempfile
from pathlib import Path


@functools.lru_cache(maxsize=1)
def quadrant_bundle() -> Path:
    from vasari.explain.sanity import train_quadrant_bundle
    from vasari.features import Embedder

    root = Path(tempfile.mkdtemp(prefix="vasari-explain-"))
    return train_quadrant_bundle(Embedder(), root / "bundle")


@functools.lru_cache(maxsize=1)
def quadrant_predictor():
    from vasari.inference.predictor import Predictor

    return Predictor.load(quadrant_bundle(), with_index=False)
