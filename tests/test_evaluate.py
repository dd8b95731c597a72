"""Evaluation on generated paintings embedded by the real backbone: metrics, plots, reports."""

from __future__ import annotations

import json

import numpy as np
import pytest
from rich.console import Console
from sklearn.metrics import (
    balanced_accuracy_score,
    confusion_matrix,
    f1_score,
    top_k_accuracy_score,
)

from learn_data import learn_world
from vasari.heads import (
    HEADLINE_KEYS,
    HeadConfig,
    Heads,
    LinearHead,
    TaskArrays,
    Transform,
    YearHead,
    evaluate_heads,
    expected_calibration_error,
    headline,
    reliability,
    softmax,
    train_heads,
)
from vasari.heads.metrics import _task_metrics
from vasari.report import summary_table, write_report


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
    assert m["top3_k"] == 3 and m["top3"] == 1.0  # k is capped at the three classes
    assert m["weighted_f1"] >= 0.85
    assert set(m["per_class"]) == {"landscape", "portrait", "still-life"}
    assert sum(c["support"] for c in m["per_class"].values()) == 24
    assert np.array(m["confusion"]["matrix"]).sum() == 24
    arr = ev.tasks["type"]
    assert m["ece"] == pytest.approx(expected_calibration_error(arr.proba, arr.y))
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


# --------------------------------------------------------------------------- hand-built metrics
# Inputs whose answers are known: each metric is checked against scikit-learn or a hand
# computation, so a transposed matrix, the wrong probabilities or the wrong rows fail.

CLASSES = ["a", "b", "c", "d"]


def _arrays(proba, labels, threshold=0.0, proba_raw=None):
    """TaskArrays of hand-written probabilities (columns in CLASSES order)."""
    proba = np.asarray(proba, dtype=np.float64)
    index = {c: i for i, c in enumerate(CLASSES)}
    y = np.array([index.get(t, -1) for t in labels])
    raw = proba if proba_raw is None else np.asarray(proba_raw, dtype=np.float64)
    return TaskArrays(CLASSES, list(labels), y, proba, raw, threshold)


# rows: true label, probabilities over a, b, c, d (top-1 and top-3 chosen per row)
ROWS = [
    ("a", [0.70, 0.20, 0.06, 0.04]),  # right
    ("a", [0.20, 0.50, 0.25, 0.05]),  # predicted b, a in top 3
    ("a", [0.05, 0.55, 0.30, 0.10]),  # predicted b, a not in top 3
    ("b", [0.10, 0.80, 0.05, 0.05]),  # right
    ("c", [0.60, 0.10, 0.20, 0.10]),  # predicted a, c in top 3
    ("c", [0.05, 0.05, 0.85, 0.05]),  # right
    ("d", [0.10, 0.15, 0.40, 0.35]),  # predicted c, d in top 3
    ("d", [0.02, 0.03, 0.05, 0.90]),  # right
]
TRUE = [r[0] for r in ROWS]
PROBA = np.array([r[1] for r in ROWS])
PRED = [CLASSES[i] for i in PROBA.argmax(axis=1)]


def test_top1_top3_f1_match_sklearn_on_known_rows():
    m = _task_metrics(_arrays(PROBA, TRUE))
    y = np.array([CLASSES.index(t) for t in TRUE])
    assert m["n"] == 8 and m["n_unseen"] == 0 and m["top3_k"] == 3
    assert m["top1"] == pytest.approx(4 / 8)
    assert m["top3"] == pytest.approx(7 / 8)  # only row 3 misses its label in the top three
    assert m["top3"] == pytest.approx(top_k_accuracy_score(y, PROBA, k=3, labels=range(4)))
    assert m["top1"] == pytest.approx(top_k_accuracy_score(y, PROBA, k=1, labels=range(4)))
    assert m["macro_f1"] == pytest.approx(f1_score(TRUE, PRED, average="macro"))
    assert m["weighted_f1"] == pytest.approx(f1_score(TRUE, PRED, average="weighted"))
    assert m["macro_f1"] != pytest.approx(m["weighted_f1"])  # unequal supports tell them apart
    assert m["balanced_accuracy"] == pytest.approx(balanced_accuracy_score(TRUE, PRED))
    assert m["per_class"]["a"] == pytest.approx(
        {"accuracy": 1 / 3, "precision": 1 / 2, "recall": 1 / 3, "f1": 0.4, "support": 3})
    assert m["per_class"]["b"]["precision"] == pytest.approx(1 / 3)


