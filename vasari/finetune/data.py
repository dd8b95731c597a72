"""What the fine-tuning loop reads: usable samples, the label vocabulary and class weights per
task, the augmentation, and ``ImageSamples`` (the torch dataset) with its loaders.

torch is imported at the top: this module is only imported to train.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch
from PIL import Image
from torch.utils.data import DataLoader, Dataset

from vasari.core.images import ImageError, load_image
from vasari.core.labels import TASKS
from vasari.features.spec import Preprocess
from vasari.finetune.config import YEAR_CENTER, YEAR_SCALE, FinetuneConfig, Sample


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


def image_transforms(size: int, preprocess: Preprocess, train: bool) -> Callable[[Image.Image], torch.Tensor]:
    """Picture -> normalised tensor of side ``size``: the training augmentation (random resized
    crop, flip, light colour jitter) or, for validation, the backbone's own resize + centre crop."""
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


class ImageSamples(Dataset):
    """Decoded, augmented images with (targets per task, normalised year, year mask).

    A module-level class, so DataLoader workers started with "spawn" unpickle it by reference.
    """

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


def samples_from_artworks(artworks: Sequence[Any], tasks: Sequence[str] = TASKS) -> list[Sample]:
    """``Artwork`` records with a local image as ``Sample``s (labels per task, year)."""
    return [Sample(path=a.image, labels={t: a.label(t) for t in tasks}, year=a.year) for a in artworks if a.image]


def make_loaders(train: Sequence[Sample], val: Sequence[Sample], vocab: dict[str, list[str]], config: FinetuneConfig,
                 preprocess: Preprocess, device: str) -> tuple[DataLoader, DataLoader]:
    """The training loader (shuffled, augmented) and the validation loader (centre crops)."""
    size = config.image_size or preprocess.size
    min_side = int(math.ceil(size / preprocess.crop))
    workers = config.num_workers
    if workers is None:
        workers = min(8, max(0, (len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else 2) - 1))
    common = {"num_workers": workers, "pin_memory": device.startswith("cuda"), "persistent_workers": workers > 0}
    train_ds = ImageSamples(train, vocab, image_transforms(size, preprocess, True), min_side)
    val_ds = ImageSamples(val, vocab, image_transforms(size, preprocess, False), min_side)
    drop_last = len(train_ds) > config.batch_size  # a batch of one would break the feature BatchNorm
    return (
        DataLoader(train_ds, batch_size=config.batch_size, shuffle=True, drop_last=drop_last, **common),
        DataLoader(val_ds, batch_size=config.batch_size, shuffle=False, **common),
    )
