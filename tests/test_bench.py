"""`vasari bench`: quick mode on a handful of generated images, report keys, PNG, honest CUDA rows."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from vasari.bench import (
    SEED_STUDY,
    BenchImages,
    collect_images,
    cuda_unavailable_reason,
    generate_images,
    machine_info,
    plot_report,
    report_table,
    subsample,
)
from vasari.cli import app


@pytest.fixture(scope="module")
def images(tmp_path_factory) -> Path:
    return generate_images(tmp_path_factory.mktemp("bench-images"), per_class=4, size=200)


@pytest.fixture(scope="module")
def bench_run(images, tmp_path_factory) -> tuple[dict, Path, str]:
    out = tmp_path_factory.mktemp("bench-out")
    result = CliRunner().invoke(
        app,
        [
            "bench",
            "--quick",
            "--images",
            str(images),
            "--out",
            str(out),
            "--max-images",
            "16",
            "--latency-runs",
            "3",
            "--device",
            "all",
        ],
    )
    assert result.exit_code == 0, result.output
    return json.loads((out / "bench.json").read_text()), out, result.output


def test_quick_bench_report_has_positive_numbers(bench_run):
    report, _, output = bench_run
    assert report["mode"] == "quick"
    assert {"machine", "images", "results", "seed_study", "duration_s", "config", "created"} <= report.keys()
    assert report["images"]["count"] == 16 and report["images"]["splits"] == {"train": 12, "val": 4}
    rows = {(r["engine"], r["device"]): r for r in report["results"]}
    for key in [("onnx", "cpu"), ("torch", "cpu")]:
        row = rows[key]
        assert row["available"] and row["error"] is None, row
        assert row["throughput"]["batch_1"] > 0 and row["throughput"]["batch_32"] > 0
        assert 0 < row["latency_ms"]["p50"] <= row["latency_ms"]["p99"]
        assert row["head_training_s"] > 0
        p = row["pipeline"]
        for stage in ("load_s", "embed_s", "embed_images_per_s", "train_s", "evaluate_s", "total_s", "images_per_s"):
            assert p[stage] > 0, stage
        assert p["total_s"] >= p["embed_s"] + p["train_s"] and p["failed_images"] == 0
        assert p["vs_seed_study"] == pytest.approx(p["images_per_s"] / SEED_STUDY["images_per_s"])
        # four colour families, one validation image each: chance is 1/4, the heads should
        # name at least three (all four in practice)
        assert p["metrics"]["type_top1"] >= 0.75, p["metrics"]
    assert "onnxruntime CPU" in output and "torch CPU" in output


def test_cuda_row_is_honest(bench_run):
    report, _, output = bench_run
    cuda = next(r for r in report["results"] if r["device"] == "cuda")
    reason = cuda_unavailable_reason()
    if reason is None:  # a GPU machine: the row must hold real numbers
        assert cuda["available"] and cuda["throughput"]["batch_32"] > 0
    else:
        assert cuda["available"] is False and "not available" in cuda["reason"]
        assert cuda["throughput"] == {} and cuda["pipeline"] == {} and cuda["latency_ms"] == {}
        assert "not available" in output
        assert report["machine"]["gpu"] is None and report["machine"]["cuda_available"] is False


def test_png_written(bench_run):
    _, out, _ = bench_run
    png = out / "bench.png"
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 5000
    assert not list(out.glob("*.tmp-*"))


def test_machine_info_records_hardware_and_versions():
    info = machine_info()
    assert info["cpu"] and info["cores_logical"] >= 1 and info["cores_usable"] >= 1
    assert info["ram_gib"] is None or info["ram_gib"] > 0
    for lib in ("numpy", "torch", "onnxruntime", "timm"):
        assert info["versions"][lib], lib
    assert info["python"].count(".") == 2


def test_collect_and_subsample_keep_classes_and_splits(images):
    found = collect_images(images)
    assert len(found.paths) == 16 and set(found.labels) == {"warm", "cool", "green", "dark"}
    assert set(found.splits) == {"train", "val"}
    small = subsample(found, 8)
    assert len(small.paths) == 8 and set(small.labels) == set(found.labels) and set(small.splits) == {"train", "val"}


def test_split_folders_are_respected(tmp_path):
    generate_images(tmp_path / "train", per_class=2, size=64)
    generate_images(tmp_path / "val", per_class=1, size=64)
    generate_images(tmp_path / "photos", per_class=1, size=64)  # not a split: skipped
    found = collect_images(tmp_path)
    assert len(found.paths) == 12 and found.splits.count("val") == 4


def test_plot_and_table_with_unavailable_and_failed_rows(tmp_path):
    report = {
        "mode": "quick",
        "images": BenchImages("x", [], [], []).summary() | {"count": 3},
        "machine": {"cpu": "Test CPU", "cores_usable": 2, "gpu": None, "load_average": [0.1, 0.1, 0.1]},
        "results": [
            {
                "name": "onnxruntime CPU",
                "engine": "onnx",
                "device": "cpu",
                "available": True,
                "error": None,
                "throughput": {"batch_1": 10.0, "batch_32": 20.0},
                "latency_ms": {"p50": 90.0, "p99": 120.0},
                "head_training_s": 0.5,
                "pipeline": {
                    "embed_s": 1.0,
                    "total_s": 2.0,
                    "images_per_s": 1.5,
                    "vs_seed_study": 3.4,
                    "metrics": {"type_top1": 0.5},
                },
            },
            {
                "name": "torch CPU",
                "engine": "torch",
                "device": "cpu",
                "available": True,
                "error": "RuntimeError: boom",
                "throughput": {},
                "latency_ms": {},
                "head_training_s": None,
                "pipeline": {},
            },
            {
                "name": "torch CUDA",
                "engine": "torch",
                "device": "cuda",
                "available": False,
                "reason": "not available: no CUDA device",
                "throughput": {},
                "latency_ms": {},
                "pipeline": {},
            },
        ],
    }
    png = plot_report(report, tmp_path / "b.png")
    assert png.stat().st_size > 5000
    from rich.console import Console

    console = Console(record=True, width=160)
    console.print(report_table(report))
    text = console.export_text()
    assert "boom" in text and "no CUDA device" in text and "20.0" in text


def test_bad_images_folder_is_a_clear_error(tmp_path):
    result = CliRunner().invoke(
        app, ["bench", "--quick", "--images", str(tmp_path / "missing"), "--out", str(tmp_path)]
    )
    assert result.exit_code == 1 and "no such image folder" in result.output
    result = CliRunner().invoke(app, ["bench", "--device", "tpu"])
    assert result.exit_code == 2