def test_confusion_rows_are_true_labels_and_columns_predictions():
    m = _task_metrics(_arrays(PROBA, TRUE))
    cm = np.array(m["confusion"]["matrix"])
    assert m["confusion"]["labels"] == CLASSES
    assert cm.tolist() == confusion_matrix(TRUE, PRED, labels=CLASSES).tolist()
    # by hand: two true "a" rows predicted "b"; nothing true "b" predicted "a"
    assert cm[0, 1] == 2 and cm[1, 0] == 0
    assert cm[2, 0] == 1 and cm[3, 2] == 1
    assert cm.sum(axis=1).tolist() == [3, 1, 2, 2]  # row sums are the true supports


def test_selective_accuracy_counts_the_answered_rows_only():
    m = _task_metrics(_arrays(PROBA, TRUE, threshold=0.58))
    sel = m["selective"]
    # answered (confidence >= 0.58): rows 0, 3, 4, 5, 7; of these 4 are right
    assert sel["threshold"] == pytest.approx(0.58)
    assert sel["coverage"] == pytest.approx(5 / 8)
    assert sel["accuracy"] == pytest.approx(4 / 5)
    assert sel["accuracy"] != pytest.approx(m["top1"])


def test_a_row_exactly_at_the_threshold_is_answered():
    # row 0's confidence is the literal 0.70 itself (no arithmetic): answered, like the service does
    sel = _task_metrics(_arrays(PROBA, TRUE, threshold=0.70))["selective"]
    assert sel["coverage"] == pytest.approx(4 / 8) and sel["accuracy"] == pytest.approx(1.0)


def test_classes_without_rows_are_in_the_matrix_but_not_in_the_averages():
    true, proba = TRUE[:6], PROBA[:6]  # no row is "d", and none is predicted "d"
    pred = PRED[:6]
    m = _task_metrics(_arrays(proba, true))
    assert np.array(m["confusion"]["matrix"]).tolist() == confusion_matrix(true, pred, labels=CLASSES).tolist()
    assert np.array(m["confusion"]["matrix"])[3].tolist() == [0, 0, 0, 0]
    assert m["macro_f1"] == pytest.approx(f1_score(true, pred, labels=["a", "b", "c"], average="macro"))
    assert m["balanced_accuracy"] == pytest.approx(balanced_accuracy_score(true, pred))
    assert m["per_class"]["d"] == {"accuracy": 0.0, "precision": 0.0, "recall": 0.0, "f1": 0.0, "support": 0}


def test_macro_f1_leaves_out_classes_only_predicted_and_never_rewards_unpredicted_ones():
    true = TRUE[:6] + ["c"]
    proba = np.vstack([PROBA[:6], [0.1, 0.1, 0.2, 0.6]])  # the extra row is predicted "d", which no row is
    pred = PRED[:6] + ["d"]
    m = _task_metrics(_arrays(proba, true))
    assert m["macro_f1"] == pytest.approx(f1_score(true, pred, labels=["a", "b", "c"], average="macro"))
    assert m["weighted_f1"] == pytest.approx(f1_score(true, pred, labels=["a", "b", "c"], average="weighted"))
    assert m["reliability"] == reliability(proba, np.array([CLASSES.index(t) for t in true]))
    # "b" and "c" are never predicted: their F1 is 0, not 1
    always_a = _task_metrics(_arrays(np.tile([0.7, 0.1, 0.1, 0.1], (3, 1)), ["a", "b", "c"]))
    assert always_a["macro_f1"] == pytest.approx((2 * (1 / 3) / (1 / 3 + 1)) / 3)
    assert always_a["weighted_f1"] == pytest.approx(always_a["macro_f1"])


def test_selective_accuracy_is_undefined_when_nothing_is_answered():
    m = _task_metrics(_arrays(PROBA, TRUE, threshold=0.95))
    assert m["selective"]["coverage"] == 0.0 and np.isnan(m["selective"]["accuracy"])


