"""Fine-tuning: unfreeze the last stages of the backbone and train it with multi-task heads.

The frozen-backbone pipeline (features -> logistic heads) is Vasari's default because it is
cheap and works on a CPU. ``finetune`` goes one step further where a GPU is available:

* the torch backbone (``vasari.features.backbones.build_torch_backbone``) has its last stage(s)
  unfrozen (``unfreeze="last"``, a number of stages, or ``"all"``); BatchNorm running
  statistics stay frozen (small batches on few paintings would corrupt them), their affine
  weights train with the stage they belong to;
* one linear layer per task sits on the backbone's features (plus a year regressor);
  missing labels are masked out of the loss, classes are weighted by inverse frequency;
* AdamW with a smaller learning rate for the backbone, linear warmup then cosine decay per
  step, AMP on CUDA (bf16 where supported, else fp16 with a ``GradScaler``);
* augmentation: random resized crop, horizontal flip, light colour jitter;
* early stopping on validation loss; the best checkpoint is saved atomically and restored.

Export (``finetune_artworks``): the best weights (by validation loss; checkpoint saved
atomically to ``<bundle>.finetune/best.pt`` beside the bundle — a torch checkpoint is a
pickle, and bundles hold none) are exported to ONNX **inside the bundle** (``backbone.onnx``,
same uint8 input as ``backbones.export_onnx``) under their own ``BackboneSpec``: the base
spec renamed ``<base>+ft-<digest of the weights>``, so the key differs from the stock
backbone's and a bundle can never be mixed up with features or caches of another backbone;
``bundle.load_bundle`` refuses a ``+ft-`` spec without its ONNX and ``predict.make_embedder``
checks the graph's recorded spec against the bundle's. The linear heads used during
fine-tuning are *not* shipped: the bundle's heads are refit by ``vasari.pipeline.fit_dataset``
(the code behind ``vasari train``) on features of the exported ONNX model — the same
calibrated heads, year regressor, abstention thresholds, evaluation and report every other
bundle has, computed with exactly the numbers the predictor will see. The fine-tuned
linear heads are only the training signal for the backbone.
"""

from __future__ import annotations

import contextlib
import hashlib
import math
import os
import time
import warnings
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from vasari.core.images import ImageError, load_image
from vasari.core.labels import TASKS
from vasari.errors import ModelError

if TYPE_CHECKING:
    import torch
    from torch import nn

#: Years are regressed as (year - YEAR_CENTER) / YEAR_SCALE.
YEAR_CENTER, YEAR_SCALE = 1650.0, 100.0


class FinetuneError(ModelError):
    """Fine-tuning cannot start: no labelled images, a bad ``unfreeze`` value, and the like."""


@dataclass(frozen=True)
class FinetuneConfig:
    """Every knob of a fine-tuning run (recorded in the bundle's model card)."""

    backbone: str = "efficientnet_lite2"
    feature: str = "stats"
    unfreeze: str = "last"  # "last" | "all" | "<N>" (the last N stages)
    epochs: int = 10
    lr: float = 1e-3  # heads; the backbone gets lr * backbone_lr_scale
    backbone_lr_scale: float = 0.1
    weight_decay: float = 1e-4
    batch_size: int = 32
    warmup_fraction: float = 0.05  # of all steps, linear warmup before the cosine decay
    patience: int = 3  # epochs without val-loss improvement before stopping
    min_delta: float = 1e-4
    device: str = "auto"  # "auto" | "cpu" | "cuda" | "cuda:N"
    amp: bool = True  # autocast on CUDA (ignored on CPU)
    image_size: int | None = None  # training resolution; None -> the backbone's own size
    tasks: tuple[str, ...] = TASKS
    year_weight: float = 0.5  # weight of the year regression loss (0 disables it)
    label_smoothing: float = 0.05
    max_steps_per_epoch: int | None = None  # cap (smoke tests, quick trials)
    num_workers: int | None = None  # DataLoader workers; None -> min(8, cores - 1)
    seed: int = 0

    def __post_init__(self) -> None:
        self.stages_to_unfreeze(1_000)  # validates the spelling of ``unfreeze``
        if self.epochs < 1:
            raise FinetuneError(f"epochs must be >= 1, got {self.epochs}")
        if self.batch_size < 2:
            raise FinetuneError(f"batch size must be >= 2 (BatchNorm on the features), got {self.batch_size}")
        if not self.lr > 0:
            raise FinetuneError(f"learning rate must be > 0, got {self.lr}")
        unknown = [t for t in self.tasks if t not in TASKS]
        if unknown:
            raise FinetuneError(f"unknown task(s) {', '.join(unknown)}; tasks are {', '.join(TASKS)}")
        if not isinstance(self.tasks, tuple):
            object.__setattr__(self, "tasks", tuple(self.tasks))

    def stages_to_unfreeze(self, n_stages: int) -> int:
        """How many of ``n_stages`` backbone stages train (``all`` -> every stage and the stem)."""
        value = str(self.unfreeze).strip().lower()
        if value == "all":
            return n_stages
        if value == "last":
            return 1
        try:
            n = int(value)
        except ValueError:
            raise FinetuneError(
                f"--unfreeze must be 'last', 'all' or a number of stages, got {self.unfreeze!r}"
            ) from None
        if n < 0:
            raise FinetuneError(f"--unfreeze must be >= 0, got {n}")
        return min(n, n_stages)


