"""A backbone name -> its ``BackboneSpec``.

Built-in backbones are looked up in the registry (``vasari.features.spec``: no weights, no
torch). Any other timm name has to be built once (``vasari.features.nets``, torch) to learn
its preprocessing and feature size. This is the one place that may go from a name to a network,
so it sits above both ``spec`` and ``nets`` (which imports ``spec``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from vasari.features.defaults import DEFAULT_BACKBONE, DEFAULT_FEATURE, FEATURES
from vasari.features.spec import REGISTRY, BackboneError, BackboneSpec, canonical_name, timm_preprocess

if TYPE_CHECKING:  # torch is imported only for a backbone outside the registry
    from torch import nn


def backbone_spec(name: str = DEFAULT_BACKBONE, feature: str = DEFAULT_FEATURE,
                  net: nn.Module | None = None) -> BackboneSpec:
    """The spec of a backbone; built-ins need no weights, other timm names need ``net``."""
    if feature not in FEATURES:
        raise BackboneError(f"unknown feature {feature!r}; choose one of {', '.join(FEATURES)}")
    cname = canonical_name(name)
    if cname in REGISTRY:
        entry = REGISTRY[cname]
        return BackboneSpec(cname, feature, entry.dim(feature), entry.preprocess)
    import torch

    if net is None:
        from vasari.features.nets import build_torch_backbone

        net = build_torch_backbone(cname, feature)
    pre = timm_preprocess(net.model)
    with torch.inference_mode():
        dim = int(net(torch.zeros(1, 3, pre.size, pre.size)).shape[1])
    return BackboneSpec(cname, feature, dim, pre)
