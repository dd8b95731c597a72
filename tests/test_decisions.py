"""The decisions a user is told, on features and probabilities whose answers are known in
closed form: the predictor's verdict step, the heads' novelty detector, the one-answer rule
and the joint year/period/style decode (no backbone, no ONNX: these run in milliseconds, so
``scripts/mutation.py`` can run them for every planted bug).

Boundaries (a probability exactly at a threshold, a year exactly at a span's end) use values
that are exact in binary floating point (0.5, 0.25, whole years), so the side they fall on is
decided by the rule under test, not by rounding.
"""

from __future__ import annotations

import numpy as np
import pytest

from vasari.bundle import Bundle
from vasari.errors import InputError
from vasari.heads import trust as tr
from vasari.heads.novelty import NoveltyDetector
from vasari.heads.train import Heads, LinearHead, Transform
from vasari.heads.year import YearHead
from vasari.inference.consistency import make_consistent, withhold_claims
from vasari.inference.predictor import Predictor
from vasari.inference.schema import LabelScore, Novelty, Prediction, YearEstimate

STYLES = ["Baroque", "Rococo", "Romanticism", "Impressionism"]


# ---------------------------------------------------------------------------- hand-built heads
# 2-d features, identity transform. "type": p(a) = 1 / (1 + exp(-2 x0)) over (a, b); "mood":
# three classes whose logits are (x1, 0, -x1) so that x1 = 0 gives three equal scores. The
# year head answers 1600 + 100 x0 with the interval [-20, +30] around it; the novelty detector
# scores (x0^2 / 1 + x1^2 / 4) / 4 (two unit components, no residual) against 4.


def _heads(threshold: float = 0.7, year: bool = True, novelty: bool = True) -> Heads:
    kind = LinearHead("type", ["a", "b"], np.array([[1, 0], [-1, 0]], np.float32), np.zeros(2, np.float32),
                      temperature=1.0, threshold=threshold)
    mood = LinearHead("mood", ["calm", "plain", "wild"], np.array([[0, 1], [0, 0], [0, -1]], np.float32),
                      np.zeros(3, np.float32), temperature=1.0, threshold=0.0)
    detector = NoveltyDetector(np.eye(2, dtype=np.float32), np.array([1, 4], np.float32), 1.0, threshold=4.0)
    year_head = YearHead(np.array([100, 0], np.float32), 1600.0, -20.0, 30.0, 1600.0)
    return Heads(Transform(np.zeros(2, np.float32), np.ones(2, np.float32)), {"type": kind, "mood": mood},
                 year=year_head if year else None, novelty=detector if novelty else None)


def _predictor(**options) -> Predictor:
    return Predictor(Bundle(_heads(**options), spec=None))


def test_verdict_names_the_top_label_at_or_above_the_threshold_only():
    # x0 = 0: both type labels at exactly 0.5; at a 0.5 threshold that is an answer (the first
    # label wins the tie), at 0.75 it is not
    at, = _predictor(threshold=0.5).predictions_from_features(np.array([[0.0, 0.0]]), top_k=2)
    assert [(s.label, s.score) for s in at.predictions["type"]] == [("a", 0.5), ("b", 0.5)]
    assert at.verdict["type"] == "a"
    above, = _predictor(threshold=0.75).predictions_from_features(np.array([[0.0, 0.0]]), top_k=2)
    assert above.verdict["type"] == "unknown"
    assert above.verdict["mood"] == "calm"  # every task decides with its own threshold (0 here)


def test_top_k_lists_the_best_labels_in_order_and_never_more_than_a_task_has():
    pred, = _predictor().predictions_from_features(np.array([[-1.0, -2.0]]), top_k=3)
    assert [s.label for s in pred.predictions["type"]] == ["b", "a"]  # two classes: two answers
    assert [s.label for s in pred.predictions["mood"]] == ["wild", "plain", "calm"]
    scores = [s.score for s in pred.predictions["mood"]]
    assert scores == sorted(scores, reverse=True) and sum(scores) == pytest.approx(1.0, abs=1e-3)
    assert all(round(s, 4) == s for s in scores)
    one, = _predictor().predictions_from_features(np.array([[-1.0, -2.0]]), top_k=1)
    assert [s.label for s in one.predictions["mood"]] == ["wild"]