@dataclass(frozen=True)
class Sample:
    """One training image: its path, a label per task (None = unknown) and its year."""

    path: str
    labels: dict[str, str | None]
    year: int | None = None


# --------------------------------------------------------------------------- device


def resolve_device(device: str = "auto") -> str:
    """``auto`` -> ``cuda`` when torch sees a GPU, else ``cpu``; explicit CUDA without one is an error."""
    import torch

    device = (device or "auto").strip().lower()
    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise FinetuneError(f"device {device!r} requested but torch.cuda.is_available() is False on this machine")
    if device not in ("cpu",) and not device.startswith("cuda"):
        raise FinetuneError(f"unknown device {device!r}: use auto, cpu, cuda or cuda:N")
    return device


def amp_settings(device: str, enabled: bool = True) -> tuple[Any, bool]:
    """(autocast dtype or None, whether a GradScaler is needed) for ``device``."""
    import torch

    if not enabled or not device.startswith("cuda"):
        return None, False
    if torch.cuda.is_bf16_supported():
        return torch.bfloat16, False
    return torch.float16, True


# --------------------------------------------------------------------------- backbone stages


def backbone_stages(net: nn.Module) -> tuple[list[nn.Module], list[nn.Module], list[nn.Module]]:
    """Split a backbone into (stem, stages, tail) module lists.

    ``stages`` are the children of the network's stage container (timm's ``blocks`` /
    ``stages`` / ``layers``: the one holding most parameters); ``stem`` is what runs before
    it, ``tail`` what runs after it (e.g. EfficientNet's ``conv_head`` + ``bn2``), which
    always trains together with the last stage. A network without a recognisable stage
    container is split into its top-level children.
    """
    from torch import nn

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
    from torch import nn

    for m in net.modules():
        if isinstance(m, nn.modules.batchnorm._BatchNorm):
            m.eval()


# --------------------------------------------------------------------------- model


def _model_class():
    from torch import nn

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

    return MultiTaskModel


def build_vocab(samples: Sequence[Sample], tasks: Sequence[str], min_count: int = 1) -> dict[str, list[str]]:
    """Per task, the sorted labels seen in ``samples`` (tasks with fewer than two labels are dropped)."""
    vocab: dict[str, list[str]] = {}
    for task in tasks:
        counts: dict[str, int] = {}
        for s in samples:
            label = s.labels.get(task)
            if label is not None:
                counts[label] = counts.get(label, 0) + 1
        labels = sorted(k for k, v in counts.items() if v >= min_count)
        if len(labels) >= 2:
            vocab[task] = labels
    return vocab


def balanced_weights(samples: Sequence[Sample], task: str, labels: Sequence[str]) -> np.ndarray:
    """Inverse-frequency class weights ``n / (k * count)``, normalised to mean 1."""
    counts = np.array([sum(1 for s in samples if s.labels.get(task) == lab) for lab in labels], dtype=np.float64)
    w = counts.sum() / (len(labels) * np.maximum(counts, 1.0))
    return (w / w.mean()).astype(np.float32)


# --------------------------------------------------------------------------- data


