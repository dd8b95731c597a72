"""CLI verb of the "finetune" area: ``vasari finetune`` (fine-tune the backbone, then a bundle)."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer
from rich.console import Console

from vasari.cli.common import REFIT_HELP, TASKS_HELP, VIEWS_HELP, fail, parse_tasks
from vasari.features.defaults import DEFAULT_BACKBONE, VIEWS


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
    backbone: str = typer.Option(DEFAULT_BACKBONE, "--backbone", help="Backbone to fine-tune."),
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
    from vasari.finetune import FinetuneConfig, FinetuneError, finetune_dataset
    from vasari.report import summary_table

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
    app.command("finetune")(finetune)
