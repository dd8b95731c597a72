"""``vasari demo``: attribution on held-out paintings, on a generated shared-data folder and
on ../shared/data (skipped when absent)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
from typer.testing import CliRunner

from learn_data import painting
from vasari.catalog import Artwork
from vasari.cli import app
from vasari.demo import DemoConfig, example_rows, sample_catalogs

runner = CliRunner()
#: Generated WikiArt styles, each painted in one hue of learn_data (so the backbone can tell them apart).
STYLE_HUE = {"Baroque": "portrait", "Impressionism": "landscape", "Rococo": "still-life"}
ARTISTS = {"Baroque": ("anna-rossi", "jan-berg"), "Impressionism": ("paul-morel", "lise-caron"),
           "Rococo": ("carl-weiss", "ida-lund")}


def generated_shared_data(root: Path, per_artist: int = 16, per_type: int = 16) -> Path:
    """A folder in the shared data layout: wikiart/<Style>/<artist>_<title>-<year>.jpg and
    louvre/{train,val}/<type>/*.jpg, every label readable from the picture's hue."""
    rng = np.random.default_rng(7)
    for style, hue in STYLE_HUE.items():
        for artist in ARTISTS[style]:
            folder = root / "wikiart" / style
            folder.mkdir(parents=True, exist_ok=True)
            for n in range(per_artist):
                img, year = painting(rng, hue)
                img.save(folder / f"{artist}_work-{n}-{year}.jpg", quality=92)
    for split in ("train", "val"):
        for kind in STYLE_HUE.values():
            folder = root / "louvre" / split / kind
            folder.mkdir(parents=True)
            for n in range(per_type // 2):
                painting(rng, kind)[0].save(folder / f"{kind}_{n}.jpg", quality=92)
    return root


def test_demo_shows_attribution_on_held_out_generated_paintings(tmp_path):
    data = generated_shared_data(tmp_path / "data")
    out = tmp_path / "demo"
    res = runner.invoke(app, ["demo", "--data-dir", str(data), "--out", str(out), "--cache", str(tmp_path / "cache")],
                        catch_exceptions=False)
    assert res.exit_code == 0, res.output
    metrics = json.loads((out / "report" / "metrics.json").read_text())["test"]["tasks"]
    assert {"type", "style", "artist", "timeframe"} <= set(metrics)
    assert metrics["style"]["top1"] >= 0.8 and metrics["type"]["top1"] >= 0.8
    assert metrics["artist"]["top1"] >= 0.35  # 6 artists, two per hue: chance is 1/6
    text = " ".join(res.stdout.split())
    assert "example answers on held-out (test) paintings" in text
    shown = re.findall(r"(\S+_work-\d+-\d+\.jpg)", res.stdout)
    assert len(set(shown)) == DemoConfig().examples
    assert re.search(r"style (Baroque|Impressionism|Rococo|unknown)", text) and "true: " in text
    assert (out / "bundle" / "bundle.json").is_file()


def test_sample_catalogs_takes_a_seeded_subset_of_named_sources_only():
    from vasari.catalog import Catalog, ParseReport

    def catalog(source, n):
        return Catalog([Artwork(f"{source}:{i}", source, image=f"/x/{source}{i}.jpg") for i in range(n)],
                       ParseReport(source))

    config = DemoConfig(per_source=(("a", 3), ("b", 50)))
    first = sample_catalogs([catalog("a", 10), catalog("b", 5), catalog("c", 9)], config)
    again = sample_catalogs([catalog("a", 10), catalog("b", 5), catalog("c", 9)], config)
    assert [(c.source, len(c)) for c in first] == [("a", 3), ("b", 5)]
    assert [a.artwork_id for c in first for a in c] == [a.artwork_id for c in again for a in c]


def test_example_rows_are_test_rows_with_the_most_labels():
    arts = [Artwork(f"x:{i}", "x", image=f"/x/{i}.jpg", type="portrait",
                    artist="Rembrandt" if i % 2 else None, school="Dutch" if i % 2 else None) for i in range(12)]
    splits = ["test" if i < 8 else "train" for i in range(12)]
    rows = example_rows(arts, splits, 2)
    assert len(rows) == 2 and all(splits[i] == "test" and i % 2 == 1 for i in rows)


def test_demo_on_shared_data_shows_every_task_with_non_trivial_accuracy(shared_data, tmp_path):
    out = tmp_path / "demo"
    res = runner.invoke(app, ["demo", "--out", str(out), "--cache", str(tmp_path / "cache")], catch_exceptions=False)
    assert res.exit_code == 0, res.output
    metrics = json.loads((out / "report" / "metrics.json").read_text())
    test = metrics["test"]["tasks"]
    assert {"artist", "school", "timeframe", "type", "style"} <= set(test)
    chance = {"artist": 1 / 10, "school": 1 / 4, "timeframe": 1 / 5, "type": 1 / 4, "style": 1 / 3}
    for task, floor in chance.items():
        assert test[task]["top1"] > 2 * floor, (task, test[task]["top1"])
    year = metrics["test"]["year"]
    assert year["n"] >= 50 and year["mae"] < year["baseline_mae"]
    assert metrics["photos"]["tasks"]["type"]["top1"] > 0.6
    assert "example answers on held-out (test) paintings" in " ".join(res.stdout.split())
