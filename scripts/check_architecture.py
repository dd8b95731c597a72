"""Architecture rules of the vasari package, checked on its source (no import needed).

Fails (exit 1, one line per finding) on:
* an import cycle between vasari modules (module-level and function-local imports alike:
  a local import hides a cycle from the interpreter, not from the reader);
* a module outside ``vasari.cli`` and ``vasari.service`` that imports from them (data
  flows one way: the library never depends on its front ends);
* a function or method longer than ``MAX_FUNCTION_LINES`` lines;
* a class defined inside a function (invisible to type checkers, not picklable by reference).

Run: ``python scripts/check_architecture.py [PACKAGE_DIR]`` (default: ``vasari`` beside this
folder). ``tests/test_architecture.py`` runs it on every test run.
"""

from __future__ import annotations

import ast
import sys
from dataclasses import dataclass, field
from pathlib import Path

MAX_FUNCTION_LINES = 100
FRONT_ENDS = ("vasari.cli", "vasari.service")


@dataclass
class Findings:
    """What the check found, one human-readable line each."""

    lines: list[str] = field(default_factory=list)

    def add(self, line: str) -> None:
        self.lines.append(line)


def module_name(path: Path, package_dir: Path) -> str:
    """Dotted module name of ``path`` (``vasari/cli/__init__.py`` -> ``vasari.cli``)."""
    parts = list(path.relative_to(package_dir.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def imported_modules(tree: ast.AST, name: str, is_package: bool, known: set[str]) -> set[str]:
    """The vasari modules that ``tree`` imports (``from a import b`` counts ``a.b`` when that
    is a module, else ``a``)."""
    out: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = name.split(".") if is_package else name.split(".")[:-1]
                anchor = anchor[: len(anchor) - (node.level - 1)]
                base = ".".join(anchor + ([base] if base else []))
            for alias in node.names:
                full = f"{base}.{alias.name}"
                out.add(full if full in known else base)
    return {m for m in out if m in known}


def find_cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    cycles: list[list[str]] = []
    counter = [0]

    def visit(v: str) -> None:
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on_stack.add(v)
        for w in graph.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                cycles.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return cycles


def parent_packages(module: str) -> set[str]:
    """``a.b.c`` -> {``a``, ``a.b``}: importing a module runs its packages' ``__init__``."""
    parts = module.split(".")
    return {".".join(parts[:i]) for i in range(1, len(parts))}


def check_functions(tree: ast.AST, where: str, findings: Findings) -> None:
    """Long functions and classes defined inside functions."""
    for node in ast.walk(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            length = node.end_lineno - node.lineno + 1
            if length > MAX_FUNCTION_LINES:
                findings.add(f"{where}:{node.lineno}: function {node.name} is {length} lines "
                             f"(max {MAX_FUNCTION_LINES})")
            for inner in ast.walk(node):
                if isinstance(inner, ast.ClassDef):
                    findings.add(f"{where}:{inner.lineno}: class {inner.name} is defined inside "
                                 f"function {node.name}")


def check(package_dir: Path) -> Findings:
    """Every rule of the module docstring, on the package at ``package_dir``."""
    findings = Findings()
    files = sorted(package_dir.rglob("*.py"))
    names = {module_name(p, package_dir): p for p in files}
    known = set(names)
    graph: dict[str, set[str]] = {}
    for name, path in names.items():
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        where = str(path.relative_to(package_dir.parent))
        imports = imported_modules(tree, name, path.name == "__init__.py", known)
        # a package's __init__ importing its own submodules is how it re-exports them
        graph[name] = {m for m in imports if not m.startswith(name + ".")} - {name}
        check_functions(tree, where, findings)
        if not name.startswith(FRONT_ENDS):
            for target in sorted(imports):
                if target.startswith(FRONT_ENDS):
                    findings.add(f"{where}: imports {target} (only the CLI and the service may)")
    # importing a.b.c also imports a.b: an edge to a module is an edge to its packages too
    for name in list(graph):
        graph[name] |= {p for m in graph[name] for p in parent_packages(m)
                        if p in known and not name.startswith(p + ".") and p != name}
    for cycle in find_cycles(graph):
        findings.add("import cycle: " + " <-> ".join(cycle))
    return findings


def main(argv: list[str]) -> int:
    package_dir = Path(argv[1]) if len(argv) > 1 else Path(__file__).resolve().parent.parent / "vasari"
    findings = check(package_dir)
    for line in findings.lines:
        print(line)
    print(f"{len(findings.lines)} finding(s) in {package_dir}")
    return 1 if findings.lines else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
