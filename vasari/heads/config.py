"""How heads are trained (``HeadConfig``) and the error raised when they cannot be."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Mapping

from vasari.core.labels import TASKS
from vasari.errors import InputError


class TrainError(InputError):
    """Training inputs that cannot give a model (no rows, mismatched lengths...)."""


@dataclass(frozen=True)
class HeadConfig:
    """How heads are trained. The defaults train ~10k x 2k features in seconds on 2 cores."""

    tasks: tuple[str, ...] = TASKS
    #: Inverse regularisation strengths tried (on standardised features), weakest last.
    #: The search stops early once validation accuracy has dropped twice in a row.
    c_grid: tuple[float, ...] = (0.002, 0.01, 0.05, 0.25)
    max_iter: int = 300
    #: L-BFGS stops when the objective improves by less than this (relative) per step.
    tol: float = 1e-5
    #: "balanced" (weights n / (k * count) from the train split) or None.
    class_weight: str | None = "balanced"
    #: A label seen fewer times than this in train is treated as missing (not a class).
    min_class_count: int = 2
    #: Reduce the standardised features to this many principal components (None = keep all).
    pca_dim: int | None = None
    calibrate: bool = True
    #: Abstention: the lowest confidence threshold whose kept validation predictions reach
    #: this precision. When no threshold reaches it, the most precise threshold is kept
    #: (see ``choose_threshold``) and ``target_met`` is recorded as False.
    target_precision: float = 0.9
    #: A threshold must keep at least this many validation rows to count.
    min_kept: int = 10
    year: bool = True
    #: Ridge penalties (mean squared error + alpha |w|^2 on standardised features).
    year_alphas: tuple[float, ...] = (0.3, 1.0, 3.0, 10.0, 30.0, 100.0, 300.0, 1000.0)
    year_quantiles: tuple[float, float] = (0.1, 0.9)
    novelty: bool = True
    novelty_components: int = 32
    #: Fraction of validation rows allowed to be flagged novel (sets the threshold).
    novelty_false_alarm: float = 0.01
    seed: int = 0
    #: BLAS/LAPACK threads while training. 1 by default: these matrices are small enough that
    #: multi-threaded OpenBLAS mostly waits on itself, and on a busy 2-core machine an
    #: eigendecomposition took 105 s with 2 threads vs 18 s with one (None = library default).
    threads: int | None = 1
    #: After choosing C, temperature and threshold on val, refit each classifier on
    #: train + val with that C (more data; the temperature and threshold stay those fitted
    #: for the train-only model, so calibration is then approximate).
    refit_on_val: bool = False
    #: "val" (thresholds for target_precision on val) or "out-of-source" (re-chosen on
    #: leave-source-out predictions, artist also on held-out artists;
    #: ``vasari.heads.abstention``).
    abstention: str = "val"
    #: Augmented views (``vasari.features.augment``, geometric + JPEG) of each train picture
    #: added as training rows for ``augment_tasks`` only (issue #14; 0 = off). Measured: type
    #: out of source +2 points, no task down > 1 point in distribution (docs/trust-research.md 3b).
    augment_views: int = 0
    augment_tasks: tuple[str, ...] = ("type",)

    def to_dict(self) -> dict[str, Any]:
        return {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(self).items()}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "HeadConfig":
        known = set(cls.__dataclass_fields__)
        values = {k: tuple(v) if isinstance(v, list) else v for k, v in data.items() if k in known}
        return cls(**values)