def test_ece_by_hand_on_four_rows():
    proba = np.array([[0.9, 0.1], [0.9, 0.1], [0.65, 0.35], [0.65, 0.35]])
    y = np.array([0, 1, 0, 0])
    # bin of 0.9: accuracy 1/2, confidence 0.9; bin of 0.65: accuracy 1, confidence 0.65
    assert expected_calibration_error(proba, y) == pytest.approx(0.5 * 0.4 + 0.5 * 0.35)
    # an unknown label (-1) counts as wrong
    assert expected_calibration_error(proba, np.array([0, 1, 0, -1])) == pytest.approx(0.5 * 0.4 + 0.5 * 0.15)
    assert expected_calibration_error(proba[:0], y[:0]) != expected_calibration_error(proba[:0], y[:0])  # NaN
    # one bin per row when bins are fine: ECE is the mean |correct - confidence|
    assert expected_calibration_error(proba[[0, 2]], y[[0, 2]], bins=2) == pytest.approx(
        0.5 * abs(1 - (0.9 + 0.65) / 2) * 2)


def test_the_trust_metrics_ece_is_the_evaluation_one_with_15_bins():
    """``calibration_error`` takes confidences and hits (pooled across folds by the trust
    metrics) and bins them as ``expected_calibration_error``: 15 bins unless told."""
    from vasari.heads.metrics import calibration_error
    from vasari.heads.trust import answer_metrics

    conf, correct = np.array([0.5, 0.52]), np.array([True, False])
    # 15 bins: both in (7/15, 8/15], ECE |0.5 - 0.51|; 16 bins would split them at 0.5
    assert calibration_error(conf, correct) == pytest.approx(0.01)
    assert calibration_error(conf, correct, bins=16) == pytest.approx(0.5 * 0.5 + 0.5 * 0.52)
    proba = np.array([[0.5, 0.3, 0.2], [0.52, 0.4, 0.08]])
    assert expected_calibration_error(proba, np.array([0, 1])) == calibration_error(conf, correct)
    assert answer_metrics(conf, correct, np.array([True, True]))["ece"] == pytest.approx(0.01)


def _reference_bins(conf, bins):
    """Bin of each confidence by the definition: (low, high], the first bin also holding 0."""
    return np.array([max(0, int(np.ceil(c * bins)) - 1) for c in conf])


def test_ece_and_reliability_match_a_reference_on_random_rows():
    rng = np.random.default_rng(11)
    proba = rng.dirichlet([0.6, 0.6, 0.6], size=300)
    # right 55% of the time whatever the confidence: under-confident in the low bins and
    # over-confident in the high ones, so the binning changes the ECE
    top = proba.argmax(axis=1)
    y = np.where(rng.random(300) < 0.55, top, (top + 1) % 3)
    conf, correct = proba.max(axis=1), proba.argmax(axis=1) == y
    for bins in (15, 7):
        b = _reference_bins(conf, bins)
        ece = sum(abs(correct[b == k].sum() - conf[b == k].sum()) for k in range(bins)) / len(y)
        assert expected_calibration_error(proba, y, bins=bins) == pytest.approx(ece)
    assert expected_calibration_error(proba, y) == pytest.approx(expected_calibration_error(proba, y, bins=15))
    b = _reference_bins(conf, 10)
    table = reliability(proba, y)
    assert [row["n"] for row in table] == [int((b == k).sum()) for k in range(10)]
    for k, row in enumerate(table):
        if row["n"]:
            assert row["accuracy"] == pytest.approx(correct[b == k].mean())
            assert row["confidence"] == pytest.approx(conf[b == k].mean())


def test_the_lowest_confidence_bin_is_its_own_with_many_classes():
    uniform = np.full(20, 0.05)  # confidence 0.05: the first bin of 15 and of 10
    low = np.r_[0.1, np.full(19, 0.9 / 19)]  # confidence 0.1: the second of 15
    proba, y = np.vstack([uniform, low]), np.array([0, 1])  # the first right, the second wrong
    assert expected_calibration_error(proba, y) == pytest.approx(0.5 * 0.95 + 0.5 * 0.1)
    assert reliability(proba[:1], y[:1])[0]["n"] == 1
    # and the two highest bins of 15 stay apart: 0.9 (right) and 0.95 (wrong)
    high = np.array([[0.9, 0.1], [0.95, 0.05]])
    assert expected_calibration_error(high, np.array([0, 1])) == pytest.approx(0.5 * 0.1 + 0.5 * 0.95)


