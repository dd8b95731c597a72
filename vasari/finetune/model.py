"""The network being fine-tuned: the backbone split into stages (which of them train is
``FinetuneConfig.unfreeze``), BatchNorm statistics kept frozen, and ``MultiTaskModel``, the
backbone with one linear head per task and a year regressor on standardised features.

torch is imported at the top: this module is only imported to train.
"""

from __future__ import annotations

import torch
from torch import nn

from vasari.finetune.config import FinetuneConfig


def backbone_stages(net: nn.Module) -> tuple[list[nn.Module], list[nn.Module], list[nn.Module]]:
    """Split a backbone into (stem, stages, tail) module lists.

    ``stages`` are the children of the network's stage container (timm's ``blocks`` /
    ``stages`` / ``layers``: the one holding most parameters); ``stem`` is what runs before
    it, ``tail`` what runs after it (e.g. EfficientNet's ``conv_head`` + ``bn2``), which
    always trains together with the last stage. A network without a recognisable stage
    container is split into its top-level children.
    """

    def n_params(m: nn.Module) -> int:
        return sum(p.numel() for p in m.parameters())

    best = None
    for parent_name, parent in net.named_modules():
        for child_name, child in parent.named_children():
            if child_name in ("blocks", "stages", "layers", "features") and isinstance(
                child, (nn.Sequential, nn.ModuleList)
            ):
                if len(child) >= 2 and (best is None or n_params(child) > n_params(best[1][child_name])):
                    best = (parent_name, parent)
                    container_name = child_name
    if best is None:
        children = [c for c in net.children() if n_params(c) > 0]
        if len(children) < 2:
            return [], [net], []
        return [], children, []
    parent = best[1]
    names = [n for n, _ in parent.named_children()]
    idx = names.index(container_name)
    children = dict(parent.named_children())
    stem = [children[n] for n in names[:idx] if n_params(children[n]) > 0]
    tail = [
        children[n] for n in names[idx + 1 :] if n_params(children[n]) > 0 and n not in ("classifier", "head", "fc")
    ]
    stages = list(children[container_name].children())
    return stem, stages, tail


def set_trainable(net: nn.Module, config: FinetuneConfig) -> dict[str, int]:
    """Freeze ``net`` except the stages ``config.unfreeze`` names; returns parameter counts."""
    stem, stages, tail = backbone_stages(net)
    for p in net.parameters():
        p.requires_grad_(False)
    k = config.stages_to_unfreeze(len(stages))
    trainable: list = list(stages[len(stages) - k :]) if k else []
    if k:
        trainable += tail
    if str(config.unfreeze).strip().lower() == "all":
        trainable = [net]
    for module in trainable:
        for p in module.parameters():
            p.requires_grad_(True)
    total = sum(p.numel() for p in net.parameters())
    train = sum(p.numel() for p in net.parameters() if p.requires_grad)
    return {"stages": len(stages), "unfrozen_stages": k, "params": total, "trainable_params": train}


def freeze_batchnorm(net: nn.Module) -> None:
    """Put every BatchNorm in eval mode (running statistics stay those of pretraining)."""
    for m in net.modules():
        if isinstance(m, nn.modules.batchnorm._BatchNorm):
            m.eval()


# --------------------------------------------------------------------------- model


class MultiTaskModel(nn.Module):
    """Backbone -> features -> one linear layer per task (+ a year regressor)."""

    def __init__(self, backbone: nn.Module, dim: int, vocab: dict[str, list[str]], year: bool):
        super().__init__()
        self.backbone = backbone
        self.tasks = list(vocab)
        # a ModuleList, not a ModuleDict: task names such as "type" clash with nn.Module attributes
        self.heads = nn.ModuleList([nn.Linear(dim, len(v)) for v in vocab.values()])
        self.year = nn.Linear(dim, 1) if year else None
        # features (std statistics next to pooled activations) have very different scales:
        # a fixed-affine standardisation (set from data by calibrate_norm) conditions the heads
        self.norm = nn.BatchNorm1d(dim, affine=False, momentum=0.05)

    def forward(self, x: torch.Tensor) -> tuple[dict[str, torch.Tensor], torch.Tensor | None]:
        f = self.norm(self.backbone(x).float())
        logits = {t: head(f) for t, head in zip(self.tasks, self.heads)}
        return logits, (self.year(f).squeeze(1) if self.year is not None else None)


def calibrate_norm(model, loader, device: str, max_batches: int = 8) -> None:
    """Set the feature standardisation (``model.norm``) from a few training batches before training."""
    feats = []
    model.eval()
    with torch.no_grad():
        for i, (x, *_rest) in enumerate(loader):
            if i >= max_batches:
                break
            feats.append(model.backbone(x.to(device)).float())
    if not feats:
        return
    f = torch.cat(feats)
    model.norm.running_mean.copy_(f.mean(0))
    model.norm.running_var.copy_(f.var(0, unbiased=False) if len(f) > 1 else torch.ones_like(f[0]))
