"""The torch side of the backbones: feature networks built from the registry
(``vasari.features.spec``), the EfficientNet-Lite weight loader, and the ONNX export.

torch is imported at the top: import this module only to build a network (``Embedder`` with
the torch engine, the first ONNX export, fine-tuning). ``import vasari.features`` does not.
"""

from __future__ import annotations

import json
import os
import warnings
from pathlib import Path

import torch
from torch import nn

from vasari.core.fileio import temp_path
from vasari.features.defaults import DEFAULT_BACKBONE, DEFAULT_FEATURE, FEATURES
from vasari.features.spec import (
    REGISTRY,
    BackboneError,
    BackboneSpec,
    Preprocess,
    canonical_name,
    onnx_path,
    weights_path,
)


def load_lite_weights(model: nn.Module, path: Path) -> int:
    """Load a lukemelas-style EfficientNet-Lite checkpoint into a timm model by parameter order.

    Returns the number of tensors loaded (parameters and BN running statistics, not the
    ``num_batches_tracked`` counters). Raises BackboneError on any count or shape mismatch.
    """
    source = torch.load(path, map_location="cpu", weights_only=True)
    if "state_dict" in source and isinstance(source["state_dict"], dict):
        source = source["state_dict"]
    src = [(k, v) for k, v in source.items() if not k.endswith("num_batches_tracked")]
    target_sd = model.state_dict()
    dst = [(k, v) for k, v in target_sd.items() if not k.endswith("num_batches_tracked")]
    if len(src) != len(dst):
        raise BackboneError(f"{path}: {len(src)} tensors but the model has {len(dst)}")
    new_sd = dict(target_sd)
    for (sk, sv), (dk, dv) in zip(src, dst):
        if tuple(sv.shape) != tuple(dv.shape):
            raise BackboneError(f"{path}: tensor {sk} {tuple(sv.shape)} does not fit {dk} {tuple(dv.shape)}")
        new_sd[dk] = sv.to(dv.dtype)
    model.load_state_dict(new_sd, strict=True)
    return len(src)


# --------------------------------------------------------------------------- torch modules


