"""``vasari dataset build | show | diff`` on generated catalogs (and artists7 when present)."""

from __future__ import annotations

import csv
import json
from collections import defaultdict
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from vasari.cli import app
from vasari.dataset import DatasetConfig, load_dataset

runner = CliRunner()
CLASSES = ("portrait", "landscape", "still-life")


def _picture(seed: int, size=(96, 72)) -> Image.Image:
    rng = np.random.default_rng(seed)
    return Image.fromarray(rng.integers(0, 256, (6, 8, 3), dtype=np.uint8), "RGB").resize(size, Image.BICUBIC)


@pytest.fixture(scope="module")
def folder(tmp_path_factory) -> Path:
    """<root>/<type>/*.jpg, 14 per class, plus one painting saved twice at two sizes."""
    root = tmp_path_factory.mktemp("folder_catalog")
    n = 0
    for label in CLASSES:
        (root / label).mkdir()
        for _ in range(14):
            _picture(n).save(root / label / f"img_{n:03d}.jpg", quality=90)
            n += 1
    _picture(1000, (300, 220)).save(root / "portrait" / "copy_big.jpg", quality=95)
    _picture(1000, (120, 88)).save(root / "portrait" / "copy_small.jpg", quality=60)
    return root


def invoke(*args: str):
    result = runner.invoke(app, ["dataset", *map(str, args)])
    assert "Traceback" not in result.output, result.output
    return result


def build(folder: Path, out: Path, *extra: str):
    return invoke("build", f"folder:{folder}?task=type", "--out", out, "--no-progress", "--min-per-class", "3", *extra)


def test_build_and_show(folder, tmp_path):
    result = build(folder, tmp_path / "ds")
    assert result.exit_code == 0, result.output
    for name in ("dataset.csv", "splits.csv", "dataset.json"):
        assert (tmp_path / "ds" / name).is_file()
    assert "portrait" in result.output and "train" in result.output and "rows read" in result.output
    ds = load_dataset(tmp_path / "ds")
    assert len(ds.artworks) == 3 * 14 + 2
    copies = [a for a in ds.artworks if a.artwork_id.endswith(("copy_big", "copy_small"))]
    assert len(copies) == 2 and copies[0].group == copies[1].group
    assert ds.splits[copies[0].artwork_id] == ds.splits[copies[1].artwork_id]
    meta = json.loads((tmp_path / "ds" / "dataset.json").read_text())
    assert meta["duplicates"]["groups_with_duplicates"] == 1

    shown = invoke("show", tmp_path / "ds")
    assert shown.exit_code == 0, shown.output
    counts = ds.class_counts()["type"]["landscape"]
    row = next(line for line in shown.output.splitlines() if "landscape" in line)
    assert [int(x) for x in row.replace("│", " ").split()[1:]] == [counts["train"], counts["val"], counts["test"], 14]
    only = invoke("show", tmp_path / "ds", "--task", "type")
    assert "type: 3 classes" in only.output and "artist:" not in only.output


def test_build_options_and_diff(folder, tmp_path):
    a = build(folder, tmp_path / "a", "--split", "random", "--seed", "1")
    b = build(folder, tmp_path / "b", "--seed", "2", "--by-artist", "--val", "0.2", "--test", "0.2")
    assert a.exit_code == 0 and b.exit_code == 0, a.output + b.output
    assert load_dataset(tmp_path / "a").config.split == "random"
    cfg = load_dataset(tmp_path / "b").config
    assert cfg.group_by_artist and cfg.seed == 2 and cfg.val_fraction == 0.2
    diff = invoke("diff", tmp_path / "a", tmp_path / "b" / "splits.csv")
    assert diff.exit_code == 0 and "moved:" in diff.output
    same = invoke("diff", tmp_path / "a", tmp_path / "a")
    assert "moved: 0" in same.output


