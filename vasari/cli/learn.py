"""``vasari train``, ``vasari evaluate``, ``vasari predict`` and ``vasari demo``."""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import Optional

import typer
from rich.console import Console

from vasari.cli.common import REFIT_HELP, TASKS_HELP, VIEWS_HELP, fail, parse_tasks
from vasari.errors import VasariError
from vasari.features.defaults import DEFAULT_BACKBONE, DEFAULT_FEATURE

TRAIN_HELP = """Train the heads on a dataset (from `vasari dataset build`) and write a model bundle.

Embeds the dataset's images with the backbone (cached by content in --cache, default the user cache dir), trains one head per task on the train split (C, temperature and abstention thresholds chosen on val), evaluates val and test, and writes BUNDLE/ with bundle.json, heads.npz, metrics.json, MODEL_CARD.md and a report/ with plots.

Example:

  vasari train runs/data --out runs/model --backbone efficientnet_lite2 --feature stats
  vasari train runs/artists7 --out runs/artists7-model --tasks artist --views multicrop --refit-on-val
  vasari train runs/data --out runs/model-aug --augment-views 1
"""

EVALUATE_HELP = """Evaluate a bundle on one split of a dataset: top-1/top-3, per-class accuracy, precision/recall/F1, confusion matrix, calibration (ECE), year MAE, coverage vs accuracy. Writes metrics.json, PNG plots, report.md and report.html into --out and prints a summary.

Example:

  vasari evaluate --model runs/model runs/data --split test --out runs/report
"""

PREDICT_HELP = """Attribute paintings: type, school, period, style, artist (top-k with calibrated scores), a verdict per task ("unknown" when the model abstains) and a year estimate with an interval.

--json prints ONE JSON array (one object per image; see docs/contract.md). The exit code is 1 when any image could not be read (its object then has an "error").

--out DIR writes the predictions of a whole collection (files, folders, catalog specs) as Parquet shards instead: one row per picture, the contract's fields as JSON strings, resumable shard by shard; --engine ray runs them in Ray actors (docs/scale.md).

Example:

  vasari predict --top-k 3 --json ../shared/data/louvre/val/portrait/*.jpg

  vasari predict ../shared/data/wikiart --out runs/wikiart-predictions --engine ray
"""

DEMO_HELP = """The whole system in about a minute: attribution on held-out paintings.

With ../shared/data present (or $VASARI_DATA, or --data-dir): samples about 2,100 paintings from artists7, WikiArt, the WGA thumbnails and the Louvre folders so that every task has labels, splits them with the dataset stage's grouped split (copies of a work never straddle train and test), embeds them, trains the artist, school, period, type and style heads and the year regressor, evaluates the held-out test split (and type on the Louvre museum photos), prints the table and a few example answers (top-2 with calibrated probabilities, "unknown" where the model abstains, the true label beside), and writes a bundle and a report into --out. With IMAGES_DIR laid out as IMAGES_DIR/<class>/<image>: a stratified 80/20 split of that one task.

Example:

  vasari demo
  vasari demo ../shared/data/louvre/train --out runs/demo-louvre
"""


def register(app: typer.Typer) -> None:
    app.command("train", help=TRAIN_HELP, no_args_is_help=True)(train)
    app.command("evaluate", help=EVALUATE_HELP, no_args_is_help=True)(evaluate)
    app.command("predict", help=PREDICT_HELP, no_args_is_help=True)(predict)
    app.command("demo", help=DEMO_HELP)(demo)


def _console(stderr: bool = False) -> Console:
    return Console(stderr=stderr, highlight=False, soft_wrap=True)


def _cache(embedder, cache_dir: Optional[Path], no_cache: bool):
    """The embedding cache the verb reads and fills (None with --no-cache)."""
    from vasari.features import EmbeddingCache

    if no_cache:
        return None
    if cache_dir is None:
        return EmbeddingCache.default(embedder.spec)
    return EmbeddingCache(cache_dir, embedder.spec)


def _head_config(target_precision: float, tasks: Optional[str], refit_on_val: bool = False):
    from vasari.heads.config import HeadConfig

    chosen = parse_tasks(tasks)
    if not 0.0 < target_precision <= 1.0:
        fail(f"--target-precision must be in (0, 1], got {target_precision}")
    return HeadConfig(tasks=chosen, target_precision=target_precision, refit_on_val=refit_on_val)