def test_equal_scores_keep_the_vocabulary_order():
    pred, = _predictor().predictions_from_features(np.array([[0.0, 0.0]]), top_k=3)
    assert [s.label for s in pred.predictions["mood"]] == ["calm", "plain", "wild"]


def test_default_names_single_vectors_and_empty_batches():
    predictor = _predictor()
    assert [p.image for p in predictor.predictions_from_features(np.zeros((3, 2)))] == ["image_0", "image_1", "image_2"]
    assert [p.image for p in predictor.predictions_from_features(np.zeros((2, 2)), names=["x.jpg", "y.jpg"])] == ["x.jpg", "y.jpg"]
    single = predictor.predictions_from_features(np.array([1.0, 0.0]))
    assert len(single) == 1 and single[0].verdict["type"] == "a"
    assert predictor.predictions_from_features(np.zeros((0, 2))) == []


def test_top_k_is_checked():
    predictor = _predictor()
    assert len(predictor.predictions_from_features(np.zeros((1, 2)), top_k=np.int64(3))[0].predictions["mood"]) == 3
    for bad in (True, 2.0, "2", None):
        with pytest.raises(InputError, match="top_k must be an integer"):
            predictor.predictions_from_features(np.zeros((1, 2)), top_k=bad)
    for bad in (0, -1, 4):
        with pytest.raises(InputError, match=r"top_k must be between 1 and 3 \(the largest number of classes\)"):
            predictor.predictions_from_features(np.zeros((1, 2)), top_k=bad)


def test_year_estimate_and_interval_are_rounded_years():
    # x0 = 0.5: 1650 with the interval [1630, 1680]; x0 = 0.504: 1650.4 -> 1650
    first, second = _predictor().predictions_from_features(np.array([[0.5, 0.0], [0.504, 0.0]]))
    assert first.year == YearEstimate(estimate=1650, low=1630, high=1680)
    assert second.year.estimate == 1650
    assert _predictor(year=False).predictions_from_features(np.zeros((1, 2)))[0].year is None


def test_heads_novelty_is_reported_and_silences_every_verdict():
    typical, foreign = _predictor().predictions_from_features(np.array([[1.0, 0.0], [5.0, 0.0]]))
    assert typical.novelty == Novelty(novel=False, score=0.25, threshold=4.0, reason=None, detector="heads")
    assert typical.verdict == {"type": "a", "mood": "calm"}
    assert foreign.novelty.novel is True and foreign.novelty.score == pytest.approx(6.25)
    assert foreign.novelty.reason == "unlike the paintings the model was trained on"
    assert foreign.verdict == {"type": "unknown", "mood": "unknown"} and foreign.year is None
    assert foreign.predictions["type"][0].label == "a"  # the best guess stays
    plain, = _predictor(novelty=False).predictions_from_features(np.array([[5.0, 0.0]]))
    assert plain.novelty is None and plain.verdict["type"] == "a"


# ---------------------------------------------------------------------------- novelty detector


def test_novelty_score_is_the_mean_of_scaled_distance_and_residual():
    # 3-d features, components along x and y (variances 1 and 4), residual scale 2:
    # z = (2, 2, 2): Mahalanobis^2 / k = (4 / 1 + 4 / 4) / 2 = 2.5, residual^2 / scale = 4 / 2 = 2
    detector = NoveltyDetector(np.eye(3, dtype=np.float32)[:2], np.array([1, 4], np.float32), 2.0, threshold=2.25)
    z = np.array([[2, 2, 2], [0, 0, 0], [0, 0, 3]], np.float32)
    assert detector.score(z) == pytest.approx([2.25, 0.0, 2.25])
    # exactly at the threshold is not novel; just above is
    assert detector.is_novel(z).tolist() == [False, False, False]
    assert detector.is_novel(np.array([[2, 2, 2.1]], np.float32)).tolist() == [True]


def test_novelty_residual_is_never_negative():
    # a component of length 2 projects more than the vector's own length: the residual is
    # clipped at 0, so only the Mahalanobis term counts
    detector = NoveltyDetector(np.array([[2, 0]], np.float32), np.array([1], np.float32), 1.0, threshold=1.0)
    assert detector.score(np.array([[1, 0]], np.float32)) == pytest.approx([2.0])


# ---------------------------------------------------------------------------- one-answer rule


