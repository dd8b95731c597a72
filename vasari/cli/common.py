"""What every CLI area shares: how a command reports bad input and stops, and the help of
options that several verbs take."""

from __future__ import annotations

from typing import NoReturn

import typer
from rich.console import Console


def fail(message: str, code: int = 2) -> NoReturn:
    """Print one red ``error:`` line on stderr (no traceback) and exit with ``code``."""
    Console(stderr=True, highlight=False, soft_wrap=True).print(f"[bold red]error:[/] {message}")
    raise typer.Exit(code=code)


VIEWS_HELP = ('Test-time views averaged per picture, recorded in the bundle (predict uses them): '
              '"center", "flip" (+ mirror) or "multicrop" (+ mirror + five crops at twice the size; 7x slower).')

REFIT_HELP = ("After choosing C, temperature and thresholds on val, refit the heads on train + val "
              "(more data; val is then not evaluated, its scores would flatter the heads).")
