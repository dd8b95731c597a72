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


# --------------------------------------------------------------------------- benchmark provenance


@pytest.fixture(scope="module")
def provenance_module():
    """``benchmarks/_provenance.py`` (the benchmark scripts import it as a sibling module)."""
    import importlib.util

    path = Path(__file__).resolve().parent.parent / "benchmarks" / "_provenance.py"
    spec = importlib.util.spec_from_file_location("_provenance", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _git(repo: Path, *args: str) -> str:
    import subprocess

    return subprocess.run(["git", "-C", str(repo), *args], capture_output=True, text=True, check=True).stdout.strip()


def test_git_commit_names_head_and_marks_uncommitted_changes(provenance_module, tmp_path):
    repo = tmp_path / "repo"
    repo.mkdir()
    _git(repo, "init", "-q")
    (repo / "a.txt").write_text("one")
    _git(repo, "add", "a.txt")
    _git(repo, "-c", "user.name=t", "-c", "user.email=t@example.org", "commit", "-qm", "one")
    head = _git(repo, "rev-parse", "HEAD")
    assert provenance_module.git_commit(repo) == head
    (repo / "b.txt").write_text("untracked files do not count")
    assert provenance_module.git_commit(repo) == head
    (repo / "a.txt").write_text("two")
    assert provenance_module.git_commit(repo) == head + "+dirty"
    assert provenance_module.git_commit(tmp_path / "not-a-repo") == "unknown (no git)"


def test_rows_get_this_runs_provenance_and_kept_rows_keep_theirs(provenance_module, tmp_path, monkeypatch):
    run = {"date": "2026-12-01T10:00:00+00:00", "commit": "abc123"}
    monkeypatch.setattr(provenance_module, "provenance", lambda: dict(run))
    old = provenance_module.kept_rows([{"experiment": "louvre", "top1": 0.97},
                                       {"experiment": "wga", "date": "2026-11-20T09:00:00+00:00", "commit": "old1"}])
    assert old[0] == {"experiment": "louvre", "top1": 0.97, "date": provenance_module.UNKNOWN,
                      "commit": provenance_module.UNKNOWN}
    assert old[1]["commit"] == "old1" and old[1]["date"] == "2026-11-20T09:00:00+00:00"
    payload = {"benchmark": "accuracy", "results": old + [{"experiment": "artists7", "top1": 0.84}], "n": 3}
    written = provenance_module.write_result(tmp_path / "out" / "accuracy.json", payload, default=float)
    on_disk = json.loads((tmp_path / "out" / "accuracy.json").read_text())
    assert on_disk == written
    assert on_disk["date"] == run["date"] and on_disk["commit"] == "abc123" and on_disk["n"] == 3
    assert [r["commit"] for r in on_disk["results"]] == [provenance_module.UNKNOWN, "old1", "abc123"]
    assert on_disk["results"][2] == {"experiment": "artists7", "top1": 0.84, **run}
    assert payload["results"][2] == {"experiment": "artists7", "top1": 0.84}  # the caller's dict is not changed
    assert not list((tmp_path / "out").glob("*.tmp*"))


def test_every_benchmark_result_row_carries_date_and_commit():
    results = Path(__file__).resolve().parent.parent / "benchmarks" / "results"
    for path in sorted(results.glob("*.json")):
        data = json.loads(path.read_text())
        if path.name == "artists7_splits.json":  # an input (the fixed split seeds), not a result
            continue
        rows = [data] + [r for v in data.values() if isinstance(v, list) for r in v if isinstance(r, dict)]
        for row in rows:
            assert row.get("date") and row.get("commit"), f"{path.name}: a row without date/commit: {str(row)[:120]}"
