"""What a fine-tuning run is asked to do (``FinetuneConfig``, validated on construction) and what
it trains on (``Sample``). No torch here: the CLI validates its options before importing it.

``FinetuneError`` is defined with the fine-tuned embedder (``vasari.features.finetuned``), which
inference uses without this package, and re-exported here.
"""

from __future__ import annotations

from dataclasses import dataclass

from vasari.core.labels import TASKS
from vasari.features.finetuned import FinetuneError
from vasari.features.defaults import DEFAULT_BACKBONE, DEFAULT_FEATURE

__all__ = ["YEAR_CENTER", "YEAR_SCALE", "FinetuneError", "FinetuneConfig", "Sample"]

#: Years are regressed as (year - YEAR_CENTER) / YEAR_SCALE.
YEAR_CENTER, YEAR_SCALE = 1650.0, 100.0


@dataclass(frozen=True)
class FinetuneConfig:
    """Every knob of a fine-tuning run (recorded in the bundle's model card)."""

    backbone: str = DEFAULT_BACKBONE
    feature: str = DEFAULT_FEATURE
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
