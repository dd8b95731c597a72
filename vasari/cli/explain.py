"""``vasari explain``: the regions of a picture that drove one task's answer, as a heat map."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Optional

import typer

from vasari.cli.common import fail

EXPLAIN_HELP = """Why this answer? Write a heat map of the regions of IMAGE that drove the answer of one task.

Each region of the square the model sees is hidden in turn (a grey square sliding over a GRID x GRID lattice, all copies embedded in one batch); a region's weight is how much hiding it lowers the probability of the answer. When the task's answer is "unknown", its most likely class is explained and the output says so; --label explains another class instead.

--out writes the overlay PNG (title, heat map over the picture, legend); --json writes the map as JSON (GRID rows x GRID cells summing to 1, plus task, label, probability, method, grid size and seconds; "-" prints it).

Example:

  vasari explain ../shared/data/artists7/images/images/Rembrandt/Rembrandt_10.jpg --task artist --out runs/heat.png --json -
"""


def explain(
    image: Path = typer.Argument(..., help="Image file."),
    task: str = typer.Option("artist", "--task", "-t", help="The task whose answer to explain."),
    out: Optional[Path] = typer.Option(None, "--out", "-o", help="Write the overlay PNG here."),
    as_json: Optional[str] = typer.Option(None, "--json", help='Write the JSON explanation to this file ("-": print it).'),
    bundle_dir: Optional[Path] = typer.Option(None, "--model", "-m", help="Bundle directory (default: the shipped model)."),
    grid: int = typer.Option(7, "--grid", help="Cells per side of the map ((grid + patch - 1)^2 occluded copies)."),
    patch: int = typer.Option(2, "--patch", help="Side of the occluding square, in cells."),
    label: Optional[str] = typer.Option(None, "--label", help="Explain this label of the task instead of the answer."),
) -> None:
    from vasari.core.fileio import atomic_write_bytes, atomic_write_text
    from vasari.core.images import load_image
    from vasari.explain import ExplainConfig, Explainer, overlay_png
    from vasari.inference.predictor import Predictor

    if out is None and as_json is None:
        fail("nothing to write: give --out heat.png and/or --json grid.json")
    config = ExplainConfig(grid=grid, patch=patch)
    predictor = Predictor.load(bundle_dir)
    explainer = Explainer(predictor, config)
    tasks = explainer.check_tasks([task])
    picture = load_image(image, min_side=predictor.bundle.spec.draft_min_side)
    result = explainer.explain(picture, tasks, {task: label} if label else None)[0]
    if out is not None:
        atomic_write_bytes(out, overlay_png(picture, result))
    text = json.dumps({"image": str(image), **result.model_dump(mode="json")}, indent=2, ensure_ascii=False)
    if as_json == "-":
        sys.stdout.write(text + "\n")
        return
    if as_json is not None:
        atomic_write_text(Path(as_json), text + "\n")
    _say(result, out, as_json)


def _say(result, out: Optional[Path], as_json: Optional[str]) -> None:
    """One line for a person: what was explained, how sure, how long, and where it went."""
    from rich.console import Console

    wrote = " and ".join(str(p) for p in (out, as_json) if p is not None)
    Console(highlight=False, soft_wrap=True).print(
        f"{result.task}: [bold]{result.label}[/] (p = {result.probability:.2f}"
        f"{'' if result.answered else ', answer: ' + result.verdict}) explained in {result.seconds:.2f} s; "
        f"wrote {wrote}\n{result.note}")


def register(app: typer.Typer) -> None:
    app.command("explain", help=EXPLAIN_HELP, no_args_is_help=True)(explain)
