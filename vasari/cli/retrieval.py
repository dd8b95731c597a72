"""``vasari index build|info``, ``vasari similar`` and ``vasari affinity``: the gallery index."""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import Any, Optional

import typer
from rich.console import Console
from rich.table import Table

from vasari.cli.common import fail
from vasari.errors import VasariError
from vasari.features.defaults import DEFAULT_BACKBONE

INDEX_BUILD_HELP = """Embed the pictures of one or more catalogs into a gallery index (for `vasari similar` and `vasari affinity`).

SPEC is any catalog reader's spec ("kind:path?opt=val"; a bare path is sniffed), a dataset folder written by `vasari dataset build` (its near-duplicate groups are used), or "shared" for every labelled source of ../shared/data. Near-duplicates (the same work twice) are grouped with the dataset stage's perceptual hashes unless --no-dedupe, so that calibration leaves each work's copies out.

--negatives adds references of known non-paintings (photos of buildings, sculpture, prints: any catalog spec; "shared" = the non-painting rows of ../shared/data/wga_thumbs). They are never returned as similar works; a picture nearer to them than to any painting is reported as novel ("not a painting").

The index folder holds vectors (PCA-reduced, float16 by default), metadata.csv, index.json (backbone spec, calibration: affinity temperature and novelty threshold) and, with --thumbnails, small JPEG thumbnails in thumbs/. Vectors come from the embedding cache when present.

--from-embeddings DIR builds it instead from the Parquet shards of `vasari embed ... --format parquet --out DIR` (millions of vectors, streamed; no labels, so similar works show their image path). --kind chooses the search: exact, ivf-flat or ivf-pq (FAISS, approximate, for millions; --nprobe trades recall for speed); auto picks by size (docs/scale.md, "Index").

Examples:

  vasari index build kaggle:../shared/data/artists7 "folder:../shared/data/louvre/train?task=type" --out runs/index

  vasari embed ../shared/data/louvre/train --format parquet --out runs/embeddings && vasari index build --from-embeddings runs/embeddings --out runs/index-ivf --kind ivf-flat --nprobe 128
"""

SIMILAR_HELP = """The paintings of the gallery index most similar to an image, with cosine scores.

Without --index, the index of --model (its index/ folder) or of the default bundle is used. --photo first finds the painting in a museum photo (frame, wall, perspective) and compares the crop.

Example:

  vasari similar ../shared/data/artists7/images/images/Rembrandt/Rembrandt_10.jpg --index runs/index -k 5 --json
"""

AFFINITY_HELP = """How much an image relates to each known artist: a calibrated score per artist (similarity to that artist's works, pooled with the model's artist head when the bundle has one) and the evidence, the nearest works by that artist.

Example:

  vasari affinity ../shared/data/louvre/photos/portrait/cl010052894.jpg --photo --index runs/index -k 5
"""

INFO_HELP = """Describe a gallery index: size, backbone, artists, calibration.

Example:

  vasari index info runs/index
"""

index_app = typer.Typer(help="Build and inspect gallery indexes (similar paintings, artist affinity).", no_args_is_help=True)


def register(app: typer.Typer) -> None:
    index_app.command("build", help=INDEX_BUILD_HELP, no_args_is_help=True)(index_build)
    index_app.command("info", help=INFO_HELP, no_args_is_help=True)(index_info)
    app.add_typer(index_app, name="index")
    app.command("similar", help=SIMILAR_HELP, no_args_is_help=True)(similar)
    app.command("affinity", help=AFFINITY_HELP, no_args_is_help=True)(affinity)


# ----------------------------------------------------------------------------- build


def _read_inputs(specs: list[str], console: Console) -> tuple[list[Any], dict[str, str]]:
    """Artworks with a local image from catalog specs / dataset folders, and known groups."""
    from vasari.catalog import SHARED_SPEC, SharedDataMissing, read_sources

    artworks: list[Any] = []
    groups: dict[str, str] = {}
    for spec in specs:
        path = Path(spec)
        if spec != SHARED_SPEC and path.is_dir() and (path / "dataset.csv").is_file():
            from vasari.dataset import load_dataset

            ds = load_dataset(path)
            artworks += ds.artworks
            groups.update({a.artwork_id: a.group for a in ds.artworks if a.group})
            continue
        try:
            artworks += [a for cat in read_sources([spec]) for a in cat.artworks]
        except SharedDataMissing:
            fail("../shared/data is absent (set VASARI_DATA)")
        except OSError as exc:  # the file system's message does not say which spec
            fail(f"{spec}: {exc}")
    seen: set[str] = set()
    unique = []
    for a in artworks:
        if a.artwork_id in seen or not a.image:
            continue
        seen.add(a.artwork_id)
        unique.append(a)
    missing = len(artworks) - len(unique)
    if missing:
        console.print(f"{missing} records without a local image or repeated were left out")
    return unique, groups


