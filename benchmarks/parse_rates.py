"""Per source, per field: how many labels the catalog readers parse from ../shared/data.

    python benchmarks/parse_rates.py [DATA_DIR]

Prints one rich table per source (parsed / present per field, skipped rows, withheld and
unmapped labels) and a summary, and writes benchmarks/results/parse_rates.json.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

from rich.console import Console
from rich.table import Table

from vasari.catalog import REPORT_FIELDS, read_catalog, read_wga, shared_catalogs
from _provenance import write_result
from vasari.core.paths import shared_data_dir


def main(argv: list[str]) -> int:
    data = Path(argv[1]) if len(argv) > 1 else shared_data_dir()
    console = Console()
    if data is None or not data.is_dir():
        console.print("[red]../shared/data is absent (pass DATA_DIR or set VASARI_DATA)[/]")
        return 2
    started = time.perf_counter()
    catalogs = shared_catalogs(data, include_photos=True)
    extra = [
        read_wga(data / "wga_thumbs" / "catalog.csv", source="wga_thumbs (non-paintings)", form="not-painting"),
        read_catalog(data / "catalogs" / "wga_paintings.csv"),
    ]
    seconds = time.perf_counter() - started
    results = {}
    summary = Table(title="Parse rates on shared/data: parsed / present (rows with a value)", title_justify="left")
    summary.add_column("source")
    summary.add_column("rows", justify="right")
    summary.add_column("artworks", justify="right")
    for name in REPORT_FIELDS:
        summary.add_column(name, justify="right")
    for cat in [*catalogs, *extra]:
        rep = cat.report
        console.print(rep.as_table(max_unmapped=6))
        cells = []
        for name in REPORT_FIELDS:
            done, given = rep.fields[name]
            cells.append(f"{done}/{given} ({done / given:.0%})" if given else "-")
        summary.add_row(rep.source, str(rep.rows), str(len(cat)), *cells)
        entry = rep.to_dict()
        entry["artworks"] = len(cat)
        entry["labelled"] = {
            t: sum(a.label(t) is not None for a in cat.artworks)
            for t in ("type", "school", "timeframe", "style", "artist")
        }
        entry["with_year"] = sum(a.year is not None for a in cat.artworks)
        results[rep.source] = entry
    console.print(summary)
    lines = []
    for source, entry in results.items():
        parts = [
            f"{field} parsed for {v['parsed']} of {v['present']} rows with a value"
            for field, v in entry["fields"].items()
            if v["present"]
        ]
        lines.append(f"{source}: " + "; ".join(parts))
    for line in lines:
        console.print(line, highlight=False)
    console.print(
        f"read {sum(len(c) for c in catalogs)} artworks from {len(catalogs)} shared sources in {seconds:.1f} s"
    )
    out = Path(__file__).resolve().parent / "results" / "parse_rates.json"
    write_result(out, {"data_dir": str(data), "seconds": round(seconds, 2), "sources": results, "summary": lines},
                 ensure_ascii=False)
    console.print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
