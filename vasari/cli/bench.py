"""CLI verb of the "bench" area: ``vasari bench`` (the hardware benchmark)."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer
from rich.console import Console

from vasari.cli.common import fail
from vasari.features.defaults import DEFAULT_BACKBONE

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
    backbone: str = typer.Option(DEFAULT_BACKBONE, "--backbone", help="Backbone to measure."),
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
    from vasari.bench import BenchConfig, report_table, run_bench, save_report

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


def register(app: typer.Typer) -> None:
    app.command("bench")(bench)
