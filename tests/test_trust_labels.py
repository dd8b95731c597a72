"""Gallery labels (vasari.gallery.labels): title, artist, year from what a catalog id says."""

from __future__ import annotations

from vasari.gallery.labels import display_labels, hit_text, title_case


def test_wikiart_slug_gives_artist_and_title_case_title():
    row = {"artwork_id": "wikiart:Baroque/adriaen-brouwer_father-s-of-unpleasant-duties-1631",
           "title": "Father's of unpleasant duties", "artist": "", "year": "1631"}
    assert display_labels(row) == {"title": "Father's of Unpleasant Duties", "artist": "Adriaen Brouwer", "year": 1631}


def test_wikiart_slug_alone_gives_title_and_year():
    assert display_labels({"artwork_id": "wikiart:Realism/ivan-shishkin_forest-1870"}) == {
        "title": "Forest", "artist": "Ivan Shishkin", "year": 1870}


def test_kaggle_id_names_the_artist_but_no_title_is_invented():
    assert display_labels({"artwork_id": "artists7:Claude_Monet_156"}) == {"title": None, "artist": "Claude Monet", "year": None}
    assert display_labels({"artwork_id": "artists7:L._S._Lowry_97"})["artist"] == "L. S. Lowry"


def test_row_values_win_over_the_id():
    row = {"artwork_id": "artists7:Claude_Monet_156", "artist": "Claude Monet", "title": "Water Lilies", "year": 1906}
    assert display_labels(row) == {"title": "Water Lilies", "artist": "Claude Monet", "year": 1906}


def test_title_case_keeps_small_words_and_existing_capitals():
    assert title_case("view of the sea at night") == "View of the Sea at Night"
    assert title_case("portrait of Jan van Eyck") == "Portrait of Jan van Eyck"


def test_hit_text_never_shows_an_id():
    assert hit_text({"artwork_id": "louvre:x", "title": None, "artist": None, "year": None}) == "untitled work"
    assert hit_text({"artwork_id": "aic:95993", "title": "Pond in the Woods", "artist": None, "year": 1862}) == "Pond in the Woods (1862)"
    assert hit_text({"artist": "Claude Monet", "title": None, "year": None}) == "Claude Monet"
