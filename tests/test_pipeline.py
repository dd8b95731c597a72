"""``vasari.pipeline.train_bundle``: the one fit -> compact metrics -> save -> report sequence
behind ``vasari train``, ``vasari demo`` and ``vasari finetune`` (generated paintings, real backbone)."""

from __future__ import annotations

import json

import pytest

from learn_data import learn_world
from vasari.bundle import load_bundle
from vasari.catalog import Artwork
from vasari.features.embedder import EmbeddingCache
from vasari.heads import HeadConfig, TrainError
from vasari.pipeline import compact_metrics, train_bundle


def _artworks():
    w = learn_world()
    arts = [Artwork(artwork_id=f"gen:{i}", source="generated", image=p, type=w.labels[i], year=w.years[i])
            for i, p in enumerate(w.paths)]
    return w, arts


def test_train_bundle_saves_a_loadable_bundle_and_its_report(tmp_path):
    w, arts = _artworks()
    run = train_bundle(arts, w.split, tmp_path / "bundle", embedder=w.embedder,
                       cache=EmbeddingCache(w.cache_dir, w.embedder.spec),
                       config=HeadConfig(tasks=("type",), min_kept=3), card={"name": "generated"}, progress=False)
    assert run.bundle_dir == tmp_path / "bundle" and run.report_dir == run.bundle_dir / "report"
    assert set(run.metrics_by_split) == {"val", "test"}
    bundle = load_bundle(run.bundle_dir)
    assert bundle.tasks == ["type"] and bundle.card["name"] == "generated"
    assert bundle.metrics == json.loads(json.dumps(compact_metrics(run.metrics_by_split)))
    report = json.loads((run.report_dir / "metrics.json").read_text())
    assert report["context"] == {"bundle": str(run.bundle_dir)} and set(report) == {"context", "val", "test"}
    assert "Vasari evaluation: bundle" in (run.report_dir / "report.html").read_text()


def test_train_bundle_report_elsewhere_with_its_title_and_context(tmp_path):
    w, arts = _artworks()
    run = train_bundle(arts, w.split, tmp_path / "out" / "bundle", embedder=w.embedder,
                       cache=EmbeddingCache(w.cache_dir, w.embedder.spec), config=HeadConfig(tasks=("type",), min_kept=3),
                       evaluate_splits=("test",), report_dir=tmp_path / "out" / "report", report_title="Demo",
                       report_context={"data": "generated"}, progress=False)
    assert run.report_dir == tmp_path / "out" / "report" and not (run.bundle_dir / "report").exists()
    assert json.loads((run.report_dir / "metrics.json").read_text())["context"] == {"data": "generated"}
    assert "<h1>Demo</h1>" in (run.report_dir / "report.html").read_text()


def test_train_bundle_writes_nothing_when_training_fails(tmp_path):
    w, arts = _artworks()
    with pytest.raises(TrainError, match="split names"):
        train_bundle(arts, w.split[:-1], tmp_path / "bundle", embedder=w.embedder, progress=False)
    assert not (tmp_path / "bundle").exists()
