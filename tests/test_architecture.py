"""The package's architecture rules (scripts/check_architecture.py) hold, and the check itself
catches each kind of breach on a small generated package."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SCRIPT = ROOT / "scripts" / "check_architecture.py"


def _checker():
    spec = importlib.util.spec_from_file_location("check_architecture", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while the class is made
    spec.loader.exec_module(module)
    return module


def _package(tmp_path: Path, files: dict[str, str]) -> Path:
    pkg = tmp_path / "vasari"
    for name, text in files.items():
        path = pkg / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    for folder in [pkg, *[p for p in pkg.rglob("*") if p.is_dir()]]:
        (folder / "__init__.py").touch()
    return pkg


def test_vasari_breaks_no_architecture_rule():
    run = subprocess.run([sys.executable, str(SCRIPT)], capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stdout


def test_check_finds_an_import_cycle_even_through_a_local_import(tmp_path):
    pkg = _package(tmp_path, {
        "a.py": "from vasari.b import g\n\ndef f():\n    return g()\n",
        "b.py": "def g():\n    from vasari.a import f\n    return f\n",
    })
    lines = _checker().check(pkg).lines
    assert lines == ["import cycle: vasari.a <-> vasari.b"]


def test_check_finds_the_library_importing_the_cli(tmp_path):
    pkg = _package(tmp_path, {"cli/learn.py": "X = 1\n", "heads.py": "from vasari.cli.learn import X\n"})
    lines = _checker().check(pkg).lines
    assert lines == ["vasari/heads.py: imports vasari.cli.learn (only the CLI and the service may)"]


def test_check_allows_the_cli_to_import_the_library(tmp_path):
    pkg = _package(tmp_path, {"cli/learn.py": "from vasari.heads import X\n", "heads.py": "X = 1\n"})
    assert _checker().check(pkg).lines == []


@pytest.mark.parametrize("body_lines, found", [(98, False), (99, True)])
def test_check_finds_a_function_over_100_lines(tmp_path, body_lines, found):
    body = "".join(f"    x{i} = {i}\n" for i in range(body_lines))
    pkg = _package(tmp_path, {"m.py": "def f():\n" + body + "    return 0\n"})
    lines = _checker().check(pkg).lines
    assert bool(lines) is found
    if found:
        assert lines[0] == "vasari/m.py:1: function f is 101 lines (max 100)"


def test_check_finds_a_class_defined_inside_a_function(tmp_path):
    pkg = _package(tmp_path, {"m.py": "def make():\n    class Hidden:\n        pass\n    return Hidden\n"})
    assert _checker().check(pkg).lines == ["vasari/m.py:2: class Hidden is defined inside function make"]


def test_import_vasari_loads_no_heavy_module():
    code = "import sys, vasari; print(sorted(m for m in ('numpy', 'torch', 'onnxruntime', 'PIL') if m in sys.modules))"
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True)
    assert run.stdout.strip() == "[]"


def test_public_api_names_resolve():
    import vasari

    for name in vasari.__all__:
        assert getattr(vasari, name) is not None, name
    assert issubclass(vasari.InputError, vasari.VasariError)
