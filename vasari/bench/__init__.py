"""The hardware benchmark (CPU / CUDA engines).

Modules: ``hardware`` (what to measure and the measurements: ``run_bench``), ``machine`` (the
machine's description), ``images`` (the pictures measured) and ``report`` (JSON, plot, table).
"""

from vasari.bench.hardware import (
    SEED_STUDY,
    ENGINE_ROWS,
    BenchConfig,
    percentile,
    measure_latency,
    evaluate_type_heads,
    EngineResult,
    bench_engine,
    decode_images,
    run_bench,
)
from vasari.bench.machine import (
    cpu_model,
    ram_gib,
    machine_info,
    cuda_unavailable_reason,
)
from vasari.bench.images import (
    BenchImages,
    generate_images,
    collect_images,
    subsample,
    default_images,
)
from vasari.bench.report import (
    write_json,
    plot_report,
    report_table,
    save_report,
    comparison_markdown,
)

__all__ = [
    "SEED_STUDY",
    "ENGINE_ROWS",
    "BenchConfig",
    "percentile",
    "measure_latency",
    "evaluate_type_heads",
    "EngineResult",
    "bench_engine",
    "decode_images",
    "run_bench",
    "cpu_model",
    "ram_gib",
    "machine_info",
    "cuda_unavailable_reason",
    "BenchImages",
    "generate_images",
    "collect_images",
    "subsample",
    "default_images",
    "write_json",
    "plot_report",
    "report_table",
    "save_report",
    "comparison_markdown",
]
