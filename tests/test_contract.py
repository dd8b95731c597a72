"""The prediction contract: docs/contract.md is what the schema says, and the schema keeps
the JSON the CLI, the API and the page have always read (optional sections left out)."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest
from pydantic import TypeAdapter, ValidationError

from vasari.inference import (
    BatchPredictions,
    CropInfo,
    Novelty,
    Prediction,
    PredictionResult,
    SimilarWork,
)

ROOT = Path(__file__).resolve().parent.parent


def _generator():
    spec = importlib.util.spec_from_file_location("gen_contract", ROOT / "scripts" / "gen_contract.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def test_docs_contract_is_generated_from_the_schema():
    """Fails when a model changed without `python scripts/gen_contract.py`."""
    gen = _generator()
    assert (ROOT / "docs" / "contract.md").read_text(encoding="utf-8") == gen.render(), \
        "docs/contract.md is stale: run python scripts/gen_contract.py"
    assert gen.main(["--check"]) == 0


def test_optional_sections_are_left_out_and_nulls_kept_where_the_contract_has_them():
    pred = Prediction(image="a.jpg", predictions={}, verdict={"type": "unknown"},
                      similar=[SimilarWork(artwork_id="t:1", title=None, artist=None, year=None, score=0.5)])
    assert pred.model_dump(mode="json") == {
        "image": "a.jpg", "predictions": {}, "verdict": {"type": "unknown"},
        "similar": [{"artwork_id": "t:1", "title": None, "artist": None, "year": None, "score": 0.5}],
    }
    crop = CropInfo(found=False, box=[[0, 0]], score=0.0, method="none", frame_trimmed=False)
    assert "image_size" not in crop.model_dump(mode="json")


def test_novelty_has_one_shape_whichever_detector_answers():
    fields = {"novel", "score", "threshold", "reason", "detector"}
    for detector in ("heads", "gallery"):
        row = Novelty(novel=False, score=0.1, threshold=0.2, reason=None, detector=detector)
        assert set(row.model_dump(mode="json")) == fields
    with pytest.raises(ValidationError):  # the old gallery shape is refused
        Novelty.model_validate({"distance": 0.1, "threshold": 0.2, "novel": False})


def test_a_batch_mixes_predictions_and_failures_in_order():
    batch = BatchPredictions.model_validate([
        {"image": "bad.jpg", "error": {"code": "unreadable", "message": "bad.jpg: not an image"}},
        {"image": "a.jpg", "predictions": {"type": [{"label": "portrait", "score": 0.9}]},
         "verdict": {"type": "portrait"}, "year": {"estimate": 1650, "low": 1600, "high": 1700}},
    ])
    kinds = [type(item).__name__ for item in batch.root]
    assert kinds == ["FailedPrediction", "Prediction"]
    with pytest.raises(ValidationError):  # unknown fields are not part of the contract
        TypeAdapter(PredictionResult).validate_python({"image": "a", "predictions": {}, "verdict": {}, "extra": 1})
