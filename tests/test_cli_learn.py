"""`vasari train / evaluate / predict / demo` on generated paintings (real backbone)."""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from learn_data import learn_bundle, learn_world
from vasari.catalog import Artwork
from vasari.cli import app

runner = CliRunner()


def invoke(*args: str):
    return runner.invoke(app, [str(a) for a in args], catch_exceptions=False)


def test_predict_json_contract_and_exit_code(tmp_path):
    path, _ = learn_bundle()
    w = learn_world()
    test = [i for i, s in enumerate(w.split) if s == "test"][:3]
    images = [w.paths[i] for i in test]
    res = invoke("predict", "--model", path, "--top-k", "2", "--json", *images)
    assert res.exit_code == 0, res.output
    out = json.loads(res.stdout)
    assert isinstance(out, list) and [o["image"] for o in out] == images
    for o, i in zip(out, test):
        assert set(o) >= {"image", "predictions", "verdict", "novelty"}
        assert len(o["predictions"]["type"]) == 2
        assert sum(r["score"] for r in o["predictions"]["type"]) <= 1.0 + 1e-6
        assert o["predictions"]["type"][0]["label"] == w.labels[i]
        if o["novelty"]["novel"]:  # a novel picture makes no claim: no year (docs/contract.md: omitted when null)
            assert "year" not in o and set(o["verdict"].values()) == {"unknown"}
        else:
            assert set(o["year"]) == {"estimate", "low", "high"}
    bad = tmp_path / "bad.png"
    bad.write_text("<html>not an image</html>")
    res = invoke("predict", "--model", path, "--json", images[0], bad)
    assert res.exit_code == 1
    out = json.loads(res.stdout)
    assert "predictions" in out[0] and out[1]["image"] == str(bad) and out[1]["error"]["code"] == "not_an_image"


def test_predict_table_and_bad_arguments(tmp_path):
    path, _ = learn_bundle()
    image = learn_world().paths[0]
    res = invoke("predict", "--model", path, image)
    assert res.exit_code == 0 and "type" in res.stdout and "year" in res.stdout
    res = invoke("predict", "--model", path, "--top-k", "0", image)
    assert res.exit_code == 2 and "top_k" in res.output
    res = invoke("predict", "--model", tmp_path / "missing", image)
    assert res.exit_code == 2 and "no such bundle" in res.output


def saved_dataset(tmp_path: Path) -> Path:
    from vasari.dataset import Dataset, save_dataset

    w = learn_world()
    arts, splits = [], {}
    for i, p in enumerate(w.paths):
        art = Artwork(artwork_id=f"gen:{i}", source=("museum_a", "museum_b")[i % 2], image=p, type=w.labels[i], year=w.years[i])
        arts.append(art)
        splits[art.artwork_id] = w.split[i]
    out = tmp_path / "dataset"
    save_dataset(Dataset(arts, splits), out)
    return out


def test_train_then_evaluate(tmp_path):
    ds = saved_dataset(tmp_path)
    cache = learn_world().cache_dir
    res = invoke("train", ds, "--out", tmp_path / "model", "--cache", cache)
    assert res.exit_code == 0, res.output
    model = tmp_path / "model"
    for name in ("bundle.json", "heads.npz", "metrics.json", "MODEL_CARD.md", "report/report.html"):
        assert (model / name).is_file(), name
    metrics = json.loads((model / "metrics.json").read_text())
    assert metrics["test"]["tasks"]["type"]["top1"] >= 0.9
    assert "vasari train" in (model / "MODEL_CARD.md").read_text()
    res = invoke("evaluate", "--model", model, ds, "--split", "test", "--out", tmp_path / "report", "--cache", cache)
    assert res.exit_code == 0, res.output
    report = json.loads((tmp_path / "report" / "metrics.json").read_text())
    assert report["test"]["tasks"]["type"]["top1"] >= 0.9
    assert (tmp_path / "report" / "test_type_confusion.png").is_file()
    assert "top-1" in res.stdout
    by_source = json.loads((tmp_path / "report" / "by_source.json").read_text())
    type_cells = by_source["tasks"]["type"]
    assert {"pooled", "museum_a", "museum_b"} <= set(type_cells)
    n = {s: type_cells[s]["n"] for s in ("museum_a", "museum_b")}
    assert n["museum_a"] + n["museum_b"] == type_cells["pooled"]["n"] > 0
    assert all(type_cells[s]["top1"] >= 0.8 for s in ("museum_a", "museum_b"))
    assert "| museum_a |" in res.stdout and "per source" in res.stdout


