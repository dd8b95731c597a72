"""CLI verb of the "enrol" area: ``vasari enrol`` (teach a bundle a new artist from 5-20 images)."""

from __future__ import annotations

from pathlib import Path
from typing import List, Optional

import typer
from rich.console import Console


def enrol(
    images: List[Path] = typer.Argument(..., help="5-20 images of paintings by the artist (JPEG, PNG, ...)."),
    artist: str = typer.Option(..., "--artist", help='The artist\'s name as answers should show it, e.g. "Frans Hals".'),
    model: Optional[Path] = typer.Option(None, "--model", help="Bundle to start from (default: the bundled model). "
                                         "It is never modified."),
    out: Path = typer.Option(..., "--out", help="Folder of the NEW bundle (must not exist; written atomically)."),
    years: Optional[str] = typer.Option(None, "--years", help="Active years FIRST-LAST, e.g. 1606-1669: an answer "
                                        "naming the artist for a painting dated outside them becomes unknown."),
    school: Optional[str] = typer.Option(None, "--school", help="School recorded with the works in the gallery, e.g. Dutch."),
    no_cache: bool = typer.Option(False, "--no-cache", help="Do not read or write the embedding cache."),
) -> None:
    """Teach a bundle a new artist: the artist head gains a class (refit in seconds against the
    bundle's reference rows, other artists unchanged), the gallery gains the works, and a new
    versioned bundle is written whose model card records the images (paths + sha256).

    Example: vasari enrol --artist "Ludolf Backhuysen" ../shared/data/wga/images/level1_distress.jpg ../shared/data/wga/images/level1_fishing.jpg ../shared/data/wga/images/level1_shipping_1.jpg ../shared/data/wga/images/level1_viewvlaa.jpg ../shared/data/wga/images/level1_vessels1.jpg --model runs/model --out runs/model-backhuysen --years 1650-1708 --school Dutch
    """
    from vasari.enrol import enrol_artist
    from vasari.inference.predictor import default_model_dir

    model_dir = model or default_model_dir()
    cache = None
    if not no_cache:
        from vasari.bundle import load_bundle
        from vasari.features import EmbeddingCache

        cache = EmbeddingCache.default(load_bundle(model_dir).spec)
    result = enrol_artist(model_dir, artist, images, out, years=years, school=school, cache=cache)
    info, console = result.info, Console()
    fit = info["fit"]
    console.print(f"enrolled [bold]{result.artist}[/] as artist class {result.class_index} from {len(images)} images "
                  f"in {sum(info['seconds'].values()):.1f} s")
    console.print(f"  cross-validated: {100 * fit['cv_answered']:.0f}% of held-out images named; "
                  f"enrolled images named {info['images_named']}/{len(images)}, "
                  f"flagged novel {info['images_novel']}/{len(images)}")
    console.print(f"bundle version {result.version} written to {result.path}")


def register(app: typer.Typer) -> None:
    app.command("enrol")(enrol)