def test_cli_defaults_match_config():
    import inspect

    from vasari.cli.dataset import build as build_cmd

    params = inspect.signature(build_cmd).parameters
    config = DatasetConfig()
    for option, field in [
        ("min_per_class", "min_per_class"),
        ("seed", "seed"),
        ("val", "val_fraction"),
        ("test", "test_fraction"),
        ("phash_distance", "phash_distance"),
        ("confirm_distance", "confirm_distance"),
        ("first_year", "first_year"),
        ("last_year", "last_year"),
        ("split", "split"),
        ("by_artist", "group_by_artist"),
        ("stratify", "stratify_on"),
        ("group_details", "group_details"),
    ]:
        assert params[option].default.default == getattr(config, field), option


def _error(result, *fragments: str) -> str:
    assert result.exit_code == 2, result.output
    text = result.output
    assert "error:" in text
    for fragment in fragments:
        assert fragment in text, (fragment, text)
    return text


def test_build_errors_are_one_clear_message(folder, tmp_path):
    _error(invoke("build", f"folder:{tmp_path / 'nowhere'}", "--out", tmp_path / "x"), "nowhere")
    _error(invoke("build", "--out", tmp_path / "x"), "SPEC")
    bad_csv = tmp_path / "wga.csv"
    bad_csv.write_text("AUTHOR,TITLE\nSomeone,Something\n")
    _error(invoke("build", f"wga:{bad_csv}", "--out", tmp_path / "x"), "wga.csv")
    empty = tmp_path / "empty"
    (empty / "portrait").mkdir(parents=True)
    _error(invoke("build", f"folder:{empty}?task=type", "--out", tmp_path / "x"), "empty")
    _error(build(folder, tmp_path / "x", "--type", "portrait", "--type", "fantasy"), "'fantasy' has no artworks")
    _error(build(folder, tmp_path / "x", "--stratify", "genre"), "unknown task 'genre'")
    _error(build(folder, tmp_path / "x", "--split", "temporal"), "split strategy")
    _error(invoke("show", tmp_path / "x", "--task", "genre"), "unknown task 'genre'")


def test_show_errors_name_file_and_row(folder, tmp_path):
    _error(invoke("show", tmp_path / "missing"), "dataset.csv", "not found")
    assert build(folder, tmp_path / "ds").exit_code == 0
    csv_path = tmp_path / "ds" / "dataset.csv"
    rows = list(csv.reader(csv_path.open()))
    rows[5][rows[0].index("split")] = "holdout"
    with csv_path.open("w", newline="") as fh:
        csv.writer(fh).writerows(rows)
    _error(invoke("show", tmp_path / "ds"), "dataset.csv", "row 6", "holdout")
    csv_path.write_text("artwork_id,source\nx,y\n")
    _error(invoke("show", tmp_path / "ds"), "dataset.csv", "missing column split")


def test_unreadable_images_are_reported_not_fatal(folder, tmp_path):
    import shutil

    root = tmp_path / "cat"
    shutil.copytree(folder, root)
    (root / "landscape" / "broken.jpg").write_bytes(b"<html>404</html>")
    result = build(root, tmp_path / "ds")
    assert result.exit_code == 0, result.output
    assert "unreadable images: 1" in result.output and "broken.jpg" in result.output


@pytest.mark.shared_data
def test_build_real_kaggle_layout_by_artist(shared_data, tmp_path):
    result = invoke(
        "build",
        f"kaggle:{shared_data / 'artists7'}",
        "--out",
        tmp_path / "a7",
        "--no-progress",
        "--by-artist",
        "--stratify",
        "none",
        "--min-per-class",
        "0",
        "--val",
        "0.15",
        "--test",
        "0.15",
    )
    assert result.exit_code == 0, result.output
    ds = load_dataset(tmp_path / "a7")
    assert len(ds.artworks) == 1039
    where = defaultdict(set)
    for art in ds.artworks:
        where[art.artist].add(ds.splits[art.artwork_id])
        where["group:" + art.group].add(ds.splits[art.artwork_id])
    assert all(len(s) == 1 for s in where.values())
    assert len({ds.splits[a.artwork_id] for a in ds.artworks}) == 3