def test_demo_on_a_folder(tmp_path):
    w = learn_world()
    res = invoke("demo", w.root / "images", "--out", tmp_path / "demo", "--cache", w.cache_dir)
    assert res.exit_code == 0, res.output
    assert "val" in res.stdout and "type" in res.stdout
    metrics = json.loads((tmp_path / "demo" / "report" / "metrics.json").read_text())
    assert metrics["val"]["tasks"]["type"]["top1"] >= 0.85
    assert (tmp_path / "demo" / "bundle" / "bundle.json").is_file()


def test_help_has_examples():
    for verb in ("train", "evaluate", "predict", "demo"):
        res = invoke(verb, "--help")
        assert res.exit_code == 0 and "Example" in res.stdout


def test_train_refit_on_val_refits_and_does_not_report_val(tmp_path):
    from vasari.bundle import load_bundle

    ds = saved_dataset(tmp_path)
    w = learn_world()
    model = tmp_path / "refit-model"
    res = invoke("train", ds, "--out", model, "--refit-on-val", "--cache", w.cache_dir, "--reproduce", "make refit-model")
    assert res.exit_code == 0, res.output
    assert "```\nmake refit-model\n```" in (model / "MODEL_CARD.md").read_text()  # the build's own command
    bundle = load_bundle(model)
    head = bundle.heads.classifiers["type"]
    n_train, n_val = w.split.count("train"), w.split.count("val")
    assert head.info["refit_on_val"] is True and head.info["train_rows"] == n_train
    assert "val" not in bundle.metrics and bundle.metrics["test"]["tasks"]["type"]["top1"] >= 0.9
    assert bundle.card["head_config"]["refit_on_val"] is True and n_val > 0
    res = invoke("evaluate", ds, "--model", model, "--split", "val", "--out", tmp_path / "val-report", "--cache", w.cache_dir)
    assert res.exit_code == 0 and "not held-out numbers" in res.output and "refit on train + val" in res.output
    res = invoke("evaluate", ds, "--model", model, "--split", "test", "--out", tmp_path / "test-report", "--cache", w.cache_dir)
    assert res.exit_code == 0 and "not held-out" not in res.output


def test_train_views_are_recorded_and_used_by_predict(tmp_path):
    ds = saved_dataset(tmp_path)
    model = tmp_path / "flip-model"
    res = invoke("train", ds, "--out", model, "--views", "flip", "--cache", tmp_path / "flip-cache")
    assert res.exit_code == 0, res.output
    assert json.loads((model / "bundle.json").read_text())["backbone"]["views"] == "flip"
    assert json.loads((tmp_path / "flip-cache" / "cache.json").read_text())["spec"]["views"] == "flip"
    w = learn_world()
    test = [i for i, s in enumerate(w.split) if s == "test"][:2]
    res = invoke("predict", "--model", model, "--json", *[w.paths[i] for i in test])
    assert res.exit_code == 0, res.output
    from vasari.inference.predictor import Predictor

    want = Predictor.load(model).predict_paths([w.paths[i] for i in test])
    assert [o["predictions"] for o in json.loads(res.stdout)] == [o["predictions"] for o in want]
    # a centre-crop cache is refused for flip views; unknown views and the old --tta flag are errors
    res = invoke("train", ds, "--out", tmp_path / "m2", "--views", "flip", "--cache", w.cache_dir)
    assert res.exit_code == 2 and "flip" in res.output
    res = invoke("train", ds, "--out", tmp_path / "m3", "--views", "tencrop", "--no-cache")
    assert res.exit_code == 2 and "unknown views" in res.output
    assert invoke("predict", "--model", model, "--tta", w.paths[0]).exit_code == 2