def _read_negatives(specs: list[str]) -> list[Any]:
    from vasari.catalog import SharedDataMissing, read_sources

    try:
        out = [a for cat in read_sources(specs, negatives=True) for a in cat.artworks]
    except SharedDataMissing:
        fail("../shared/data is absent (set VASARI_DATA)")
    return [a for a in out if a.image]


def _near_duplicate_groups(artworks: list[Any]) -> dict[str, str]:
    """artwork_id -> group from the dataset stage's perceptual-hash grouping (no filtering)."""
    from vasari.catalog import Catalog, ParseReport
    from vasari.dataset import DatasetConfig, build_dataset

    config = DatasetConfig(first_year=0, last_year=9999, keep_undated=True, paintings_only=False, min_per_class=0,
                           stratify_on=None, val_fraction=0.0, test_fraction=0.0)
    ds = build_dataset([Catalog(artworks=list(artworks), report=ParseReport(source="index"))], config, progress=True)
    return {a.artwork_id: a.group for a in ds.artworks if a.group}


def index_build(
    specs: Optional[list[str]] = typer.Argument(None, metavar="SPEC...", help='Catalog specs, dataset folders, or "shared".'),
    out: Path = typer.Option(..., "--out", "-o", help="Index folder to write (replaced atomically)."),
    thumbnails: bool = typer.Option(True, "--thumbnails/--no-thumbnails", help="Write small JPEG thumbnails beside the index."),
    pca: int = typer.Option(128, min=0, help="PCA dimensions (0: keep the backbone's)."),
    dtype: str = typer.Option("float16", help="float16 or float32 vectors."),
    dedupe: bool = typer.Option(True, "--dedupe/--no-dedupe", help="Group near-duplicates (perceptual hashes) for calibration."),
    backbone: str = typer.Option(DEFAULT_BACKBONE, help="Backbone name (must match the model that will query it)."),
    feature: str = typer.Option("stats", help='"stats" or "pooled".'),
    cache: Optional[Path] = typer.Option(None, help="Embedding cache folder (default: the user cache)."),
    quantile: float = typer.Option(0.99, min=0.5, max=1.0, help="Novelty threshold: this quantile of held-out paintings' distance."),
    negatives: Optional[list[str]] = typer.Option(None, "--negatives", help='Catalog spec of known non-paintings, or "shared" (repeatable).'),
    from_embeddings: Optional[Path] = typer.Option(None, "--from-embeddings", help="Folder of Parquet embedding shards (part-NNNNN.parquet + manifest.json) instead of SPECs."),
    kind: str = typer.Option("auto", help="Search kind: auto, exact, ivf-flat or ivf-pq."),
    nprobe: int = typer.Option(128, min=1, help="IVF: clusters searched per query (more: better recall, slower)."),
    nlist: Optional[int] = typer.Option(None, min=1, help="IVF: clusters (default about 2 sqrt(N))."),
    pq_m: int = typer.Option(32, "--pq-m", min=1, help="IVF-PQ: bytes per vector."),
    rerank_factor: int = typer.Option(10, min=1, help="IVF: candidates re-scored exactly per result."),
) -> None:
    from dataclasses import replace

    from vasari.gallery.config import IndexConfig

    console = Console(stderr=True, highlight=False)
    if dtype not in ("float16", "float32"):
        fail("--dtype must be float16 or float32")
    config = IndexConfig(dtype=dtype, pca_dim=pca or None, thumbnails=thumbnails, novelty_quantile=quantile,
                         kind=kind, nprobe=nprobe, nlist=nlist, pq_m=pq_m, rerank_factor=rerank_factor)
    if from_embeddings is not None:
        from vasari.cli.index_shards import build_index_from_embeddings

        return build_index_from_embeddings(from_embeddings, specs, out, config, backbone, feature, console)
    if not specs:
        fail("give catalog SPECs or --from-embeddings DIR")
    t0 = time.perf_counter()
    artworks, groups = _read_inputs(specs, console)
    if not artworks:
        fail("no artworks with a local image in the inputs")
    if dedupe and not groups:
        try:
            groups = _near_duplicate_groups(artworks)
        except Exception as exc:  # grouping is an aid to calibration, not essential
            console.print(f"[yellow]near-duplicate grouping skipped[/]: {exc}")
    if groups:
        artworks = [replace(a, group=groups.get(a.artwork_id, a.group)) for a in artworks]

    from vasari.features import Embedder, EmbeddingCache
    from vasari.gallery.index import GalleryIndex

    embedder = Embedder(backbone, feature)
    store = EmbeddingCache(cache, embedder.spec) if cache else EmbeddingCache.default(embedder.spec)
    console.print(f"{len(artworks)} artworks · {embedder.spec.key()} · cache {store.dir}")
    result = embedder.embed_paths([a.image for a in artworks], cache=store, progress=True)
    for i, msg in list(result.errors.items())[:5]:
        console.print(f"  [yellow]skipped[/] {msg}")
    if len(result.errors) > 5:
        console.print(f"  ... and {len(result.errors) - 5} more pictures that could not be read")
    neg_x, neg_labels = None, None
    if negatives:
        neg_arts = _read_negatives(negatives)
        console.print(f"{len(neg_arts)} non-painting references")
        neg_x = embedder.embed_paths([a.image for a in neg_arts], cache=store, progress=True).features
        neg_labels = [(a.extra or {}).get("form") or a.type or "not a painting" for a in neg_arts]
    from vasari.dataset.clean import clean_gallery  # issue #14 hook: no placeholder cards, scoped artists

    features, artworks, cards = clean_gallery(result.features, artworks)
    console.print(f"placeholder cards dropped: {len(cards)}")
    index = GalleryIndex.build(features, artworks, embedder.spec, config, negatives=neg_x, negative_labels=neg_labels)
    index.save(out, progress=True)
    cal = index.calibration
    console.print(
        f"wrote {out}: {len(index)} works, {len(index.artists)} artists, {index.dim}-d {dtype}; "
        f"novelty threshold {cal.get('novelty_threshold', float('nan')):.3f}, "
        f"affinity temperature {cal.get('temperature', float('nan')):.3f} "
        f"(leave-group-out artist top-1 {cal.get('affinity_top1', float('nan')):.3f}) · {time.perf_counter() - t0:.0f}s"
    )