def test_reliability_bins_by_hand():
    proba = np.array([[0.95, 0.05], [0.85, 0.15], [0.55, 0.45], [0.52, 0.48]])
    y = np.array([0, 1, 0, 0])
    bins = reliability(proba, y, bins=10)
    assert len(bins) == 10 and bins[0]["low"] == 0.0 and bins[-1]["high"] == 1.0
    by_low = {round(b["low"], 1): b for b in bins}
    assert by_low[0.9] == pytest.approx({"low": 0.9, "high": 1.0, "n": 1, "confidence": 0.95, "accuracy": 1.0})
    assert by_low[0.8] == pytest.approx({"low": 0.8, "high": 0.9, "n": 1, "confidence": 0.85, "accuracy": 0.0})
    assert by_low[0.5]["n"] == 2 and by_low[0.5]["confidence"] == pytest.approx(0.535)
    assert by_low[0.1] == {"low": pytest.approx(0.1), "high": pytest.approx(0.2), "n": 0, "confidence": None, "accuracy": None}


def test_unseen_label_is_an_error_and_its_own_confusion_row():
    labels = TRUE[:-1] + ["zzz"]
    m = _task_metrics(_arrays(PROBA, labels))
    assert m["n_unseen"] == 1 and m["top1"] == pytest.approx(3 / 8)
    assert m["confusion"]["labels"] == CLASSES + ["zzz"]
    assert np.array(m["confusion"]["matrix"])[4].tolist() == [0, 0, 0, 1, 0]  # true zzz, predicted d
    assert m["per_class"]["zzz"] == {"accuracy": 0.0, "precision": 0.0, "recall": 0.0, "f1": 0.0, "support": 1}


def _identity_heads(temperature: float, threshold: float, year: YearHead | None = None) -> Heads:
    """Heads whose logits are the features themselves (identity transform and weights), so
    the calibrated probabilities are softmax(X / T) and the raw ones softmax(X)."""
    k = len(CLASSES)
    head = LinearHead("type", CLASSES, np.eye(k, dtype=np.float32), np.zeros(k, dtype=np.float32),
                      temperature=temperature, threshold=threshold)
    return Heads(Transform(np.zeros(k, np.float32), np.ones(k, np.float32)), {"type": head}, year=year)


def test_evaluate_heads_reports_calibrated_ece_and_uncalibrated_beside_it():
    rng = np.random.default_rng(0)
    X = rng.normal(0, 3, (40, 4)).astype(np.float32)
    truth = [CLASSES[i] if rng.random() < 0.6 else CLASSES[(i + 1) % 4] for i in X.argmax(axis=1)]
    heads = _identity_heads(temperature=3.0, threshold=0.0)
    m = evaluate_heads(heads, X, {"type": truth}).metrics["tasks"]["type"]
    y = np.array([CLASSES.index(t) for t in truth])
    calibrated = expected_calibration_error(softmax(X.astype(np.float64) / 3.0), y)
    raw = expected_calibration_error(softmax(X.astype(np.float64)), y)
    assert abs(calibrated - raw) > 0.05  # the two differ enough to tell apart
    assert m["ece"] == pytest.approx(calibrated)
    assert m["ece_uncalibrated"] == pytest.approx(raw)


def test_evaluate_heads_applies_the_head_threshold_to_calibrated_confidence():
    X = np.array([[4.0, 0, 0, 0], [0, 4.0, 0, 0], [0, 0, 1.0, 0], [0, 0, 0, 1.0]], dtype=np.float32)
    # calibrated (T=2) confidences: e^2/(e^2+3) = 0.711 for rows 0-1, e^.5/(e^.5+3) = 0.355 for rows 2-3;
    # raw confidences would be 0.948 and 0.475: a threshold of 0.5 keeps rows 0 and 1 either way,
    # 0.8 separates calibrated from raw
    truth = ["a", "c", "c", "d"]
    m = evaluate_heads(_identity_heads(2.0, 0.5), X, {"type": truth}).metrics["tasks"]["type"]
    assert m["selective"]["coverage"] == pytest.approx(0.5) and m["selective"]["accuracy"] == pytest.approx(0.5)
    assert m["top1"] == pytest.approx(3 / 4)
    strict = evaluate_heads(_identity_heads(2.0, 0.8), X, {"type": truth}).metrics["tasks"]["type"]
    assert strict["selective"]["coverage"] == 0.0


def test_evaluate_heads_of_no_rows_and_the_default_split():
    ev = evaluate_heads(_identity_heads(1.0, 0.0), np.zeros((0, 4), np.float32), {"type": []})
    assert ev.split == "test"
    assert ev.metrics == {"split": "test", "rows": 0, "failed_rows": 0, "tasks": {}}


