"""Free text -> labels: dates, artists, vocabularies (on the real strings of ../shared/data)."""

from __future__ import annotations

import csv

import pytest

from vasari.core import labels
from vasari.catalog.normalize import (
    artist_key,
    display_artist,
    fix_text,
    has_date,
    map_label,
    map_school,
    map_style,
    map_timeframe,
    map_type,
    parse_artist,
    parse_date,
    parse_year,
    parse_year_range,
    slug_to_name,
    slug_to_title,
    wga_author_name,
)

# ----------------------------------------------------------------------------- dates


@pytest.mark.parametrize(
    "text, year",
    [
        ("c. 1270", 1270),
        ("1360/70", 1365),
        ("1550-52", 1551),
        ("1630s", 1635),
        ("before 1500", 1500),
        ("Date unknown", None),
        ("1650-1655", 1653),
        ("c. 1600-10", 1605),
        ("17th century", 1651),
        ("XVII century", 1651),
        ("second half of XVII century", 1676),
        ("Late 1630s", 1638),
        ("1855, reworked 1857–59", 1855),
        ("c. 1580–c. 1600", 1590),
        ("c. 1745–50", 1748),
        ("After 1870", 1870),
        ("1375/1400", 1388),
        ("c. 1860/70", 1865),
        ("1598/1604", 1601),
        ("1680s", 1685),
        ("early 16th century", 1518),
        ("first quarter of the 16th century", 1513),
        ("end of the 15th century", 1484),
        ("mid-1630s", 1635),
        ("early 1630s", 1632),
        ("1742/43", 1743),
        ("1747/1748", 1748),
        ("", None),
        (None, None),
        ("n.d.", None),
        ("-", None),
        ("undated", None),
    ],
)
def test_parse_year_real_strings(text, year):
    assert parse_year(text) == year


def test_parse_year_range_bounds():
    assert parse_year_range("1550-52") == (1550, 1552)
    assert parse_year_range("1360/70") == (1360, 1370)
    assert parse_year_range("1630s") == (1630, 1639)
    assert parse_year_range("17th century") == (1601, 1700)
    assert parse_year_range("16th-17th century") == (1501, 1700)
    assert parse_year_range("second half of XVII century") == (1651, 1700)
    assert parse_year_range("1650-1") == (1650, 1651)
    # a second number that cannot end the range is ignored
    assert parse_year_range("1650-1620") == (1650, 1650)


def test_parse_date_gives_timeframe_only_for_narrow_ranges():
    assert parse_date("1550-52") == (1551, "1551-1600")
    assert parse_date("c. 1270") == (1270, None)  # before 1401
    assert parse_date("17th century") == (1651, None)  # spans two bins: no timeframe
    assert parse_date("1600-50") == (1625, "1601-1650")
    assert parse_date("Date unknown") == (None, None)


def test_has_date():
    assert has_date("c. 1270")
    assert not has_date("Date unknown")
    assert not has_date("")
    assert not has_date(None)


def test_timeframe_of_unchanged():
    assert labels.timeframe_of(1401) == "1401-1450"
    assert labels.timeframe_of(1450) == "1401-1450"
    assert labels.timeframe_of(1900) == "1851-1900"
    assert labels.timeframe_of(1400) is None
    assert labels.timeframe_of(None) is None


# ----------------------------------------------------------------------------- artists


