"""Heads on generated feature arrays: accuracy, missing labels, calibration, abstention, year."""

from __future__ import annotations

import numpy as np
import pytest

from vasari.heads import (
    HeadConfig,
    Heads,
    TrainError,
    choose_threshold,
    expected_calibration_error,
    fit_temperature,
    softmax,
    train_heads,
)


def clusters(n: int, k: int, dim: int, spread: float, seed: int, prefix: str = "c"):
    """n points around k random centres in `dim` dims; labels are the centres' names."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(k, dim)) * 3.0
    y = rng.integers(0, k, n)
    X = centres[y] + rng.normal(size=(n, dim)) * spread
    return X.astype(np.float32), [f"{prefix}{v}" for v in y], y


def split(X, labels, n_train):
    return X[:n_train], labels[:n_train], X[n_train:], labels[n_train:]


def test_separable_clusters_high_accuracy_and_missing_labels():
    X, labels, _ = clusters(900, 5, 40, spread=2.0, seed=0)
    Xt, lt, Xv, lv = split(X, labels, 600)
    lt = [None if i % 4 == 0 else lab for i, lab in enumerate(lt)]  # a quarter unlabelled
    heads = train_heads(Xt, {"type": lt}, None, Xv, {"type": lv}, None)
    head = heads.classifiers["type"]
    assert head.info["train_rows"] == 450
    proba = heads.predict_proba(Xv)["type"]
    assert proba.shape == (300, 5)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0, atol=1e-6)
    acc = np.mean(np.array(head.classes)[proba.argmax(axis=1)] == np.array(lv))
    assert acc >= 0.95
    assert heads.tasks == ["type"]
    assert "type" not in heads.info["skipped"]
    assert heads.info["skipped"]["school"] == "no labels given"


def test_unseen_and_rare_labels_are_not_classes():
    X, labels, _ = clusters(400, 3, 10, spread=1.0, seed=1)
    labels = list(labels)
    labels[0] = "lonely"  # seen once in train: below min_class_count=2
    val_labels = list(labels[300:])
    val_labels[0] = "never-in-train"
    heads = train_heads(X[:300], {"school": labels[:300]}, None, X[300:], {"school": val_labels}, None)
    head = heads.classifiers["school"]
    assert "lonely" not in head.classes and "never-in-train" not in head.classes
    assert head.info["val_unseen_labels"] == 1
    assert head.info["dropped_rare_labels"] == 1


def test_binary_task_and_skipped_tasks():
    X, labels, y = clusters(300, 2, 8, spread=1.0, seed=2)
    one_class = ["only"] * 200
    heads = train_heads(X[:200], {"type": labels[:200], "style": one_class, "artist": [None] * 200}, None,
                        X[200:], {"type": labels[200:]}, None)
    assert list(heads.classifiers) == ["type"]
    assert heads.classifiers["type"].coef.shape == (2, 8)
    assert "style" in heads.info["skipped"] and "artist" in heads.info["skipped"]
    proba = heads.predict_proba(X[200:])["type"]
    acc = np.mean(np.array(heads.classifiers["type"].classes)[proba.argmax(axis=1)] == np.array(labels[200:]))
    assert acc >= 0.9


def test_nothing_trainable_raises():
    X = np.zeros((20, 4), dtype=np.float32)
    with pytest.raises(TrainError, match="no head"):
        train_heads(X, {"type": ["a"] * 20}, None)
    with pytest.raises(TrainError, match="rows"):
        train_heads(X, {"type": ["a"] * 19}, None)


def test_nan_rows_are_ignored():
    X, labels, _ = clusters(300, 3, 10, spread=1.0, seed=3)
    X[5] = np.nan
    X[250] = np.nan
    heads = train_heads(X[:200], {"type": labels[:200]}, None, X[200:], {"type": labels[200:]}, None)
    assert heads.info["train_rows"] == 199
    assert heads.info["val_rows"] == 99
    assert np.isfinite(heads.classifiers["type"].coef).all()


def test_temperature_reduces_calibration_error():
    # few train rows, weak regularisation, overlapping classes -> an over-confident model
    X, labels, _ = clusters(2400, 4, 60, spread=20.0, seed=4)
    config = HeadConfig(c_grid=(10.0,), calibrate=False, novelty=False, tol=1e-10, max_iter=3000)
    heads = train_heads(X[:150], {"type": labels[:150]}, None, X[150:1200], {"type": labels[150:1200]}, None, config)
    head = heads.classifiers["type"]
    y_val = np.array([head.classes.index(v) for v in labels[150:1200]])
    Z = heads.transform(X[150:1200])
    logits = head.logits(Z).astype(np.float64)
    temperature = fit_temperature(logits, y_val)
    assert temperature > 1.0  # over-confident -> soften
    y_test = np.array([head.classes.index(v) for v in labels[1200:]])
    logits_test = head.logits(heads.transform(X[1200:])).astype(np.float64)
    ece_raw = expected_calibration_error(softmax(logits_test), y_test)
    ece_cal = expected_calibration_error(softmax(logits_test / temperature), y_test)
    assert ece_cal < ece_raw * 0.7


def test_abstention_threshold_meets_target_precision_on_val():
    X, labels, _ = clusters(2000, 6, 30, spread=7.0, seed=5)  # hard: ~60-80% accuracy
    config = HeadConfig(target_precision=0.9)
    heads = train_heads(X[:1200], {"style": labels[:1200]}, None, X[1200:], {"style": labels[1200:]}, None, config)
    head = heads.classifiers["style"]
    proba = heads.predict_proba(X[1200:])["style"]
    pred = np.array(head.classes)[proba.argmax(axis=1)]
    correct = pred == np.array(labels[1200:])
    assert correct.mean() < 0.9  # the target needs abstention
    kept = proba.max(axis=1) >= head.threshold
    ab = head.info["abstention"]
    assert ab["target_met"] and 0.0 < kept.mean() < 1.0
    assert correct[kept].mean() >= 0.9
    assert kept.mean() == pytest.approx(ab["coverage"], abs=1e-9)
    # no validation row sits at the threshold, so no float path can flip it
    gap = np.abs(proba.max(axis=1) - head.threshold).min()
    assert gap > 1e-6


def test_choose_threshold_cases():
    conf = np.array([0.99, 0.95, 0.9, 0.8, 0.7, 0.6, 0.5, 0.4, 0.3, 0.2])
    correct = np.array([1, 1, 1, 1, 0, 1, 0, 0, 1, 0], dtype=bool)
    out = choose_threshold(conf, correct, target_precision=0.8, min_kept=1)
    # the cut keeps the six most confident rows; the threshold lies between 0.6 and 0.5
    assert out["target_met"] and out["threshold"] == pytest.approx(0.55) and out["precision"] == pytest.approx(5 / 6)
    everything = choose_threshold(conf, np.ones(10, dtype=bool), 0.9, min_kept=1)
    assert everything["threshold"] == 0.0 and everything["coverage"] == 1.0
    hopeless = choose_threshold(conf, np.array([0, 1, 0, 1, 0, 0, 0, 0, 0, 0], dtype=bool), 0.9, min_kept=2)
    assert not hopeless["target_met"]
    assert hopeless["precision"] == pytest.approx(0.5)  # the most precise cut with >= 2 kept
    assert hopeless["threshold"] == pytest.approx(0.75)


def test_year_regression_beats_median_and_interval_covers():
    rng = np.random.default_rng(6)
    n, dim = 1500, 50
    years = rng.integers(1420, 1890, n)
    X = rng.normal(size=(n, dim)).astype(np.float32)
    X[:, :3] += ((years - 1650) / 150.0)[:, None]  # three noisy year-carrying features
    year_list = [int(v) if i % 5 else None for i, v in enumerate(years)]
    heads = train_heads(X[:1000], {}, year_list[:1000], X[1000:], {}, year_list[1000:])
    assert heads.classifiers == {}
    est, low, high = heads.predict_year(X[1000:])
    truth = years[1000:]
    mae = np.mean(np.abs(est - truth))
    baseline = np.mean(np.abs(heads.year.median_year - truth))
    assert mae < 0.6 * baseline
    assert (low <= est).all() and (est <= high).all()
    assert low.min() >= 1401 and high.max() <= 1900
    inside = np.mean((truth >= low) & (truth <= high))
    assert 0.65 <= inside <= 0.95  # a 10-90% interval


def test_round_trip_arrays_identical_predictions():
    X, labels, y = clusters(500, 4, 20, spread=2.0, seed=7)
    years = [1500 + 50 * int(v) + i % 7 for i, v in enumerate(y)]
    heads = train_heads(X[:350], {"type": labels[:350], "school": [f"s{v % 2}" for v in y[:350]]}, years[:350],
                        X[350:], {"type": labels[350:], "school": [f"s{v % 2}" for v in y[350:]]}, years[350:])
    arrays, meta = heads.to_arrays()
    import json

    meta = json.loads(json.dumps(meta))  # must be plain JSON
    again = Heads.from_arrays(arrays, meta)
    for task in heads.tasks:
        np.testing.assert_array_equal(heads.predict_proba(X)[task], again.predict_proba(X)[task])
    for a, b in zip(heads.predict_year(X), again.predict_year(X)):
        np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(heads.novelty_score(X), again.novelty_score(X))
    assert again.thresholds == heads.thresholds
    assert again.config == heads.config


def test_novelty_flags_foreign_inputs():
    X, labels, _ = clusters(600, 3, 30, spread=1.0, seed=8)
    heads = train_heads(X[:400], {"type": labels[:400]}, None, X[400:], {"type": labels[400:]}, None)
    val_flags = heads.novelty.is_novel(heads.transform(X[400:]))
    assert val_flags.mean() <= 0.05
    rng = np.random.default_rng(9)
    foreign = (rng.normal(size=(20, 30)) * 10 + 25).astype(np.float32)
    assert heads.novelty.is_novel(heads.transform(foreign)).all()


def test_pca_option_and_feature_shape_check():
    X, labels, _ = clusters(400, 3, 64, spread=1.0, seed=10)
    heads = train_heads(X[:300], {"type": labels[:300]}, None, X[300:], {"type": labels[300:]}, None,
                        HeadConfig(pca_dim=16))
    assert heads.classifiers["type"].coef.shape == (3, 16)
    with pytest.raises(ValueError, match="expect"):
        heads.predict_proba(X[:, :10])


# --------------------------------------------------------------------------- numerics, hand-built


def test_softmax_is_stable_and_sums_to_one():
    p = softmax(np.array([[1000.0, 999.0, 0.0], [0.0, 0.0, 0.0]]))
    e = np.e
    assert p[0] == pytest.approx([e / (e + 1), 1 / (e + 1), 0.0], abs=1e-12)
    assert p[1] == pytest.approx([1 / 3] * 3)
    assert np.isfinite(p).all()


def test_nll_by_hand():
    from vasari.heads.calibration import nll

    logits = np.array([[2.0, 0.0], [0.0, 1000.0]])
    # row 0: -log sigmoid(2 / T); row 1 (huge logit, true class 1): 0
    assert nll(logits, np.array([0, 1]), 1.0) == pytest.approx(np.log1p(np.exp(-2.0)) / 2)
    assert nll(logits, np.array([0, 1]), 2.0) == pytest.approx(np.log1p(np.exp(-1.0)) / 2)
    assert nll(logits[:1], np.array([1]), 1.0) == pytest.approx(2.0 + np.log1p(np.exp(-2.0)))


def _two_class_logits(z: float, right: int, wrong: int):
    """``right + wrong`` rows with logits (z, 0); class 0 is the truth of ``right`` of them."""
    logits = np.tile([z, 0.0], (right + wrong, 1))
    return logits, np.array([0] * right + [1] * wrong)


def test_fit_temperature_finds_the_known_optimum():
    # every row has confidence sigmoid(z / T); the NLL is least when that equals the 80% accuracy
    logits, y = _two_class_logits(4.0, 80, 20)
    assert fit_temperature(logits, y) == pytest.approx(4.0 / np.log(4.0), rel=1e-3)
    # 60%: softer still
    logits, y = _two_class_logits(4.0, 60, 40)
    assert fit_temperature(logits, y) == pytest.approx(4.0 / np.log(1.5), rel=1e-3)


def test_fit_temperature_bounds_and_empty_input():
    logits, y = _two_class_logits(1.0, 50, 0)  # always right: as sharp as allowed
    assert fit_temperature(logits, y) == pytest.approx(0.05, rel=1e-3)
    logits, y = _two_class_logits(1.0, 50, 50)  # a coin: as soft as allowed
    assert fit_temperature(logits, y) == pytest.approx(20.0, rel=1e-3)
    assert fit_temperature(np.zeros((0, 3)), np.zeros(0, dtype=int)) == 1.0
    assert fit_temperature(np.array([[2.0, 0.0]]), np.array([0])) < 0.1  # one right row: sharpen, not 1.0


def test_choose_threshold_full_answer_ties_and_minimum_kept():
    conf = np.array([0.99, 0.95, 0.9, 0.8, 0.7, 0.6, 0.5, 0.4, 0.3, 0.2])
    correct = np.array([1, 1, 1, 1, 0, 1, 0, 0, 1, 0], dtype=bool)
    assert choose_threshold(conf, correct, 0.8, min_kept=1) == {
        "threshold": pytest.approx(0.55), "target_met": True, "coverage": pytest.approx(0.6),
        "precision": pytest.approx(5 / 6), "n": 10}
    # 100% precision is reached by the four most confident rows, but at least five must be kept
    strict = choose_threshold(conf, correct, 1.0, min_kept=5)
    assert not strict["target_met"] and strict["coverage"] == pytest.approx(0.6)
    assert strict["threshold"] == pytest.approx(0.55)
    assert choose_threshold(conf, correct, 1.0, min_kept=1)["threshold"] == pytest.approx(0.75)
    # a cut never splits rows of equal confidence: the tied pair (0.8, 0.8) is kept or dropped together
    tied = np.array([0.9, 0.8, 0.8, 0.3])
    out = choose_threshold(tied, np.array([1, 1, 0, 0], dtype=bool), 0.9, min_kept=1)
    assert out["threshold"] == pytest.approx(0.85) and out["coverage"] == pytest.approx(0.25)
    out = choose_threshold(tied, np.array([1, 1, 1, 0], dtype=bool), 0.9, min_kept=2)
    assert out["threshold"] == pytest.approx(0.55) and out["coverage"] == pytest.approx(0.75)
    # min_kept larger than the rows: all of them
    assert choose_threshold(tied, np.zeros(4, dtype=bool), 0.9, min_kept=10)["coverage"] == 1.0
    assert choose_threshold(np.zeros(0), np.zeros(0, dtype=bool), 0.9) == {
        "threshold": 0.0, "target_met": False, "coverage": 1.0, "precision": None, "n": 0}


def test_choose_threshold_unreachable_target_prefers_more_coverage_among_equals():
    conf = np.array([0.9, 0.8, 0.7, 0.6, 0.5, 0.4])
    correct = np.array([1, 0, 1, 0, 1, 0], dtype=bool)  # precision 1, .5, .67, .5, .6, .5
    out = choose_threshold(conf, correct, 0.95, min_kept=2)
    # best precision with >= 2 kept is 2/3 at three rows
    assert out["target_met"] is False and out["precision"] == pytest.approx(2 / 3)
    assert out["threshold"] == pytest.approx(0.65)
    even = np.array([1, 0, 1, 0, 0, 1], dtype=bool)  # 1, .5, .67, .5, .4, .5: .5 at 2, 4 and 6 kept
    out = choose_threshold(conf, even, 0.95, min_kept=4)
    assert out["precision"] == pytest.approx(0.5) and out["coverage"] == 1.0 and out["threshold"] == 0.0


def test_coverage_curve_by_hand():
    from vasari.heads import coverage_curve

    conf = np.array([0.9, 0.8, 0.7, 0.6])
    correct = np.array([1, 1, 0, 0], dtype=bool)
    curve = coverage_curve(conf, correct, points=3)
    assert curve == [
        {"threshold": 0.0, "coverage": 1.0, "accuracy": 0.5},
        {"threshold": pytest.approx(0.75), "coverage": 0.5, "accuracy": 1.0},
        {"threshold": pytest.approx(0.9), "coverage": 0.25, "accuracy": 1.0},
    ]
    assert len(coverage_curve(conf, correct)) == 21
    assert coverage_curve(np.zeros(0), np.zeros(0, dtype=bool)) == []


def test_choose_threshold_keeps_at_least_ten_rows_by_default():
    conf = np.linspace(0.99, 0.5, 12)
    correct = np.array([True] * 10 + [False] * 2)
    out = choose_threshold(conf, correct, 1.0)  # the ten right ones are exactly the minimum
    assert out["target_met"] and out["coverage"] == pytest.approx(10 / 12)
    assert out["threshold"] == pytest.approx((conf[9] + conf[10]) / 2)