def _prediction(style_k: int = 2, year=(1625, 1600, 1650), artist="unknown", affinity=None, novelty=None) -> Prediction:
    return Prediction(image="x", verdict={"timeframe": "1601-1650", "style": "Baroque", "artist": artist},
                      predictions={"style": [LabelScore(label="Baroque", score=0.7)] * style_k},
                      year=None if year is None else YearEstimate(estimate=year[0], low=year[1], high=year[2]),
                      affinity=affinity, novelty=novelty)


def _style_heads(threshold: float = 0.5):
    from types import SimpleNamespace

    return SimpleNamespace(classifiers={"style": SimpleNamespace(classes=STYLES, threshold=threshold)})


def test_withheld_claims_leave_a_missing_affinity_missing():
    pred = _prediction(affinity=None)
    withhold_claims(pred)
    assert pred.affinity is None and pred.year is None and set(pred.verdict.values()) == {"unknown"}


def test_decoded_style_keeps_the_number_of_answers_and_their_rounding():
    pred = _prediction(style_k=3)
    make_consistent([pred], {"style": np.array([[0.612345, 0.2, 0.1, 0.087655]])}, _style_heads(), {})
    assert [(s.label, s.score) for s in pred.predictions["style"]] == [
        ("Baroque", 0.6123), ("Rococo", 0.0), ("Romanticism", 0.0)]  # 1601-1650 only meets Baroque
    assert pred.verdict["style"] == "Baroque"
    lone = _prediction(style_k=0)
    make_consistent([lone], {"style": np.array([[0.7, 0.1, 0.1, 0.1]])}, _style_heads(), {})
    assert [s.label for s in lone.predictions["style"]] == ["Baroque"]


def test_a_year_moved_into_the_period_widens_its_interval():
    pred = _prediction(year=(1580, 1560, 1590))
    pred.verdict["timeframe"] = "1601-1650"
    make_consistent([pred], {"style": np.array([[0.7, 0.1, 0.1, 0.1]])}, _style_heads(), {})
    assert pred.year == YearEstimate(estimate=1601, low=1560, high=1601)
    late = _prediction(year=(1700, 1690, 1720))
    make_consistent([late], {"style": np.array([[0.7, 0.1, 0.1, 0.1]])}, _style_heads(), {})
    assert late.year == YearEstimate(estimate=1650, low=1650, high=1720)


def test_without_a_style_head_or_a_year_only_the_artist_rule_applies():
    pred = _prediction(year=None, artist="Rubens")
    make_consistent([pred], {}, _style_heads(), {"Rubens": (1592, 1640)})
    assert pred.verdict == {"timeframe": "1601-1650", "style": "Baroque", "artist": "Rubens"}
    assert pred.year is None


def test_artist_veto_uses_the_year_shown_after_the_decode():
    # the head said 1655; the period 1601-1650 moves it to 1650, and the artist is judged by
    # that shown year: inside active years ending 1650, outside years ending 1649
    pred = _prediction(year=(1655, 1640, 1670), artist="Rubens")
    make_consistent([pred], {"style": np.array([[0.7, 0.1, 0.1, 0.1]])}, _style_heads(), {"Rubens": (1592, 1650)})
    assert pred.year.estimate == 1650 and pred.verdict["artist"] == "Rubens"  # 1650 is inside 1592-1650
    other = _prediction(year=(1655, 1640, 1670), artist="Rubens")
    make_consistent([other], {"style": np.array([[0.7, 0.1, 0.1, 0.1]])}, _style_heads(), {"Rubens": (1592, 1649)})
    assert other.verdict["artist"] == "unknown"


# ---------------------------------------------------------------------------- joint decode


def test_style_spans_and_artist_years_include_their_ends():
    assert tr.styles_meeting(STYLES, (1760.0, 1765.0)).tolist() == [True, True, False, False]  # Baroque ends 1760
    assert tr.styles_meeting(STYLES, (1500.0, 1580.0)).tolist() == [True, False, False, False]  # Baroque from 1580
    assert tr.styles_meeting(STYLES + ["Gothic"], (1400.0, 1450.0)).tolist() == [False] * 4 + [True]
    assert tr.styles_meeting(STYLES, None).tolist() == [True] * 4
    spans = {"Rubens": (1592, 1640)}
    assert [tr.artist_fits("Rubens", y, spans) for y in (1591, 1592, 1640, 1641)] == [False, True, True, False]
    assert tr.artist_fits("Rubens", None, spans) and tr.artist_fits(None, 1000, spans)
    assert tr.artist_fits("Somebody", 1000, spans)


