"""Catalog readers on generated look-alike files and on the real catalogs in ../shared/data."""

from __future__ import annotations

import collections
import os
from pathlib import Path

import pytest
from PIL import Image
from rich.console import Console

from vasari.core import labels
from vasari.catalog import (
    SHARED_SOURCES,
    SOURCES,
    Artwork,
    Catalog,
    CatalogError,
    ParseReport,
    SharedDataMissing,
    harmonize_artists,
    parse_spec,
    parse_wikiart_name,
    read_catalog,
    read_folder,
    read_kaggle,
    read_manifest,
    read_sources,
    read_wga,
    read_wikiart,
    shared_catalogs,
    sniff_kind,
    wga_image_url,
)

# ----------------------------------------------------------------------------- helpers


def jpeg(path: Path, color=(120, 80, 40), size=(8, 6)) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", size, color).save(path, "JPEG")
    return path


def write(path: Path, text: str, encoding: str = "utf-8") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(text.encode(encoding))
    return path


WGA_HEADER = "AUTHOR;BORN-DIED;TITLE;DATE;TECHNIQUE;LOCATION;URL;FORM;TYPE;SCHOOL;TIMEFRAME;FILE"


@pytest.fixture
def wga_latin1(tmp_path: Path) -> Path:
    """A semicolon-separated, Latin-1 WGA catalog with local images for some rows."""
    jpeg(tmp_path / "img" / "duerer.jpg")
    jpeg(tmp_path / "img" / "abbate.jpg")
    jpeg(tmp_path / "img" / "cathedral.jpg")
    rows = [
        WGA_HEADER,
        '"DÜRER, Albrecht";(b. 1471, Nürnberg, d. 1528, Nürnberg);Self-Portrait;1500;Oil on panel;"Alte Pinakothek, Munich";'
        "https://www.wga.hu/html/d/durer/1/02/1self28.html;painting;portrait;German;1451-1500;img/duerer.jpg",
        '"ABBATE, Niccolò dell\'";;Stag Hunt;1550-52;Oil on canvas;;;painting;landscape;Italian;1501-1550;img/abbate.jpg',
        '"ARCHITECT, French";;Cathedral;;;;;architecture;religious;French;1151-1200;img/cathedral.jpg',
        '"UNKNOWN MASTER, Portuguese";;Man with a Glass of Wine;c. 1460;Wood;;'
        "https://www.wga.hu/html/m/master/zunk_sp/man_wine.html;painting;portrait;;;",
        '"ACHENBACH, Oswald";;Fireworks in Naples;1875;;;;painting;other;Other;1851-1900;img/missing.jpg',
    ]
    return write(tmp_path / "catalog.csv", "\n".join(rows) + "\n", encoding="latin-1")


# ----------------------------------------------------------------------------- WGA


def test_wga_image_url():
    assert (
        wga_image_url("https://www.wga.hu/html/a/aachen/allegory.html")
        == "https://www.wga.hu/art/a/aachen/allegory.jpg"
    )
    assert wga_image_url("http://www.wga.hu/art/a/abbate/deerhunt.jpg") == "http://www.wga.hu/art/a/abbate/deerhunt.jpg"
    assert wga_image_url("") is None
    assert wga_image_url("https://example.org/page") is None


def test_wga_semicolon_latin1(wga_latin1: Path):
    cat = read_wga(wga_latin1)
    assert cat.source == wga_latin1.parent.name  # "catalog.csv" is generic: the folder names it
    by_title = {a.title: a for a in cat.artworks}
    assert set(by_title) == {"Self-Portrait", "Stag Hunt", "Man with a Glass of Wine"}
    durer = by_title["Self-Portrait"]
    assert durer.artist == "Albrecht Dürer"
    assert durer.year == 1500 and durer.timeframe == "1451-1500"
    assert durer.school == "German" and durer.type == "portrait"
    assert durer.url == "https://www.wga.hu/art/d/durer/1/02/1self28.jpg"
    assert durer.image == str((wga_latin1.parent / "img" / "duerer.jpg").resolve())
    assert durer.extra["form"] == "painting"
    assert durer.extra["born_died"].startswith("(b. 1471, Nürnberg")
    assert (durer.extra["born"], durer.extra["died"]) == ("1471", "1528")  # issue #14: the artist's life years
    assert durer.artwork_id == f"{cat.source}:duerer"
    abbate = by_title["Stag Hunt"]
    assert abbate.artist == "Niccolò dell'Abbate" and abbate.year == 1551 and abbate.url is None
    unknown = by_title["Man with a Glass of Wine"]
    assert unknown.artist is None and unknown.school == "Portuguese" and unknown.image is None
    assert unknown.url == "https://www.wga.hu/art/m/master/zunk_sp/man_wine.jpg"
    assert unknown.artwork_id == f"{cat.source}:m/master/zunk_sp/man_wine"
    rep = cat.report
    assert rep.rows == 5
    assert rep.skipped == collections.Counter({"FORM architecture": 1, "image file missing": 1})
    assert rep.withheld[("artist", "anonymous")] == 1
    assert rep.fields["artist"] == (2, 3)
    assert rep.fields["year"] == (3, 3)


