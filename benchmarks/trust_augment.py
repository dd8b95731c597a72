"""Augmentation of the embedded views against shortcut learning from the source (issue #14).

    python benchmarks/trust_augment.py              # base vs 1 augmented view (all changes): results/trust-augment.json
    # what `vasari train --augment-views` does, written to results/trust-augment-geometric-type.json:
    python benchmarks/trust_augment.py --kind geometric --variants base,augment1,augment1_type --out X.json
    python benchmarks/trust_augment.py --dim 256 --variants base,augment1,augment2   # ~1 min per variant

(The files in results/ were written with --baseline results/trust-augment.json instead of base
again; on a quiet machine each full-dimension variant takes ~8-15 min.)

Each grouped-train picture is embedded k more times under random photometric, JPEG, downscale
and crop changes (``vasari.features.augment``; cached in ``runs/trust/augment-cache``); the
heads train on original + augmented rows (C grid / (k + 1), so each painting weighs what it did)
and are evaluated on un-augmented rows exactly as ``trust.py`` does: grouped split and
leave-source-out, per source and pooled, today's and the out-of-source thresholds. The
variants run side by side in one process, so their ratios hold under any load. k is chosen
on the grouped val split (``val_top1``), never on a test split or held-out source.
Writes ``benchmarks/results/trust-augment.json`` (or ``--out``) and prints the tables.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import trust  # noqa: E402

from vasari.core.labels import TASKS  # noqa: E402

RESULTS = trust.ROOT / "benchmarks" / "results" / "trust-augment.json"
RULES = ("today", "oos")


def delta_lines(result: dict) -> list[str]:
    """Per variant against base, pooled per task: grouped top-1, leave-source-out top-1 on
    supported labels, and answered share @ precision (supported labels) under each rule; val
    top-1 (what k is chosen on)."""
    variants = result["variants"]
    base = variants.get("base")
    lines = ["\n| variant | measure | " + " | ".join(TASKS) + " |", "|---" * (len(TASKS) + 2) + "|"]
    for name, rep in variants.items():
        val = rep["grouped"].get("val_top1", {})
        lines.append(f"| {name} | grouped val top-1 | " + " | ".join(trust._fmt(val.get(t)) for t in TASKS) + " |")
        for protocol, label in (("grouped", "grouped test top-1"), ("leave_source_out", "LSO top-1 (supported)")):
            cells = []
            for task in TASKS:
                now = _pooled(rep, protocol, "today", task)
                ref = _pooled(base, protocol, "today", task) if base and name != "base" else None
                cell = "-" if now is None else f"{now['top1']:.3f}"
                if now is not None and ref is not None:
                    cell += f" ({100 * (now['top1'] - ref['top1']):+.1f})"
                cells.append(cell)
            lines.append(f"| {name} | {label} | " + " | ".join(cells) + " |")
        cells = []
        for task in TASKS:
            now, ref = _source_mean(rep, task), _source_mean(base, task) if base and name != "base" else None
            cell = "-" if now is None else f"{now:.3f}"
            if now is not None and ref is not None:
                cell += f" ({100 * (now - ref):+.1f})"
            cells.append(cell)
        lines.append(f"| {name} | LSO top-1 (supported), mean of sources | " + " | ".join(cells) + " |")
        for rule in RULES:
            cells = []
            for task in TASKS:
                m = _pooled(rep, "leave_source_out", rule, task)
                cells.append("-" if m is None else f"{m['answered']:.2f} @ {trust._fmt(m['answered_precision'])}")
            lines.append(f"| {name} | LSO answered @ precision, `{rule}` | " + " | ".join(cells) + " |")
    return lines


def per_source_lines(result: dict) -> list[str]:
    """Leave-source-out top-1 on supported labels per held-out source and task, per variant
    (today's rule; the rule does not change top-1): where the views help or hurt."""
    lines = ["\n| held-out source | variant | " + " | ".join(TASKS) + " |", "|---" * (len(TASKS) + 2) + "|"]
    for source in trust.SOURCES:
        for name, rep in result["variants"].items():
            cells = []
            for task in TASKS:
                m = rep["leave_source_out"]["today"]["tasks"].get(task, {}).get(source)
                s = (m or {}).get("supported") or {}
                cells.append("-" if not s.get("n") else f"{s['top1']:.3f} (n={s['n']})")
            lines.append(f"| {source} | {name} | " + " | ".join(cells) + " |")
    return lines


def _source_mean(rep: dict | None, task: str) -> float | None:
    """Leave-source-out top-1 on supported labels averaged over the held-out sources with >= 30
    such rows: every collection counts once (pooled, wikiart's 5.5k rows dominate)."""
    per = (rep or {}).get("leave_source_out", {}).get("today", {}).get("tasks", {}).get(task, {})
    values = [m["supported"]["top1"] for name, m in per.items()
              if name != "pooled" and (m.get("supported") or {}).get("n", 0) >= trust.SUPPORT]
    return float(sum(values) / len(values)) if values else None


def _pooled(rep: dict | None, protocol: str, rule: str, task: str) -> dict | None:
    """The pooled metrics of one task (leave-source-out: on supported labels), or None."""
    m = (rep or {}).get(protocol, {}).get(rule, {}).get("tasks", {}).get(task, {}).get("pooled")
    if m is None:
        return None
    return m.get("supported", m)


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--variants", default="base,augment1")
    parser.add_argument("--dim", type=int, default=0)
    parser.add_argument("--strength", type=float, default=1.0)
    parser.add_argument("--kind", choices=sorted(trust.AUGMENT_KINDS), default="all",
                        help="all changes, or only the geometric + JPEG / photometric ones")
    parser.add_argument("--baseline", type=Path, default=None,
                        help="take the base variant from this earlier result instead of training it again "
                             "(top-1 and answered shares are deterministic: same data, seeds and code give the same numbers)")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    print(f"load average at start: {', '.join(f'{x:.1f}' for x in os.getloadavg())}", flush=True)
    result = trust.main(["--variants", args.variants, "--dim", str(args.dim), "--no-artists",
                         "--augment-strength", str(args.strength), "--augment-kind", args.kind,
                         "--out", str(args.out)])
    result["load_average_end"] = [round(x, 2) for x in os.getloadavg()]
    if args.baseline is not None:
        earlier = json.loads(args.baseline.read_text())
        result["variants"] = {"base": earlier["variants"]["base"], **result["variants"]}
        result["baseline"] = {"file": args.baseline.name, "date": earlier.get("date"), "commit": earlier.get("commit")}
    trust._save(result, args.out)
    print("\n".join(delta_lines(result) + per_source_lines(result)))
    return result


if __name__ == "__main__":
    main()
