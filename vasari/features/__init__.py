"""Features: pretrained backbones and the ``Embedder`` that turns pictures into vectors, with a
resumable cache.

Modules: ``defaults`` (the shared names: default backbone, views, the bundle's ONNX file name;
no imports), ``spec`` (the backbone registry, ``BackboneSpec``, preprocessing; no torch),
``resolve`` (``backbone_spec``: a name -> its spec, building a network only for timm names
outside the registry),
``nets`` (the torch networks and the ONNX export; imports torch), ``transforms`` (pixels ->
arrays), ``engines`` (onnxruntime and torch), ``embedder`` (``Embedder``), ``cache``
(``EmbeddingCache``), ``finetuned`` (the embedder of a bundle's fine-tuned ONNX backbone),
``shards`` (Parquet shards + manifest), ``collection`` (a collection into shards or an
``EmbedResult`` with either engine) and ``ray_engine`` (onnxruntime in Ray actors).

The public names below are imported on first use (PEP 562), like those of ``vasari`` itself:
``import vasari.features`` imports nothing heavy, the CLI reads ``defaults`` for its option
defaults without numpy, and torch is imported only when a name of ``nets`` is used.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from vasari import lazy_exports

if TYPE_CHECKING:  # pragma: no cover - for type checkers and IDEs only
    from vasari.features.defaults import FEATURE_VERSION, FEATURES, VIEWS, DEFAULT_BACKBONE, DEFAULT_FEATURE, BUNDLE_ONNX
    from vasari.features.spec import BackboneError, Preprocess, BackboneSpec, BackboneEntry, REGISTRY, ALIASES, canonical_name, list_backbones, weights_path, timm_preprocess, default_cache_dir, onnx_path
    from vasari.features.resolve import backbone_spec
    from vasari.features.nets import LiteFeatureNet, TimmFeatureNet, Uint8Input, load_lite_weights, build_torch_backbone, inference_module, export_onnx
    from vasari.features.transforms import multicrops, upright_rgb
    from vasari.features.engines import OnnxEngine, TorchEngine
    from vasari.features.cache import log, CACHE_FORMAT, CacheMismatchError, CacheLocationError, CacheCorruptError, CacheWarning, content_key, EmbeddingCache
    from vasari.features.embedder import EmbedResult, Embedder, embed_paths, save_embeddings, load_embeddings
    from vasari.features.finetuned import FinetuneError, FinetunedEmbedder, finetuned_embedder, onnx_spec
    from vasari.features.shards import ShardError, iter_shard_batches, iter_prediction_objects, read_manifest
    from vasari.features.collection import CollectionConfig, embed_to_shards, embed_to_result
    from vasari.features.ray_engine import RayConfig

#: public name -> the module that defines it
_EXPORTS: dict[str, str] = {
    **dict.fromkeys(('FEATURE_VERSION', 'FEATURES', 'VIEWS', 'DEFAULT_BACKBONE', 'DEFAULT_FEATURE', 'BUNDLE_ONNX',), "vasari.features.defaults"),
    **dict.fromkeys(('BackboneError', 'Preprocess', 'BackboneSpec', 'BackboneEntry', 'REGISTRY', 'ALIASES', 'canonical_name', 'list_backbones', 'weights_path', 'timm_preprocess', 'default_cache_dir', 'onnx_path',), "vasari.features.spec"),
    **dict.fromkeys(('backbone_spec',), "vasari.features.resolve"),
    **dict.fromkeys(('LiteFeatureNet', 'TimmFeatureNet', 'Uint8Input', 'load_lite_weights', 'build_torch_backbone', 'inference_module', 'export_onnx',), "vasari.features.nets"),
    **dict.fromkeys(('multicrops', 'upright_rgb',), "vasari.features.transforms"),
    **dict.fromkeys(('OnnxEngine', 'TorchEngine',), "vasari.features.engines"),
    **dict.fromkeys(('log', 'CACHE_FORMAT', 'CacheMismatchError', 'CacheLocationError', 'CacheCorruptError', 'CacheWarning', 'content_key', 'EmbeddingCache',), "vasari.features.cache"),
    **dict.fromkeys(('EmbedResult', 'Embedder', 'embed_paths', 'save_embeddings', 'load_embeddings',), "vasari.features.embedder"),
    **dict.fromkeys(('FinetuneError', 'FinetunedEmbedder', 'finetuned_embedder', 'onnx_spec',), "vasari.features.finetuned"),
    **dict.fromkeys(('ShardError', 'iter_shard_batches', 'iter_prediction_objects', 'read_manifest',), "vasari.features.shards"),
    **dict.fromkeys(('CollectionConfig', 'embed_to_shards', 'embed_to_result',), "vasari.features.collection"),
    **dict.fromkeys(('RayConfig',), "vasari.features.ray_engine"),
}

__all__ = list(_EXPORTS)
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS, globals())