def test_wga_form_options(wga_latin1: Path):
    everything = read_wga(wga_latin1, form="all")
    assert len(everything) == 4
    negatives = read_wga(wga_latin1, form="not-painting")
    assert [a.extra["form"] for a in negatives.artworks] == ["architecture"]
    cathedral = negatives.artworks[0]
    assert cathedral.artist is None and cathedral.school == "French"
    assert cathedral.timeframe is None and negatives.report.withheld[("timeframe", "outside 1401-1900")] == 1
    assert len(read_wga(wga_latin1, paintings_only=False)) == 4
    assert len(read_catalog(f"wga:{wga_latin1}?form=all")) == 4


def test_wga_unmapped_labels_are_counted(wga_latin1: Path, tmp_path: Path):
    jpeg(tmp_path / "img" / "missing.jpg")  # now the Achenbach row has its image
    cat = read_wga(wga_latin1)
    achenbach = next(a for a in cat.artworks if a.title == "Fireworks in Naples")
    assert achenbach.type is None and achenbach.school is None
    assert cat.report.unmapped[("type", "other")] == 1
    assert cat.report.unmapped[("school", "Other")] == 1


def test_wga_extract_without_images(tmp_path: Path):
    path = write(
        tmp_path / "wga_paintings.csv",
        "jpg_link,AUTHOR,TITLE,TECHNIQUE,LOCATION,TYPE,SCHOOL,TIMEFRAME\n"
        "http://www.wga.hu/art/m/master/aix_annu/jeremiax.jpg,MASTER of the Aix Annunciation,The Prophet Jeremiah,"
        'Oil on panel,"Musées Royaux des Beaux-Arts, Brussels",religious,French,1401-1450\n'
        "http://www.wga.hu/art/r/rembrand/self.jpg,REMBRANDT Harmenszoon van Rijn,Self-Portrait,Oil,,portrait,Dutch,1651-1700\n",
    )
    cat = read_catalog(path)  # sniffed as WGA
    assert cat.source == "wga_paintings"
    first, second = cat.artworks
    assert first.image is None and first.url.endswith("/jeremiax.jpg")
    assert first.artist == "Master of the Aix Annunciation" and first.type == "religious"
    assert first.timeframe == "1401-1450" and first.year is None
    assert first.artwork_id == "wga_paintings:m/master/aix_annu/jeremiax"
    assert second.artist == "Rembrandt"


def test_wga_school_from_author(tmp_path: Path):
    jpeg(tmp_path / "a.jpg")
    jpeg(tmp_path / "b.jpg")
    jpeg(tmp_path / "c.jpg")
    lookup = write(
        tmp_path / "extract.csv", 'AUTHOR,TITLE,SCHOOL,jpg_link\n"HALS, Frans",X,Dutch,http://x/art/h/a.jpg\n'
    )
    path = write(
        tmp_path / "catalog.csv",
        "AUTHOR,TITLE,SCHOOL,FILE\n"
        '"GOYEN, Jan van",One,Dutch,a.jpg\n"GOYEN, Jan van",Two,,b.jpg\n"HALS, Frans",Three,,c.jpg\n',
    )
    cat = read_wga(path, schools_from=lookup)
    assert [a.school for a in cat.artworks] == ["Dutch", "Dutch", "Dutch"]
    assert cat.report.fields["school"] == (1, 1)  # only the SCHOOL column counts as given
    assert sum(cat.report.notes.values()) == 2