def test_period_window_reads_a_timeframe_verdict():
    assert tr.period_window("1551-1600") == (1551, 1600)
    assert tr.period_window("unknown") is None and tr.period_window(None) is None


def test_style_verdict_at_or_above_the_threshold_only():
    assert tr.joint_decode(np.array([0.5, 0.5, 0, 0]), STYLES, 0.5, None, None).style == "Baroque"
    assert tr.joint_decode(np.array([0.5, 0.5, 0, 0]), STYLES, 0.75, None, None).style is None
    # nothing left after the restriction: no verdict even at a zero threshold
    nothing = tr.joint_decode(np.array([0.5, 0.5, 0, 0]), STYLES, 0.0, "1401-1450", (1420, 1400, 1440))
    assert nothing.style is None and nothing.style_proba.tolist() == [0, 0, 0, 0] and nothing.year == 1420


def test_year_is_clipped_into_period_and_style_span_together():
    # period 1751-1800 and Rococo (1700-1800): the estimate 1820 moves to 1800, 1700 to 1751
    late = tr.joint_decode(np.array([0.1, 0.8, 0.1, 0]), STYLES, 0.5, "1751-1800", (1820, 1790, 1850))
    assert late.style == "Rococo" and late.year == 1800
    early = tr.joint_decode(np.array([0.1, 0.8, 0.1, 0]), STYLES, 0.5, "1751-1800", (1700, 1650, 1760))
    assert early.year == 1751
    # a style without a documented span leaves the period alone
    free = tr.joint_decode(np.array([0.9, 0.1]), ["Gothic", "Baroque"], 0.5, "1401-1450", (1460, 1440, 1480))
    assert free.style == "Gothic" and free.year == 1450
    # no period: the year interval picks the styles, the style's span clips the estimate
    none = tr.joint_decode(np.array([0.1, 0.1, 0.1, 0.7]), STYLES, 0.5, None, (1850, 1840, 1870))
    assert none.style == "Impressionism" and none.year == 1860
    assert tr.joint_decode(np.array([0.1, 0.1, 0.1, 0.7]), STYLES, 0.5, None, None).year is None


def test_artist_spans_from_life_years_and_dated_works():
    spans = tr.artist_spans({"A": (1577, 1640), "B": (1600, None), "C": (1650, 1650)},
                            {"B": [1620, 1630, 1640], "D": [1700, 1710], "E": [1700, 1710, 1705]}, margin=5)
    assert spans == {"A": (1592, 1640), "B": (1615, 1645), "E": (1695, 1715)}


# ---------------------------------------------------------------------------- the whole answer


def _linear(task: str, classes: list[str], weights, threshold: float) -> LinearHead:
    w = np.asarray(weights, np.float32)
    return LinearHead(task, classes, w, np.zeros(len(classes), np.float32), temperature=1.0, threshold=threshold)


def test_the_predictor_applies_the_one_answer_rule_to_its_own_heads():
    # year 1600 + 100 x0 in [-20, +30]: x0 = 2.5 gives 1850 (1830-1880). Equal style scores:
    # Baroque and Rococo ended before 1830, so Romanticism (first of the survivors) is the
    # answer, not Baroque; Rubens (1592-1640, from the model card) cannot have painted it.
    heads = _heads()
    heads.classifiers["style"] = _linear("style", STYLES, np.zeros((4, 2)), threshold=0.2)
    heads.classifiers["artist"] = _linear("artist", ["Rubens", "Monet"], [[1, 0], [-1, 0]], threshold=0.5)
    card = {"artist_spans": {"Rubens": [1592, 1640]}}
    pred, = Predictor(Bundle(heads, spec=None, card=card)).predictions_from_features(np.array([[2.5, 0.0]]), top_k=3)
    assert pred.year.estimate == 1850
    assert pred.verdict["style"] == "Romanticism"
    assert [(s.label, s.score) for s in pred.predictions["style"]] == [
        ("Romanticism", 0.25), ("Impressionism", 0.25), ("Baroque", 0.0)]
    assert pred.predictions["artist"][0].label == "Rubens" and pred.verdict["artist"] == "unknown"


