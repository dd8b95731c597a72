"""Evaluation protocols (vasari.protocols) on generated features whose answers are known."""

from __future__ import annotations

from collections import Counter

import numpy as np
import pytest

from vasari.protocols import (
    Rows,
    leave_artists_out,
    leave_source_out,
    score,
    user_answers,
)
from vasari.heads.train import HeadConfig, train_heads

CONFIG = HeadConfig(tasks=("type", "artist"), c_grid=(0.25,), year=True, novelty=False, seed=0)


def _world(seed=0, per_source=240):
    """3 sources x ``per_source`` rows, 16-d. type = sign of feature 0 (easy everywhere); 8 artists, each
    a cluster centre; source "c" only paints artists 6-7 (unsupported elsewhere)."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(0, 4, size=(8, 16))
    rows, sources, artists, types, years = [], [], [], [], []
    for s, pool in (("a", range(6)), ("b", range(6)), ("c", (6, 7))):
        for i in range(per_source):
            k = list(pool)[i % len(pool)]
            x = centres[k] + rng.normal(0, 1, 16)
            x[0] = abs(x[0]) + 1 if i % 2 else -abs(x[0]) - 1
            rows.append(x)
            sources.append(s)
            artists.append(f"artist{k}")
            types.append("portrait" if i % 2 else "landscape")
            years.append(1500 + 40 * k + int(rng.integers(0, 20)))
    splits = np.array(["train", "train", "val", "test"] * (len(rows) // 4))
    return Rows(np.array(rows, np.float32), {"type": types, "artist": artists}, years, np.array(sources), splits)


@pytest.fixture(scope="module")
def world():
    return _world()


def test_score_counts_the_shown_verdicts_per_source():
    answers = [{"predictions": {"type": [{"label": "portrait", "score": 0.9}]}, "verdict": {"type": v},
                "year": None} for v in ("portrait", "unknown", "landscape", "portrait")]
    rows = Rows(np.zeros((4, 1)), {"type": ["portrait", "portrait", "portrait", "landscape"]}, [None] * 4,
                np.array(["a", "a", "b", "b"]), np.array(["test"] * 4))
    out = score(answers, rows, {})
    assert out["tasks"]["type"]["a"]["answered"] == 0.5 and out["tasks"]["type"]["a"]["answered_precision"] == 1.0
    assert out["tasks"]["type"]["b"]["answered"] == 1.0 and out["tasks"]["type"]["b"]["answered_precision"] == 0.0
    assert out["tasks"]["type"]["pooled"]["top1"] == 0.75
    assert out["contradictions"]["pooled"] == 0.0


def test_grouped_answers_are_accurate_where_the_world_is_easy(world):
    fit, val = (world.take(np.flatnonzero(world.splits == s)) for s in ("train", "val"))
    heads = train_heads(fit.X, fit.labels, fit.years, val.X, val.labels, val.years, config=CONFIG)
    test = world.take(np.flatnonzero(world.splits == "test"))
    out = score(user_answers(heads, test.X, {}), test, {})
    assert out["tasks"]["type"]["pooled"]["top1"] > 0.95
    assert out["tasks"]["artist"]["pooled"]["answered_precision"] > 0.9


def test_leave_source_out_reports_support_and_unsupported_answers(world):
    out = leave_source_out(world, CONFIG, {})
    assert set(out["supported_labels"]) == {"a", "b", "c"}
    assert "artist6" not in out["supported_labels"]["c"]["artist"]  # only source c paints artist 6
    c = out["tasks"]["artist"]["c"]
    assert c["unsupported_n"] == 240 and c["top1"] == 0.0
    assert out["tasks"]["type"]["a"]["supported_answered_precision"] > 0.9


def test_leave_artists_out_measures_false_attribution(world):
    out = leave_artists_out(world, CONFIG, {}, fraction=0.25, min_works=10, seed=0)
    assert len(out["held_out_artists"]) == 2
    counts = Counter(world.labels["artist"])
    assert out["n_unknown"] == sum(counts[a] for a in out["held_out_artists"])  # every work of theirs
    assert 0.0 <= out["false_attribution"] <= 1.0
    assert out["known_precision"] > 0.9


def test_evaluate_protocol_from_artworks_and_its_markdown(world):
    from vasari.bundle import Bundle
    from vasari.catalog import Artwork
    from vasari.protocols import evaluate_protocol, protocol_markdown

    arts = [Artwork(artwork_id=f"{s}:{i}", source=str(s), type=t, artist=a, year=y)
            for i, (s, t, a, y) in enumerate(zip(world.sources, world.labels["type"], world.labels["artist"], world.years))]
    fit, val = (world.take(np.flatnonzero(world.splits == s)) for s in ("train", "val"))
    heads = train_heads(fit.X, fit.labels, fit.years, val.X, val.labels, val.years, config=CONFIG)
    bundle = Bundle(heads, None, {"head_config": CONFIG.to_dict()}, {})
    X = world.X.copy()
    X[3] = np.nan  # an unreadable picture is left out, not scored
    out = evaluate_protocol("grouped", bundle, arts, list(world.splits), X, {}, split="test")
    assert out["tasks"]["type"]["pooled"]["n"] == int((world.splits == "test").sum()) - 1
    text = protocol_markdown(out)
    assert text.startswith("## grouped") and "| a |" in text and "| pooled |" in text
    with pytest.raises(ValueError, match="leave-source-out"):
        evaluate_protocol("random", bundle, arts, list(world.splits), X, {})


def test_out_of_source_abstention_keeps_the_val_threshold_beside_it(world):
    from vasari.heads.abstention import out_of_source_abstention

    config = HeadConfig(tasks=("type", "artist"), c_grid=(0.25,), year=False, novelty=False, seed=0)
    fit, val = (world.take(np.flatnonzero(world.splits == s)) for s in ("train", "val"))
    heads = train_heads(fit.X, fit.labels, None, val.X, val.labels, None, config=config)
    before = heads.thresholds
    chosen = out_of_source_abstention(heads, world, config)
    assert set(chosen) == {"type", "artist"}
    for task, head in heads.classifiers.items():
        assert head.info["threshold_val"] == before[task]
        assert head.threshold == chosen[task]["threshold"]
    # source c's artists are unknown to the other folds: out of source they are wrong, so the
    # artist threshold must be at least the one that keeps 5% of held-out artists' paintings
    assert chosen["artist"]["threshold"] >= chosen["artist"]["open_set_threshold"]
    assert chosen["type"]["n"] == 3 * 180  # every train and val row, each predicted out of its source


def test_the_artist_threshold_holds_precision_on_artists_the_other_sources_know():
    """The artist's out-of-source precision is chosen on the artists another source supports
    (>= 30 training rows): a painting by an artist no other source knows is the open-set
    threshold's job, not evidence that known artists are named wrongly. Here sources a and b
    share artists 0-5 (40 train rows each per fold), c's artists 6-7 are nobody else's."""
    from vasari.heads.abstention import out_of_source_abstention

    world = _world(per_source=480)
    config = HeadConfig(tasks=("type", "artist"), c_grid=(0.25,), year=False, novelty=False, seed=0)
    fit, val = (world.take(np.flatnonzero(world.splits == s)) for s in ("train", "val"))
    heads = train_heads(fit.X, fit.labels, None, val.X, val.labels, None, config=config)
    chosen = out_of_source_abstention(heads, world, config)
    assert chosen["artist"]["n"] == 2 * 360  # a's and b's train + val rows, not c's unknown artists
    assert chosen["type"]["n"] == 3 * 360
    assert chosen["artist"]["target_met"] and chosen["artist"]["precision"] >= 0.9
    assert chosen["artist"]["threshold"] >= chosen["artist"]["open_set_threshold"]


def test_cli_train_out_of_source_then_evaluate_protocols(tmp_path):
    """`vasari train --abstention out-of-source` stores both thresholds; `vasari evaluate
    --protocol` prints and writes the per-source table."""
    import json

    from typer.testing import CliRunner

    from learn_data import learn_world
    from vasari.bundle import load_bundle
    from vasari.catalog import Artwork
    from vasari.cli import app
    from vasari.dataset import Dataset, save_dataset

    w = learn_world()
    arts = [Artwork(artwork_id=f"gen:{i}", source=("museum_a", "museum_b")[i % 2], image=p, type=w.labels[i], year=w.years[i])
            for i, p in enumerate(w.paths)]
    save_dataset(Dataset(arts, {a.artwork_id: s for a, s in zip(arts, w.split)}), tmp_path / "ds")
    run = CliRunner()
    res = run.invoke(app, ["train", str(tmp_path / "ds"), "--out", str(tmp_path / "m"), "--cache", str(w.cache_dir),
                           "--abstention", "out-of-source", "--protocols", "leave-source-out"], catch_exceptions=False)
    assert res.exit_code == 0, res.output
    # the refits show progress off a terminal too (a 30-minute default build said nothing for 25)
    assert "out-of-source refits (one per source): 2/2 (100%)" in res.output, res.output
    assert "leave-source-out folds: 2/2 (100%)" in res.output
    bundle = load_bundle(tmp_path / "m")
    in_card = bundle.card["protocols"]["leave-source-out"]
    assert in_card["tasks"]["type"]["n"] == sum(a.type is not None for a in arts)  # every row, out of its source
    assert "On collections it never saw" in (tmp_path / "m" / "MODEL_CARD.md").read_text()
    head = bundle.heads.classifiers["type"]
    assert head.threshold == head.info["threshold_out_of_source"]["threshold"] and "threshold_val" in head.info
    for protocol in ("grouped", "leave-source-out"):
        out = tmp_path / protocol
        res = run.invoke(app, ["evaluate", str(tmp_path / "ds"), "--model", str(tmp_path / "m"), "--out", str(out),
                               "--cache", str(w.cache_dir), "--protocol", protocol], catch_exceptions=False)
        assert res.exit_code == 0, res.output
        report = json.loads((out / "protocol.json").read_text())
        assert set(report["tasks"]["type"]) == {"pooled", "museum_a", "museum_b"}
        assert "| museum_a |" in res.stdout and (out / "protocol.md").is_file()
    # the card's figures are the protocol's pooled ones, computed on the same features
    assert in_card["tasks"]["type"]["top1"] == pytest.approx(report["tasks"]["type"]["pooled"]["top1"], abs=0.02)
    # the generated world has under 30 training paintings per label: nothing is "supported"
    assert report["supported_labels"] == {"museum_a": {"type": []}, "museum_b": {"type": []}}
    assert report["tasks"]["type"]["museum_a"]["unsupported_n"] == report["tasks"]["type"]["museum_a"]["n"]
    res = run.invoke(app, ["evaluate", str(tmp_path / "ds"), "--model", str(tmp_path / "m"), "--out", str(tmp_path / "x"),
                           "--protocol", "random"])
    assert res.exit_code != 0 and "leave-source-out" in res.output
    res = run.invoke(app, ["train", str(tmp_path / "ds"), "--out", str(tmp_path / "m2"), "--protocols", "leave-one-out"])
    assert res.exit_code != 0 and "unknown protocol(s) leave-one-out" in res.output and not (tmp_path / "m2").exists()


def test_protocols_score_the_bundles_own_abstention_rule(world):
    """A bundle trained with ``abstention="out-of-source"`` is scored with thresholds re-chosen
    out of source inside each fold: source c's artists, unknown to the other sources, get
    verdicts at the val threshold and none under the shipped rule; held-out artists are
    falsely attributed far less often."""
    from dataclasses import replace

    val_rule, oos_rule = (replace(CONFIG, abstention=rule) for rule in ("val", "out-of-source"))
    assert leave_source_out(world, val_rule, {})["tasks"]["artist"]["c"]["unsupported_answered"] > 0.9
    assert leave_source_out(world, oos_rule, {})["tasks"]["artist"]["c"]["unsupported_answered"] < 0.1
    assert leave_artists_out(world, val_rule, {})["false_attribution"] > 0.9
    assert leave_artists_out(world, oos_rule, {})["false_attribution"] < 0.7


def _single_source_style_world():
    """The world above plus a style learnable from the artist cluster (artists 0-2 Baroque,
    3-5 Rococo) labelled on every row of source "a" but only on 40 rows of "b": like WikiArt's
    styles, a fold without "a" can fit a style head (on b's few rows) but has no labelled
    out-of-source predictions to choose its threshold from."""
    world = _world()
    style = ["Baroque" if int(a[-1]) < 3 else "Rococo" for a in world.labels["artist"]]
    style = [s if (src == "a" or (src == "b" and i % 240 < 40)) else None
             for i, (s, src) in enumerate(zip(style, world.sources))]
    return Rows(world.X, {**world.labels, "style": style}, world.years, world.sources, world.splits)


def test_a_task_labelled_by_one_source_gives_no_verdict_out_of_source():
    """Under the val rule the fold without source "a" answers style on a's rows at b's val
    threshold; under the shipped rule it never answers there (threshold above 1, top-3 kept),
    says so, and the bundle's own choice (with "a") still answers in distribution."""
    from dataclasses import replace

    from vasari.heads.abstention import NEVER_ANSWER, out_of_source_abstention

    world = _single_source_style_world()
    config = HeadConfig(tasks=("type", "style"), c_grid=(0.25,), year=False, novelty=False, seed=0)
    val_rule = leave_source_out(world, replace(config, abstention="val"), {})
    assert val_rule["tasks"]["style"]["a"]["answered"] > 0.3 and val_rule["never_answer"] == {}
    shipped = leave_source_out(world, replace(config, abstention="out-of-source"), {})
    assert shipped["tasks"]["style"]["a"]["answered"] == 0.0
    assert shipped["tasks"]["type"]["a"]["answered"] > 0.3  # type has labels everywhere: still answered
    # without "b" too, style is labelled by "a" alone: only the fold without "c" sees two sources
    assert shipped["never_answer"] == {"a": ["style"], "b": ["style"]}

    fit, val = (world.take(np.flatnonzero(world.splits == s)) for s in ("train", "val"))
    held = world.take(np.flatnonzero(world.sources == "a"))
    fold_fit, fold_val = (world.take(np.flatnonzero((world.sources != "a") & (world.splits == s))) for s in ("train", "val"))
    heads = train_heads(fold_fit.X, fold_fit.labels, None, fold_val.X, fold_val.labels, None, config=config)
    chosen = out_of_source_abstention(heads, world.take(np.flatnonzero(world.sources != "a")), config)
    assert chosen["style"]["threshold"] == NEVER_ANSWER and chosen["style"]["n"] == 0
    assert "one source" in heads.classifiers["style"].info["threshold_out_of_source"]["abstains"]
    answers = user_answers(heads, held.X, {})
    assert all(a["verdict"]["style"] == "unknown" and len(a["predictions"]["style"]) == 2 for a in answers)

    full = train_heads(fit.X, fit.labels, None, val.X, val.labels, None, config=config)
    assert out_of_source_abstention(full, world, config)["style"]["threshold"] < 1.0  # a's rows seen out of source