def test_wga_bad_input(tmp_path: Path):
    with pytest.raises(CatalogError, match=r"missing required column\(s\) AUTHOR.*row 1|row 1.*AUTHOR"):
        read_wga(write(tmp_path / "bad.csv", "ARTIST,TITLE,URL\nx,y,z\n"))
    with pytest.raises(CatalogError, match="empty"):
        read_wga(write(tmp_path / "empty.csv", ""))
    with pytest.raises(CatalogError, match="no rows"):
        read_wga(write(tmp_path / "header.csv", "AUTHOR,TITLE,URL\n"))
    with pytest.raises(CatalogError, match="no image column"):
        read_wga(write(tmp_path / "noimg.csv", "AUTHOR,TITLE\nA,B\n"))
    with pytest.raises(CatalogError, match="no images found"):
        read_wga(write(tmp_path / "nofiles.csv", "AUTHOR,TITLE,FILE\nA,B,nothere.jpg\n"))
    binary = tmp_path / "binary.csv"
    binary.write_bytes(b"\x00\x01\x02" * 100)
    with pytest.raises(CatalogError, match="binary"):
        read_wga(binary)
    err = None
    try:
        read_wga(tmp_path / "absent.csv")
    except CatalogError as exc:
        err = exc
    assert err is not None and "absent.csv" in str(err) and isinstance(err, ValueError)


# ----------------------------------------------------------------------------- Kaggle


@pytest.fixture
def kaggle_dir(tmp_path: Path) -> Path:
    root = tmp_path / "best"
    write(
        root / "artists.csv",
        "id,name,years,genre,nationality,bio,wikipedia,paintings\n"
        "0,William Turner,1775 - 1851,Romanticism,British,,,2\n"
        "1,Rembrandt,1606 - 1669,Baroque,Dutch,,,1\n"
        '2,Edouard Manet,1832 - 1883,"Realism,Impressionism",French,,,1\n'
        "3,Albrecht Dürer,1471 - 1528,Northern Renaissance,German,,,1\n",
    )
    for name, n in [("William_Turner", 2), ("Rembrandt", 1), ("Edouard_Manet", 1), ("Albrecht_Du╠êrer", 1)]:
        for i in range(1, n + 1):
            jpeg(root / "images" / "images" / name / f"{name}_{i}.jpg")
    jpeg(root / "images" / "images" / "Nobody_Known" / "Nobody_Known_1.jpg")
    return root


def test_kaggle_reader(kaggle_dir: Path):
    cat = read_kaggle(kaggle_dir)
    assert cat.source == "best"
    by_id = {a.artwork_id: a for a in cat.artworks}
    turner = by_id["best:William_Turner_1"]
    assert turner.artist == "J. M. W. Turner" and turner.school == "English" and turner.style == "Romanticism"
    assert turner.year is None and turner.extra["born"] == "1775" and turner.extra["died"] == "1851"
    assert by_id["best:Rembrandt_1"].artist == "Rembrandt" and by_id["best:Rembrandt_1"].school == "Dutch"
    manet = by_id["best:Edouard_Manet_1"]
    assert manet.artist == "Édouard Manet" and manet.style is None  # two styles: not one label
    assert by_id["best:Albrecht_Du╠êrer_1"].artist == "Albrecht Dürer"  # the real Kaggle folder's broken name
    assert cat.report.skipped["artist folder not in artists.csv"] == 1
    assert cat.report.unmapped[("style", "Realism,Impressionism")] == 1
    assert cat.report.fields["artist"] == (5, 5)


def test_kaggle_bad_input(tmp_path: Path, kaggle_dir: Path):
    write(tmp_path / "lonely" / "artists.csv", "id,name\n0,X\n")
    with pytest.raises(CatalogError, match="images"):
        read_kaggle(tmp_path / "lonely")
    (tmp_path / "empty" / "images" / "images" / "X").mkdir(parents=True)
    write(tmp_path / "empty" / "artists.csv", "id,name\n0,X\n")
    with pytest.raises(CatalogError, match="no images found"):
        read_kaggle(tmp_path / "empty")
    with pytest.raises(CatalogError, match="artists.csv"):
        read_kaggle(tmp_path / "nothing")


# ----------------------------------------------------------------------------- folder per class


