"""Inference: the ``Predictor`` that turns a picture into the prediction contract
(``vasari.inference.schema``; docs/contract.md), gallery enrichment, and finding a painting in a museum photo."""

from vasari.inference.enrich import enrich_predictions
from vasari.inference.photo import (
    PhotoConfig,
    PhotoCrop,
    order_corners,
    find_painting,
)
from vasari.inference.predictor import (
    default_model_dir,
    Predictor,
    make_embedder,
)
from vasari.inference.schema import (
    AffinityAnswer,
    ArtistAffinity,
    BatchPredictions,
    CropInfo,
    ErrorInfo,
    Evidence,
    FailedPrediction,
    LabelScore,
    Novelty,
    Prediction,
    PredictionResult,
    SimilarAnswer,
    SimilarWork,
    YearEstimate,
)

__all__ = [
    "enrich_predictions",
    "PhotoConfig",
    "PhotoCrop",
    "order_corners",
    "find_painting",
    "default_model_dir",
    "Predictor",
    "make_embedder",
    "AffinityAnswer",
    "ArtistAffinity",
    "BatchPredictions",
    "CropInfo",
    "ErrorInfo",
    "Evidence",
    "FailedPrediction",
    "LabelScore",
    "Novelty",
    "Prediction",
    "PredictionResult",
    "SimilarAnswer",
    "SimilarWork",
    "YearEstimate",
]