def index_info(path: Path = typer.Argument(..., help="Index folder (or a model bundle holding index/).")) -> None:
    from vasari.gallery.index import GalleryIndex, find_index

    index = GalleryIndex.load(find_index(path) or path)
    print(json.dumps(index.info(), indent=2))


# ----------------------------------------------------------------------------- queries


def _open_index(index_dir: Optional[Path], model: Optional[Path]):
    from vasari.gallery.index import GalleryIndex, find_index

    where = index_dir
    if where is None:
        where = find_index(model)
        if where is None:
            what = f"the model {model}" if model else "the default model"
            fail(f"{what} has no gallery index; build one with `vasari index build ... --out DIR` and pass --index DIR")
    else:
        where = find_index(where) or where
    return GalleryIndex.load(where)


def _bundle_of(index) -> Optional[Path]:
    """The bundle folder holding this index (``<bundle>/index``), if it is in one."""
    if index.path is not None and (index.path.parent / "bundle.json").is_file():
        return index.path.parent
    return None


def _query_image(image: Path, photo: bool) -> tuple[Any, dict[str, Any] | None]:
    from vasari.core.images import load_image

    img = load_image(image)
    if not photo:
        return img, None
    from vasari.inference.photo import find_painting

    found = find_painting(img)
    return found.image, found.to_dict()


def _embedder_for(index) -> Any:
    """The backbone that built the index: the bundle's (fine-tuned ones too) when the index
    sits in a bundle, else the built-in one of the index's spec."""
    bundle_dir = _bundle_of(index)
    if bundle_dir is not None:
        from vasari.bundle import load_bundle
        from vasari.inference.predictor import make_embedder

        try:
            return make_embedder(load_bundle(bundle_dir))
        except ImportError as exc:  # a fine-tuned backbone without its optional runtime
            fail(str(exc))
    from vasari.features.embedder import Embedder

    try:
        embedder = Embedder(index.spec.name, index.spec.feature, views=index.spec.views)
    except VasariError as exc:  # the index names a backbone this Vasari lacks: say which index
        fail(f"{index.path}: {exc}")
    if embedder.spec.key() != index.spec.key():
        fail(f"{index.path}: built with {index.spec.key()}, this Vasari embeds with {embedder.spec.key()}; rebuild the index")
    return embedder


def _embed_query(index, image: Path, photo: bool) -> tuple[Any, dict[str, Any] | None, Any]:
    """(raw features, crop dict or None, the picture that was embedded)."""
    if index.spec is None:
        fail(f"{index.path}: the index does not say which backbone built it")
    img, crop = _query_image(image, photo)
    return _embedder_for(index).embed_images([img])[0], crop, img


