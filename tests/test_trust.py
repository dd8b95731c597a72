"""Trust metrics (vasari.trust): hand-built inputs whose answers are known."""

import numpy as np
import pytest

from vasari.dataset.clean import cross_artist_duplicates
from vasari.heads import trust as tr


def test_answer_metrics_counts_answered_precision_and_calibration():
    conf = np.array([0.95, 0.95, 0.62, 0.62])
    correct = np.array([True, True, False, True])
    answered = np.array([True, True, False, False])
    m = tr.answer_metrics(conf, correct, answered)
    assert m["n"] == 4
    assert m["top1"] == pytest.approx(0.75)
    assert m["answered"] == pytest.approx(0.5)
    assert m["answered_precision"] == pytest.approx(1.0)
    # two bins: |1.0 - .95| * .5 + |.5 - .62| * .5
    assert m["ece"] == pytest.approx(0.085)
    assert tr.answer_metrics(conf[:0], correct[:0], answered[:0])["top1"] is None


def test_answer_metrics_without_answers_has_no_precision():
    m = tr.answer_metrics(np.array([0.4, 0.3]), np.array([True, False]), np.array([False, False]))
    assert m["answered"] == 0.0 and m["answered_precision"] is None


def test_encode_marks_unknown_and_missing_labels():
    assert tr.encode(["b", None, "z", "a"], ["a", "b"]).tolist() == [1, -2, -1, 0]


def test_contradictions_between_verdicts_and_the_year():
    spans = {"Rembrandt": (1621, 1669)}
    year = np.array([1700.0, 1500.0, 1870.0, 1640.0, 1750.0])
    period = ["1601-1650", None, "1851-1900", "1601-1650", None]
    style = [None, "Baroque", "Impressionism", "Baroque", None]
    artist = [None, None, None, "Rembrandt", "Rembrandt"]
    flags = tr.contradiction_flags(period, style, artist, year, spans)
    assert flags["period"].tolist() == [True, False, False, False, False]
    assert flags["style"].tolist() == [False, True, False, False, False]
    assert flags["artist"].tolist() == [False, False, False, False, True]
    assert flags["any"].tolist() == [True, True, False, False, True]
    assert tr.contradiction_rates(flags)["any"] == pytest.approx(0.6)
    assert tr.contradiction_rates(flags, np.array([False, False, True, True, False]))["any"] == 0.0


def test_consistent_rule_leaves_no_contradiction():
    spans = {"Rembrandt": (1621, 1669)}
    year = np.array([1700.0, 1500.0, 1750.0])
    period = ["1601-1650", None, None]
    shown = tr.year_in_bin(year, period)
    assert shown.tolist() == [1650.0, 1500.0, 1750.0]
    style, artist = tr.veto_inconsistent(["Baroque", "Baroque", "Rococo"], [None, None, "Rembrandt"], shown, spans)
    assert style == ["Baroque", None, "Rococo"]
    assert artist == [None, None, None]
    assert not tr.contradiction_flags(period, style, artist, shown, spans)["any"].any()


def test_artist_spans_prefer_life_years_and_need_three_dated_works():
    spans = tr.artist_spans({"A": (1600, 1660), "B": (None, 1700)},
                            {"A": [1700, 1710, 1720], "B": [1650, 1660, 1670], "C": [1800, 1810]})
    assert spans == {"A": (1615, 1660), "B": (1640, 1680)}


def test_false_attribution_threshold_answers_the_allowed_share():
    rng = np.random.default_rng(0)
    unknown = rng.uniform(0.0, 0.8, 200)
    t = tr.threshold_for_false_attribution(unknown, 0.05)
    assert int((unknown >= t).sum()) == 10
    assert tr.threshold_for_false_attribution(unknown, 0.0) > unknown.max()
    # with 95% confidence: of 200, at most k answered with the exact upper bound of k/200 <= .05
    # (k = 4: bound .0452; k = 5: bound .0518), so fewer than the point estimate's 10
    assert tr.allowed_by_upper_bound(200, 0.05, 0.95) == 4
    assert tr.allowed_by_upper_bound(20, 0.05, 0.95) == 0  # 0 of 20 bounds the share at .139 only: answer none
    sure = tr.threshold_for_false_attribution(unknown, 0.05, confidence=0.95)
    assert int((unknown >= sure).sum()) == 4 and sure > t
    known_scores = np.array([0.9, 0.85, 0.3, 0.2])
    score = np.r_[known_scores, unknown]
    known = np.r_[np.ones(4, bool), np.zeros(200, bool)]
    correct = np.r_[np.array([True, False, True, True]), np.zeros(200, bool)]
    m = tr.false_attribution(score, known, correct, 0.81)
    assert m["false_attribution"] == 0.0
    assert m["known_answered"] == pytest.approx(0.5)
    assert m["known_precision"] == pytest.approx(0.5)
    assert 0.5 < m["auroc"] < 1.0


def test_cross_artist_duplicates_finds_the_same_picture_under_two_names():
    rng = np.random.default_rng(1)
    X = rng.normal(size=(6, 32)).astype(np.float32)
    X[3] = X[0] + 0.001  # a placeholder card under two artists
    X[4] = X[1] + 0.001  # a copy by the same artist: not a placeholder
    X[5] = X[2] + 0.001  # a copy with no artist label: ignored
    artists = ["Lowry", "Monet", "Monet", "Rembrandt", "Monet", None]
    assert cross_artist_duplicates(X, artists) == [0, 3]
    assert cross_artist_duplicates(X, artists, chunk=2) == [0, 3]