def test_a_heads_only_bundle_checks_top_k_against_one_answer():
    # a bundle with a year head and no classifier: every top_k but 1 is refused
    heads = _heads()
    heads.classifiers.clear()
    predictor = Predictor(Bundle(heads, spec=None))
    pred, = predictor.predictions_from_features(np.array([[0.5, 0.0]]), top_k=1)
    assert pred.predictions == {} and pred.year.estimate == 1650
    with pytest.raises(InputError, match="between 1 and 1"):
        predictor.predictions_from_features(np.array([[0.5, 0.0]]), top_k=2)


def test_a_heads_novelty_score_at_the_threshold_is_not_novel():
    # x0 = 4: (16 / 1 + 0) / 4 = 4.0, the threshold itself (exact in binary)
    at, above = _predictor().predictions_from_features(np.array([[4.0, 0.0], [4.0, 0.5]]))
    assert at.novelty.score == 4.0 and at.novelty.novel is False and at.verdict["type"] == "a"
    assert above.novelty.novel is True


def test_equal_scores_keep_the_vocabulary_order_in_a_large_vocabulary():
    # 30 artists in three tiers of equal scores: within a tier, the vocabulary order (a
    # quicksort would shuffle ties in vocabularies this long)
    names = [f"artist {i:02d}" for i in range(30)]
    tiers = np.array([[i % 3, 0] for i in range(30)], np.float32)
    heads = _heads()
    heads.classifiers["artist"] = _linear("artist", names, tiers, threshold=0.0)
    pred, = Predictor(Bundle(heads, spec=None)).predictions_from_features(np.array([[1.0, 0.0]]), top_k=30)
    want = [names[i] for tier in (2, 1, 0) for i in range(30) if i % 3 == tier]
    assert [s.label for s in pred.predictions["artist"]] == want
    # the same for the style scores the one-answer rule rewrites (styles without a span)
    styles = [f"style {i:02d}" for i in range(30)]
    p = np.array([[1.0 + i % 3 for i in range(30)]]) / 60.0
    row = _prediction(style_k=30, year=None)
    from types import SimpleNamespace

    make_consistent([row], {"style": p}, SimpleNamespace(classifiers={"style": SimpleNamespace(classes=styles, threshold=0.5)}), {})
    assert [s.label for s in row.predictions["style"]] == [styles[i] for tier in (2, 1, 0) for i in range(30) if i % 3 == tier]


def test_a_novel_picture_does_not_stop_the_rule_for_the_next_ones():
    novel = _prediction(novelty=Novelty(novel=True, score=9.0, threshold=4.0, reason="x", detector="heads"))
    late = _prediction(year=(1700, 1690, 1720))
    make_consistent([novel, late], {"style": np.array([[0.7, 0.1, 0.1, 0.1]] * 2)}, _style_heads(), {})
    assert novel.year is None and late.year.estimate == 1650


def test_without_a_period_the_whole_year_interval_picks_the_styles():
    # 1740-1765 meets Baroque (to 1760) through its low end only
    answer = tr.joint_decode(np.array([0.8, 0.1, 0.05, 0.05]), STYLES, 0.5, None, (1750, 1740, 1765))
    assert answer.style == "Baroque" and answer.year == 1750


def test_styles_meeting_is_a_mask():
    assert tr.styles_meeting(STYLES, None).dtype == bool
    assert np.asarray(STYLES)[tr.styles_meeting(STYLES, None)].tolist() == STYLES


# ---------------------------------------------------------------------------- gallery novelty
# Hand-built indexes on unit vectors, so that similarities are exact: e1 . e1 = 1, e1 . e2 = 0.


def _index(vectors, threshold=None, margin=None, negatives=None, labels=None, components=None):
    from vasari.gallery import GalleryIndex, Projection

    vectors = np.asarray(vectors, np.float32)
    dim = vectors.shape[1]
    calibration = {k: v for k, v in (("novelty_threshold", threshold), ("negative_margin", margin)) if v is not None}
    projection = Projection(np.zeros(dim, np.float32), np.ones(dim, np.float32),
                            None if components is None else np.asarray(components, np.float32))
    projected = vectors if components is None else vectors @ projection.components.T
    return GalleryIndex(projected, [{"artwork_id": f"g:{i}"} for i in range(len(vectors))], projection,
                        calibration=calibration, negatives=None if negatives is None else np.asarray(negatives, np.float32),
                        negative_labels=labels)