def test_folder_reader(tmp_path: Path):
    root = tmp_path / "museum"
    jpeg(root / "train" / "Naturmort" / "a.jpg")
    jpeg(root / "train" / "portrait" / "b.jpg")
    jpeg(root / "val" / "portrait" / "c.png")
    jpeg(root / "val" / "nude_painting" / "d.jpg")
    (root / "train" / "portrait" / "notes.txt").write_text("not an image")
    cat = read_folder([root / "train", root / "val"], task="type", source="museum")
    labels_by_id = {a.artwork_id: a.type for a in cat.artworks}
    assert labels_by_id == {
        "museum:train/Naturmort/a": "still-life",
        "museum:train/portrait/b": "portrait",
        "museum:val/nude_painting/d": None,
        "museum:val/portrait/c": "portrait",
    }
    assert cat.report.unmapped[("type", "nude_painting")] == 1
    assert cat.report.fields["type"] == (3, 4)
    one = read_catalog(f"folder:{root / 'train'}?task=type")
    assert one.source == "train" and len(one) == 2


def test_folder_other_task_and_errors(tmp_path: Path):
    jpeg(tmp_path / "schools" / "British" / "x.jpg")
    cat = read_folder(tmp_path / "schools", task="school")
    assert cat.artworks[0].school == "English" and cat.artworks[0].type is None
    (tmp_path / "hollow" / "portrait").mkdir(parents=True)
    with pytest.raises(CatalogError, match="no images found"):
        read_folder(tmp_path / "hollow")
    with pytest.raises(CatalogError, match="unknown task"):
        read_folder(tmp_path / "schools", task="colour")
    with pytest.raises(CatalogError, match="not a folder"):
        read_folder(tmp_path / "nowhere")


# ----------------------------------------------------------------------------- manifest


@pytest.fixture
def aic_like(tmp_path: Path) -> Path:
    root = tmp_path / "aic"
    for n in ("109220", "93784", "16389", "1"):
        jpeg(root / "images" / f"{n}.jpg")
    return write(
        root / "metadata.csv",
        "image,title,artist,date,medium,museum\n"
        'images/109220.jpg,Annunciation to the Shepherds,"After Jacobo Bassano (Italian, c. 1510-1592)",c. 1710,Oil,AIC\n'
        'images/93784.jpg,La Fête du Mai,"After Jean Baptiste Joseph Pater (French, 1695-1736)",Date unknown,Oil,AIC\n'
        'images/16389.jpg,Monks at Supper,"Alessandro Magnasco (Italian, 1667–1749)",c. 1720,Oil,AIC\n'
        'images/1.jpg,Madonna,"Italian; Tuscany",c. 1270,Tempera,AIC\n'
        "images/gone.jpg,Lost,Nobody,1600,Oil,AIC\n",
    )


def test_manifest_reader(aic_like: Path):
    cat = read_manifest(aic_like)
    assert cat.source == "aic"
    by_id = {a.artwork_id: a for a in cat.artworks}
    assert set(by_id) == {"aic:109220", "aic:93784", "aic:16389", "aic:1"}
    bassano = by_id["aic:109220"]
    assert bassano.artist is None and bassano.school == "Italian" and bassano.year == 1710
    assert bassano.timeframe == "1701-1750" and bassano.extra["attribution"] == "after"
    assert bassano.extra["medium"] == "Oil"
    magnasco = by_id["aic:16389"]
    assert magnasco.artist == "Alessandro Magnasco" and magnasco.year == 1720
    tuscany = by_id["aic:1"]
    assert tuscany.artist is None and tuscany.school == "Italian" and tuscany.year == 1270 and tuscany.timeframe is None
    rep = cat.report
    assert rep.skipped["image file missing"] == 1
    assert rep.fields["year"] == (3, 3)  # "Date unknown" is not a date
    assert rep.fields["artist"] == (1, 4)
    assert rep.withheld[("artist", "after")] == 2 and rep.withheld[("artist", "anonymous")] == 1
    assert rep.withheld[("timeframe", "outside 1401-1900")] == 1


def test_manifest_column_mapping(tmp_path: Path):
    jpeg(tmp_path / "pics" / "a.jpg")
    path = write(tmp_path / "list.csv", 'file,maker,made,kind\npics/a.jpg,"HALS, Frans",1630s,still_life\n')
    cat = read_catalog(f"manifest:{path}?image=file&artist=maker&date=made&type=kind")
    art = cat.artworks[0]
    assert (art.artist, art.year, art.type, art.timeframe) == ("Frans Hals", 1635, "still-life", "1601-1650")
    assert art.artwork_id == "list:pics/a"
    with pytest.raises(CatalogError, match="'nope'.*row 1|row 1.*'nope'"):
        read_manifest(path, image="nope")
    with pytest.raises(CatalogError, match="image path or url"):
        read_manifest(write(tmp_path / "x.csv", "title,artist\nA,B\n"))
    with pytest.raises(CatalogError, match="no images found"):
        read_manifest(write(tmp_path / "y.csv", "image,title\nmissing.jpg,A\n"))


