"""A benchmark report's outputs: the raw JSON (shipped with the benchmarks), the plot, the
console table and the Markdown comparison with the seed study."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from vasari.bench.hardware import SEED_STUDY
from vasari.core.fileio import atomic_open, atomic_write_text


def write_json(report: dict[str, Any], path: Path) -> Path:
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(path, json.dumps(report, indent=2, default=str) + "\n")
    return Path(path)


def plot_report(report: dict[str, Any], path: Path) -> Path:
    """A bar-chart PNG: throughput (batch 1/32), latency (p50/p99) and pipeline time per engine."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = report["results"]
    names = [r["name"] for r in rows]
    x = np.arange(len(rows))
    fig, axes = plt.subplots(1, 3, figsize=(14, 4.2))
    panels = [
        (
            "embedding throughput (img/s, higher is better)",
            [("batch 1", "throughput", "batch_1"), ("batch 32", "throughput", "batch_32")],
        ),
        ("single-image latency (ms, lower is better)", [("p50", "latency_ms", "p50"), ("p99", "latency_ms", "p99")]),
        ("pipeline (s, lower is better)", [("embed", "pipeline", "embed_s"), ("total", "pipeline", "total_s")]),
    ]
    for ax, (title, series) in zip(axes, panels):
        width = 0.8 / len(series)
        for k, (label, group, key) in enumerate(series):
            values = [
                float(r.get(group, {}).get(key) or 0.0) if r["available"] and not r.get("error") else 0.0 for r in rows
            ]
            bars = ax.bar(x + (k - (len(series) - 1) / 2) * width, values, width, label=label)
            ax.bar_label(
                bars, labels=[(f"{v:.0f}" if v >= 100 else f"{v:.3g}") if v else "" for v in values], fontsize=7
            )
        for i, r in enumerate(rows):
            if not r["available"] or r.get("error"):
                ax.text(
                    i,
                    0,
                    "not available" if not r["available"] else "error",
                    ha="center",
                    va="bottom",
                    rotation=90,
                    fontsize=8,
                    color="grey",
                )
        ax.set_xticks(x, names, fontsize=8)
        ax.set_title(title, fontsize=9)
        ax.legend(fontsize=7)
    m = report["machine"]
    gpu = m["gpu"]["name"] if m.get("gpu") else "no GPU"
    fig.suptitle(
        f"vasari bench ({report['mode']}, {report['images']['count']} images) — {m['cpu']}, "
        f"{m['cores_usable']} cores, {gpu}, load average {m.get('load_average', '?')}",
        fontsize=10,
    )
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_open(path, "wb") as fh:
        fig.savefig(fh, dpi=110, format="png")
    plt.close(fig)
    return path


def _fmt(value: Any, spec: str = ".1f") -> str:
    return "—" if value is None else format(value, spec)


def report_table(report: dict[str, Any]):
    """A rich table of the report, one row per engine (unavailable engines say why in the caption)."""
    from rich.table import Table

    m = report["machine"]
    gpu = m["gpu"]["name"] if m.get("gpu") else "no GPU"
    table = Table(
        title=f"vasari bench ({report['mode']}, {report['images']['count']} images)",
        caption=f"{m['cpu']}, {m['cores_usable']} cores, {gpu}; load average {m.get('load_average', '?')}",
    )
    for col in (
        "engine",
        "b1 img/s",
        "b32 img/s",
        "p50 ms",
        "p99 ms",
        "heads s",
        "e2e s",
        "e2e img/s",
        "vs K80",
        "top-1",
    ):
        table.add_column(col, justify="left" if col == "engine" else "right", no_wrap=col == "engine")
    notes = []
    for r in report["results"]:
        if not r["available"]:
            table.add_row(r["name"], "[dim]not available[/dim]", *["[dim]—[/dim]"] * 8)
            notes.append(f"{r['name']}: {r['reason']}")
            continue
        if r.get("error"):
            table.add_row(r["name"], "[red]error[/red]", *["—"] * 8)
            notes.append(f"{r['name']}: {r['error']}")
            continue
        p = r["pipeline"]
        top1 = next(iter(p.get("metrics", {}).values()), None)
        table.add_row(
            r["name"],
            _fmt(r["throughput"].get("batch_1")),
            _fmt(r["throughput"].get("batch_32")),
            _fmt(r["latency_ms"].get("p50"), ".0f"),
            _fmt(r["latency_ms"].get("p99"), ".0f"),
            _fmt(r["head_training_s"], ".2f"),
            _fmt(p.get("total_s"), ".1f"),
            _fmt(p.get("images_per_s"), ".2f"),
            _fmt(p.get("vs_seed_study"), ".1f") + "x",
            _fmt(top1, ".3f"),
        )
    if notes:
        table.caption += "\n" + "\n".join(notes)
    return table


def save_report(report: dict[str, Any], out_dir: Path) -> dict[str, Path]:
    """Write ``bench.json`` and ``bench.png`` into ``out_dir``; returns their paths."""
    out_dir = Path(out_dir)
    return {"json": write_json(report, out_dir / "bench.json"), "png": plot_report(report, out_dir / "bench.png")}


def comparison_markdown(report: dict[str, Any]) -> str:
    """The benchmarks/README.md table for one report: every engine against the seed study's K80."""
    seed = report.get("seed_study", SEED_STUDY)
    m = report["machine"]
    lines = [
        "| device / engine | embed img/s (batch 1 / 32) | latency p50 / p99 ms | heads s | end-to-end s "
        f"({report['images']['count']} images) | end-to-end img/s | vs seed K80 ({seed['images_per_s']:.2f} img/s) |",
        "|---|---|---|---|---|---|---|",
        f"| seed study: Tesla K80, fine-tuned CNN | — | — | — | {seed['seconds']:,.0f} ({seed['images']:,} images) "
        f"| {seed['images_per_s']:.3f} | 1.0x |",
    ]
    for r in report["results"]:
        where = (
            f"{m['cpu']} ({m['cores_usable']} cores)"
            if r["device"] == "cpu"
            else (m["gpu"]["name"] if m.get("gpu") else "CUDA GPU")
        )
        label = f"{where}, {r['name']}"
        if not r["available"] or r.get("error"):
            why = r.get("reason") or r.get("error")
            lines.append(f"| {label} | {why} | | | | | |")
            continue
        p = r["pipeline"]
        lines.append(
            f"| {label} | {r['throughput']['batch_1']:.1f} / {r['throughput']['batch_32']:.1f} "
            f"| {r['latency_ms']['p50']:.0f} / {r['latency_ms']['p99']:.0f} | {r['head_training_s']:.2f} "
            f"| {p['total_s']:.1f} | {p['images_per_s']:.2f} | {p['vs_seed_study']:.1f}x |"
        )
    return "\n".join(lines)
