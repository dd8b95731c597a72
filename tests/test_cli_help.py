"""Every verb's --help has an example, and the examples (and the README tour) are runnable
after the tour: outputs under runs/, inputs that the tour creates or that ../shared/data holds."""

from __future__ import annotations

import glob
import re
import shlex
from pathlib import Path

import click
import typer

from vasari.cli import app

README = Path(__file__).resolve().parent.parent / "README.md"
OUT_FLAGS = ("--out", "-o")


def commands(group: click.Command, prefix: tuple[str, ...] = ()):
    """(verb path, click command) for every leaf command of the CLI."""
    for name, command in getattr(group, "commands", {}).items():
        if getattr(command, "commands", None):
            yield from commands(command, prefix + (name,))
        else:
            yield prefix + (name,), command


def tour_lines() -> list[str]:
    text = README.read_text()
    block = text[text.index("## A short tour"):]
    block = block[block.index("```bash") + len("```bash"):]
    return [line for line in block[: block.index("```")].splitlines() if line.startswith("vasari ")]


def example_lines(help_text: str) -> list[str]:
    """The ``vasari ...`` command lines after the first "Example" of a help text."""
    after = help_text[help_text.index("Example"):]
    lines = [re.sub(r"^\s*Examples?:\s*", "", line).strip() for line in after.splitlines()]
    return [line for line in lines if line.startswith("vasari ")]


def check_command_line(line: str, created: set[str], data: Path | None) -> list[str]:
    """Problems of one command line (``a && b`` allowed); adds its outputs to ``created``."""
    problems = []
    for part in line.split("&&"):
        code, _, comment = part.partition("#")
        created.update(re.findall(r"-> (runs/\S+)", comment))
        tokens = shlex.split(code)
        for before, token in zip([""] + tokens, tokens):
            path = re.sub(r"^[a-z]+:", "", token).split("?")[0]
            if before in OUT_FLAGS:
                if not path.startswith("runs/"):
                    problems.append(f"{line}: output {token} is not under runs/")
                created.add(path.rstrip("/"))
            elif token.startswith("-") or "/" not in path or path.startswith("http") or path[0].isdigit():  # 10/s
                continue
            elif path.startswith("runs/"):
                if not any(path == c or path.startswith(c + "/") for c in created):
                    problems.append(f"{line}: {path} is not created by the tour")
            elif not path.startswith("../shared/data/"):
                problems.append(f"{line}: {path} is neither under runs/ nor under ../shared/data")
            elif data is not None and not glob.glob(str(data / path[len("../shared/data/"):])):
                problems.append(f"{line}: {path} does not exist in the shared data")
    return problems


def test_every_verb_has_an_example():
    missing = [" ".join(p) for p, c in commands(typer.main.get_command(app)) if "Example" not in (c.help or "")]
    assert missing == []


def test_tour_and_help_examples_use_paths_the_tour_creates():
    from vasari.core.paths import shared_data_dir

    data = shared_data_dir()
    created: set[str] = set()
    problems = []
    for line in tour_lines():
        problems += check_command_line(line, created, data)
    assert {"runs/data", "runs/model", "runs/index", "runs/demo", "runs/artists7"} <= created
    for verb, command in commands(typer.main.get_command(app)):
        for line in example_lines(command.help or ""):
            assert f"vasari {' '.join(verb)} " in line + " ", (verb, line)
            problems += check_command_line(line, set(created), data)
    assert problems == []


def test_the_checker_flags_paths_outside_the_tour():
    created = {"runs/data"}
    assert check_command_line("vasari train runs/data --out runs/m", created, None) == []
    assert "runs/m" in created
    problems = check_command_line("vasari train datasets/all --out models/all", created, None)
    assert len(problems) == 2 and "datasets/all" in problems[1] and "models/all" in problems[0]
    assert check_command_line("vasari similar runs/nope/x.jpg", created, None)[0].endswith("not created by the tour")


def test_default_outputs_go_under_runs_which_git_ignores():
    """A verb run with its defaults writes nothing that `git status` would show (bench wrote bench-results/)."""
    ignored = [line.strip() for line in (README.parent / ".gitignore").read_text().splitlines()]
    assert "/runs/" in ignored
    defaults = {}
    for verb, command in commands(typer.main.get_command(app)):
        for param in command.params:
            if param.name == "out" and param.default is not None:
                defaults[" ".join(verb)] = str(param.default)
    assert {"bench", "demo"} <= set(defaults)
    assert {verb: out for verb, out in defaults.items() if not out.startswith("runs/")} == {}