def _artist_probs(model_dir: Optional[Path], vec: Any) -> dict[str, float] | None:
    """The bundle's artist-head probabilities for a feature vector, when it has that head."""
    try:
        from vasari.bundle import load_bundle

        bundle = load_bundle(model_dir)
        heads = bundle.heads
        if "artist" not in heads.tasks:
            return None
        proba = heads.predict_proba(vec[None])["artist"][0]
        classes = heads.classifiers["artist"].classes
    except Exception:  # no bundle, or a bundle without an artist head: similarity only
        return None
    return {c: float(p) for c, p in zip(classes, proba) if c != "unknown"}


def similar(
    image: Path = typer.Argument(..., exists=False, help="Image file."),
    index_dir: Optional[Path] = typer.Option(None, "--index", help="Index folder (default: the model's index)."),
    model: Optional[Path] = typer.Option(None, "--model", help="Model bundle whose index/ to use."),
    k: int = typer.Option(5, "-k", min=1, max=100, help="How many similar works."),
    photo: bool = typer.Option(False, "--photo", help="Museum photo: find and crop the painting first."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    index = _open_index(index_dir, model)
    vec, crop, _ = _embed_query(index, image, photo)
    hits = index.search(vec[None], k)[0]
    novelty = index.novelty(vec)
    if as_json:
        from vasari.inference.schema import SimilarAnswer

        answer = SimilarAnswer.model_validate({"image": str(image), "similar": [h.to_dict() for h in hits],
                                               "novelty": novelty, "crop": crop})
        print(json.dumps(answer.model_dump(mode="json"), indent=2, ensure_ascii=False))
        return
    table = Table(title=f"Most similar to {image.name} ({len(index)} works in the index)", title_justify="left")
    for col in ("#", "score", "artist", "title", "year", "id", "picture"):
        table.add_column(col, justify="right" if col in ("#", "score", "year") else "left")
    for i, h in enumerate(hits, 1):
        table.add_row(str(i), f"{h.score:.3f}", h.artist or "?", h.title or "", str(h.year or ""), h.artwork_id, h.thumbnail or "")
    console = Console()
    console.print(table)
    if novelty["novel"]:
        console.print(f"[yellow]unlike anything in the index[/] (distance {novelty['score']:.3f} > threshold {novelty['threshold']:.3f}): "
                      "probably not a painting of the kinds Vasari knows")
    if crop is not None:
        console.print(f"crop: found={crop['found']} box={crop['box']}")


def affinity(
    image: Path = typer.Argument(..., help="Image file."),
    index_dir: Optional[Path] = typer.Option(None, "--index", help="Index folder (default: the model's index)."),
    model: Optional[Path] = typer.Option(None, "--model", help="Model bundle (its index/ and, if any, its artist head)."),
    k: int = typer.Option(5, "-k", min=1, max=100, help="How many artists."),
    evidence: int = typer.Option(3, min=1, max=20, help="Nearest works shown per artist."),
    photo: bool = typer.Option(False, "--photo", help="Museum photo: find and crop the painting first."),
    use_head: bool = typer.Option(True, "--head/--no-head", help="Pool with the model's artist head when it has one."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    index = _open_index(index_dir, model)
    if not index.artists:
        fail(f"{index.path}: no artist has {index.config.min_artist_works}+ works in this index")
    vec, crop, _ = _embed_query(index, image, photo)
    bundle_dir = model if model is not None else _bundle_of(index)
    probs = _artist_probs(bundle_dir, vec) if use_head and bundle_dir is not None else None
    rows = index.affinity(vec, artist_probs=probs, k=k, evidence=evidence)
    novelty = index.novelty(vec)
    if as_json:
        from vasari.inference.schema import AffinityAnswer

        answer = AffinityAnswer.model_validate({"image": str(image), "affinity": rows, "novelty": novelty,
                                                "artist_head": probs is not None, "crop": crop})
        print(json.dumps(answer.model_dump(mode="json"), indent=2, ensure_ascii=False))
        return
    source = "similarity + artist head" if probs is not None else "similarity to each artist's works"
    table = Table(title=f"Artist affinity of {image.name} ({source}; {len(index.artists)} artists)", title_justify="left")
    table.add_column("artist")
    table.add_column("score", justify="right")
    table.add_column("nearest works (similarity)")
    for r in rows:
        ev = "; ".join(f"{e.get('title') or e['artwork_id']} ({e['score']:.2f})" for e in r["evidence"])
        table.add_row(r["artist"], f"{r['score']:.2f}", ev)
    console = Console()
    console.print(table)
    if novelty["novel"]:
        console.print(f"[yellow]unlike anything in the index[/] (distance {novelty['score']:.3f} > {novelty['threshold']:.3f}): "
                      "the scores say little")


if __name__ == "__main__":  # pragma: no cover
    sys.exit(0)
