"""The built ``Dataset`` (artworks with their near-duplicate group, the split of each, the build's report) and its class weights and counts."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Iterable, Sequence

import numpy as np

from vasari.catalog import Artwork
from vasari.core.labels import TASKS

if TYPE_CHECKING:  # pragma: no cover
    pass
from vasari.dataset.config import SPLITS, DatasetConfig


@dataclass
class Dataset:
    """Artworks (with ``group`` filled) and their split; ``info`` is what ``dataset.json`` holds."""

    artworks: list[Artwork]
    splits: dict[str, str]
    config: DatasetConfig = field(default_factory=DatasetConfig)
    info: dict[str, Any] = field(default_factory=dict)

    def subset(self, split: str) -> list[Artwork]:
        """The artworks of one split, in dataset order."""
        if split not in SPLITS:
            raise KeyError(f"unknown split {split!r}; splits are {', '.join(SPLITS)}")
        return [a for a in self.artworks if self.splits.get(a.artwork_id) == split]

    def labels(self, task: str, split: str) -> list[str | None]:
        """One task's labels (None = unknown) for the artworks of ``subset(split)``."""
        if task not in TASKS:
            raise KeyError(f"unknown task {task!r}; tasks are {', '.join(TASKS)}")
        return [a.label(task) for a in self.subset(split)]

    def years(self, split: str) -> list[int | None]:
        return [a.year for a in self.subset(split)]

    def class_weights(self, task: str) -> dict[str, float]:
        """sklearn's "balanced" weights n / (k * count) from the train split's labels."""
        return class_weights([label for label in self.labels(task, "train") if label is not None])

    def class_counts(self) -> dict[str, dict[str, dict[str, int]]]:
        """task -> label -> split -> count (labelled records only)."""
        return class_counts(self.artworks, self.splits)

    def split_sizes(self) -> dict[str, int]:
        sizes = Counter(self.splits.values())
        return {s: sizes.get(s, 0) for s in SPLITS}


def class_weights(labels: Sequence[str]) -> dict[str, float]:
    """Balanced class weights (``sklearn.utils.class_weight.compute_class_weight``)."""
    if not labels:
        return {}
    from sklearn.utils.class_weight import compute_class_weight

    classes = np.array(sorted(set(labels)))
    weights = compute_class_weight("balanced", classes=classes, y=np.asarray(labels))
    return {str(c): float(w) for c, w in zip(classes, weights)}


def class_counts(artworks: Iterable[Artwork], splits: dict[str, str]) -> dict[str, dict[str, dict[str, int]]]:
    counts: dict[str, dict[str, dict[str, int]]] = {task: {} for task in TASKS}
    for art in artworks:
        split = splits.get(art.artwork_id)
        for task in TASKS:
            label = art.label(task)
            if label is None or split is None:
                continue
            per_split = counts[task].setdefault(label, {s: 0 for s in SPLITS})
            per_split[split] += 1
    return {task: dict(sorted(c.items())) for task, c in counts.items()}