def train(
    dataset_dir: Path = typer.Argument(..., help="A dataset folder written by `vasari dataset build`."),
    out: Path = typer.Option(..., "--out", "-o", help="Bundle directory to write."),
    backbone: str = typer.Option(DEFAULT_BACKBONE, help="Backbone name (see `vasari embed --list`)."),
    feature: str = typer.Option("stats", help="'stats' (pooled + stage mean/std) or 'pooled'."),
    cache: Optional[Path] = typer.Option(None, help="Embedding cache folder (default: the user cache dir)."),
    no_cache: bool = typer.Option(False, "--no-cache", help="Do not read or write the embedding cache."),
    tasks: Optional[str] = typer.Option(None, help=TASKS_HELP),
    target_precision: float = typer.Option(0.9, help="Abstention: precision the verdicts aim for on val."),
    views: str = typer.Option("center", help=VIEWS_HELP),
    refit_on_val: bool = typer.Option(False, "--refit-on-val", help=REFIT_HELP),
    reproduce: Optional[str] = typer.Option(
        None, "--reproduce", help="The command the model card gives to rebuild this bundle (default: this command "
        "line); a build script passes itself, e.g. --reproduce 'bash scripts/build-default-bundle.sh'."),
    abstention: str = typer.Option("val", "--abstention", help="Where abstention thresholds are chosen: 'val', or "
                                   "'out-of-source' (leave-source-out predictions; artist also on held-out artists)."),
    protocols: Optional[str] = typer.Option(None, "--protocols", help="Comma-separated evaluation protocols whose pooled "
                                            "figures go into the model card, e.g. 'leave-source-out,leave-artists-out'."),
    augment_views: int = typer.Option(0, "--augment-views", help="Also train the type head on K cropped / downscaled / "
                                      "JPEG-recompressed views of each train picture (cached; 0 = off). Type out of "
                                      "source +2 points, e.g. --augment-views 1 (docs/trust-research.md 3b); the out-of-source "
                                      "refits and protocol folds train on their rows' views too."),
) -> None:
    from vasari.dataset import load_dataset
    from vasari.features.embedder import Embedder
    from vasari.pipeline import train_bundle
    from vasari.report import summary_table

    console = _console()
    ds = load_dataset(dataset_dir)
    arts = [a for a in ds.artworks if a.image]
    if not arts:
        fail(f"{dataset_dir}: no artwork has a local image (download them with `vasari download`)")
    config = _head_config(target_precision, tasks, refit_on_val)
    if abstention not in ("val", "out-of-source"):  # issue #14 hook
        fail(f"--abstention must be val or out-of-source, got {abstention!r}")
    from dataclasses import replace

    if augment_views < 0:  # issue #14 hook
        fail(f"--augment-views must be >= 0, got {augment_views}")
    config = replace(config, abstention=abstention, augment_views=augment_views)
    protocol_names = _protocol_names(protocols)
    embedder = Embedder(backbone, feature, views=views)
    cache_obj = _cache(embedder, cache, no_cache)
    command = reproduce or (" ".join(["vasari", "train", *sys.argv[2:]]) if sys.argv and "train" in sys.argv
                            else f"vasari train {dataset_dir} --out {out}")
    card = {"name": out.name, "command": command, "dataset": str(dataset_dir),
            "splits": f"{ds.config.split} split ({json.dumps(ds.split_sizes())}), dataset config {json.dumps(ds.config.to_dict())}"}
    run = train_bundle(arts, [ds.splits.get(a.artwork_id, "") for a in arts], out, embedder=embedder,
                       cache=cache_obj, config=config, card=card,
                       report_context={"bundle": str(out), "dataset": str(dataset_dir)}, protocols=protocol_names)
    if run.fit.embed_errors:
        console.print(f"[yellow]{len(run.fit.embed_errors)} images could not be embedded and were left out[/]")
    console.print(summary_table(run.metrics_by_split, title=f"{out.name}"))
    console.print(f"bundle written to {run.bundle_dir} (report: {run.report_dir / 'report.html'}); "
                  f"embed {run.fit.seconds['embed']}s, train {run.fit.seconds['train']}s")


def _protocol_names(protocols: str | None) -> list[str]:
    """``--protocols a,b`` checked before any embedding starts."""
    from vasari.protocols import PROTOCOLS

    names = [p.strip() for p in (protocols or "").split(",") if p.strip()]
    unknown = [p for p in names if p not in PROTOCOLS]
    if unknown:
        fail(f"--protocols: unknown protocol(s) {', '.join(unknown)}; choose from {', '.join(PROTOCOLS)}")
    return names