# ----------------------------------------------------------------------------- WikiArt


def test_parse_wikiart_name():
    assert parse_wikiart_name("rembrandt_self-portrait-1630-1.jpg") == ("Rembrandt", "Self portrait", 1630)
    assert parse_wikiart_name("caravaggio_amor-victorious-1602(1).jpg") == ("Caravaggio", "Amor victorious", 1602)
    assert parse_wikiart_name("guido-reni_not_detected_232244-1635.jpg") == ("Guido Reni", None, 1635)
    assert parse_wikiart_name("claude-monet_water-lilies.jpg") == ("Claude Monet", "Water lilies", None)
    artist, title, year = parse_wikiart_name("pierre-auguste-renoir_caf%C3%A9-concert-1878.jpg")
    assert (artist, title, year) == ("Pierre-Auguste Renoir", "Café concert", 1878)
    assert parse_wikiart_name("noartist.jpg") == (None, None, None)


@pytest.fixture
def wikiart_dir(tmp_path: Path) -> Path:
    root = tmp_path / "wikiart"
    jpeg(root / "Baroque" / "rembrandt_self-portrait-1630-1.jpg")
    jpeg(root / "Baroque" / "adriaen-van-de-velde_agony-in-the-garden-1665.jpg")
    jpeg(root / "Impressionism" / "claude-monet_haystacks-1891.jpg")
    jpeg(root / "Mannerism_Late_Renaissance" / "el-greco_laocoon-1614.jpg")
    write(
        root / "genre.csv",
        "Baroque/rembrandt_self-portrait-1630-1.jpg,portrait\n"
        "Baroque/adriaen-van-de-velde_agony-in-the-garden-1665.jpg,religious_painting\n"
        "Impressionism/claude-monet_haystacks-1891.jpg,sketch_and_study\n",
    )
    return root


def test_wikiart_reader(wikiart_dir: Path):
    cat = read_wikiart(wikiart_dir)
    by_id = {a.artwork_id: a for a in cat.artworks}
    rembrandt = by_id["wikiart:Baroque/rembrandt_self-portrait-1630-1"]
    assert (rembrandt.artist, rembrandt.year, rembrandt.timeframe, rembrandt.style, rembrandt.type) == (
        "Rembrandt",
        1630,
        "1601-1650",
        "Baroque",
        "portrait",
    )
    assert by_id["wikiart:Baroque/adriaen-van-de-velde_agony-in-the-garden-1665"].type == "religious"
    monet = by_id["wikiart:Impressionism/claude-monet_haystacks-1891"]
    assert monet.type is None and monet.extra["genre"] == "sketch_and_study"
    greco = by_id["wikiart:Mannerism_Late_Renaissance/el-greco_laocoon-1614"]
    assert greco.style == "Mannerism" and greco.artist == "El Greco" and greco.type is None
    rep = cat.report
    assert rep.fields["type"] == (2, 3) and rep.unmapped[("type", "sketch_and_study")] == 1
    assert rep.fields["style"] == (4, 4) and rep.fields["year"] == (4, 4)


def test_wikiart_integer_labels_with_class_file(wikiart_dir: Path):
    (wikiart_dir / "genre.csv").unlink()
    write(wikiart_dir / "lists" / "genre_train.csv", "Baroque/rembrandt_self-portrait-1630-1.jpg,0\n")
    write(wikiart_dir / "lists" / "genre_class.txt", "0 portrait\n1 landscape\n")
    cat = read_wikiart(wikiart_dir, genre=wikiart_dir / "lists" / "genre_train.csv")
    assert {a.artist: a.type for a in cat.artworks}["Rembrandt"] == "portrait"


def test_wikiart_errors(tmp_path: Path):
    (tmp_path / "w" / "Baroque").mkdir(parents=True)
    with pytest.raises(CatalogError, match="no images found"):
        read_wikiart(tmp_path / "w")
    with pytest.raises(CatalogError, match="genre CSV"):
        jpeg(tmp_path / "w" / "Baroque" / "a_b-1650.jpg")
        read_wikiart(tmp_path / "w", genre="missing.csv")


# ----------------------------------------------------------------------------- specs, reports


