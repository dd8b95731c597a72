"""The fine-tuning loop: device and mixed precision, the masked multi-task loss, AdamW with
warmup + cosine per step, early stopping on validation loss, and the best checkpoint saved
atomically and restored (``fit`` -> ``FinetuneFit``).

torch is imported at the top: this module is only imported to train.
"""

from __future__ import annotations

import contextlib
import copy
import math
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader

from vasari.core.fileio import atomic_open
from vasari.finetune.config import FinetuneConfig, FinetuneError
from vasari.finetune.model import freeze_batchnorm

# --------------------------------------------------------------------------- device


def resolve_device(device: str = "auto") -> str:
    """``auto`` -> ``cuda`` when torch sees a GPU, else ``cpu``; explicit CUDA without one is an error."""
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
    if not enabled or not device.startswith("cuda"):
        return None, False
    if torch.cuda.is_bf16_supported():
        return torch.bfloat16, False
    return torch.float16, True


# --------------------------------------------------------------------------- training


@dataclass
class FinetuneFit:
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


def warmup_cosine(total_steps: int, warmup_steps: int) -> Callable[[int], float]:
    """The learning-rate factor per step: linear warmup over ``warmup_steps``, then cosine decay to 0."""

    def f(step: int) -> float:
        if warmup_steps > 0 and step < warmup_steps:
            return (step + 1) / warmup_steps
        progress = (step - warmup_steps) / max(1, total_steps - warmup_steps)
        return 0.5 * (1.0 + math.cos(math.pi * min(1.0, progress)))

    return f