def evaluate(
    dataset_dir: Path = typer.Argument(..., help="A dataset folder written by `vasari dataset build`."),
    bundle_dir: Path = typer.Option(..., "--model", "-m", help="Bundle directory."),
    split: str = typer.Option("test", help="train, val, test, or 'all'."),
    out: Path = typer.Option(..., "--out", "-o", help="Report directory to write."),
    cache: Optional[Path] = typer.Option(None, help="Embedding cache folder (default: the user cache dir)."),
    no_cache: bool = typer.Option(False, "--no-cache"),
    protocol: Optional[str] = typer.Option(None, "--protocol", help="grouped, leave-source-out or leave-artists-out: "
                                           "per source and task, scored on what the predictor shows (issue #14)."),
) -> None:
    from vasari.bundle import load_bundle
    from vasari.dataset import load_dataset
    from vasari.heads.metrics import evaluate_heads
    from vasari.inference.predictor import make_embedder
    from vasari.report import summary_table, write_report

    bundle = load_bundle(bundle_dir)
    embedder = make_embedder(bundle)
    ds = load_dataset(dataset_dir)
    if split not in ("train", "val", "test", "all"):
        fail(f"--split must be train, val, test or all, got {split!r}")
    if protocol is not None:  # issue #14 hook: per source x task on every split (vasari.protocols)
        from vasari.protocols import run_protocol

        try:
            _console().print(run_protocol(protocol, bundle, embedder, ds, split, out, _cache(embedder, cache, no_cache), bundle_dir), markup=False)
        except ValueError as exc:
            fail(str(exc))
        return
    arts = [a for a in ds.artworks if a.image and (split == "all" or ds.splits.get(a.artwork_id) == split)]
    if not arts:
        fail(f"{dataset_dir}: no artworks with local images in split {split!r}")
    result = embedder.embed_paths([a.image for a in arts], cache=_cache(embedder, cache, no_cache), progress=True)
    labels = {task: [a.label(task) for a in arts] for task in bundle.heads.tasks}
    ev = evaluate_heads(bundle.heads, result.features, labels, [a.year for a in arts], split=split)
    write_report(ev, out, title=f"Vasari evaluation: {bundle_dir.name} on {Path(dataset_dir).name} ({split})",
                 context={"bundle": str(bundle_dir), "dataset": str(dataset_dir), "split": split})
    _console().print(summary_table({split: ev.metrics}, title=f"{bundle_dir.name} on {split}"))
    _print_by_source(bundle, arts, ds, result.features, bundle_dir, split, out)
    trained_on = _trained_on(bundle, split)
    if trained_on:
        _console().print(f"[yellow]note: the {', '.join(trained_on)} head(s) were trained on {split} "
                         f"({'refit on train + val' if split == 'val' else 'train split'}): these are not held-out numbers[/]")
    _console().print(f"report written to {out / 'report.html'}")


def _print_by_source(bundle, arts, ds, features, bundle_dir: Path, split: str, out: Path) -> None:
    """Per source x task, scored on what the predictor shows (verdicts after abstention and
    the one-answer rule): a pooled figure can hide a source the model fails on (issue #14)."""
    from vasari.protocols import write_protocol

    text = write_protocol("grouped", bundle, arts, [ds.splits.get(a.artwork_id, "") for a in arts], features,
                          bundle_dir, "all", out, stem="by_source")
    _console().print("per source (what a user is shown):", markup=False)
    _console().print(text, markup=False)


def _trained_on(bundle, split: str) -> list[str]:
    """Tasks whose heads saw ``split`` in training: train always, val when refit on it."""
    if split in ("train", "all"):
        return list(bundle.heads.classifiers)
    if split == "val":
        return [t for t, head in bundle.heads.classifiers.items() if head.info.get("refit_on_val")]
    return []


def predict(
    images: list[Path] = typer.Argument(..., help="Image files (with --out also folders and catalog specs)."),
    bundle_dir: Optional[Path] = typer.Option(None, "--model", "-m", help="Bundle directory (default: the shipped model)."),
    top_k: int = typer.Option(3, "--top-k", "-k", help="Labels per task."),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON array."),
    crop: bool = typer.Option(False, help="Museum photos: find and crop the painting first."),
    out: Optional[Path] = typer.Option(None, "--out", "-o", help="Write Parquet shards of predictions to this folder (one row per picture; resumable) instead of printing."),
    engine: str = typer.Option("auto", help='With --out: "auto", "onnx", "torch" or "ray" (onnxruntime in Ray actors; see docs/scale.md).'),
    ray_address: Optional[str] = typer.Option(None, "--ray-address", help="Ray cluster for --engine ray (default: a local Ray)."),
    ray_workers: Optional[int] = typer.Option(None, "--ray-workers", min=1, help="Ray actors for --engine ray (default: the cluster's CPUs)."),
    shard_size: int = typer.Option(4096, "--shard-size", min=1, help="Pictures per Parquet shard with --out."),
) -> None:
    from vasari.inference.predictor import Predictor

    if out is not None or engine != "auto":
        _predict_collection(images, bundle_dir, top_k, crop, out, engine, ray_address, ray_workers, shard_size)
        return

    predictor = Predictor.load(bundle_dir, crop=crop)
    results = predictor.predict_paths([str(p) for p in images], top_k=top_k)
    failed = sum(1 for r in results if "error" in r)
    if as_json:
        sys.stdout.write(json.dumps(results, indent=2, ensure_ascii=False) + "\n")
    else:
        _print_predictions(results)
    if failed:
        raise typer.Exit(code=1)


