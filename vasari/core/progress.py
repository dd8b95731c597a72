"""Progress for long work that is visible everywhere: a rich bar on a terminal, plain
periodic lines on stderr otherwise.

rich's live bar prints nothing while it runs when output is not a terminal (a pipe, a log
file, CI), so a five-minute ``vasari train > log`` looked dead. Every long verb builds its
bar with ``make_progress``; off a terminal the same calls print lines such as
``embed: 300/1205 (25%), 12 s elapsed, about 36 s left``.
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

from rich.console import Console
from rich.progress import Progress, TaskID
from rich.text import Text

T = TypeVar("T")


@dataclass(frozen=True)
class LineProgressConfig:
    """When a plain progress line is printed: each time another 1/``steps`` of the total is
    done and at least every ``interval_s`` seconds while work advances, plus at the start."""

    steps: int = 10
    interval_s: float = 10.0


class LineProgress(Progress):
    """A ``rich.progress.Progress`` without a live display that prints plain lines instead."""

    def __init__(self, *columns: Any, line_config: LineProgressConfig = LineProgressConfig(), **kwargs: Any) -> None:
        kwargs["disable"] = True
        super().__init__(*columns, **kwargs)
        self.line_config = line_config
        self._lines = Console(stderr=True, highlight=False, soft_wrap=True)
        self._last: dict[TaskID, tuple[float, float]] = {}  # task -> (time, completed) of its last line

    def add_task(self, description: str, *args: Any, **kwargs: Any) -> TaskID:
        task_id = super().add_task(description, *args, **kwargs)
        self._print_line(task_id)
        return task_id

    def update(self, task_id: TaskID, *args: Any, **kwargs: Any) -> None:
        super().update(task_id, *args, **kwargs)
        self._maybe_print(task_id)

    def advance(self, task_id: TaskID, advance: float = 1) -> None:
        super().advance(task_id, advance)
        self._maybe_print(task_id)

    def _maybe_print(self, task_id: TaskID) -> None:
        task = self._tasks[task_id]
        last_time, last_completed = self._last.get(task_id, (0.0, 0.0))
        if task.completed == last_completed:
            return
        if (task.finished or self._step_of(task.completed, task.total) > self._step_of(last_completed, task.total)
                or time.monotonic() - last_time >= self.line_config.interval_s):
            self._print_line(task_id)

    def _step_of(self, completed: float, total: float | None) -> int:
        """How many whole 1/steps of ``total`` are done (integer, so no float ties)."""
        return int(completed * self.line_config.steps // total) if total else 0

    def _print_line(self, task_id: TaskID) -> None:
        task = self._tasks[task_id]
        fraction = task.completed / task.total if task.total else 0.0
        self._last[task_id] = (time.monotonic(), task.completed)
        name = Text.from_markup(task.description).plain or "progress"
        total = f"/{task.total:g} ({100 * fraction:.0f}%)" if task.total else ""
        left = task.time_remaining
        eta = f", about {left:.0f} s left" if left is not None and not task.finished else ""
        self._lines.print(f"{name}: {task.completed:g}{total}, {task.elapsed or 0:.0f} s elapsed{eta}", markup=False)


def tracked(items: Sequence[T], description: str, enabled: bool = True) -> Iterator[T]:
    """``items`` one by one, with a bar advanced after each (plain lines off a terminal) when
    ``enabled``: for loops of a few long steps, such as the refits of a protocol. Not nested:
    one live bar at a time."""
    if not enabled:
        yield from items
        return
    with make_progress(transient=False) as bar:
        task = bar.add_task(description, total=len(items))
        for item in items:
            yield item
            bar.advance(task)


def make_progress(*columns: Any, disable: bool = False, **kwargs: Any) -> Progress:
    """A rich ``Progress`` on a terminal, a ``LineProgress`` (plain lines on stderr) elsewhere.

    Takes the arguments of ``rich.progress.Progress``; with ``disable`` nothing is shown.
    """
    console = kwargs.get("console") or Console()
    if disable or console.is_terminal:
        return Progress(*columns, disable=disable, **kwargs)
    return LineProgress(*columns, **kwargs)
