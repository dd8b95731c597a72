"""The one-answer rule (vasari.inference.consistency, vasari.heads.trust.joint_decode) on
hand-built prediction objects whose consistent answer is known."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest

from vasari.heads.trust import contradiction_flags, joint_decode
from vasari.inference.consistency import load_artist_spans, make_consistent
from vasari.inference.schema import ArtistAffinity, LabelScore, Novelty, Prediction, YearEstimate

STYLES = ["Baroque", "Rococo", "Romanticism", "Impressionism"]


def _heads():
    head = SimpleNamespace(classes=STYLES, threshold=0.5)
    return SimpleNamespace(classifiers={"style": head})


def _pred(timeframe="unknown", year=(1659, 1600, 1720), artist="unknown", novelty=None) -> Prediction:
    return Prediction(
        image="x", verdict={"timeframe": timeframe, "style": "Baroque", "artist": artist},
        predictions={"style": [LabelScore(label="Baroque", score=0.7)],
                     "timeframe": [LabelScore(label="1451-1500", score=0.6)],
                     "artist": [LabelScore(label="Rubens", score=0.9)]},
        year=YearEstimate(**dict(zip(("estimate", "low", "high"), year))),
        affinity=[ArtistAffinity(artist="Rubens", score=0.7, similarity=0.5, evidence=[])],
        novelty=novelty)


def test_period_clips_the_year_and_excludes_styles_outside_it():
    # "Most likely Baroque, painted 1451-1500, About 1659" (the example): Baroque (1580-1760)
    # does not meet 1451-1500, and no other style does: style unknown, year inside the period.
    pred = _pred(timeframe="1451-1500")
    make_consistent([pred], {"style": np.array([[0.7, 0.1, 0.1, 0.1]])}, _heads(), {})
    assert pred.verdict["style"] == "unknown"
    assert pred.year.estimate == 1500
    assert pred.year.low <= 1500 <= pred.year.high


def test_style_restricted_to_the_period_without_renormalising():
    # 1801-1850: Baroque and Rococo end before it, Romanticism meets it, Impressionism (1860-) does not.
    pred = _pred(timeframe="1801-1850", year=(1790, 1750, 1830))
    make_consistent([pred], {"style": np.array([[0.1, 0.2, 0.6, 0.1]])}, _heads(), {})
    assert pred.verdict["style"] == "Romanticism"
    assert pred.predictions["style"][0].label == "Romanticism"
    assert pred.predictions["style"][0].score == pytest.approx(0.6)
    assert pred.year.estimate == 1801
    # Baroque was the head's top style, but it ended in 1760: Romanticism's .2 is under the threshold
    unsure = _pred(timeframe="1801-1850", year=(1790, 1750, 1830))
    make_consistent([unsure], {"style": np.array([[0.7, 0.05, 0.2, 0.05]])}, _heads(), {})
    assert unsure.verdict["style"] == "unknown"
    assert [r.label for r in unsure.predictions["style"]] == ["Romanticism"]


def test_without_a_period_the_year_interval_restricts_styles_and_the_year_moves_into_the_span():
    # interval 1740-1790 meets Baroque (to 1760), Rococo, Romanticism (from 1770), not
    # Impressionism; Rococo (.6 > .5) wins and the estimate 1695 moves into Rococo's span.
    answer = joint_decode(np.array([0.2, 0.6, 0.1, 0.1]), STYLES, 0.5, None, (1695, 1740, 1790))
    assert answer.style == "Rococo"
    assert answer.year == 1700
    assert answer.style_proba[3] == 0.0


def test_the_decoded_answer_has_no_contradiction():
    rng = np.random.default_rng(0)
    periods = ["1451-1500", "1601-1650", "1751-1800", "1851-1900", None]
    styles, years, shown = [], [], []
    for _ in range(200):
        p = rng.dirichlet(np.ones(4))
        est = float(rng.uniform(1400, 1900))
        period = periods[rng.integers(len(periods))]
        a = joint_decode(p, STYLES, 0.3, period, (est, est - 40, est + 40))
        styles.append(a.style)
        years.append(a.year)
        shown.append(period)
    flags = contradiction_flags(shown, styles, [None] * 200, np.array(years), {})
    assert not flags["any"].any()


def test_artist_outside_active_years_becomes_unknown():
    pred = _pred(timeframe="1401-1450", year=(1425, 1400, 1450), artist="Peter Paul Rubens")
    keep = _pred(timeframe="1601-1650", year=(1625, 1600, 1650), artist="Peter Paul Rubens")
    spans = {"Peter Paul Rubens": (1592, 1640)}
    make_consistent([pred, keep], {"style": np.full((2, 4), 0.25)}, _heads(), spans)
    assert pred.verdict["artist"] == "unknown"
    assert keep.verdict["artist"] == "Peter Paul Rubens"


def test_a_novel_picture_makes_no_claims():
    gallery = Novelty(score=0.61, threshold=0.4, novel=True, reason="far from every known painting", detector="gallery")
    pred = _pred(novelty=gallery)
    make_consistent([pred], {"style": np.array([[0.7, 0.1, 0.1, 0.1]])}, _heads(), {})
    assert set(pred.verdict.values()) == {"unknown"}
    assert pred.year is None and pred.affinity == []
    assert [(r.label, r.score) for r in pred.predictions["style"]] == [("Baroque", 0.7)]  # best guesses stay (top-k)
    dumped = pred.model_dump(mode="json")
    assert "year" not in dumped and dumped["affinity"] == []  # what the CLI, the API and the page receive
    assert dumped["novelty"] == {"novel": True, "score": 0.61, "threshold": 0.4, "detector": "gallery",
                                 "reason": "far from every known painting"}


def test_a_painting_keeps_its_claims():
    pred = _pred(timeframe="1601-1650", year=(1625, 1600, 1650), artist="Peter Paul Rubens",
                 novelty=Novelty(score=0.1, threshold=0.4, novel=False, reason=None, detector="gallery"))
    make_consistent([pred], {"style": np.array([[0.7, 0.1, 0.1, 0.1]])}, _heads(), {"Peter Paul Rubens": (1592, 1640)})
    assert pred.verdict == {"timeframe": "1601-1650", "style": "Baroque", "artist": "Peter Paul Rubens"}
    assert pred.year.estimate == 1625 and len(pred.affinity) == 1


def test_artist_spans_come_from_the_bundle_file_else_the_gallery(tmp_path):
    index = SimpleNamespace(metadata=[{"artist": "A", "year": y} for y in (1600, 1610, 1620)]
                            + [{"artist": "B", "year": 1700}, {"artist": "", "year": 1500}])
    assert load_artist_spans(tmp_path, index) == {"A": (1590, 1630)}
    (tmp_path / "artist_spans.json").write_text('{"C": [1500, 1550]}')
    assert load_artist_spans(tmp_path, index) == {"C": (1500, 1550)}
    assert load_artist_spans(None, None) == {}


def test_training_records_active_years_in_the_card_and_the_predictor_reads_them():
    from vasari.catalog import Artwork
    from vasari.inference.consistency import spans_from_artworks

    arts = [Artwork(artwork_id=str(i), source="s", artist="A", year=y) for i, y in enumerate((1600, 1620, 1640))]
    arts.append(Artwork(artwork_id="x", source="s", artist="B", year=1700))  # one dated work: no span
    card = {"artist_spans": spans_from_artworks(arts)}
    assert card["artist_spans"] == {"A": [1590, 1650]}
    assert load_artist_spans(None, None, card) == {"A": (1590, 1650)}


def test_catalog_life_years_set_the_span_and_survive_a_dataset_folder(tmp_path):
    """Issue #14: artists to their active years as the catalogs give them (Kaggle's years,
    WGA's BORN-DIED, in ``extra``): born + 15 to death wins over the dated works; the dataset
    folder keeps them (``dataset.json`` ``artist_life_years``), so a bundle trained from it
    records the same span; an artist no catalog dates keeps the dated-works rule."""
    from vasari.catalog import Artwork
    from vasari.catalog.normalize import born_died
    from vasari.dataset import Dataset, load_dataset, save_dataset
    from vasari.dataset.lives import artist_life_years
    from vasari.inference.consistency import spans_from_artworks

    assert born_died("(b. 1606, Leiden, d. 1669, Amsterdam)") == (1606, 1669)
    assert born_died("(b. ca. 1525, Breda, d. after 1569, Brussels)") == (1525, 1569)
    assert born_died("(active 1620-1650 in Haarlem)") == (None, None)
    arts = [Artwork(artwork_id=f"r{i}", source="s", artist="Rembrandt", year=y, extra={"born": "1606", "died": "1669"})
            for i, y in enumerate((1630, 1640, 1650))]
    arts += [Artwork(artwork_id=f"a{i}", source="s", artist="A", year=y) for i, y in enumerate((1600, 1620, 1640))]
    arts.append(Artwork(artwork_id="bad", source="s", artist="B", year=1700, extra={"born": "1700", "died": "1650"}))
    assert spans_from_artworks(arts) == {"A": [1590, 1650], "Rembrandt": [1621, 1669]}
    assert artist_life_years(arts) == {"Rembrandt": [1606, 1669]}
    info = {"artist_life_years": artist_life_years(arts)}
    save_dataset(Dataset([Artwork(a.artwork_id, a.source, artist=a.artist, year=a.year, type="portrait") for a in arts],
                         {a.artwork_id: "train" for a in arts}, info=info), tmp_path / "ds")
    loaded = load_dataset(tmp_path / "ds")
    assert spans_from_artworks(loaded.artworks) == {"A": [1590, 1650], "Rembrandt": [1621, 1669]}
