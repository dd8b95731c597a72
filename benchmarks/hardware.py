"""Hardware benchmark for benchmarks/README.md: run `vasari bench` (or read its JSON) and print the table.

    python benchmarks/hardware.py                 # full run on ../shared/data/louvre -> benchmarks/results/hardware-<mode>-<device>.json/.png
    python benchmarks/hardware.py --quick         # CI-sized run
    python benchmarks/hardware.py --from results/hardware-full-cpu.json   # only print the markdown table

The README's comparison with the seed study (7,711 s on a Tesla K80 for 3,444 images) is the
``vs seed K80`` column: Vasari's end-to-end images/s divided by 3,444 / 7,711.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
from pathlib import Path

from _provenance import stamp
from rich.console import Console

from vasari.bench import (
    BenchConfig,
    comparison_markdown,
    report_table,
    run_bench,
    save_report,
)

HERE = Path(__file__).resolve().parent


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="CI-sized run")
    parser.add_argument("--device", default="all", choices=["cpu", "cuda", "all"])
    parser.add_argument("--images", type=Path, default=None)
    parser.add_argument("--from", dest="source", type=Path, default=None, help="print the table of an existing JSON")
    args = parser.parse_args(argv)
    console = Console(width=150)
    if args.source is not None:
        report = json.loads(args.source.read_text())
    else:
        devices = ("cpu", "cuda") if args.device == "all" else (args.device,)
        report = run_bench(BenchConfig(devices=devices, images=args.images, quick=args.quick), progress=console.log)
        report = stamp(report)
        gpu = "gpu" if report["machine"].get("cuda_available") else "cpu"
        paths = save_report(report, HERE / "results" / "tmp-hardware")
        stem = HERE / "results" / f"hardware-{report['mode']}-{gpu}"
        shutil.move(paths["json"], stem.with_suffix(".json"))
        shutil.move(paths["png"], stem.with_suffix(".png"))
        (HERE / "results" / "tmp-hardware").rmdir()
        console.print(f"wrote {stem}.json and {stem}.png ({report['duration_s']:.0f} s)")
    console.print(report_table(report))
    print(comparison_markdown(report))
    return 0


if __name__ == "__main__":
    sys.exit(main())
