"""Public names of a package imported on first use (PEP 562), so that importing the package
stays light: ``import vasari`` is instant, ``import vasari.features`` imports neither numpy
nor torch, and each name pulls in only the module that defines it."""

from __future__ import annotations

import importlib
from collections.abc import Callable, Iterable, Mapping
from typing import Any


def lazy_exports(package: str, exports: Mapping[str, str], namespace: dict[str, Any],
                 public: Iterable[str] | None = None) -> tuple[Callable[[str], Any], Callable[[], list[str]]]:
    """The ``__getattr__`` and ``__dir__`` of ``package`` whose public name -> defining module
    map is ``exports``; a name, once imported, is stored in ``namespace`` (the package's
    ``globals()``). ``public`` lists the names ``dir()`` shows (default: ``exports``)."""
    names = sorted(public if public is not None else exports)

    def __getattr__(name: str) -> Any:
        module = exports.get(name)
        if module is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(module), name)
        namespace[name] = value
        return value

    def __dir__() -> list[str]:
        return names

    return __getattr__, __dir__