def test_evaluate_heads_skips_tasks_without_labels_and_evaluates_the_rest():
    k = len(CLASSES)
    head = _identity_heads(1.0, 0.0).classifiers["type"]
    school = LinearHead("school", CLASSES, np.eye(k, dtype=np.float32), np.zeros(k, np.float32))
    heads = Heads(Transform(np.zeros(k, np.float32), np.ones(k, np.float32)), {"school": school, "type": head})
    assert heads.tasks == ["type", "school"]  # type is visited first
    X = np.eye(k, dtype=np.float32) * 3
    only_school = evaluate_heads(heads, X, {"school": CLASSES}).metrics["tasks"]
    assert list(only_school) == ["school"] and only_school["school"]["top1"] == 1.0
    unlabelled_type = evaluate_heads(heads, X, {"type": [None] * k, "school": CLASSES}).metrics["tasks"]
    assert list(unlabelled_type) == ["school"]


def test_evaluate_heads_year_numbers_by_hand():
    k = len(CLASSES)
    # every estimate is 1500, interval 1490..1510, train median 1600
    year = YearHead(np.zeros(k, np.float32), 1500.0, -10.0, 10.0, 1600.0)
    X = np.zeros((4, k), np.float32)
    X[3] = np.nan  # a failed image is left out
    ev = evaluate_heads(_identity_heads(1.0, 0.0, year), X, {"type": ["a"] * 4}, [1495, 1520, 1600, 1700])
    y = ev.metrics["year"]
    assert ev.metrics["failed_rows"] == 1 and y["n"] == 3
    assert y["mae"] == pytest.approx((5 + 20 + 100) / 3)
    assert y["median_ae"] == pytest.approx(20)
    assert y["baseline_mae"] == pytest.approx((105 + 80 + 0) / 3) and y["baseline"] == "always the train median year"
    assert y["interval_coverage"] == pytest.approx(1 / 3)
    assert y["interval_mean_width"] == pytest.approx(20)
    assert ev.year["truth"].tolist() == [1495, 1520, 1600]
    assert ev.year["low"].tolist() == [1490] * 3 and ev.year["high"].tolist() == [1510] * 3
    # the interval's ends count as inside (integers: no rounding at the boundary)
    ends = evaluate_heads(_identity_heads(1.0, 0.0, year), X[:2], {"type": ["a"] * 2}, [1490, 1510])
    assert ends.metrics["year"]["interval_coverage"] == 1.0
    # years without a year head: no year section
    assert "year" not in evaluate_heads(_identity_heads(1.0, 0.0), X[:2], {"type": ["a"] * 2}, [1490, 1510]).metrics


def test_evaluate_heads_novel_fraction_by_hand():
    from vasari.heads import NoveltyDetector

    heads = _identity_heads(1.0, 0.0)
    # score = (squared length in the first two axes / 2 + squared rest) / 2; novel above 1
    heads.novelty = NoveltyDetector(np.eye(4, dtype=np.float32)[:2], np.ones(2, np.float32), 1.0, threshold=1.0)
    X = np.array([[0, 0, 0, 0], [3, 0, 0, 0], [0, 0, 3, 0], [1, 0, 0, 0]], dtype=np.float32)
    assert evaluate_heads(heads, X, {"type": ["a"] * 4}).metrics["novel_fraction"] == pytest.approx(0.5)


def test_backbone_export_lives_in_the_session_cache_not_the_user_cache(vasari_cache):
    from vasari.features import default_cache_dir, onnx_path

    assert default_cache_dir() == vasari_cache
    assert onnx_path(learn_world().embedder.spec).is_file()
    assert onnx_path(learn_world().embedder.spec).is_relative_to(vasari_cache)


def test_a_confidence_on_a_bin_edge_belongs_to_the_lower_bin():
    # bins are (low, high]: 0.5 and 0.75 are exact binary fractions, so no float path can move them
    proba = np.array([[0.5, 0.5], [0.75, 0.25]])
    y = np.array([0, 1])  # the first is right (argmax takes class 0 on the tie), the second wrong
    # 0.5 alone in (0, .5]: |1 - .5| / 2; 0.75 alone in (.5, 1]: |0 - .75| / 2
    assert expected_calibration_error(proba, y, bins=2) == pytest.approx(0.625)
    rows = reliability(proba, y, bins=2)
    assert [r["n"] for r in rows] == [1, 1]
    assert rows[0]["confidence"] == pytest.approx(0.5) and rows[0]["accuracy"] == pytest.approx(1.0)