def test_parse_spec():
    assert parse_spec("wga:data/wga/catalog.csv?form=all&paintings_only=false") == (
        "wga",
        "data/wga/catalog.csv",
        {"form": "all", "paintings_only": False},
    )
    assert parse_spec("../x/y") == (None, "../x/y", {})
    assert parse_spec("folder:/a/b?task=school") == ("folder", "/a/b", {"task": "school"})


def test_sniffing(tmp_path: Path, wga_latin1: Path, kaggle_dir: Path, aic_like: Path, wikiart_dir: Path):
    assert sniff_kind(wga_latin1) == "wga"
    assert sniff_kind(wga_latin1.parent) == "wga"
    assert sniff_kind(kaggle_dir) == "kaggle"
    assert sniff_kind(kaggle_dir / "artists.csv") == "kaggle"
    assert sniff_kind(aic_like) == "manifest"
    assert sniff_kind(aic_like.parent) == "manifest"
    assert sniff_kind(wikiart_dir) == "wikiart"
    jpeg(tmp_path / "classes" / "portrait" / "x.jpg")
    assert sniff_kind(tmp_path / "classes") == "folder"
    assert read_catalog(kaggle_dir).source == "best"
    assert read_catalog(str(aic_like.parent)).source == "aic"
    with pytest.raises(CatalogError, match="no such file"):
        read_catalog(tmp_path / "nowhere")
    with pytest.raises(CatalogError, match="unknown option"):
        read_catalog(f"kaggle:{kaggle_dir}?colour=red")



def test_each_source_module_sniffs_only_its_own_layout(
    tmp_path: Path, wga_latin1: Path, kaggle_dir: Path, aic_like: Path, wikiart_dir: Path
):
    jpeg(tmp_path / "classes" / "portrait" / "x.jpg")
    claims = {
        "wga": [wga_latin1, wga_latin1.parent],
        "kaggle": [kaggle_dir, kaggle_dir / "artists.csv"],
        "manifest": [aic_like.parent],
        "wikiart": [wikiart_dir],
        "folder": [tmp_path / "classes"],
    }
    for kind, paths in claims.items():
        for path in paths:
            assert SOURCES[kind].sniff(path), (kind, path)
            assert sniff_kind(path) == kind
    assert not SOURCES["folder"].sniff(aic_like)  # a file is never a folder of classes
    assert SOURCES["manifest"].sniff(aic_like)  # any CSV reads as a manifest (asked last)
    assert SOURCES["wga"].read is read_wga and SOURCES["manifest"].read is read_manifest


def test_read_sources_reads_specs_in_order_and_shared_data(
    tmp_path: Path, kaggle_dir: Path, aic_like: Path, monkeypatch
):
    cats = read_sources([f"kaggle:{kaggle_dir}", str(aic_like.parent)])
    assert [c.source for c in cats] == ["best", "aic"]
    with pytest.raises(CatalogError, match="unknown catalog kind 'bogus'"):
        read_sources(["bogus:x"])
    with pytest.raises(CatalogError, match="no such file or folder"):
        read_sources([tmp_path / "nowhere"])
    with pytest.raises(SharedDataMissing):
        read_sources(["shared"], data_dir=tmp_path / "absent")
    monkeypatch.setattr("vasari.catalog.sources.shared_data_dir", lambda: None)
    with pytest.raises(SharedDataMissing):
        read_sources(["shared"])
    assert read_sources([]) == []


def test_read_sources_shared_word(shared_data):
    labelled = read_sources(["shared"], data_dir=shared_data)
    assert [c.source for c in labelled] == [c.source for c in shared_catalogs(shared_data)]
    negatives = read_sources(["shared"], data_dir=shared_data, negatives=True)
    assert [c.source for c in negatives] == ["wga_thumbs"]
    assert all(a.extra.get("form") != "painting" for a in negatives[0].artworks)


def test_report_table_and_dict(aic_like: Path):
    rep = read_manifest(aic_like).report
    console = Console(record=True, width=140)
    console.print(rep.as_table())
    text = console.export_text()
    assert "aic: 5 rows read" in text and "year" in text and "withheld artist: after" in text
    data = rep.to_dict()
    assert data["fields"]["year"] == {"parsed": 3, "present": 3}
    assert data["skipped"] == {"image file missing": 1}
    assert rep.rate("year") == 1.0 and rep.rate("style") is None
    assert "aic: 5 rows" in rep.summary()


