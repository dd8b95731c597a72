"""What every CLI area shares: how a command reports bad input and stops, and the help of
options that several verbs take."""

from __future__ import annotations

from typing import NoReturn, Optional

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

TASKS_HELP = "Comma-separated tasks (default: all that have labels)."


def parse_tasks(tasks: Optional[str]) -> tuple[str, ...]:
    """``"artist,school"`` -> ``("artist", "school")``; None -> every task; unknown names fail."""
    from vasari.core.labels import TASKS

    if not tasks:
        return tuple(TASKS)
    chosen = tuple(t.strip() for t in tasks.split(",") if t.strip())
    bad = [t for t in chosen if t not in TASKS]
    if bad or not chosen:
        fail(f"unknown task(s) {', '.join(bad) or repr(tasks)}; tasks are {', '.join(TASKS)}")
    return chosen
