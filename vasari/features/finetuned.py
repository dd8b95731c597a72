"""The embedder of a fine-tuned backbone: the ONNX graph a bundle ships (``backbone.onnx``,
``vasari.features.spec.BUNDLE_ONNX``) with its ``BackboneSpec`` recorded in the graph's metadata.

It lives with the features, not with the training code (``vasari.finetune``), so that
inference runs a fine-tuned bundle without importing the training package (as open_clip
keeps its inference package apart from its training one).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

from vasari.errors import ModelError
from vasari.features.embedder import Embedder
from vasari.features.engines import OnnxEngine, TorchEngine
from vasari.features.spec import BackboneSpec

if TYPE_CHECKING:  # torch is imported only by the torch engine
    from torch import nn


class FinetuneError(ModelError):
    """Fine-tuning cannot run as asked, or a fine-tuned backbone cannot be used."""


class FinetunedEmbedder(Embedder):
    """An ``Embedder`` over a fine-tuned backbone exported to ONNX (a bundle's ``backbone.onnx``).

    Same preprocessing, batching, engines, caching and error handling as the stock
    ``Embedder`` (it only replaces where the network comes from: the stock one builds it
    from the backbone name, which a fine-tuned spec does not resolve to).
    ``engine="torch"`` needs the torch module (``net``).
    """

    def __init__(
        self,
        onnx_file: Path,
        spec: BackboneSpec,
        engine: str = "onnx",
        device: str | None = None,
        threads: int | None = None,
        net: nn.Module | None = None,
        **engine_options: Any,
    ):
        self.spec = spec
        self.preprocess = spec.preprocess
        self.threads = threads
        self._engine_options = {"streams": None, "micro_batch": None, **engine_options}
        self._cache_dir = None
        self.onnx_file = Path(onnx_file)
        self._net = net
        if engine == "torch":
            self.engine = self._torch_engine(device)
        elif engine in ("onnx", "auto"):
            self.engine = self._onnx_engine(device)
        else:
            raise ValueError(f"engine must be 'auto', 'onnx' or 'torch', got {engine!r}")

    def _onnx_engine(self, device: str | None) -> OnnxEngine:
        if not self.onnx_file.is_file():
            raise FinetuneError(f"{self.onnx_file}: fine-tuned backbone missing")
        return OnnxEngine(self.onnx_file, threads=self.threads, device=device, **self._engine_options)

    def _torch_engine(self, device: str | None) -> TorchEngine:
        if self._net is None:
            raise FinetuneError("the torch engine of a fine-tuned backbone needs its module (net=)")
        from vasari.features.nets import inference_module

        return TorchEngine(inference_module(self.spec, self._net), device=device, threads=self.threads)


def finetuned_embedder(onnx_file: Path, spec: BackboneSpec | None = None, engine: str = "onnx",
                       device: str | None = None, **kwargs: Any) -> FinetunedEmbedder:
    """An Embedder running a fine-tuned ONNX backbone; ``spec`` defaults to the one stored in the graph."""
    if spec is None:
        spec = onnx_spec(onnx_file)
    return FinetunedEmbedder(Path(onnx_file), spec, engine=engine, device=device, **kwargs)


def onnx_spec(onnx_file: Path) -> BackboneSpec:
    """The ``BackboneSpec`` recorded in an exported graph's ``vasari_spec`` metadata."""
    import onnx

    model = onnx.load(str(onnx_file), load_external_data=False)
    meta = {p.key: p.value for p in model.metadata_props}
    if "vasari_spec" not in meta:
        raise FinetuneError(f"{onnx_file}: not a Vasari backbone export (no vasari_spec metadata)")
    return BackboneSpec.from_dict(json.loads(meta["vasari_spec"]))