def test_report_contract_fields():
    rep = ParseReport("x")
    assert set(rep.fields) == {"year", "timeframe", "school", "type", "style", "artist"}
    rep.count("year", True, False)
    rep.count("year", False, False)
    assert rep.fields["year"] == (0, 1)


def test_harmonize_artists():
    a = Catalog([Artwork("w:1", "w", artist="Pierre Auguste Renoir")], ParseReport("w"))
    b = Catalog(
        [Artwork("a:1", "a", artist="Pierre-Auguste Renoir"), Artwork("a:2", "a", artist="Jan Steen")], ParseReport("a")
    )
    out = harmonize_artists([a, b])
    assert [x.artist for c in out for x in c.artworks] == [
        "Pierre-Auguste Renoir",
        "Pierre-Auguste Renoir",
        "Jan Steen",
    ]


# ----------------------------------------------------------------------------- real data


@pytest.fixture(scope="module")
def shared(request) -> dict[str, Catalog]:
    data = request.getfixturevalue("shared_data")
    return {c.source: c for c in shared_catalogs(data, include_photos=True)}


def test_shared_catalogs_sources_and_sizes(shared):
    assert list(shared) == list(SHARED_SOURCES)
    sizes = {name: len(cat) for name, cat in shared.items()}
    assert sizes == {
        "louvre": 1150,
        "louvre_photos": 55,
        "wga": 166,
        "wga_thumbs": 604,
        "aic": 202,
        "artists7": 1039,
        "wikiart": 5543,
    }


def test_shared_without_photos(shared_data):
    names = [c.source for c in shared_catalogs(shared_data)]
    assert "louvre_photos" not in names and "louvre" in names


def test_shared_ids_unique_images_exist_labels_in_vocabulary(shared):
    ids = [a.artwork_id for c in shared.values() for a in c.artworks]
    assert len(ids) == len(set(ids))
    for cat in shared.values():
        for art in cat.artworks:
            assert art.artwork_id.startswith(cat.source + ":")
            assert art.image and os.path.isabs(art.image) and os.path.isfile(art.image)
            for task in ("type", "school", "timeframe", "style"):
                value = art.label(task)
                assert value is None or value in labels.VOCABULARIES[task], (art.artwork_id, task, value)
            if art.year is not None and art.timeframe is not None and cat.source not in {"wga", "wga_thumbs"}:
                assert labels.timeframe_of(art.year) == art.timeframe


def test_real_louvre(shared):
    types = collections.Counter(a.type for a in shared["louvre"].artworks)
    assert types == {"landscape": 300, "portrait": 300, "still-life": 290, "genre": 260}
    assert shared["louvre_photos"].report.fields["type"] == (55, 55)


def test_real_wga(shared):
    cat = shared["wga"]
    by_file = {Path(a.image).name: a for a in cat.artworks}
    deer = by_file["level1_deerhunt.jpg"]
    assert deer.artist == "Niccolò dell'Abbate" and deer.year == 1551 and deer.school == "Italian"
    assert deer.url == "http://www.wga.hu/art/a/abbate/deerhunt.jpg"
    fire = by_file["level1_firework.jpg"]
    assert (fire.artist, fire.year, fire.timeframe, fire.type) == ("Oswald Achenbach", 1875, "1851-1900", "landscape")
    rep = cat.report
    assert rep.fields["year"][0] >= 160  # all 166 DATEs parse today
    assert rep.fields["artist"] == (166, 166)
    assert sum(a.school is not None for a in cat.artworks) >= 130  # 70 given + filled from the author
    assert sum(a.url is not None for a in cat.artworks) >= 60


def test_real_wga_thumbs_and_negatives(shared, shared_data):
    cat = shared["wga_thumbs"]
    assert all(a.extra["form"] == "painting" for a in cat.artworks)
    assert sum(cat.report.skipped.values()) == 836
    assert any(a.artist == "Fra Angelico" for a in cat.artworks)
    negatives = read_wga(shared_data / "wga_thumbs" / "catalog.csv", source="wga_thumbs", form="not-painting")
    forms = collections.Counter(a.extra["form"] for a in negatives.artworks)
    assert forms["architecture"] == 661 and forms["sculpture"] == 112 and "painting" not in forms
    assert not {a.artwork_id for a in negatives.artworks} & {a.artwork_id for a in cat.artworks}


