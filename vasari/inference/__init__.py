"""Inference: the ``Predictor`` that turns a picture into the prediction contract (and finds a painting in a museum photo)."""

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

__all__ = [
    "PhotoConfig",
    "PhotoCrop",
    "order_corners",
    "find_painting",
    "default_model_dir",
    "Predictor",
    "make_embedder",
]