def _predict_collection(images: list[Path], bundle_dir: Optional[Path], top_k: int, crop: bool, out: Optional[Path],
                        engine: str, ray_address: Optional[str], ray_workers: Optional[int], shard_size: int) -> None:
    """`predict --out DIR [--engine ...]`: a collection's predictions as Parquet shards."""
    from vasari.cli.features import collect_inputs
    from vasari.cli.scale import collection_config, predict_collection

    if out is None:
        fail("--engine needs --out DIR (predictions of a collection are written as Parquet shards)")
    config = collection_config(engine, ray_address, ray_workers, shard_size)
    try:
        paths, ids = collect_inputs([str(p) for p in images])
    except ValueError as exc:
        fail(str(exc))
    ok, failed = predict_collection(bundle_dir, paths, ids, out, top_k, config, crop)
    if failed:
        raise typer.Exit(code=1)


def _print_predictions(results: list[dict]) -> None:
    from rich.table import Table

    console = _console()
    for r in results:
        if "error" in r:
            console.print(f"[bold red]{r['image']}[/]: {r['error']['code']}: {r['error']['message']}")
            continue
        table = Table(title=str(r["image"]), title_justify="left")
        table.add_column("task")
        table.add_column("verdict")
        table.add_column("top-k (calibrated score)")
        novel = (r.get("novelty") or {}).get("novel")
        for task, preds in r["predictions"].items():
            if novel and task in ("timeframe", "style", "artist"):  # no dating/resemblance for a non-painting (issue #14)
                continue
            verdict = r["verdict"].get(task, "")
            style = "dim" if verdict == "unknown" else "bold"
            table.add_row(task, f"[{style}]{verdict}[/]", ", ".join(f"{p['label']} {p['score']:.2f}" for p in preds))
        if r.get("year"):  # null for a novel picture (issue #14)
            y = r["year"]
            table.add_row("year", str(y["estimate"]), f"{y['low']}-{y['high']}")
        if r.get("novelty", {}).get("novel"):
            table.add_row("novelty", "[yellow]unlike the training paintings[/]", r["novelty"].get("reason") or "")
        if r.get("similar"):
            from vasari.gallery.labels import hit_text

            table.add_row("similar", "", "; ".join(f"{hit_text(s)} ({s['score']:.2f})" for s in r["similar"][:3]))
        console.print(table)


def demo(
    images_dir: Optional[Path] = typer.Argument(None, help="IMAGES_DIR/<class>/<image> (default: ../shared/data)."),
    out: Path = typer.Option(Path("runs/demo"), "--out", "-o", help="Where the bundle and report go."),
    data_dir: Optional[Path] = typer.Option(None, "--data-dir", help="Shared data folder (default: ../shared/data or $VASARI_DATA)."),
    cache: Optional[Path] = typer.Option(None, help="Embedding cache folder (default: the user cache dir)."),
    no_cache: bool = typer.Option(False, "--no-cache"),
) -> None:
    from vasari.features.embedder import Embedder
    from vasari.heads.config import HeadConfig
    from vasari.pipeline import train_bundle
    from vasari.report import summary_table

    console = _console()
    started = time.perf_counter()
    if images_dir is None:
        arts, splits, what, eval_splits = _shared_demo_data(data_dir, out)
        config = HeadConfig(c_grid=(0.01, 0.05, 0.25))
    else:
        arts, splits, what, eval_splits = _folder_demo_data(images_dir)
        config = HeadConfig(tasks=("type",), year=False, c_grid=(0.01, 0.05, 0.25))
    console.print(f"[bold]Vasari demo[/]: {what}")
    embedder = Embedder(DEFAULT_BACKBONE, DEFAULT_FEATURE)
    cache_obj = _cache(embedder, cache, no_cache)
    run = train_bundle(arts, splits, out / "bundle", embedder=embedder, cache=cache_obj, config=config,
                       evaluate_splits=eval_splits, card={"name": "vasari-demo", "command": "vasari demo", "splits": what},
                       report_dir=out / "report", report_title="Vasari demo", report_context={"data": what})
    console.print(summary_table(run.metrics_by_split, title="Vasari demo"))
    if images_dir is None:
        _print_examples(console, run.fit, embedder)
    s, path = run.fit.seconds, run.bundle_dir
    console.print(f"{len(arts)} images: embed {s['embed']:.1f}s ({run.fit.features.shape[1]}-d features), "
                  f"train {s['train']:.1f}s, evaluate {s['evaluate']:.1f}s; total {time.perf_counter() - started:.1f}s. "
                  f"Bundle: {path} (try `vasari predict --model {path} IMAGE`), report: {run.report_dir / 'report.html'}")