def atomic_torch_save(obj: Any, path: Path) -> None:
    """``torch.save`` to a temporary file then rename (``vasari.core.fileio``): a crash never leaves half a checkpoint."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_open(path, "wb") as fh:
        torch.save(obj, fh)


def evaluate_model(model, loader, weights: dict, config: FinetuneConfig, device: str, amp_dtype=None) -> dict[str, Any]:
    """Validation loss (dataset-level weighted averages per task, summed) and top-1 per task."""
    model.eval()
    sums: dict[str, list[float]] = {}
    correct: dict[str, int] = {t: 0 for t in model.tasks}
    counted: dict[str, int] = {t: 0 for t in model.tasks}
    with torch.no_grad():
        for x, targets, year, mask in loader:
            x, targets, year, mask = x.to(device), targets.to(device), year.to(device), mask.to(device)
            with _autocast(amp_dtype):
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


@dataclass
class _Optimisation:
    """The optimiser of one ``fit``, its per-step schedule and its mixed-precision settings."""

    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LRScheduler
    scaler: torch.amp.GradScaler | None
    amp_dtype: torch.dtype | None
    steps_per_epoch: int


def _autocast(amp_dtype: torch.dtype | None) -> contextlib.AbstractContextManager:
    """CUDA autocast to ``amp_dtype``, or nothing (CPU, AMP off)."""
    return torch.autocast("cuda", dtype=amp_dtype) if amp_dtype is not None else contextlib.nullcontext()


def _optimisation(model: nn.Module, train_loader: DataLoader, config: FinetuneConfig, device: str) -> _Optimisation:
    """AdamW with the heads at ``config.lr`` and the trainable backbone parameters at
    ``config.lr * config.backbone_lr_scale``, warmup + cosine per step, AMP per device."""
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
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, warmup_cosine(total, int(total * config.warmup_fraction)))
    amp_dtype, needs_scaler = amp_settings(device, config.amp)
    scaler = torch.amp.GradScaler("cuda") if needs_scaler else None
    return _Optimisation(optimizer, scheduler, scaler, amp_dtype, steps_per_epoch)


def _progress_bar(console: Any, progress: bool) -> Any:
    """The per-epoch progress bar (epoch, steps, running loss); transient."""
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        TextColumn,
        TimeElapsedColumn,
    )

    from vasari.core.progress import make_progress

    columns = (
        TextColumn("[bold]epoch {task.fields[epoch]}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("loss {task.fields[loss]}"),
        TimeElapsedColumn(),
    )
    return make_progress(*columns, console=console, disable=not progress, transient=True)


def _train_epoch(model: nn.Module, loader: DataLoader, opt: _Optimisation, weights: dict, config: FinetuneConfig,
                 device: str, bar: Any, epoch: int) -> list[float]:
    """One epoch of training steps (at most ``opt.steps_per_epoch``); returns the batch losses."""
    model.train()
    freeze_batchnorm(model.backbone)
    job = bar.add_task("train", total=opt.steps_per_epoch, epoch=epoch + 1, loss="—")
    losses: list[float] = []
    for step, (x, targets, year, mask) in enumerate(loader):
        if step >= opt.steps_per_epoch:
            break
        x, targets = x.to(device, non_blocking=True), targets.to(device, non_blocking=True)
        year, mask = year.to(device), mask.to(device)
        with _autocast(opt.amp_dtype):
            logits, year_pred = model(x)
        loss = multitask_loss(logits, targets, year_pred, year, mask, weights, config)
        opt.optimizer.zero_grad(set_to_none=True)
        if loss is not None:
            if opt.scaler is not None:
                opt.scaler.scale(loss).backward()
                opt.scaler.step(opt.optimizer)
                opt.scaler.update()
            else:
                loss.backward()
                opt.optimizer.step()
            losses.append(float(loss.detach()))
        opt.scheduler.step()
        bar.update(job, advance=1, loss=f"{np.mean(losses[-20:]):.3f}" if losses else "—")
    bar.remove_task(job)
    return losses


def _epoch_record(epoch: int, losses: list[float], val: dict[str, Any], optimizer: torch.optim.Optimizer,
                  started: float) -> dict[str, Any]:
    """One line of ``FinetuneFit.history``."""
    return {
        "epoch": epoch + 1,
        "train_loss": float(np.mean(losses)) if losses else math.nan,
        "train_losses": [float(v) for v in losses],
        "val_loss": val["loss"],
        "val_top1": val["top1"],
        "lr": [g["lr"] for g in optimizer.param_groups],
        "seconds": time.perf_counter() - started,
    }


def _keep_best(model: nn.Module, record: dict[str, Any], config: FinetuneConfig, checkpoint: Path | None,
               extra_state: dict | None) -> dict[str, torch.Tensor]:
    """A CPU copy of the model's weights, also saved (atomically) to ``checkpoint`` when given."""
    best_state = copy.deepcopy({k: v.detach().cpu() for k, v in model.state_dict().items()})
    if checkpoint is not None:
        atomic_torch_save(
            {
                "model": best_state,
                "epoch": record["epoch"],
                "val_loss": record["val_loss"],
                "config": asdict(config),
                **(extra_state or {}),
            },
            checkpoint,
        )
    return best_state


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
) -> FinetuneFit:
    """Train ``model`` (a ``MultiTaskModel``-like module) with early stopping on val loss.

    Works on any backbone module: the heads train at ``config.lr``, parameters under
    ``model.backbone`` that require grad at ``config.lr * config.backbone_lr_scale``.
    The best state (by val loss) is saved to ``checkpoint`` (atomically) and restored at the end.
    """
    torch.manual_seed(config.seed)
    model.to(device)
    weights = {t: w.to(device) for t, w in weights.items()}
    opt = _optimisation(model, train_loader, config, device)
    result = FinetuneFit(checkpoint=str(checkpoint) if checkpoint else None)
    best_state = None
    bad_epochs = 0
    started = time.perf_counter()
    with _progress_bar(console, progress) as bar:
        for epoch in range(config.epochs):
            t0 = time.perf_counter()
            losses = _train_epoch(model, train_loader, opt, weights, config, device, bar, epoch)
            val = evaluate_model(model, val_loader, weights, config, device, opt.amp_dtype)
            record = _epoch_record(epoch, losses, val, opt.optimizer, t0)
            result.history.append(record)
            if console is not None and progress:
                tops = ", ".join(f"{t} {v:.3f}" for t, v in val["top1"].items())
                console.print(
                    f"epoch {epoch + 1}/{config.epochs}: train loss {record['train_loss']:.4f}, "
                    f"val loss {val['loss']:.4f}, val top-1 {tops} ({record['seconds']:.1f} s)"
                )
            if val["loss"] < result.best_val_loss - config.min_delta or result.best_epoch < 0:
                result.best_val_loss, result.best_epoch, bad_epochs = val["loss"], epoch + 1, 0
                best_state = _keep_best(model, record, config, checkpoint, extra_state)
            else:
                bad_epochs += 1
                if bad_epochs >= config.patience:
                    result.stopped_early = True
                    break
    if best_state is not None:
        model.load_state_dict(best_state)
    result.seconds = time.perf_counter() - started
    return result
