"""Vasari: attribute European paintings from an image.

The pipeline flows one way: catalog -> dataset -> features -> heads -> bundle -> predictor
-> CLI / web service; each stage is a package (``vasari.catalog``, ``vasari.dataset``,
``vasari.features``, ``vasari.heads``, ``vasari.gallery``, ``vasari.inference``) and
``vasari.pipeline`` holds the use cases that span them.

The names below are the public API. They are imported on first use, so ``import vasari``
stays instant (no numpy, torch or onnxruntime until a name is touched)::

    >>> import vasari
    >>> predictor = vasari.Predictor.load()          # the default bundle
    >>> predictor.predict_paths(["painting.jpg"])
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Iterable, Mapping
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

#: public name -> the module that defines it
_EXPORTS = {
    "VasariError": "vasari.errors",
    "InputError": "vasari.errors",
    "ModelError": "vasari.errors",
    "CacheError": "vasari.errors",
    "Artwork": "vasari.catalog",
    "read_catalog": "vasari.catalog",
    "DatasetConfig": "vasari.dataset",
    "build_dataset": "vasari.dataset",
    "Embedder": "vasari.features",
    "HeadConfig": "vasari.heads",
    "train_heads": "vasari.heads",
    "Bundle": "vasari.bundle",
    "load_bundle": "vasari.bundle",
    "save_bundle": "vasari.bundle",
    "fit_dataset": "vasari.pipeline",
    "Predictor": "vasari.inference",
}

__all__ = ["__version__", *_EXPORTS]

if TYPE_CHECKING:  # pragma: no cover - for type checkers and IDEs only
    from vasari.bundle import Bundle, load_bundle, save_bundle
    from vasari.catalog import Artwork, read_catalog
    from vasari.dataset import DatasetConfig, build_dataset
    from vasari.errors import CacheError, InputError, ModelError, VasariError
    from vasari.features import Embedder
    from vasari.heads import HeadConfig, train_heads
    from vasari.inference import Predictor
    from vasari.pipeline import fit_dataset


def lazy_exports(package: str, exports: Mapping[str, str], namespace: dict[str, Any],
                 public: Iterable[str] | None = None) -> tuple[Callable[[str], Any], Callable[[], list[str]]]:
    """The ``__getattr__`` and ``__dir__`` (PEP 562) of ``package`` whose public name -> defining
    module map is ``exports``: a name is imported on first use and then stored in ``namespace``
    (the package's ``globals()``); ``public`` lists what ``dir()`` shows (default: ``exports``).
    Defined here, not in a module of its own, so that ``import vasari`` imports nothing more;
    ``vasari.features`` uses it too."""
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


__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS, globals(), __all__)
