"""Evaluation on generated paintings embedded by the real backbone: metrics, plots, reports."""

from __future__ import annotations

import json

import numpy as np
from rich.console import Console

from learn_data import learn_world
from vasari.evaluate import HEADLINE_KEYS, evaluate_heads, headline, summary_table, write_report
from vasari.train import HeadConfig, train_heads


def trained():
    w = learn_world()
    Xt, lt, yt = w.part("train")
    Xv, lv, yv = w.part("val")
    return w, train_heads(Xt, lt, yt, Xv, lv, yv, HeadConfig(min_kept=3))


def test_real_backbone_learns_generated_labels(tmp_path):
    w, heads = trained()
    Xs, ls, ys = w.part("test")
    ev = evaluate_heads(heads, Xs, ls, ys, split="test")
    m = ev.metrics["tasks"]["type"]
    assert m["n"] == 24 and m["n_unseen"] == 0
    assert m["top1"] >= 0.9
    assert m["top3"] == 1.0  # three classes
    assert m["weighted_f1"] >= 0.85
    assert set(m["per_class"]) == {"landscape", "portrait", "still-life"}
    assert sum(c["support"] for c in m["per_class"].values()) == 24
    assert np.array(m["confusion"]["matrix"]).sum() == 24
    assert 0.0 <= m["ece"] <= 1.0
    sel = m["selective"]
    assert 0.0 < sel["coverage"] <= 1.0
    y = ev.metrics["year"]
    assert y["mae"] < y["baseline_mae"]  # the year follows the hue
    assert 0.0 <= y["interval_coverage"] <= 1.0


def test_report_files_and_table(tmp_path):
    w, heads = trained()
    evs = [evaluate_heads(heads, *w.part(s), split=s) for s in ("val", "test")]
    out = write_report(evs, tmp_path / "report", context={"data": "generated"})
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["test"]["tasks"]["type"]["top1"] >= 0.9
    for stem in ("test_type_confusion", "test_type_reliability", "test_type_coverage", "val_type_confusion", "test_year"):
        png = out / f"{stem}.png"
        assert png.is_file() and png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    md = (out / "report.md").read_text()
    assert "test_type_confusion.png" in md and "| test | type |" in md
    html = (out / "report.html").read_text()
    assert html.count("data:image/png;base64,") >= 7
    console = Console(record=True, width=140)
    console.print(summary_table({ev.split: ev.metrics for ev in evs}))
    text = console.export_text()
    assert "type" in text and "year" in text and "MAE" in text


def test_headline_is_the_quoted_numbers_of_one_task_per_split():
    w, heads = trained()
    evs = [evaluate_heads(heads, *w.part(s), split=s) for s in ("val", "test")]
    h = headline(evs, "type")
    assert list(h) == ["val", "test"] and set(h["test"]) == set(HEADLINE_KEYS)
    assert h["test"] == {k: evs[1].metrics["tasks"]["type"][k] for k in HEADLINE_KEYS}
    assert h["test"]["n"] == 24 and h["test"]["top1"] >= 0.9
    assert headline(evs, "artist") == {"val": dict.fromkeys(HEADLINE_KEYS), "test": dict.fromkeys(HEADLINE_KEYS)}


def test_unseen_labels_count_as_errors_and_failed_rows():
    w, heads = trained()
    Xs, ls, ys = w.part("test")
    Xs = Xs.copy()
    Xs[0] = np.nan  # a failed image
    labels = {"type": ["never-seen"] + ls["type"][1:]}
    labels["type"][1] = "another-unknown"
    ev = evaluate_heads(heads, Xs, labels, ys)
    m = ev.metrics["tasks"]["type"]
    assert ev.metrics["failed_rows"] == 1
    assert m["n"] == 23 and m["n_unseen"] == 1
    assert "another-unknown" in m["per_class"]
    assert m["top1"] <= 22 / 23