def test_show_says_artists_share_splits_by_default_and_none_do_with_by_artist(tmp_path):
    """The README's promise: no artwork in two splits; artists only with --by-artist."""
    root = tmp_path / "by_artist"
    n = 0
    for artist in ("Claude Monet", "Rembrandt", "John Constable", "Edward Hopper"):
        (root / artist).mkdir(parents=True)
        for _ in range(12):
            _picture(5000 + n).save(root / artist / f"img_{n:03d}.jpg", quality=90)
            n += 1
    spec = f"folder:{root}?task=artist"
    common = ("--no-progress", "--min-per-class", "0", "--stratify", "none", "--val", "0.25", "--test", "0.25")
    default = invoke("build", spec, "--out", tmp_path / "default", *common)
    grouped = invoke("build", spec, "--out", tmp_path / "grouped", "--by-artist", *common)
    assert default.exit_code == 0 and grouped.exit_code == 0, default.output + grouped.output
    assert load_dataset(tmp_path / "default").info["duplicates"]["artists_straddling_splits"] == 4
    ds = load_dataset(tmp_path / "grouped")
    per_artist = defaultdict(set)
    for art in ds.artworks:
        per_artist[art.artist].add(ds.splits[art.artwork_id])
    assert all(len(s) == 1 for s in per_artist.values()) and len(per_artist) == 4
    shown = " ".join(invoke("show", tmp_path / "default").output.split())
    assert "artists in more than one split: 4 (expected" in shown and "--by-artist" in shown
    shown = " ".join(invoke("show", tmp_path / "grouped").output.split())
    assert "artists in more than one split: 0 (split by artist" in shown


def test_show_counts_placeholder_cards_from_the_embedding_cache(tmp_path):
    """Issue #14: `vasari dataset show` counts the placeholder cards training will drop (one
    picture filed under two artists), from the vectors a cache already holds; a picture filed
    twice under one artist is a duplicate, not a placeholder; no cache: it says why not."""
    import shutil

    from vasari.catalog.records import Artwork
    from vasari.dataset import Dataset, save_dataset
    from vasari.features import EmbeddingCache, backbone_spec
    from vasari.features.cache import content_key

    rng = np.random.default_rng(3)
    paths = []
    for i in range(5):
        path = tmp_path / "img" / f"p{i}.png"
        path.parent.mkdir(exist_ok=True)
        Image.fromarray(rng.integers(0, 255, (40, 40, 3), dtype=np.uint8)).save(path)
        paths.append(path)
    shutil.copy(paths[0], tmp_path / "img" / "card_copy.png")  # the card again, filed under another artist
    shutil.copy(paths[1], tmp_path / "img" / "same_artist.png")  # a duplicate by the same artist
    paths += [tmp_path / "img" / "card_copy.png", tmp_path / "img" / "same_artist.png"]
    artists = ["Painter A", "Painter B", "Painter C", "Painter A", "Painter B", "Painter C", "Painter B"]
    arts = [Artwork(f"gen:{i}", "gen", image=str(p), artist=a, type="portrait") for i, (p, a) in enumerate(zip(paths, artists))]
    save_dataset(Dataset(arts, {a.artwork_id: "train" for a in arts}), tmp_path / "ds")
    runner = CliRunner()
    res = runner.invoke(app, ["dataset", "show", str(tmp_path / "ds"), "--cache", str(tmp_path / "nowhere")])
    assert res.exit_code == 0, res.output
    assert "placeholder cards: not counted (no embedding cache" in res.output
    spec = backbone_spec()
    keys = sorted({content_key(p) for p in paths})
    with EmbeddingCache(tmp_path / "cache", spec) as cache:
        cache.put(keys, rng.normal(size=(len(keys), spec.dim)).astype(np.float32))
    res = runner.invoke(app, ["dataset", "show", str(tmp_path / "ds"), "--cache", str(tmp_path / "cache")], terminal_width=400)
    assert res.exit_code == 0, res.output
    line = next(text for text in res.output.splitlines() if text.startswith("placeholder cards"))
    assert "2 among the 7 of 7 pictures" in line and "gen:0" in line and "gen:5" in line and "gen:6" not in line, line
