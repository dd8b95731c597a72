"""`vasari enrol` / ``vasari.enrol`` on generated artists through the real backbone: the new
artist is named on images it was not taught with, the others keep their answers, the input
bundle is untouched, the card records the images, and bad requests change nothing."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pytest
from enrol_data import NEW_ARTIST, enrol_world
from typer.testing import CliRunner

from vasari.bundle import BundleError, load_bundle
from vasari.cli import app
from vasari.enrol import REFERENCE_FILE, EnrolError, enrol_artist
from vasari.inference.predictor import Predictor


def tree_digest(folder: Path) -> dict[str, str]:
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def enrolled(tmp_path_factory):
    w = enrol_world()
    before = tree_digest(w.bundle)
    out = tmp_path_factory.mktemp("enrol") / "with-viola"
    result = enrol_artist(w.bundle, NEW_ARTIST, w.images("enrol"), out, years="1601-1650", school="Dutch",
                          embedder=w.embedder)
    return w, result, before


def top1(predictor: Predictor, paths: list[str]) -> list[str]:
    return [o["predictions"]["artist"][0]["label"] for o in predictor.predict_paths(paths, top_k=1)]


def test_new_artist_is_named_on_images_it_was_not_taught_with(enrolled):
    w, result, _ = enrolled
    new = Predictor.load(result.path)
    out = new.predict_paths(w.images("held"), top_k=2)
    named = [o["verdict"]["artist"] == NEW_ARTIST for o in out]
    assert np.mean([o["predictions"]["artist"][0]["label"] == NEW_ARTIST for o in out]) >= 0.85
    assert np.mean(named) >= 0.75
    assert result.class_index == 4 and load_bundle(result.path).heads.classifiers["artist"].classes[4] == NEW_ARTIST


def test_other_artists_keep_their_answers(enrolled):
    w, result, _ = enrolled
    test = w.images("test")
    truth = [w.artists[i] for i in w.rows("test")]
    before, after = top1(Predictor.load(w.bundle), test), top1(Predictor.load(result.path), test)
    accuracy = lambda labels: np.mean([a == t for a, t in zip(labels, truth)])
    assert accuracy(before) >= 0.9
    assert accuracy(after) >= accuracy(before) - 1 / len(test)
    assert NEW_ARTIST not in after


def test_input_bundle_unchanged_and_new_one_versioned_with_the_images(enrolled):
    w, result, before = enrolled
    assert tree_digest(w.bundle) == before
    assert result.version == 2 and result.path != w.bundle
    card = json.loads((result.path / "bundle.json").read_text())["card"]
    record = card["enrolled"][-1]
    assert card["bundle_version"] == 2 and card["parent"]["version"] == 1
    assert record["artist"] == NEW_ARTIST and record["years"] == [1601, 1650] and record["school"] == "Dutch"
    images = w.images("enrol")
    assert [r["path"] for r in record["images"]] == [str(Path(p).resolve()) for p in images]
    assert [r["sha256"] for r in record["images"]] == [hashlib.sha256(Path(p).read_bytes()).hexdigest() for p in images]
    markdown = (result.path / "MODEL_CARD.md").read_text()
    assert "## Enrolled artists" in markdown and NEW_ARTIST in markdown and record["images"][0]["sha256"] in markdown


def test_gallery_gains_the_works_and_reference_the_rows(enrolled):
    w, result, _ = enrolled
    from vasari.enrol.reference import EnrolReference
    from vasari.gallery.index import load_bundle_index

    old, new = load_bundle_index(w.bundle), load_bundle_index(result.path)
    assert len(new) == len(old) + len(w.images("enrol"))
    assert [m["artist"] for m in new.metadata[len(old):]] == [NEW_ARTIST] * len(w.images("enrol"))
    dim = load_bundle(result.path).heads.in_dim
    ref_old = EnrolReference.load(w.bundle / REFERENCE_FILE, dim)
    ref_new = EnrolReference.load(result.path / REFERENCE_FILE, dim)
    assert len(ref_new.coords) == len(ref_old.coords) + len(w.images("enrol"))
    assert (ref_new.lse[: len(ref_old.lse)] >= ref_old.lse - 1e-4).all()  # the new class adds to every row's mass


def test_a_second_enrolment_builds_on_the_first(enrolled, tmp_path):
    w, result, _ = enrolled
    # the same images under another name compete with the class just enrolled: still a valid bundle
    second = enrol_artist(result.path, "Elena Viola Workshop", w.images("enrol")[:5], tmp_path / "v3", embedder=w.embedder)
    assert second.version == 3 and second.class_index == 5
    assert load_bundle(second.path).heads.vocabularies["artist"][-2:] == [NEW_ARTIST, "Elena Viola Workshop"]


def test_bad_requests_write_nothing(enrolled, tmp_path):
    w, result, _ = enrolled
    images = w.images("enrol")
    with pytest.raises(EnrolError, match="at least 5") as err:
        enrol_artist(w.bundle, "Someone", images[:4], tmp_path / "a", embedder=w.embedder)
    assert err.value.code == "too_few_images"
    with pytest.raises(EnrolError, match="already in this bundle") as err:
        enrol_artist(w.bundle, "aldo  VERDE", images, tmp_path / "b", embedder=w.embedder)
    assert err.value.code == "duplicate_artist"
    bad = tmp_path / "broken.jpg"
    bad.write_bytes(b"\xff\xd8\xff this is not a jpeg")
    with pytest.raises(EnrolError, match="broken.jpg") as err:
        enrol_artist(w.bundle, "Someone", [*images[:5], str(bad)], tmp_path / "c", embedder=w.embedder)
    assert err.value.code == "unreadable_image"
    with pytest.raises(EnrolError, match="already exists"):
        enrol_artist(w.bundle, "Someone", images, result.path, embedder=w.embedder)
    with pytest.raises(EnrolError, match="FIRST-LAST"):
        enrol_artist(w.bundle, "Someone", images, tmp_path / "d", years="1700-1600", embedder=w.embedder)
    assert not any((tmp_path / n).exists() for n in "abcd")
    assert not list(tmp_path.glob(".*"))  # no temporary folder left behind


def test_wrong_backbone_and_missing_reference_are_bundle_errors(enrolled, tmp_path):
    w, _, _ = enrolled
    from vasari.features import Embedder

    with pytest.raises(BundleError, match="running backbone"):
        enrol_artist(w.bundle, "Someone", w.images("enrol"), tmp_path / "x", embedder=Embedder(feature="pooled"))
    import shutil

    copy = shutil.copytree(w.bundle, tmp_path / "no-ref")
    (copy / REFERENCE_FILE).unlink()
    with pytest.raises(BundleError, match="enrol.npz: missing"):
        enrol_artist(copy, "Someone", w.images("enrol"), tmp_path / "y", embedder=w.embedder)
    assert not (tmp_path / "x").exists() and not (tmp_path / "y").exists()


def test_cli_enrol_and_its_errors(enrolled, tmp_path):
    w, _, _ = enrolled
    runner = CliRunner()
    res = runner.invoke(app, ["enrol", "--help"])
    assert res.exit_code == 0 and "Example: vasari enrol" in res.output
    args = ["enrol", "--artist", NEW_ARTIST, "--model", str(w.bundle), "--out", str(tmp_path / "cli"), "--no-cache",
            *w.images("enrol")[:6]]
    res = runner.invoke(app, args)
    assert res.exit_code == 0, res.output
    assert "bundle version 2" in res.output and (tmp_path / "cli" / "bundle.json").is_file()
    res = runner.invoke(app, [*args[:7], str(tmp_path / "cli2"), "--no-cache", *w.images("enrol")[:3]])
    assert res.exit_code == 2 and "at least 5" in res.output and not (tmp_path / "cli2").exists()


def test_train_bundle_writes_the_reference_enrolment_needs(tmp_path):
    """`vasari train` (``train_bundle``) bundles can enrol: they carry enrol.npz."""
    from vasari.catalog import Artwork
    from vasari.enrol.reference import EnrolReference
    from vasari.features import EmbeddingCache
    from vasari.heads.config import HeadConfig
    from vasari.pipeline import train_bundle

    w = enrol_world()
    rows = w.rows("train") + w.rows("val")
    artworks = [Artwork(f"g:{i}", "generated", image=w.paths[i], artist=w.artists[i]) for i in rows]
    run = train_bundle(artworks, [w.split[i] for i in rows], tmp_path / "trained", embedder=w.embedder,
                       cache=EmbeddingCache(w.root / "cache", w.embedder.spec), evaluate_splits=("val",),
                       config=HeadConfig(tasks=("artist",), year=False, min_kept=3), progress=False)
    heads = load_bundle(run.bundle_dir).heads
    ref = EnrolReference.load(run.bundle_dir / REFERENCE_FILE, heads.in_dim)
    assert len(ref.coords) == len(rows) and ref.rank <= 128
    result = enrol_artist(run.bundle_dir, NEW_ARTIST, w.images("enrol"), tmp_path / "enrolled", embedder=w.embedder)
    assert top1(Predictor.load(result.path), w.images("held")).count(NEW_ARTIST) >= 6