@pytest.mark.parametrize(
    "raw, name, school",
    [
        ("Allegretto Nuzi (Italian, 1346–1373)", "Allegretto Nuzi", "Italian"),
        ("ACHENBACH, Oswald", "Oswald Achenbach", None),
        ("After Jean Baptiste Joseph Pater (French, 1695-1736)", None, "French"),
        ("Italian; Tuscany", None, "Italian"),
        ("UNKNOWN MASTER, Portuguese", None, "Portuguese"),
        ("MASTER of the Aix Annunciation", "Master of the Aix Annunciation", None),
        ("Workshop of Diego Velázquez (Spanish, 1599–1660)", None, "Spanish"),
        ("Follower of Peter Paul Rubens (Flemish, 1577–1640)", None, "Flemish"),
        ("Circle of Rembrandt (Dutch, 1606-1669)", None, "Dutch"),
        ("Attributed to Peter Paul Rubens (Flemish, 1577–1640)", None, "Flemish"),
        ("Copy after Titian", None, None),
        ("Style of Hubert Robert (French, 1733–1808)", None, "French"),
        ("Vergós Workshop (Spanish, documented 1439–1503)", None, "Spanish"),
        ("Lippi-Pesellino Imitator (Italian, active c. 1450-1500)", None, "Italian"),
        ("Artist unknown (French, 19th century)", None, "French"),
        ("Netherlandish or German; possibly Rhenish", None, None),
        ("Italian or Spanish", None, None),
        ("Bolognese", None, "Italian"),
        ("Northern Spanish", None, "Spanish"),
        ("North Netherlandish", None, "Netherlandish"),
        ("South German; possibly Ulm", None, "German"),
        ("Monogrammist PG (Germany, active c. 1525–50)", "Monogrammist PG", "German"),
        ("Master Alejo (active Spain, c. 1485–1516)", "Master Alejo", "Spanish"),
        ("El Greco (Doménikos Theotokópoulos; Greek, active in Spain, 1541–1614)", "El Greco", "Greek"),
        ("Fra Bartolommeo (Baccio della Porta; Italian, 1472-1517)", "Fra Bartolommeo", "Italian"),
        ("Jean Hey (Master of Moulins; Netherlandish, active in France, c. 1480-c.1504)", "Jean Hey", "Netherlandish"),
        ("Joos de Momper, II (Flemish, 1564-1635)", "Joos de Momper II", "Flemish"),
        ("Félix Edouard Vallotton (French, born Switzerland, 1865–1925)", "Félix Vallotton", "French"),
        ("Dante Gabriel Rossetti (English, 1828–1882)", "Dante Gabriel Rossetti", "English"),
        ("Jean-Baptiste-Camille Corot (French, 1796–1875)", "Camille Corot", "French"),
        ("ARCHITECT, French", None, "French"),
        ("UNKNOWN ICON PAINTER, Greek", None, "Greek"),
        ("Titian", "Titian", None),  # a name ending in -ian is not a nationality
        ("Canaletto", "Canaletto", None),
        ("Byzantine", None, None),  # a nationality outside Vasari's schools
    ],
)
def test_parse_artist_real_strings(raw, name, school):
    parsed = parse_artist(raw)
    assert parsed.name == name
    assert parsed.school == school


def test_attributions_keep_the_named_artist_aside():
    parsed = parse_artist("After Jean Baptiste Joseph Pater (French, 1695-1736)")
    assert parsed.attribution == "after"
    assert parsed.attributed_to == "Jean Baptiste Joseph Pater"
    assert parse_artist("Workshop of Adriaen Isenbrant (Netherlandish, c. 1485–1551)").attribution == "workshop of"
    assert parse_artist("Circle of Rembrandt").attribution == "circle of"
    assert parse_artist("Rubens?").name is None


def test_several_hands_are_not_one_artist():
    raw = (
        "Jacob Cornelisz. van Oostsanen (Netherlandish, c. 1470/75–by 1533)\n"
        "or Workshop of Jacob Cornelisz. van Oostsanen (Netherlandish, c. 1470/75–by 1533)"
    )
    parsed = parse_artist(raw)
    assert parsed.name is None
    assert parsed.school == "Netherlandish"


def test_anonymous_is_flagged():
    assert parse_artist("UNKNOWN MASTER, Portuguese").anonymous
    assert parse_artist("Italian; Tuscany").anonymous
    assert parse_artist("Artist unknown (French, 19th century)").anonymous


@pytest.mark.parametrize(
    "author, name",
    [
        ("ACHENBACH, Oswald", "Oswald Achenbach"),
        ("GOGH, Vincent van", "Vincent van Gogh"),
        ("ABBATE, Niccolò dell'", "Niccolò dell'Abbate"),
        ("ARTHOIS, Jacques d'", "Jacques d'Arthois"),
        ("OOST, Jacob van, the Elder", "Jacob van Oost the Elder"),
        ("EKELS, Jan the Elder", "Jan Ekels the Elder"),
        ("HOLBEIN, Hans the Younger", "Hans Holbein the Younger"),
        ("JORDAENS, Hans III", "Hans Jordaens III"),
        ("LA TOUR, Georges de", "Georges de La Tour"),
        ("DIAZ DE LA PEÑA, Narcisse Virgile", "Narcisse Virgile Diaz de la Peña"),
        ("MASOLINO da Panicale", "Masolino da Panicale"),
        ("ANDREA DEL SARTO", "Andrea del Sarto"),
        ("NEROCCIO DE' LANDI", "Neroccio de' Landi"),
        ("FRANCESCO D'ANTONIO DI BARTOLOMMEO", "Francesco d'Antonio di Bartolommeo"),
        ("ALMA-TADEMA, Lawrence", "Lawrence Alma-Tadema"),
        ("ANQUETIN. Louis", "Louis Anquetin"),
        ("ASCH, Pieter Jansz.van", "Pieter Jansz. van Asch"),
        ("ANGELICO, Fra", "Fra Angelico"),
        ("CLAUDE LORRAIN", "Claude Lorrain"),
        ("MARKÓ, Károly the Elder", "Károly Markó the Elder"),
    ],
)
def test_wga_author_names(author, name):
    assert wga_author_name(author) == name
    assert parse_artist(author, wga=True).name == display_artist(name)


