"""The CLI maps errors by family in one place: every ``VasariError`` from any verb reaches the
user as one red ``error:`` line with exit code 2; anything else is a bug and keeps its traceback."""

from __future__ import annotations

import pytest
import typer
from typer.testing import CliRunner

from vasari.cli import app
from vasari.cli.common import report_errors
from vasari.errors import CacheError, InputError, ModelError, VasariDownloadError, VasariError

runner = CliRunner()

FAMILIES = [
    InputError("catalog.csv, row 7: no title column"),
    ModelError("runs/model/bundle.json: missing"),
    CacheError("~/.cache/vasari: written by another backbone"),
    VasariDownloadError("out/: not writable"),
    VasariError("the root itself"),
]


def _app_raising(exc: BaseException) -> typer.Typer:
    """A two-verb app (so Typer keeps the verb names) whose ``boom`` verb raises ``exc``."""
    demo = typer.Typer()

    @demo.command()
    def boom() -> None:
        raise exc

    @demo.command()
    def fine() -> None:
        print("ok")

    report_errors(demo)
    return demo


@pytest.mark.parametrize("exc", FAMILIES, ids=lambda e: type(e).__name__)
def test_each_family_reaches_the_user_as_one_line(exc):
    res = runner.invoke(_app_raising(exc), ["boom"])
    assert res.exit_code == 2
    lines = res.output.strip().splitlines()
    assert lines == [f"error: {exc}"]
    assert "Traceback" not in res.output


def test_other_errors_are_bugs_and_keep_their_traceback():
    res = runner.invoke(_app_raising(KeyError("bug")), ["boom"])
    assert res.exit_code == 1 and isinstance(res.exception, KeyError)


def test_verbs_that_succeed_are_untouched():
    res = runner.invoke(_app_raising(InputError("x")), ["fine"])
    assert res.exit_code == 0 and res.output == "ok\n"


def _callbacks(t: typer.Typer):
    for command in t.registered_commands:
        yield command.callback
    for group in t.registered_groups:
        yield from _callbacks(group.typer_instance)


def test_every_vasari_verb_is_wrapped_once():
    callbacks = list(_callbacks(app))
    assert len(callbacks) > 10
    for callback in callbacks:
        assert hasattr(callback, "__wrapped__"), callback.__name__
        assert not hasattr(callback.__wrapped__, "__wrapped__"), callback.__name__


def test_a_library_error_from_a_real_verb_is_one_line(tmp_path):
    res = runner.invoke(app, ["index", "info", str(tmp_path / "nowhere")])
    assert res.exit_code == 2
    assert res.output.strip().splitlines()[0].startswith("error: ")
    assert "Traceback" not in res.output
