"""Add the enrolment reference (``enrol.npz``, what ``vasari enrol`` refits on) to a bundle
trained before bundles carried one, from the dataset it was trained on.

    python scripts/add-enrol-reference.py runs/enrol/dataset vasari/models/default

The dataset is the one ``scripts/build-default-bundle.sh`` builds (same command, same seed,
so the same split); its train and val rows are embedded through the default embedding cache
(seconds when cached). Bundles trained now get the file from ``vasari train`` itself.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("dataset", type=Path, help="dataset folder (dataset.csv) the bundle was trained on")
    parser.add_argument("bundle", type=Path, help="bundle folder to add enrol.npz to")
    args = parser.parse_args(argv)
    from vasari.bundle import load_bundle
    from vasari.dataset import load_dataset
    from vasari.enrol import write_reference
    from vasari.features import EmbeddingCache
    from vasari.inference.predictor import make_embedder

    bundle = load_bundle(args.bundle)
    dataset = load_dataset(args.dataset)
    rows = [i for i, a in enumerate(dataset.artworks) if dataset.splits.get(a.artwork_id) in ("train", "val")]
    embedder = make_embedder(bundle)
    with EmbeddingCache.default(bundle.spec) as cache:
        result = embedder.embed_paths([dataset.artworks[i].image or "" for i in rows], cache=cache, progress=True)
    ok = np.flatnonzero(result.ok)
    artists = [dataset.artworks[rows[i]].label("artist") for i in ok]
    path = write_reference(args.bundle, bundle.heads, result.features[ok], artists)
    if path is None:
        print(f"{args.bundle}: no artist head, nothing to add", file=sys.stderr)
        return 1
    print(f"wrote {path} ({path.stat().st_size / 1024:.0f} KiB) from {len(ok)} rows")
    return 0


if __name__ == "__main__":
    sys.exit(main())