def _transforms(size: int, preprocess, train: bool):
    from torchvision import transforms as T

    normalize = T.Normalize(mean=list(preprocess.mean), std=list(preprocess.std))
    if train:
        return T.Compose(
            [
                T.RandomResizedCrop(
                    size, scale=(0.5, 1.0), ratio=(3 / 4, 4 / 3), interpolation=T.InterpolationMode.BICUBIC
                ),
                T.RandomHorizontalFlip(),
                T.ColorJitter(brightness=0.1, contrast=0.1, saturation=0.1, hue=0.02),
                T.ToTensor(),
                normalize,
            ]
        )
    resize = int(math.floor(size / preprocess.crop))
    return T.Compose(
        [
            T.Resize(resize, interpolation=T.InterpolationMode.BICUBIC),
            T.CenterCrop(size),
            T.ToTensor(),
            normalize,
        ]
    )


def _dataset_class():
    import torch
    from torch.utils.data import Dataset as TorchDataset

    class ImageSamples(TorchDataset):
        """Decoded, augmented images with (targets per task, normalised year, year mask)."""

        def __init__(self, samples: Sequence[Sample], vocab: dict[str, list[str]], transform, min_side: int):
            self.samples = list(samples)
            self.index = {t: {lab: i for i, lab in enumerate(v)} for t, v in vocab.items()}
            self.transform = transform
            self.min_side = min_side

        def __len__(self) -> int:
            return len(self.samples)

        def __getitem__(self, i: int):
            s = self.samples[i]
            img = load_image(s.path, min_side=self.min_side)
            x = self.transform(img)
            targets = torch.tensor(
                [self.index[t].get(s.labels.get(t), -1) if s.labels.get(t) is not None else -1 for t in self.index],
                dtype=torch.long,
            )
            year = float((s.year - YEAR_CENTER) / YEAR_SCALE) if s.year is not None else 0.0
            return x, targets, torch.tensor(year), torch.tensor(s.year is not None)

    return ImageSamples


def usable_samples(samples: Sequence[Sample], min_side: int = 16) -> tuple[list[Sample], dict[str, str]]:
    """Drop samples whose image cannot be decoded (path -> reason for each dropped one)."""
    kept, bad = [], {}
    for s in samples:
        try:
            img = load_image(s.path, min_side=min_side)
            if min(img.size) < 8:
                raise ImageError("corrupt", f"{s.path}: image is only {img.size[0]}x{img.size[1]} pixels")
            kept.append(s)
        except ImageError as exc:
            bad[s.path] = str(exc)
    return kept, bad


# --------------------------------------------------------------------------- training


@dataclass
class FitResult:
    """What ``fit`` did: per-epoch history, the best epoch and its validation loss."""

    history: list[dict[str, Any]] = field(default_factory=list)
    best_epoch: int = -1
    best_val_loss: float = math.inf
    stopped_early: bool = False
    seconds: float = 0.0
    checkpoint: str | None = None
    trainable: dict[str, int] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def multitask_loss(
    logits: dict,
    targets,
    year_pred,
    year,
    year_mask,
    weights: dict,
    config: FinetuneConfig,
    reduction_sums: bool = False,
):
    """Masked multi-task loss: weighted cross-entropy per task over labelled rows only, plus
    a smooth-L1 year loss over dated rows. Tasks without a label in the batch contribute 0.

    With ``reduction_sums`` returns ``{task: (weighted loss sum, weight sum)}`` for exact
    dataset-level averaging (validation).
    """
    import torch
    import torch.nn.functional as F

    parts: dict[str, tuple[torch.Tensor, torch.Tensor]] = {}
    for j, task in enumerate(logits):
        t = targets[:, j]
        valid = t >= 0
        if not bool(valid.any()):
            continue
        w = weights[task]
        per = F.cross_entropy(
            logits[task][valid].float(), t[valid], weight=w, reduction="none", label_smoothing=config.label_smoothing
        )
        # with weight= each row's loss is already multiplied by its class weight; dividing the
        # sum by the summed weights gives torch's own weighted mean, computable across batches
        parts[task] = (per.sum(), w[t[valid]].sum())
    if year_pred is not None and config.year_weight > 0 and bool(year_mask.any()):
        yl = F.smooth_l1_loss(year_pred[year_mask].float(), year[year_mask].float(), reduction="sum")
        parts["year"] = (yl * config.year_weight, year_mask.sum().float())
    if reduction_sums:
        return parts
    if not parts:
        return None
    return sum(s / torch.clamp(n, min=1e-6) for s, n in parts.values())


