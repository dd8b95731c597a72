"""The ``vasari`` command line: a thin Typer layer over the library.

Each area registers its verbs from its own module (``vasari/cli/<area>.py`` with a
``register(app)`` function) so the CLI stays thin and areas stay independent. Heavy imports
(torch, onnxruntime) happen inside commands, so ``vasari --help`` is fast. Library errors are mapped to one red line in one place
(``vasari.cli.common.report_errors``), not verb by verb.
"""

from __future__ import annotations

import importlib

import typer

from vasari.cli.common import report_errors

app = typer.Typer(
    name="vasari",
    help="Attribute European paintings: artist, period, school, type and style from an image.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_show_locals=False,
)

#: The CLI areas, in the order ``vasari --help`` lists their verbs.
AREAS: tuple[str, ...] = ("dataset", "download", "features", "retrieval", "bench", "finetune", "learn", "explain", "serve", "enrol")

for _area in AREAS:
    importlib.import_module(f"vasari.cli.{_area}").register(app)
report_errors(app)  # any VasariError from any verb: one red line, exit 2