@pytest.mark.parametrize(
    "raw, name",
    [
        ("REMBRANDT Harmenszoon van Rijn", "Rembrandt"),
        ("GRECO, El", "El Greco"),
        ("VELÁZQUEZ, Diego Rodriguez de Silva y", "Diego Velázquez"),
        ("GOYA Y LUCIENTES, Francisco de", "Francisco Goya"),
        ("DYCK, Sir Anthony van", "Anthony van Dyck"),
        ("REYNOLDS, Sir Joshua", "Joshua Reynolds"),
        ("TURNER, Joseph Mallord William", "J. M. W. Turner"),
        ("RUISDAEL, Jacob Isaackszon van", "Jacob van Ruisdael"),
        ("AIVAZOVSKY, Ivan Konstantinovich", "Ivan Aivazovsky"),
        ("TIZIANO Vecellio", "Titian"),
    ],
)
def test_famous_names_meet_across_sources(raw, name):
    assert parse_artist(raw, wga=True).name == name


def test_rembrandt_from_three_sources_is_one_label():
    from_artists7 = display_artist("Rembrandt")
    from_wikiart = display_artist(slug_to_name("rembrandt"))
    from_wga = parse_artist("REMBRANDT Harmenszoon van Rijn", wga=True).name
    assert from_artists7 == from_wikiart == from_wga == "Rembrandt"
    assert display_artist(slug_to_name("claude-monet")) == parse_artist("MONET, Claude").name == "Claude Monet"
    assert display_artist(slug_to_name("pierre-auguste-renoir")) == "Pierre-Auguste Renoir"
    assert display_artist(slug_to_name("diego-velazquez")) == "Diego Velázquez"
    assert display_artist("William Turner") == display_artist("J. M. W. Turner") == "J. M. W. Turner"


def test_slugs():
    assert slug_to_name("rembrandt") == "Rembrandt"
    assert slug_to_name("claude-monet") == "Claude Monet"
    assert slug_to_name("t.-c.-steele") == "T. C. Steele"
    assert slug_to_name("david-teniers-the-younger") == "David Teniers the Younger"
    assert slug_to_name("adriaen-van-de-velde") == "Adriaen van de Velde"
    assert slug_to_title("father-s-of-unpleasant-duties") == "Father's of unpleasant duties"


def test_artist_key_ignores_accents_and_hyphens():
    assert artist_key("Édouard Manet") == artist_key("edouard-manet") == "edouard manet"
    assert artist_key("Pierre-Auguste Renoir") == artist_key("Pierre Auguste Renoir")


def test_fix_text_repairs_broken_accents():
    assert fix_text("CÃ©zanne") == "Cézanne"
    assert fix_text("caf%C3%A9") == "café"
    assert fix_text("  a   b ") == "a b"
    assert fix_text("Ce\u0301zanne") == "Cézanne"  # decomposed -> composed
    assert fix_text("Albrecht_Du╠êrer") == "Albrecht_Dürer"  # Kaggle's folder name, UTF-8 read as cp437


# ----------------------------------------------------------------------------- vocabularies


@pytest.mark.parametrize(
    "raw, mapped",
    [
        ("religious_painting", "religious"),
        ("still_life", "still-life"),
        ("genre_painting", "genre"),
        ("portrait", "portrait"),
        ("landscape", "landscape"),
        ("cityscape", "landscape"),
        ("mythological_painting", "mythological"),
        ("history_painting", "historical"),
        ("Naturmort", "still-life"),
        ("still-life", "still-life"),
        ("religious", "religious"),
        ("interior", "interior"),
        ("sketch_and_study", None),
        ("nude_painting", None),
        ("illustration", None),
        ("other", None),
        ("study", None),
        ("", None),
        (None, None),
    ],
)
def test_map_type(raw, mapped):
    assert map_type(raw) == mapped