def _lr_lambda(total_steps: int, warmup_steps: int) -> Callable[[int], float]:
    def f(step: int) -> float:
        if warmup_steps > 0 and step < warmup_steps:
            return (step + 1) / warmup_steps
        progress = (step - warmup_steps) / max(1, total_steps - warmup_steps)
        return 0.5 * (1.0 + math.cos(math.pi * min(1.0, progress)))

    return f


def atomic_torch_save(obj: Any, path: Path) -> None:
    """``torch.save`` to a temporary file then rename (``vasari.core.fileio``): a crash never leaves half a checkpoint."""
    import torch

    from vasari.core.fileio import atomic_open

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_open(path, "wb") as fh:
        torch.save(obj, fh)


def evaluate_model(model, loader, weights: dict, config: FinetuneConfig, device: str, amp_dtype=None) -> dict[str, Any]:
    """Validation loss (dataset-level weighted averages per task, summed) and top-1 per task."""
    import torch

    model.eval()
    sums: dict[str, list[float]] = {}
    correct: dict[str, int] = {t: 0 for t in model.tasks}
    counted: dict[str, int] = {t: 0 for t in model.tasks}
    with torch.no_grad():
        for x, targets, year, mask in loader:
            x, targets, year, mask = x.to(device), targets.to(device), year.to(device), mask.to(device)
            ctx = torch.autocast("cuda", dtype=amp_dtype) if amp_dtype is not None else contextlib.nullcontext()
            with ctx:
                logits, year_pred = model(x)
            for task, (s, n) in multitask_loss(logits, targets, year_pred, year, mask, weights, config, True).items():
                acc = sums.setdefault(task, [0.0, 0.0])
                acc[0] += float(s)
                acc[1] += float(n)
            for j, task in enumerate(model.tasks):
                valid = targets[:, j] >= 0
                counted[task] += int(valid.sum())
                correct[task] += int((logits[task].argmax(1)[valid] == targets[valid, j]).sum())
    per_task = {t: s / max(n, 1e-6) for t, (s, n) in sums.items()}
    return {
        "loss": float(sum(per_task.values())) if per_task else math.nan,
        "loss_per_task": per_task,
        "top1": {t: correct[t] / counted[t] for t in model.tasks if counted[t]},
    }


