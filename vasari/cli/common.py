"""What every CLI area shares: how a command reports bad input and stops, and the help of
options that several verbs take.

Errors are mapped by family in one place: ``report_errors`` wraps every registered verb so
that any ``VasariError`` (bad input, a broken bundle or index, an unusable cache) reaches the
user as one red line and exit code 2. Verbs therefore do not catch library errors
themselves; anything that is not a ``VasariError`` is a bug and keeps its traceback.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, NoReturn, Optional, TypeVar

import typer
from rich.console import Console

from vasari.errors import VasariError

Verb = TypeVar("Verb", bound=Callable[..., Any])


def fail(message: str, code: int = 2) -> NoReturn:
    """Print one red ``error:`` line on stderr (no traceback) and exit with ``code``. The
    message is printed as is: brackets in it (``pip install 'vasari-art[ray]'``) are not markup."""
    from rich.markup import escape

    Console(stderr=True, highlight=False, soft_wrap=True).print(f"[bold red]error:[/] {escape(message)}")
    raise typer.Exit(code=code)


def reports_errors(verb: Verb) -> Verb:
    """``verb`` with every ``VasariError`` turned into ``fail(message)``; Typer still sees
    the verb's own signature (``functools.wraps``), so options and help are unchanged."""

    @functools.wraps(verb)
    def run_verb(*args: Any, **kwargs: Any) -> Any:
        try:
            return verb(*args, **kwargs)
        except VasariError as exc:
            fail(str(exc))

    return run_verb  # type: ignore[return-value]


def report_errors(app: typer.Typer) -> None:
    """Wrap every verb of ``app`` and of its sub-apps (``vasari dataset build``...) in
    ``reports_errors``: the one place where the CLI maps library errors to its exit code."""
    for command in app.registered_commands:
        if command.callback is not None:
            command.callback = reports_errors(command.callback)
    for group in app.registered_groups:
        if group.typer_instance is not None:
            report_errors(group.typer_instance)


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