def _shared_demo_data(data_dir: Optional[Path], out: Path):
    """The attribution demo's artworks, splits, summary and evaluated splits from the shared data."""
    from vasari.demo import demo_data
    from vasari.core.paths import shared_data_dir

    data = data_dir or shared_data_dir()
    if data is None or not data.is_dir():
        fail("no shared data folder (../shared/data, $VASARI_DATA or --data-dir): "
             "pass IMAGES_DIR laid out as IMAGES_DIR/<class>/<image>")
    out.mkdir(parents=True, exist_ok=True)
    try:
        dd = demo_data(data, cache_dir=out)
    except (VasariError, OSError) as exc:  # name the data folder: the demo reads many files there
        fail(f"{data}: {exc}")
    return dd.artworks, dd.splits, dd.summary, ("test", "photos")


def _folder_demo_data(images_dir: Path):
    """IMAGES_DIR/<class>/<image>: artworks, a stratified 80/20 split, summary, evaluated splits."""
    if not images_dir.is_dir():
        fail(f"{images_dir}: not a folder")
    arts, splits = _folder_dataset(images_dir)
    if not arts:
        fail(f"{images_dir}: no images in class sub-folders (expected IMAGES_DIR/<class>/<image>)")
    return arts, splits, f"{images_dir}: {len(arts)} images, {len({a.type for a in arts})} classes, stratified 80/20", ("val",)


def _print_examples(console: Console, result, embedder) -> None:
    """A few held-out paintings: per task the answer (or "unknown"), top-2 with calibrated
    probabilities, and the true label beside."""
    from rich.table import Table

    from vasari.demo import DemoConfig, example_answers, example_rows
    from vasari.inference.predictor import Predictor

    ok = [i for i in range(len(result.artworks)) if i not in result.embed_errors]
    arts = [result.artworks[i] for i in ok]
    rows = example_rows(arts, [result.split_of[i] for i in ok], DemoConfig().examples)
    answers = example_answers(Predictor(result.bundle, embedder), result.features[ok], arts, rows)
    console.print("[bold]example answers on held-out (test) paintings[/]: answer (\"unknown\" when the model "
                  "abstains), top-2 calibrated probabilities, true label")
    for obj in answers:
        table = Table(title=obj["image"], title_justify="left", box=None, show_header=False, padding=(0, 1))
        for task, preds in obj["predictions"].items():
            truth, answer = obj["truth"].get(task), obj["verdict"][task]
            mark = "" if truth is None or answer == "unknown" else (" [green]right[/]" if answer == truth else " [red]wrong[/]")
            table.add_row(task, f"{answer}{mark}", ", ".join(f"{p['label']} {p['score']:.2f}" for p in preds),
                          f"true: {truth or '-'}")
        if obj.get("year"):  # null for a novel picture (issue #14)
            y = obj["year"]
            table.add_row("year", str(y["estimate"]), f"{y['low']}-{y['high']}", f"true: {obj['truth'].get('year', '-')}")
        console.print(table)


def _folder_dataset(root: Path):
    """Artworks from ROOT/<class>/<image> (label = folder name, task "type") and a seeded,
    stratified 80/20 train/val split."""
    import numpy as np

    from vasari.catalog import Artwork
    from vasari.core.images import is_image_file

    arts, splits = [], []
    rng = np.random.default_rng(0)
    for class_dir in sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")):
        files = sorted(p for p in class_dir.rglob("*") if p.is_file() and is_image_file(p))
        order = rng.permutation(len(files))
        n_val = max(1, round(0.2 * len(files))) if len(files) >= 2 else 0
        for rank, i in enumerate(order):
            f = files[i]
            arts.append(Artwork(artwork_id=f"folder:{f.relative_to(root)}", source=root.name or "folder",
                                image=str(f.resolve()), type=class_dir.name))
            splits.append("val" if rank < n_val else "train")
    return arts, splits