def fit(
    model,
    train_loader,
    val_loader,
    weights: dict,
    config: FinetuneConfig,
    device: str,
    checkpoint: Path | None = None,
    extra_state: dict | None = None,
    console=None,
    progress: bool = True,
) -> FitResult:
    """Train ``model`` (a ``MultiTaskModel``-like module) with early stopping on val loss.

    Works on any backbone module: the heads train at ``config.lr``, parameters under
    ``model.backbone`` that require grad at ``config.lr * config.backbone_lr_scale``.
    The best state (by val loss) is saved to ``checkpoint`` (atomically) and restored at the end.
    """
    import copy

    import torch
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        TextColumn,
        TimeElapsedColumn,
    )

    from vasari.core.progress import make_progress

    torch.manual_seed(config.seed)
    model.to(device)
    weights = {t: w.to(device) for t, w in weights.items()}
    backbone_params = [p for p in model.backbone.parameters() if p.requires_grad]
    backbone_ids = {id(p) for p in model.backbone.parameters()}
    head_params = [p for p in model.parameters() if p.requires_grad and id(p) not in backbone_ids]
    groups = [{"params": head_params, "lr": config.lr}]
    if backbone_params:
        groups.append({"params": backbone_params, "lr": config.lr * config.backbone_lr_scale})
    optimizer = torch.optim.AdamW(groups, weight_decay=config.weight_decay)
    steps_per_epoch = len(train_loader)
    if config.max_steps_per_epoch:
        steps_per_epoch = min(steps_per_epoch, config.max_steps_per_epoch)
    total = max(1, steps_per_epoch * config.epochs)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, _lr_lambda(total, int(total * config.warmup_fraction)))
    amp_dtype, needs_scaler = amp_settings(device, config.amp)
    scaler = torch.amp.GradScaler("cuda") if needs_scaler else None

    result = FitResult(checkpoint=str(checkpoint) if checkpoint else None)
    best_state = None
    bad_epochs = 0
    started = time.perf_counter()
    columns = (
        TextColumn("[bold]epoch {task.fields[epoch]}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("loss {task.fields[loss]}"),
        TimeElapsedColumn(),
    )
    with make_progress(*columns, console=console, disable=not progress, transient=True) as bar:
        for epoch in range(config.epochs):
            model.train()
            freeze_batchnorm(model.backbone)
            job = bar.add_task("train", total=steps_per_epoch, epoch=epoch + 1, loss="—")
            t0, losses = time.perf_counter(), []
            for step, (x, targets, year, mask) in enumerate(train_loader):
                if step >= steps_per_epoch:
                    break
                x, targets = x.to(device, non_blocking=True), targets.to(device, non_blocking=True)
                year, mask = year.to(device), mask.to(device)
                ctx = torch.autocast("cuda", dtype=amp_dtype) if amp_dtype is not None else contextlib.nullcontext()
                with ctx:
                    logits, year_pred = model(x)
                loss = multitask_loss(logits, targets, year_pred, year, mask, weights, config)
                optimizer.zero_grad(set_to_none=True)
                if loss is not None:
                    if scaler is not None:
                        scaler.scale(loss).backward()
                        scaler.step(optimizer)
                        scaler.update()
                    else:
                        loss.backward()
                        optimizer.step()
                    losses.append(float(loss.detach()))
                scheduler.step()
                bar.update(job, advance=1, loss=f"{np.mean(losses[-20:]):.3f}" if losses else "—")
            bar.remove_task(job)
            val = evaluate_model(model, val_loader, weights, config, device, amp_dtype)
            record = {
                "epoch": epoch + 1,
                "train_loss": float(np.mean(losses)) if losses else math.nan,
                "train_losses": [float(v) for v in losses],
                "val_loss": val["loss"],
                "val_top1": val["top1"],
                "lr": [g["lr"] for g in optimizer.param_groups],
                "seconds": time.perf_counter() - t0,
            }
            result.history.append(record)
            if console is not None and progress:
                tops = ", ".join(f"{t} {v:.3f}" for t, v in val["top1"].items())
                console.print(
                    f"epoch {epoch + 1}/{config.epochs}: train loss {record['train_loss']:.4f}, "
                    f"val loss {val['loss']:.4f}, val top-1 {tops} ({record['seconds']:.1f} s)"
                )
            improved = val["loss"] < result.best_val_loss - config.min_delta or result.best_epoch < 0
            if improved:
                result.best_val_loss, result.best_epoch, bad_epochs = val["loss"], epoch + 1, 0
                best_state = copy.deepcopy({k: v.detach().cpu() for k, v in model.state_dict().items()})
                if checkpoint is not None:
                    atomic_torch_save(
                        {
                            "model": best_state,
                            "epoch": epoch + 1,
                            "val_loss": val["loss"],
                            "config": asdict(config),
                            **(extra_state or {}),
                        },
                        checkpoint,
                    )
            else:
                bad_epochs += 1
                if bad_epochs >= config.patience:
                    result.stopped_early = True
                    break
    if best_state is not None:
        model.load_state_dict(best_state)
    result.seconds = time.perf_counter() - started
    return result


def calibrate_norm(model, loader, device: str, max_batches: int = 8) -> None:
    """Set the feature standardisation (``model.norm``) from a few training batches before training."""
    import torch

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


# --------------------------------------------------------------------------- export


def finetuned_spec(base, net: nn.Module):
    """The ``BackboneSpec`` of a fine-tuned network: the base spec renamed
    ``<base>+ft-<digest of its weights>``, so its key (caches, bundles) is its own; every
    other field (feature, dim, preprocessing, views, version) is the base's."""
    import dataclasses

    h = hashlib.blake2b(digest_size=6)
    for name, tensor in sorted(net.state_dict().items()):
        h.update(name.encode())
        h.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    base_name = base.name.split("+ft-")[0]
    return dataclasses.replace(base, name=f"{base_name}+ft-{h.hexdigest()}")


#: File name of the fine-tuned backbone inside a bundle directory.
BUNDLE_ONNX = "backbone.onnx"


def _embedder_class():
    from vasari.features.embedder import Embedder, OnnxEngine, TorchEngine

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
            spec,
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
            from vasari.features.backbones import inference_module

            return TorchEngine(inference_module(self.spec, self._net), device=device, threads=self.threads)

    return FinetunedEmbedder


def finetuned_embedder(onnx_file: Path, spec=None, engine: str = "onnx", device: str | None = None, **kwargs):
    """An Embedder running a fine-tuned ONNX backbone; ``spec`` defaults to the one stored in the graph."""
    if spec is None:
        spec = onnx_spec(onnx_file)
    return _embedder_class()(Path(onnx_file), spec, engine=engine, device=device, **kwargs)


def onnx_spec(onnx_file: Path):
    """The ``BackboneSpec`` recorded in an exported graph's ``vasari_spec`` metadata."""
    import json

    import onnx

    from vasari.features.backbones import BackboneSpec

    model = onnx.load(str(onnx_file), load_external_data=False)
    meta = {p.key: p.value for p in model.metadata_props}
    if "vasari_spec" not in meta:
        raise FinetuneError(f"{onnx_file}: not a Vasari backbone export (no vasari_spec metadata)")
    return BackboneSpec.from_dict(json.loads(meta["vasari_spec"]))


def export_finetuned(net: nn.Module, base_spec, out_dir: Path) -> tuple[Any, Path]:
    """Export a fine-tuned backbone into ``out_dir/backbone.onnx`` under its own spec."""
    from vasari.features.backbones import export_onnx

    net = net.cpu().eval()
    spec = finetuned_spec(base_spec, net)
    path = Path(out_dir) / BUNDLE_ONNX
    if path.exists():
        path.unlink()  # export_onnx keeps an existing file: this one is stale
    export_onnx(spec, path, net=net)
    return spec, path


# --------------------------------------------------------------------------- the whole run


@dataclass
class FinetuneResult:
    """A finished fine-tune: the saved bundle, its spec, the training history and metrics."""

    bundle_dir: Path
    spec: Any
    fit: FitResult
    vocab: dict[str, list[str]]
    trainable: dict[str, int]
    device: str
    checkpoint: Path
    metrics: dict[str, Any] = field(default_factory=dict)
    evaluations: list[Any] = field(default_factory=list)
    skipped_images: dict[str, str] = field(default_factory=dict)


def samples_from_artworks(artworks: Sequence[Any], tasks: Sequence[str] = TASKS) -> list[Sample]:
    """``Artwork`` records with a local image as ``Sample``s (labels per task, year)."""
    return [Sample(path=a.image, labels={t: a.label(t) for t in tasks}, year=a.year) for a in artworks if a.image]


def _warn_cpu(console, config: FinetuneConfig, n_train: int) -> None:
    from rich.panel import Panel

    message = (
        f"Fine-tuning on the CPU: this works but will be slow ({n_train} training images, up to "
        f"{config.epochs} epochs). A CUDA GPU is typically 20-100x faster; on a CPU the frozen-backbone "
        f"`vasari train` is the practical choice."
    )
    if console is not None:
        console.print(Panel(message, title="[bold yellow]warning", border_style="yellow"))
    warnings.warn(message, RuntimeWarning, stacklevel=3)


def _loaders(train: Sequence[Sample], val: Sequence[Sample], vocab, config: FinetuneConfig, preprocess, device: str):
    from torch.utils.data import DataLoader

    size = config.image_size or preprocess.size
    min_side = int(math.ceil(size / preprocess.crop))
    ImageSamples = _dataset_class()
    workers = config.num_workers
    if workers is None:
        workers = min(8, max(0, (len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else 2) - 1))
    common = {"num_workers": workers, "pin_memory": device.startswith("cuda"), "persistent_workers": workers > 0}
    train_ds = ImageSamples(train, vocab, _transforms(size, preprocess, True), min_side)
    val_ds = ImageSamples(val, vocab, _transforms(size, preprocess, False), min_side)
    drop_last = len(train_ds) > config.batch_size  # a batch of one would break the feature BatchNorm
    return (
        DataLoader(train_ds, batch_size=config.batch_size, shuffle=True, drop_last=drop_last, **common),
        DataLoader(val_ds, batch_size=config.batch_size, shuffle=False, **common),
    )


def finetune_backbone(
    train: Sequence[Sample],
    val: Sequence[Sample],
    config: FinetuneConfig = FinetuneConfig(),
    checkpoint: Path | None = None,
    console=None,
    progress: bool = True,
):
    """Fine-tune the backbone with multi-task heads on ``train`` (early stopping on ``val``).

    Returns ``(backbone module with the best weights, base BackboneSpec, FitResult, vocab,
    device, skipped images)``. Export it with ``export_finetuned``.
    """
    import torch

    from vasari.features.backbones import backbone_spec, build_torch_backbone

    device = resolve_device(config.device)
    train, bad_train = usable_samples(train)
    val, bad_val = usable_samples(val)
    skipped = {**bad_train, **bad_val}
    if console is not None and skipped:
        console.print(
            f"[yellow]{len(skipped)} images cannot be decoded and are skipped (first: {next(iter(skipped.values()))})"
        )
    if not train:
        raise FinetuneError("no usable training images")
    if not val:
        raise FinetuneError("no usable validation images: early stopping and the heads' thresholds need a val split")
    vocab = build_vocab(train, config.tasks)
    has_years = config.year_weight > 0 and sum(s.year is not None for s in train) >= 10
    if not vocab and not has_years:
        raise FinetuneError(
            f"no task has two or more labelled classes in the training split (tasks: {', '.join(config.tasks)})"
        )
    if device == "cpu":
        _warn_cpu(console, config, len(train))
    torch.manual_seed(config.seed)
    net = build_torch_backbone(config.backbone, config.feature)
    base_spec = backbone_spec(config.backbone, config.feature, net=net)
    trainable = set_trainable(net, config)
    model = _model_class()(net, base_spec.dim, vocab, year=has_years).to(device)
    weights = {task: torch.from_numpy(balanced_weights(train, task, labels)) for task, labels in vocab.items()}
    train_loader, val_loader = _loaders(train, val, vocab, config, base_spec.preprocess, device)
    calibrate_norm(model, train_loader, device)
    if console is not None:
        console.print(
            f"fine-tuning {base_spec.name} on {device}: {len(train)} train / {len(val)} val images, "
            f"tasks {', '.join(vocab) or '-'}{' + year' if has_years else ''}; unfreeze={config.unfreeze} "
            f"({trainable['unfrozen_stages']}/{trainable['stages']} stages, "
            f"{trainable['trainable_params']:,}/{trainable['params']:,} backbone parameters)"
        )
    result = fit(
        model,
        train_loader,
        val_loader,
        weights,
        config,
        device,
        checkpoint=checkpoint,
        extra_state={"vocab": vocab, "base_spec": base_spec.to_dict()},
        console=console,
        progress=progress,
    )
    result.trainable = trainable
    return model.backbone, base_spec, result, vocab, device, skipped


def default_work_dir(out_dir: Path) -> Path:
    """Where the checkpoint lives: ``<bundle>.finetune/`` beside the bundle (a torch checkpoint
    is a pickle, and bundles hold no pickle)."""
    out_dir = Path(out_dir)
    return out_dir.parent / f"{out_dir.name}.finetune"


def finetune_artworks(
    artworks: Sequence[Any],
    split_of: Sequence[str],
    out_dir: Path,
    config: FinetuneConfig = FinetuneConfig(),
    card: dict[str, Any] | None = None,
    work_dir: Path | None = None,
    console=None,
    progress: bool = True,
    evaluate_splits: Sequence[str] = ("val", "test"),
    views: str = "center",
    refit_on_val: bool = False,
) -> FinetuneResult:
    """Fine-tune on the "train" artworks, export the backbone, refit the heads and save a bundle.

    The heads are refit by ``vasari.pipeline.fit_dataset`` (the same code as ``vasari train``)
    with the fine-tuned ONNX backbone as embedder: C, temperature and abstention thresholds
    on "val", evaluation on ``evaluate_splits``, a report in ``<bundle>/report/``. Artworks
    of any other split (e.g. "photos") are only embedded and evaluated if listed there.
    ``views`` are the test-time views of the bundle (training always sees the centre crop
    plus augmentation); ``refit_on_val`` refits the heads on train + val once C is chosen
    (``HeadConfig.refit_on_val``). On artists7 both add about 3 points of top-1
    (benchmarks/finetune_artists7.py).
    """
    from vasari.bundle import save_bundle
    from vasari.report import write_report
    from vasari.heads.train import HeadConfig
    from vasari.pipeline import fit_dataset

    out_dir = Path(out_dir)
    work = Path(work_dir) if work_dir is not None else default_work_dir(out_dir)
    work.mkdir(parents=True, exist_ok=True)
    split_arr = list(split_of)
    train = samples_from_artworks([a for a, s in zip(artworks, split_arr) if s == "train"], config.tasks)
    val = samples_from_artworks([a for a, s in zip(artworks, split_arr) if s == "val"], config.tasks)
    checkpoint = work / "best.pt"
    net, base_spec, fit_result, vocab, device, skipped = finetune_backbone(
        train, val, config, checkpoint=checkpoint, console=console, progress=progress
    )

    spec, onnx_file = export_finetuned(net, base_spec, work)
    embedder = finetuned_embedder(onnx_file, spec.with_views(views))
    keep = [i for i, a in enumerate(artworks) if a.image]
    finetune_card = {
        "config": asdict(config),
        "device": device,
        "base_backbone": base_spec.to_dict(),
        "trainable": fit_result.trainable,
        "best_epoch": fit_result.best_epoch,
        "best_val_loss": fit_result.best_val_loss,
        "stopped_early": fit_result.stopped_early,
        "seconds": round(fit_result.seconds, 1),
        "history": [{k: v for k, v in h.items() if k != "train_losses"} for h in fit_result.history],
        "heads": "refit with vasari.pipeline.fit_dataset on features of the exported fine-tuned backbone",
        "backbone_file": BUNDLE_ONNX,
        "checkpoint": str(checkpoint.resolve()),
    }
    fitted = fit_dataset(
        [artworks[i] for i in keep],
        [split_arr[i] for i in keep],
        embedder,
        None,
        HeadConfig(tasks=tuple(config.tasks), refit_on_val=refit_on_val),
        evaluate_splits=tuple(evaluate_splits),
        card={**(card or {}), "finetune": finetune_card},
        progress=progress and console is not None,
    )
    try:
        from vasari.pipeline import compact_metrics

        fitted.bundle.metrics = compact_metrics(fitted.bundle.metrics)
    except ImportError:  # the CLI layer is optional here
        pass
    path = save_bundle(fitted.bundle, out_dir, extra_files={BUNDLE_ONNX: onnx_file})
    onnx_file.unlink()  # now inside the bundle
    write_report(
        fitted.evaluations,
        path / "report",
        title=f"Vasari evaluation: {out_dir.name} (fine-tuned)",
        context={"bundle": str(path)},
    )
    return FinetuneResult(
        bundle_dir=path,
        spec=spec,
        fit=fit_result,
        vocab=vocab,
        trainable=fit_result.trainable,
        device=device,
        checkpoint=checkpoint,
        metrics=fitted.bundle.metrics,
        evaluations=fitted.evaluations,
        skipped_images=skipped,
    )


def finetune_dataset(
    dataset_dir: Path,
    out_dir: Path,
    config: FinetuneConfig = FinetuneConfig(),
    console=None,
    progress: bool = True,
    work_dir: Path | None = None,
    views: str = "center",
    refit_on_val: bool = False,
) -> FinetuneResult:
    """``vasari finetune``: read a dataset folder (``vasari dataset build``) and run ``finetune_artworks``."""
    from vasari.dataset import load_dataset

    ds = load_dataset(Path(dataset_dir))
    arts = [a for a in ds.artworks if a.image]
    if not arts:
        raise FinetuneError(f"{dataset_dir}: no artwork has a local image (download them with `vasari download`)")
    card = {
        "name": Path(out_dir).name,
        "dataset": str(dataset_dir),
        "splits": f"{ds.config.split} split ({ds.split_sizes()})",
    }
    return finetune_artworks(
        arts,
        [ds.splits.get(a.artwork_id, "") for a in arts],
        out_dir,
        config,
        card=card,
        work_dir=work_dir,
        console=console,
        progress=progress,
        views=views,
        refit_on_val=refit_on_val,
    )
