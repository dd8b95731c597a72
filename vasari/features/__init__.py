"""Features: pretrained backbones and the ``Embedder`` that turns pictures into vectors, with a
resumable cache.

Modules: ``spec`` (the backbone registry, ``BackboneSpec``, preprocessing and views; no torch),
``nets`` (the torch networks and the ONNX export; imports torch), ``transforms`` (pixels ->
arrays), ``engines`` (onnxruntime and torch), ``embedder`` (``Embedder``), ``cache``
(``EmbeddingCache``) and ``finetuned`` (the embedder of a bundle's fine-tuned ONNX backbone).

``import vasari.features`` does not import torch: the names of ``nets`` are imported on first
use (PEP 562), like the public names of ``vasari`` itself.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from vasari.features.cache import (
    CACHE_FORMAT,
    CacheCorruptError,
    CacheLocationError,
    CacheMismatchError,
    CacheWarning,
    EmbeddingCache,
    content_key,
)
from vasari.features.embedder import (
    Embedder,
    EmbedResult,
    embed_paths,
    load_embeddings,
    log,
    save_embeddings,
)
from vasari.features.engines import (
    OnnxEngine,
    TorchEngine,
)
from vasari.features.finetuned import (
    FinetunedEmbedder,
    FinetuneError,
    finetuned_embedder,
    onnx_spec,
)
from vasari.features.spec import (
    ALIASES,
    BUNDLE_ONNX,
    DEFAULT_BACKBONE,
    DEFAULT_FEATURE,
    FEATURE_VERSION,
    FEATURES,
    REGISTRY,
    VIEWS,
    BackboneEntry,
    BackboneError,
    BackboneSpec,
    Preprocess,
    backbone_spec,
    canonical_name,
    default_cache_dir,
    list_backbones,
    onnx_path,
    timm_preprocess,
    weights_path,
)
from vasari.features.transforms import (
    multicrops,
    upright_rgb,
)

if TYPE_CHECKING:  # pragma: no cover - for type checkers and IDEs only
    from vasari.features.nets import (
        LiteFeatureNet,
        TimmFeatureNet,
        Uint8Input,
        build_torch_backbone,
        export_onnx,
        inference_module,
        load_lite_weights,
    )

#: The names of ``vasari.features.nets`` (torch), imported on first use.
_TORCH_NAMES = frozenset({"LiteFeatureNet", "TimmFeatureNet", "Uint8Input", "load_lite_weights", "build_torch_backbone", "inference_module", "export_onnx"})


def __getattr__(name: str) -> Any:
    """Import ``nets`` (and so torch) only when one of its names is used (PEP 562)."""
    if name not in _TORCH_NAMES:
        raise AttributeError(f"module 'vasari.features' has no attribute {name!r}")
    value = getattr(importlib.import_module("vasari.features.nets"), name)
    globals()[name] = value
    return value


__all__ = [
    "FEATURE_VERSION",
    "FEATURES",
    "VIEWS",
    "DEFAULT_BACKBONE",
    "DEFAULT_FEATURE",
    "BUNDLE_ONNX",
    "BackboneError",
    "Preprocess",
    "BackboneSpec",
    "BackboneEntry",
    "REGISTRY",
    "ALIASES",
    "canonical_name",
    "list_backbones",
    "weights_path",
    "timm_preprocess",
    "backbone_spec",
    "default_cache_dir",
    "onnx_path",
    "multicrops",
    "upright_rgb",
    "OnnxEngine",
    "TorchEngine",
    "CACHE_FORMAT",
    "CacheMismatchError",
    "CacheLocationError",
    "CacheCorruptError",
    "CacheWarning",
    "content_key",
    "EmbeddingCache",
    "log",
    "EmbedResult",
    "Embedder",
    "embed_paths",
    "save_embeddings",
    "load_embeddings",
    "FinetuneError",
    "FinetunedEmbedder",
    "finetuned_embedder",
    "onnx_spec",
    "LiteFeatureNet",
    "TimmFeatureNet",
    "Uint8Input",
    "load_lite_weights",
    "build_torch_backbone",
    "inference_module",
    "export_onnx",
]
