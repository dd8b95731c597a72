"""Heads: one linear classifier per task and a year regressor on frozen backbone features.

Everything here works on plain numpy arrays (features from ``vasari.features.embedder``), so the
heads can be trained, tested and benchmarked without touching images:

* features are standardised once (mean/std of the train rows, optional PCA);
* each task (type, school, timeframe, style, artist) gets a multinomial logistic
  regression with class weights ("balanced" from the train split unless given), trained
  only on the rows that carry a label for that task; the regularisation ``C`` is chosen on
  the validation split from a small grid, walking from strong to weak regularisation with
  warm starts so that the whole grid costs little more than one fit;
* a temperature is fitted on the validation split (calibration);
* an abstention threshold per task is chosen on the validation split for a target
  precision: predictions whose calibrated top-1 probability falls below it are answered
  ``"unknown"``;
* the year is a ridge regression (alpha on validation) with an interval from the
  validation residual quantiles, clipped to 1401-1900;
* a novelty detector (Mahalanobis distance in a PCA space plus the PCA residual) flags
  inputs unlike anything seen in training (a cat photo, a blank image): every task then
  answers "unknown".

Heads serialise to plain arrays plus JSON (``Heads.to_arrays`` / ``Heads.from_arrays``);
no pickle anywhere.

Modules (the public names are importable from ``vasari.heads``): ``config`` (HeadConfig,
TrainError), ``transform`` (standardisation, principal axes), ``linear`` (LinearHead and its
softmax regression), ``year`` (YearHead), ``novelty`` (NoveltyDetector), ``calibration``
(temperature, abstention threshold, coverage curve), ``train`` (train_heads, Heads) and
``metrics`` (evaluate_heads, ECE, reliability). Reports and plots are in ``vasari.report``.
"""

from vasari.heads.calibration import choose_threshold, coverage_curve, fit_temperature, softmax
from vasari.heads.config import HeadConfig, TrainError
from vasari.heads.linear import LinearHead
from vasari.heads.metrics import (
    HEADLINE_KEYS,
    Evaluation,
    TaskArrays,
    evaluate_heads,
    expected_calibration_error,
    headline,
    reliability,
)
from vasari.heads.novelty import NoveltyDetector
from vasari.heads.train import Heads, train_heads
from vasari.heads.transform import Transform, principal_axes
from vasari.heads.year import YearHead

__all__ = [
    "expected_calibration_error",
    "reliability",
    "TaskArrays",
    "Evaluation",
    "HEADLINE_KEYS",
    "headline",
    "evaluate_heads",
    "TrainError",
    "HeadConfig",
    "softmax",
    "fit_temperature",
    "choose_threshold",
    "coverage_curve",
    "Transform",
    "LinearHead",
    "YearHead",
    "NoveltyDetector",
    "Heads",
    "principal_axes",
    "train_heads",
]