def test_real_wga_extract(shared_data):
    cat = read_catalog(shared_data / "catalogs" / "wga_paintings.csv")
    assert cat.source == "wga_paintings" and len(cat) == 9423
    assert all(a.image is None and a.url.startswith("http://www.wga.hu/art/") for a in cat.artworks)
    rep = cat.report
    assert rep.fields["type"][0] >= 9150  # all but "other" / "study"
    assert rep.fields["school"][0] >= 9400
    assert rep.fields["timeframe"] == (9423, 9423)
    assert rep.fields["artist"][0] >= 9100
    first = cat.artworks[0]
    assert first.artist is None and first.school == "Portuguese" and first.type == "portrait"


def test_real_aic(shared):
    cat = shared["aic"]
    rep = cat.report
    parsed, present = rep.fields["year"]
    assert present >= 190 and parsed >= present - 2  # measured: 196 of 196 rows with a date
    assert rep.fields["school"][0] >= 195  # measured: 200 of 202
    assert rep.fields["artist"][0] >= 145  # measured: 153 named; the rest attributions / anonymous
    by_id = {a.artwork_id: a for a in cat.artworks}
    pater = by_id["aic:93784"]
    assert pater.artist is None and pater.school == "French" and pater.year is None
    nuzi = next(a for a in cat.artworks if a.extra.get("artist_raw", "").startswith("Allegretto Nuzi"))
    assert nuzi.artist == "Allegretto Nuzi" and nuzi.year == 1365 and nuzi.timeframe is None
    tuscany = next(a for a in cat.artworks if a.extra.get("artist_raw") == "Italian; Tuscany")
    assert tuscany.artist is None and tuscany.school == "Italian" and tuscany.year == 1270


def test_real_artists7(shared):
    cat = shared["artists7"]
    artists = collections.Counter(a.artist for a in cat.artworks)
    assert set(artists) == {
        "John Constable",
        "Claude Monet",
        "Peter Paul Rubens",
        "L. S. Lowry",
        "Edward Hopper",
        "J. M. W. Turner",
        "Rembrandt",
    }
    schools = {a.artist: a.school for a in cat.artworks}
    assert schools["John Constable"] == "English" and schools["Rembrandt"] == "Dutch"
    assert schools["Edward Hopper"] == "American" and schools["Peter Paul Rubens"] == "Flemish"
    styles = {a.artist: a.style for a in cat.artworks}
    assert styles["Claude Monet"] == "Impressionism" and styles["L. S. Lowry"] is None
    assert cat.report.unmapped[("style", "Modernism")] == artists["L. S. Lowry"]


def test_real_wikiart(shared):
    cat = shared["wikiart"]
    art = next(
        a
        for a in cat.artworks
        if a.artwork_id == "wikiart:Baroque/adriaen-brouwer_peasants-quarrelling-in-an-interior-1630"
    )
    assert (art.artist, art.year, art.style, art.type) == ("Adriaen Brouwer", 1630, "Baroque", "genre")
    rep = cat.report
    assert rep.fields["year"][0] >= 5500 and rep.fields["artist"][0] == rep.rows
    parsed, present = rep.fields["type"]
    assert present >= 4700 and parsed >= 4450
    assert rep.unmapped[("type", "sketch_and_study")] > 100
    assert collections.Counter(a.style for a in cat.artworks).keys() == {
        "Baroque",
        "Impressionism",
        "Rococo",
        "Pointillism",
    }
    assert sum(a.school is not None for a in cat.artworks) >= 4500  # schools filled per artist


def test_real_artists_meet_across_sources(shared):
    by_source = collections.defaultdict(set)
    for cat in shared.values():
        for art in cat.artworks:
            if art.artist:
                by_source[art.artist].add(cat.source)
    assert {"artists7", "wikiart"} <= by_source["Rembrandt"]
    assert {"artists7", "wikiart", "aic", "wga"} <= by_source["Claude Monet"]
    assert {"wikiart", "aic", "wga"} <= by_source["Pierre-Auguste Renoir"]
    assert {"wikiart", "aic", "wga"} <= by_source["Édouard Manet"]
    assert {"wikiart", "aic"} <= by_source["Diego Velázquez"]


def test_real_specs(shared_data):
    assert len(read_catalog(f"folder:{shared_data / 'louvre' / 'train'}?task=type")) == 950
    assert read_catalog(shared_data / "artists7").source == "artists7"
    assert read_catalog(shared_data / "aic").source == "aic"
    assert read_catalog(shared_data / "wikiart").source == "wikiart"
    assert len(read_catalog(f"wga:{shared_data / 'wga_thumbs'}?form=all")) == 1440
