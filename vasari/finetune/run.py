"""A whole fine-tuning run: train the backbone (``finetune_backbone``), export it to ONNX inside
the bundle under its own spec (``export_finetuned``), then refit the bundle's heads on its
features through ``vasari.pipeline`` (the same fit -> metrics path as ``vasari train``), save
the bundle and its report (``finetune_artworks``, ``finetune_dataset``).
"""

from __future__ import annotations

import hashlib
import warnings
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import torch
from torch import nn

from vasari.bundle import save_bundle
from vasari.dataset import load_dataset
from vasari.features.finetuned import finetuned_embedder
from vasari.features.nets import build_torch_backbone, export_onnx
from vasari.features.resolve import backbone_spec
from vasari.features.defaults import BUNDLE_ONNX
from vasari.features.spec import BackboneSpec
from vasari.finetune.config import FinetuneConfig, FinetuneError, Sample
from vasari.finetune.data import (
    balanced_weights,
    build_vocab,
    make_loaders,
    samples_from_artworks,
    usable_samples,
)
from vasari.finetune.loop import FinetuneFit, fit, resolve_device
from vasari.finetune.model import MultiTaskModel, calibrate_norm, set_trainable
from vasari.report import write_report
from vasari.heads.train import HeadConfig
from vasari.pipeline import compact_metrics, fit_dataset


def finetuned_spec(base: BackboneSpec, net: nn.Module) -> BackboneSpec:
    """The ``BackboneSpec`` of a fine-tuned network: the base spec renamed
    ``<base>+ft-<digest of its weights>``, so its key (caches, bundles) is its own; every
    other field (feature, dim, preprocessing, views, version) is the base's."""
    h = hashlib.blake2b(digest_size=6)
    for name, tensor in sorted(net.state_dict().items()):
        h.update(name.encode())
        h.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    base_name = base.name.split("+ft-")[0]
    return replace(base, name=f"{base_name}+ft-{h.hexdigest()}")


def export_finetuned(net: nn.Module, base_spec: BackboneSpec, out_dir: Path) -> tuple[BackboneSpec, Path]:
    """Export a fine-tuned backbone into ``out_dir/backbone.onnx`` under its own spec."""
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
    spec: BackboneSpec
    fit: FinetuneFit
    vocab: dict[str, list[str]]
    trainable: dict[str, int]
    device: str
    checkpoint: Path
    metrics: dict[str, Any] = field(default_factory=dict)
    evaluations: list[Any] = field(default_factory=list)
    skipped_images: dict[str, str] = field(default_factory=dict)


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


def finetune_backbone(
    train: Sequence[Sample],
    val: Sequence[Sample],
    config: FinetuneConfig = FinetuneConfig(),
    checkpoint: Path | None = None,
    console=None,
    progress: bool = True,
):
    """Fine-tune the backbone with multi-task heads on ``train`` (early stopping on ``val``).

    Returns ``(backbone module with the best weights, base BackboneSpec, FinetuneFit, vocab,
    device, skipped images)``. Export it with ``export_finetuned``.
    """
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
    model = MultiTaskModel(net, base_spec.dim, vocab, year=has_years).to(device)
    weights = {task: torch.from_numpy(balanced_weights(train, task, labels)) for task, labels in vocab.items()}
    train_loader, val_loader = make_loaders(train, val, vocab, config, base_spec.preprocess, device)
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
    fitted.bundle.metrics = compact_metrics(fitted.bundle.metrics)
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
