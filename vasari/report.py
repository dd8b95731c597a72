"""Evaluation reports and summary tables, written from ``Evaluation`` objects of
``vasari.heads.metrics``.

``write_report(evaluations, out_dir)`` writes ``metrics.json``, PNG plots (confusion
heatmap, reliability diagram, coverage curve, year scatter), ``report.md`` and a
self-contained ``report.html``. ``summary_table`` renders the headline numbers with rich
(the table ``vasari train``, ``evaluate``, ``demo`` and ``finetune`` print). matplotlib is
imported only when a plot is drawn.
"""

from __future__ import annotations

import base64
import html
import json
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np

from vasari.core.fileio import atomic_write_text
from vasari.heads.metrics import Evaluation


# --------------------------------------------------------------------------- plots


def _plt():
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    return plt


def _save(plt, fig, path: Path) -> Path:
    """Lay out, write (90 dpi PNG) and close a report figure."""
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path


def plot_confusion(arr_metrics: dict[str, Any], title: str, path: Path, max_classes: int = 30) -> Path:
    plt = _plt()
    labels = arr_metrics["confusion"]["labels"]
    cm = np.array(arr_metrics["confusion"]["matrix"], dtype=np.float64)
    support = cm.sum(axis=1)
    if len(labels) > max_classes:  # the most frequent classes only
        keep = np.sort(np.argsort(-support, kind="stable")[:max_classes])
        cm, labels, support = cm[np.ix_(keep, keep)], [labels[i] for i in keep], support[keep]
        title += f" ({max_classes} most frequent classes)"
    norm = cm / np.maximum(support[:, None], 1)
    size = max(4.0, 0.35 * len(labels) + 2.5)
    fig, ax = plt.subplots(figsize=(size + 1, size))
    im = ax.imshow(norm, cmap="Blues", vmin=0, vmax=1)
    ax.set_xticks(range(len(labels)), labels, rotation=60, ha="right", fontsize=8)
    ax.set_yticks(range(len(labels)), labels, fontsize=8)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(title)
    if len(labels) <= 12:
        for i in range(len(labels)):
            for j in range(len(labels)):
                if cm[i, j]:
                    ax.text(j, i, int(cm[i, j]), ha="center", va="center", fontsize=8,
                            color="white" if norm[i, j] > 0.5 else "black")
    fig.colorbar(im, ax=ax, fraction=0.046, pad=0.04, label="fraction of true class")
    return _save(plt, fig, path)


def plot_reliability(m: dict[str, Any], title: str, path: Path) -> Path:
    plt = _plt()
    fig, ax = plt.subplots(figsize=(4.5, 4.2))
    bins = [b for b in m["reliability"] if b["n"]]
    centers = [(b["low"] + b["high"]) / 2 for b in bins]
    ax.bar(centers, [b["accuracy"] for b in bins], width=0.09, alpha=0.7, label="accuracy", edgecolor="k")
    ax.plot([0, 1], [0, 1], "k--", lw=1, label="perfect calibration")
    ax.plot([b["confidence"] for b in bins], [b["accuracy"] for b in bins], "o-", color="C3", label="bin means")
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1)
    ax.set_xlabel("confidence (top-1 probability)")
    ax.set_ylabel("accuracy")
    ax.set_title(f"{title}\nECE {m['ece']:.3f} (before temperature {m['ece_uncalibrated']:.3f})", fontsize=9)
    ax.legend(fontsize=7, loc="upper left")
    return _save(plt, fig, path)


def plot_coverage(m: dict[str, Any], title: str, path: Path) -> Path:
    plt = _plt()
    fig, ax = plt.subplots(figsize=(4.5, 4.2))
    curve = [c for c in m["coverage_curve"] if c["coverage"] > 0]
    ax.plot([c["coverage"] for c in curve], [c["accuracy"] for c in curve], "o-", ms=3)
    sel = m["selective"]
    ax.plot([sel["coverage"]], [sel["accuracy"]], "r*", ms=14,
            label=f"abstention threshold {sel['threshold']:.2f}\ncoverage {sel['coverage']:.2f}, accuracy {sel['accuracy']:.2f}")
    ax.set_xlabel("coverage (fraction answered)")
    ax.set_ylabel("accuracy of the answered")
    ax.set_xlim(0, 1.02)
    ax.set_title(title, fontsize=9)
    ax.legend(fontsize=7, loc="lower left")
    ax.grid(alpha=0.3)
    return _save(plt, fig, path)


def plot_year(year: dict[str, np.ndarray], m: dict[str, Any], title: str, path: Path) -> Path:
    plt = _plt()
    fig, ax = plt.subplots(figsize=(4.8, 4.5))
    ax.scatter(year["truth"], year["estimate"], s=6, alpha=0.5)
    ax.plot([1400, 1900], [1400, 1900], "k--", lw=1)
    ax.set_xlabel("true year")
    ax.set_ylabel("estimated year")
    ax.set_title(f"{title}\nMAE {m['mae']:.1f} y (median guess {m['baseline_mae']:.1f} y)", fontsize=9)
    return _save(plt, fig, path)


# --------------------------------------------------------------------------- reports


def _fmt(v: Any, pct: bool = True) -> str:
    if v is None or (isinstance(v, float) and np.isnan(v)):
        return "n/a"
    return f"{100 * v:.1f}%" if pct else f"{v:.3f}"