def test_gallery_distance_counts_the_part_outside_the_pca_space():
    # PCA space = the first two axes; the query (1, 0, 1) has 1/sqrt(2) of its norm in it and
    # points exactly at the gallery work there: distance 1 - 1 * 0.7071 (the raw-space cosine)
    index = _index([[1, 0, 0]], threshold=0.123456, components=[[1, 0, 0], [0, 1, 0]])
    row = index.novelty(np.array([1.0, 0.0, 1.0]))
    assert row == {"novel": True, "score": round(1 - 1 / np.sqrt(2), 4), "threshold": 0.1235,
                   "reason": "far from every known painting", "detector": "gallery"}


def test_gallery_distance_at_the_threshold_is_not_novel_and_no_threshold_never_is():
    e1 = np.array([[1.0, 0.0]])
    assert index_novel(_index([[1, 0]], threshold=0.0), e1) == [False]  # distance exactly 0
    assert index_novel(_index([[1, 0]], threshold=0.0), np.array([[1.0, 0.1]])) == [True]
    uncalibrated = _index([[1, 0]]).novelty(np.array([-1.0, 0.0]))
    assert uncalibrated["novel"] is False and uncalibrated["threshold"] is None and uncalibrated["score"] == 2.0


def index_novel(index, queries) -> list[bool]:
    return index.is_novel(queries).tolist()


def test_nearer_to_a_known_non_painting_by_more_than_the_margin_is_novel():
    # gallery e2, non-paintings e1 (row 0, "architecture") and e3 (row 1, no label):
    # the query e1 is 1.0 from the non-painting and 0.0 from the paintings
    gallery, negatives = [[0, 1, 0]], [[1, 0, 0], [0, 0, 1]]
    row = _index(gallery, threshold=2.0, margin=0.5, negatives=negatives, labels=["architecture"]).novelty(np.array([1.0, 0, 0]))
    assert row["novel"] is True and row["reason"] == "closer to a known non-painting (architecture) than to any painting"
    unnamed = _index(gallery, threshold=2.0, margin=0.5, negatives=negatives, labels=["architecture"]).novelty(np.array([0, 0, 1.0]))
    assert unnamed["reason"] == "closer to a known non-painting than to any painting"
    # exactly the margin (1.0 = 0.0 + 1.0) is not enough
    at = _index(gallery, threshold=2.0, margin=1.0, negatives=negatives, labels=["architecture"]).novelty(np.array([1.0, 0, 0]))
    assert at["novel"] is False and at["reason"] is None


def test_references_removed_after_calibration_leave_the_distance_rule():
    # an index calibrated with non-painting references whose references are gone (margin but
    # no negatives): judged by distance alone, never by references it does not have
    index = _index([[0, 1, 0]], threshold=0.5, margin=0.5)
    assert index_novel(index, np.array([[0, 1.0, 0], [1.0, 0, 0]])) == [False, True]
    assert index.novelty(np.array([1.0, 0, 0]))["reason"] == "far from every known painting"


def test_the_gallery_answers_for_novelty_unless_only_the_heads_call_it_novel():
    # heads' score x0^2 / 4 (threshold 4); the gallery: e1 and e1 turned by 10 degrees, novel
    # beyond 0.1. Typical and both-novel pictures get the gallery's answer; the heads' own
    # answer only replaces it when they alone call the picture novel.
    angle = np.deg2rad(10)
    index = _index([[1, 0], [np.cos(angle), np.sin(angle)]], threshold=0.1)
    predictor = Predictor(Bundle(_heads(), spec=None), index=index)
    typical, both, heads_only = predictor.predictions_from_features(np.array([[1.0, 0.0], [-5.0, 0.0], [5.0, 0.0]]))
    assert (typical.novelty.detector, typical.novelty.novel, typical.novelty.threshold) == ("gallery", False, 0.1)
    assert (both.novelty.detector, both.novelty.reason) == ("gallery", "far from every known painting")
    assert (heads_only.novelty.detector, heads_only.novelty.score) == ("heads", 6.25)
    assert [p.verdict["type"] for p in (typical, both, heads_only)] == ["a", "unknown", "unknown"]
