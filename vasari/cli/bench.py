"""CLI verbs of the "bench" area: ``vasari bench`` (hardware benchmark) and ``vasari finetune``."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer
from rich.console import Console

from vasari.cli.common import REFIT_HELP, TASKS_HELP, VIEWS_HELP, fail, parse_tasks

DEVICES = ("cpu", "cuda", "all")


def bench(
    device: str = typer.Option(
        "all", "--device", help="cpu, cuda or all (cuda rows say 'not available' without a GPU)."
    ),
    images: Optional[Path] = typer.Option(
        None,
        "--images",
        help="Folder of images, class subfolders = labels (default: ../shared/data/louvre, else generated).",
    ),
    quick: bool = typer.Option(
        False,
        "--quick",
        help="CI-sized run: 32 images, 10 single-image runs, short throughput/latency loops (< 2 min on 2 cores).",
    ),
    out: Path = typer.Option(Path("runs/bench"), "--out", help="Folder for bench.json and bench.png."),
    backbone: str = typer.Option("efficientnet_lite2", "--backbone", help="Backbone to measure."),
    latency_runs: Optional[int] = typer.Option(
        None, "--latency-runs", help="Single-image runs (default: quick 10, full 100)."
    ),
    max_images: Optional[int] = typer.Option(
        None, "--max-images", help="Cap on the pipeline images (default: quick 32, full all)."
    ),
) -> None:
    """Measure embedding throughput, latency, head training and the whole pipeline per engine and device.

    Example: vasari bench --quick --out runs/bench
    """
    from vasari.bench.hardware import BenchConfig, report_table, run_bench, save_report

    console = Console()
    if not console.is_terminal:  # piped or captured: room for the whole table
        console = Console(width=150)
    device = device.lower()
    if device not in DEVICES:
        fail(f"--device must be one of {', '.join(DEVICES)}, got {device!r}")
    devices = ("cpu", "cuda") if device == "all" else (device,)
    config = BenchConfig(
        devices=devices, images=images, quick=quick, backbone=backbone, max_images=max_images, latency_runs=latency_runs
    )
    try:
        with console.status("benchmarking…") as status:
            report = run_bench(config, progress=lambda msg: status.update(msg))
    except (FileNotFoundError, ValueError) as exc:
        fail(f"vasari bench: {exc}", code=1)
    console.print(report_table(report))
    paths = save_report(report, out)
    console.print(f"wrote {paths['json']} and {paths['png']} ({report['duration_s']:.0f} s in all)")
    if any(r.get("error") for r in report["results"]):
        raise typer.Exit(1)


def finetune(
    dataset_dir: Path = typer.Argument(
        ..., help="Dataset folder from `vasari dataset build` (dataset.csv + splits.csv)."
    ),
    out: Path = typer.Option(
        ..., "--out", help="Bundle folder to write (a normal bundle: predict/evaluate/serve use it)."
    ),
    unfreeze: str = typer.Option("last", "--unfreeze", help="'last' stage, 'all', or a number N of last stages."),
    epochs: int = typer.Option(
        10, "--epochs", min=1, help="Maximum epochs (early stopping on val loss may stop sooner)."
    ),
    lr: float = typer.Option(1e-3, "--lr", help="Learning rate of the heads; the backbone gets lr x 0.1."),
    batch_size: int = typer.Option(32, "--batch-size", min=2, help="Images per step."),
    device: str = typer.Option("auto", "--device", help="auto (CUDA when available), cpu, cuda, cuda:N."),
    backbone: str = typer.Option("efficientnet_lite2", "--backbone", help="Backbone to fine-tune."),
    image_size: Optional[int] = typer.Option(
        None, "--image-size", help="Training resolution (default: the backbone's)."
    ),
    patience: int = typer.Option(3, "--patience", min=1, help="Epochs without val-loss improvement before stopping."),
    max_steps: Optional[int] = typer.Option(None, "--max-steps-per-epoch", help="Cap steps per epoch (quick trials)."),
    work_dir: Optional[Path] = typer.Option(
        None, "--work-dir", help="Checkpoint folder (default: <out>.finetune beside the bundle)."
    ),
    tasks: Optional[str] = typer.Option(None, "--tasks", help=TASKS_HELP),
    views: str = typer.Option("center", "--views", help=VIEWS_HELP),
    refit_on_val: bool = typer.Option(False, "--refit-on-val", help=REFIT_HELP),
) -> None:
    """Fine-tune the backbone's last stages with multi-task heads, then export a normal bundle.

    Example: vasari finetune runs/data --out runs/model-ft --unfreeze 2 --epochs 15

    The artists7 recipe of benchmarks/finetune_artists7.py (GPU; .889 top-1 there):
    vasari finetune runs/artists7 --out runs/artists7-ft --tasks artist --unfreeze all --epochs 15 --patience 4 --views multicrop --refit-on-val
    """
    from vasari.features import VIEWS
    from vasari.heads.evaluate import summary_table
    from vasari.finetune.train import FinetuneConfig, FinetuneError, finetune_dataset

    console = Console()
    if views not in VIEWS:  # before the long part, not after it
        fail(f"vasari finetune: unknown views {views!r}; choose one of {', '.join(VIEWS)}", code=1)

    try:
        config = FinetuneConfig(
            tasks=parse_tasks(tasks),
            backbone=backbone,
            unfreeze=unfreeze,
            epochs=epochs,
            lr=lr,
            batch_size=batch_size,
            device=device,
            image_size=image_size,
            patience=patience,
            max_steps_per_epoch=max_steps,
        )
        result = finetune_dataset(dataset_dir, out, config, console=console, work_dir=work_dir, views=views,
                                  refit_on_val=refit_on_val)
    except (FinetuneError, FileNotFoundError, ValueError) as exc:
        fail(f"vasari finetune: {exc}", code=1)
    if result.evaluations:
        console.print(
            summary_table({ev.split: ev.metrics for ev in result.evaluations}, title=f"{out.name} (fine-tuned)")
        )
    console.print(
        f"bundle written to {result.bundle_dir} (backbone {result.spec.name}; best epoch {result.fit.best_epoch}, "
        f"val loss {result.fit.best_val_loss:.4f}, {result.fit.seconds:.0f} s fine-tuning on {result.device}); "
        f"checkpoint {result.checkpoint}"
    )


def register(app: typer.Typer) -> None:
    app.command("bench")(bench)
    app.command("finetune")(finetune)