def _spatial_stats(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-channel mean and standard deviation over the spatial positions of ``(N, C, H, W)``."""
    mean = x.mean(dim=(2, 3))
    centred = x - mean[:, :, None, None]
    std = torch.sqrt(centred.pow(2).mean(dim=(2, 3)) + 1e-6)
    return mean, std


class LiteFeatureNet(nn.Module):
    """EfficientNet(-Lite) trunk returning pooled or style-statistics features."""

    def __init__(self, model: nn.Module, feature: str, stat_blocks: tuple[int, ...]):
        super().__init__()
        self.model = model
        self.feature = feature
        self.stat_blocks = tuple(stat_blocks)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        m = self.model
        x = m.bn1(m.conv_stem(x))
        taps = []
        for i, block in enumerate(m.blocks):
            x = block(x)
            if self.feature == "stats" and i in self.stat_blocks:
                taps.append(x)
        x = m.bn2(m.conv_head(x))
        pooled = x.mean(dim=(2, 3))
        if self.feature == "pooled":
            return pooled
        stats = [_spatial_stats(t) for t in taps]
        return torch.cat([pooled] + [s[0] for s in stats] + [s[1] for s in stats], dim=1)


class TimmFeatureNet(nn.Module):
    """Any timm model with ``forward_intermediates``: pooled (pre-logits) or statistics."""

    def __init__(self, model: nn.Module, feature: str, n_stages: int = 4):
        super().__init__()
        self.model = model
        self.feature = feature
        self.n_stages = n_stages

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        m = self.model
        if self.feature == "pooled":
            return m.forward_head(m.forward_features(x), pre_logits=True)
        final, taps = m.forward_intermediates(x, indices=self.n_stages)
        pooled = m.forward_head(final, pre_logits=True)
        stats = [_spatial_stats(t) for t in taps if t.ndim == 4]
        return torch.cat([pooled] + [s[0] for s in stats] + [s[1] for s in stats], dim=1)


class Uint8Input(nn.Module):
    """``(N, H, W, 3)`` uint8 crops -> normalised float NCHW -> ``net``: the inference graph.

    Normalising inside the graph lets onnxruntime do it in its worker threads and keeps
    the decode threads' output 4x smaller.
    """

    def __init__(self, net: nn.Module, preprocess: Preprocess):
        super().__init__()
        self.net = net
        std = torch.tensor(preprocess.std, dtype=torch.float32)
        mean = torch.tensor(preprocess.mean, dtype=torch.float32)
        self.register_buffer("scale", (1.0 / (255.0 * std)).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("shift", (mean / std).view(1, 3, 1, 1), persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x.permute(0, 3, 1, 2).float()
        return self.net(x * self.scale - self.shift)


def build_torch_backbone(name: str = DEFAULT_BACKBONE, feature: str = DEFAULT_FEATURE) -> nn.Module:
    """A ``torch.nn.Module`` in eval mode: ``(N, 3, H, W)`` in the spec's normalisation
    (``[-1, 1]`` for the Lites) -> ``(N, dim)`` features. Trainable (fine-tuning path)."""
    import timm

    if feature not in FEATURES:
        raise BackboneError(f"unknown feature {feature!r}; choose one of {', '.join(FEATURES)}")
    cname = canonical_name(name)
    if cname in REGISTRY:
        entry = REGISTRY[cname]
        path = weights_path(cname)
        model = timm.create_model(entry.timm_name, pretrained=False)
        load_lite_weights(model, path)
        net = LiteFeatureNet(model, feature, entry.stat_blocks)
    else:
        try:
            model = timm.create_model(cname, pretrained=True, num_classes=0)
        except RuntimeError as exc:  # timm: unknown model
            raise BackboneError(
                f"unknown backbone {name!r}: built-ins are {', '.join(REGISTRY)}; other timm names need "
                f"network access to download weights ({exc})"
            ) from exc
        except Exception as exc:  # download failures (offline) and the like
            raise BackboneError(f"cannot load timm backbone {name!r} with pretrained weights: {exc}") from exc
        net = TimmFeatureNet(model, feature)
    return net.eval()


# --------------------------------------------------------------------------- ONNX


def inference_module(spec: BackboneSpec, net: nn.Module | None = None) -> nn.Module:
    """The inference graph: ``(N, size, size, 3)`` uint8 RGB crops -> ``(N, dim)`` float32."""
    if net is None:
        net = build_torch_backbone(spec.name, spec.feature)
    return Uint8Input(net, spec.preprocess).eval()



def _torch_onnx_export(module: nn.Module, dummy: torch.Tensor, path: Path, opset: int) -> None:
    """The TorchScript exporter (about 1 s; deprecated since torch 2.9 but still the fastest
    and most robust here), else the torch.export-based one (about 15 s)."""


    io_names = {"input_names": ["images"], "output_names": ["features"]}
    try:
        with warnings.catch_warnings(), torch.no_grad():
            warnings.simplefilter("ignore", DeprecationWarning)
            torch.onnx.export(module, (dummy,), str(path), **io_names, opset_version=opset,
                              dynamic_axes={"images": {0: "batch"}, "features": {0: "batch"}},
                              do_constant_folding=True, dynamo=False)
        return
    except Exception as exc:  # legacy exporter removed or failing: use torch.export
        legacy_error = exc
    try:
        batch = torch.export.Dim("batch", min=1, max=1 << 16)
        with torch.no_grad():
            torch.onnx.export(module, (dummy,), str(path), **io_names, opset_version=max(opset, 18),
                              dynamic_shapes=({0: batch},), dynamo=True, optimize=True, verbose=False)
    except Exception as exc:
        raise BackboneError(f"ONNX export failed (TorchScript exporter: {legacy_error}; torch.export: {exc})") from exc


def export_onnx(spec: BackboneSpec, path: Path | None = None, net: nn.Module | None = None,
                opset: int = 17, replace: bool = False) -> Path:
    """Export the inference graph to ONNX once; later calls return the cached file.

    Input ``images``: ``(batch, size, size, 3)`` uint8 RGB crops (``Preprocess.to_uint8``),
    normalised inside the graph; output ``features``: ``(batch, dim)`` float32.

    Written to a temporary name beside ``path`` (``fileio.temp_path``) and renamed, so
    concurrent or interrupted exports never leave a half-written model. The spec is stored in the model metadata (``vasari_spec``).
    ``replace=True`` exports again over an existing file (one that onnxruntime cannot load).
    """
    path = Path(path) if path is not None else onnx_path(spec)
    if not replace and path.is_file() and path.stat().st_size > 0:
        return path
    path.parent.mkdir(parents=True, exist_ok=True)
    module = inference_module(spec, net)
    size = spec.preprocess.size
    dummy = torch.zeros(2, size, size, 3, dtype=torch.uint8)
    tmp = temp_path(path)
    try:
        _torch_onnx_export(module, dummy, tmp, opset)
        import onnx

        model = onnx.load(str(tmp))
        model.metadata_props.add(key="vasari_spec", value=json.dumps(spec.with_views("center").to_dict(), sort_keys=True))
        onnx.save(model, str(tmp))
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()
    return path