def summary_rows(metrics_by_split: Mapping[str, Mapping[str, Any]]) -> list[list[str]]:
    rows = []
    for split, m in metrics_by_split.items():
        for task, t in (m.get("tasks") or {}).items():
            sel = t["selective"]
            rows.append([split, task, str(t["n"]), str(t["classes"]), _fmt(t["top1"]), _fmt(t["top3"]),
                         _fmt(t["weighted_f1"]), _fmt(t["ece"], pct=False),
                         f"{_fmt(sel['coverage'])} / {_fmt(sel['accuracy'])}"])
        if m.get("year"):
            y = m["year"]
            rows.append([split, "year", str(y["n"]), "", f"MAE {y['mae']:.1f} y", f"median guess {y['baseline_mae']:.1f} y",
                         "", "", f"interval holds {_fmt(y['interval_coverage'])}"])
    return rows


SUMMARY_HEADER = ["split", "task", "n", "classes", "top-1", "top-3", "weighted F1", "ECE", "answered / accuracy"]


def summary_table(metrics_by_split: Mapping[str, Mapping[str, Any]], title: str = "Vasari evaluation"):
    """A rich Table of the headline numbers (one row per split x task, plus year)."""
    from rich.table import Table

    table = Table(title=title)
    for i, name in enumerate(SUMMARY_HEADER):
        table.add_column(name, justify="left" if i < 2 else "right")
    for row in summary_rows(metrics_by_split):
        table.add_row(*row)
    return table


def _json_ready(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _json_ready(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_ready(v) for v in value]
    if isinstance(value, (np.integer,)):
        return int(value)
    if isinstance(value, (np.floating, float)):
        v = float(value)
        return None if np.isnan(v) else v
    return value


def write_report(evaluations: Sequence[Evaluation] | Evaluation, out_dir: str | Path,
                 title: str = "Vasari evaluation", context: Mapping[str, Any] | None = None) -> Path:
    """Write metrics.json, plots, report.md and report.html into ``out_dir``; returns it."""
    if isinstance(evaluations, Evaluation):
        evaluations = [evaluations]
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    metrics = {ev.split: ev.metrics for ev in evaluations}
    atomic_write_text(out / "metrics.json", json.dumps(_json_ready({"context": dict(context or {}), **metrics}), indent=2))
    plots: list[tuple[str, str, Path]] = []  # (split, caption, file)
    for ev in evaluations:
        for task, m in ev.metrics["tasks"].items():
            stem = f"{ev.split}_{task}"
            plots.append((ev.split, f"{task}: confusion matrix", plot_confusion(m, f"{task} ({ev.split})", out / f"{stem}_confusion.png")))
            plots.append((ev.split, f"{task}: reliability", plot_reliability(m, f"{task} ({ev.split})", out / f"{stem}_reliability.png")))
            plots.append((ev.split, f"{task}: coverage vs accuracy", plot_coverage(m, f"{task} ({ev.split})", out / f"{stem}_coverage.png")))
        if ev.year is not None:
            plots.append((ev.split, "year", plot_year(ev.year, ev.metrics["year"], f"year ({ev.split})", out / f"{ev.split}_year.png")))
    rows = summary_rows(metrics)
    # Markdown
    md = [f"# {title}", ""]
    for k, v in (context or {}).items():
        md.append(f"- **{k}**: {v}")
    md += ["", "| " + " | ".join(SUMMARY_HEADER) + " |", "|" + "---|" * len(SUMMARY_HEADER)]
    md += ["| " + " | ".join(r) + " |" for r in rows]
    md.append("")
    for ev in evaluations:
        for task, m in ev.metrics["tasks"].items():
            md += [f"## {task} ({ev.split})", "",
                   f"top-1 {_fmt(m['top1'])}, top-{m['top3_k']} {_fmt(m['top3'])}, weighted F1 {_fmt(m['weighted_f1'])}, "
                   f"macro F1 {_fmt(m['macro_f1'])}, ECE {m['ece']:.3f} (uncalibrated {m['ece_uncalibrated']:.3f}), "
                   f"{m['n_unseen']} rows with a label unknown to the model.", "",
                   "| class | support | accuracy (recall) | precision | F1 |", "|---|---|---|---|---|"]
            for lab, c in sorted(m["per_class"].items(), key=lambda kv: -kv[1]["support"]):
                md.append(f"| {lab} | {c['support']} | {_fmt(c['accuracy'])} | {_fmt(c['precision'])} | {_fmt(c['f1'])} |")
            md.append("")
            for split, caption, path in plots:
                if split == ev.split and caption.startswith(f"{task}:"):
                    md.append(f"![{caption}]({path.name})")
            md.append("")
        if ev.year is not None:
            md += [f"## year ({ev.split})", "", f"![year]({ev.split}_year.png)", ""]
    atomic_write_text(out / "report.md", "\n".join(md))
    # HTML (plots embedded, one file to share)
    h = [f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title>",
         "<style>body{font-family:sans-serif;margin:2em;max-width:1200px}table{border-collapse:collapse}"
         "td,th{border:1px solid #ccc;padding:3px 8px;text-align:right}td:first-child,td:nth-child(2){text-align:left}"
         "img{margin:4px;border:1px solid #eee;vertical-align:top}</style></head><body>",
         f"<h1>{html.escape(title)}</h1><ul>"]
    h += [f"<li><b>{html.escape(str(k))}</b>: {html.escape(str(v))}</li>" for k, v in (context or {}).items()]
    h.append("</ul><table><tr>" + "".join(f"<th>{html.escape(c)}</th>" for c in SUMMARY_HEADER) + "</tr>")
    h += ["<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in r) + "</tr>" for r in rows]
    h.append("</table>")
    for ev in evaluations:
        h.append(f"<h2>{html.escape(ev.split)}</h2>")
        for split, caption, path in plots:
            if split == ev.split:
                data = base64.b64encode(path.read_bytes()).decode()
                h.append(f"<img alt='{html.escape(caption)}' title='{html.escape(caption)}' src='data:image/png;base64,{data}'>")
    h.append("</body></html>")
    atomic_write_text(out / "report.html", "\n".join(h))
    return out
