"""What every CLI area shares: how a command reports bad input and stops."""

from __future__ import annotations

from typing import NoReturn

import typer
from rich.console import Console


def fail(message: str, code: int = 2) -> NoReturn:
    """Print one red ``error:`` line on stderr (no traceback) and exit with ``code``."""
    Console(stderr=True, highlight=False, soft_wrap=True).print(f"[bold red]error:[/] {message}")
    raise typer.Exit(code=code)
