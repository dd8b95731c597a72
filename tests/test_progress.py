"""Progress off a terminal: plain lines (``vasari.core.progress``), and a non-TTY ``vasari train`` shows them."""

from __future__ import annotations

import re

from rich.console import Console
from rich.progress import Progress
from typer.testing import CliRunner

from vasari.core.progress import LineProgress, LineProgressConfig, make_progress


def test_line_progress_prints_one_line_per_tenth_and_none_when_nothing_advances(capsys):
    with LineProgress(line_config=LineProgressConfig(steps=10, interval_s=1e9)) as bar:
        task = bar.add_task("hashing", total=50)
        for _ in range(50):
            bar.advance(task)
        bar.update(task, advance=0)  # no progress: no new line
    lines = capsys.readouterr().err.splitlines()
    assert [line.split(",")[0] for line in lines] == [f"hashing: {n}/50 ({2 * n}%)" for n in range(0, 51, 5)]
    assert "s left" not in lines[-1]


def test_make_progress_is_a_live_bar_on_a_terminal_and_lines_elsewhere():
    terminal = Console(force_terminal=True)
    assert type(make_progress(console=terminal)) is Progress
    assert isinstance(make_progress(console=Console(force_terminal=False)), LineProgress)
    assert type(make_progress(disable=True)) is Progress


def test_train_off_a_terminal_prints_progress_lines(tmp_path):
    from test_cli_learn import saved_dataset
    from vasari.cli import app

    ds = saved_dataset(tmp_path)
    res = CliRunner().invoke(app, ["train", str(ds), "--out", str(tmp_path / "model"), "--cache",
                                   str(tmp_path / "fresh-cache")], catch_exceptions=False)
    assert res.exit_code == 0, res.output
    lines = re.findall(r"^embed: (\d+)/(\d+) \((\d+)%\)", res.stderr, re.M)
    assert len(lines) >= 3, res.stderr
    assert lines[0][0] == "0" and lines[-1][0] == lines[-1][1] == "102" and lines[-1][2] == "100"