@pytest.mark.parametrize(
    "raw, mapped",
    [
        ("British", "English"),
        ("English", "English"),
        ("Dutch", "Dutch"),
        ("Flemish", "Flemish"),
        ("French", "French"),
        ("German", "German"),
        ("Italian", "Italian"),
        ("Spanish", "Spanish"),
        ("Netherlandish", "Netherlandish"),
        ("Scottish", "Scottish"),
        ("American", "American"),
        ("Germany", "German"),
        ("Italian; Tuscany", "Italian"),
        ("Venetian", "Italian"),
        ("Other", None),
        ("Byzantine", None),
        ("Italian or Spanish", None),
        ("Mexican", None),
    ],
)
def test_map_school(raw, mapped):
    assert map_school(raw) == mapped


@pytest.mark.parametrize(
    "raw, mapped",
    [
        ("Baroque", "Baroque"),
        ("Rococo", "Rococo"),
        ("Impressionism", "Impressionism"),
        ("Pointillism", "Pointillism"),
        ("Post_Impressionism", "Post-Impressionism"),
        ("Mannerism_Late_Renaissance", "Mannerism"),
        ("Early_Renaissance", "Early Renaissance"),
        ("Romanticism", "Romanticism"),
        ("Realism", "Realism"),
        ("Modernism", None),
        ("Realism,Impressionism", None),
        ("Cubism", None),
    ],
)
def test_map_style(raw, mapped):
    assert map_style(raw) == mapped


def test_map_timeframe_and_label():
    assert map_timeframe("1601-1650") == "1601-1650"
    assert map_timeframe("1601 – 1650") == "1601-1650"
    assert map_timeframe("1351-1400") is None
    assert map_label("type", "still_life") == "still-life"
    assert map_label("artist", "ACHENBACH, Oswald") == "Oswald Achenbach"
    with pytest.raises(KeyError):
        map_label("colour", "red")


def test_every_table_value_is_in_its_vocabulary():
    assert set(labels.TYPE_MAP.values()) <= set(labels.TYPES)
    assert set(labels.SCHOOL_MAP.values()) <= set(labels.SCHOOLS)
    assert set(labels.STYLE_MAP.values()) <= set(labels.STYLES)
    assert set(labels.VOCABULARIES) == set(labels.TASKS)


# ----------------------------------------------------------------------------- real files


def test_real_wga_vocabulary_is_covered(shared_data):
    """Every WGA TYPE and SCHOOL in the extract maps, except the catch-alls."""
    with open(shared_data / "catalogs" / "wga_paintings.csv", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    types = {r["TYPE"] for r in rows}
    schools = {r["SCHOOL"] for r in rows}
    assert {t for t in types if map_type(t) is None} == {"other", "study"}
    assert {s for s in schools if map_school(s) is None} == {"Other"}
    assert {r["TIMEFRAME"] for r in rows} <= set(labels.TIMEFRAMES)


def test_real_wga_authors_all_parse(shared_data):
    """Every AUTHOR of the 9,423-row extract gives a name, except anonymous hands."""
    with open(shared_data / "catalogs" / "wga_paintings.csv", encoding="utf-8") as f:
        authors = {r["AUTHOR"] for r in csv.DictReader(f)}
    unnamed = {a for a in authors if parse_artist(a, wga=True).name is None}
    assert all(a.upper().startswith(("UNKNOWN", "MASTER OF THE FONTAINEBLEAU")) for a in unnamed), unnamed
    assert len(authors) - len(unnamed) >= 1800


def test_real_aic_strings(shared_data):
    with open(shared_data / "aic" / "metadata.csv", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    dated = [r for r in rows if has_date(r["date"])]
    years = [parse_year(r["date"]) for r in dated]
    assert len(dated) >= 190
    assert sum(y is not None for y in years) == len(dated)  # every real date parses
    assert all(1200 <= y <= 1910 for y in years if y is not None)
    parsed = [parse_artist(r["artist"]) for r in rows]
    assert sum(p.school is not None for p in parsed) >= 195
    assert sum(p.name is not None for p in parsed) >= 145
