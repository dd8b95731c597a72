"""The prediction contract: what `vasari predict --json`, the HTTP API and the page receive.

One set of pydantic models, so that every producer (``Predictor``, ``vasari.inference.enrich``,
the museum-photo crop, the CLI's ``similar``/``affinity`` verbs) builds the same fields and the
service can declare them as its ``response_model``. ``docs/contract.md`` is generated from these
models by ``scripts/gen_contract.py`` (a test fails when it is stale).

Optional sections are left out of the JSON when absent (``year`` without a year head,
``novelty`` without a detector, ``similar``/``affinity`` without a gallery index, ``crop``
without cropping), as they always were: fields marked "omitted when null" below.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, RootModel


def _absent(value: object) -> bool:
    return value is None


def _optional(description: str):
    """A field that is left out of the JSON when it is None."""
    return Field(default=None, exclude_if=_absent, description=description + " Omitted when null.")


class _Contract(BaseModel):
    """Unknown fields are refused: the contract lists every field a client may see."""

    model_config = ConfigDict(extra="forbid")


class LabelScore(_Contract):
    """One of a task's top-k answers."""

    label: str = Field(description="A label of the task's vocabulary (see GET /api/v1/model).")
    score: float = Field(description="Calibrated probability, rounded to 4 digits; a task's scores sum to <= 1.")


class YearEstimate(_Contract):
    """The year head's estimate and its 10-90% interval."""

    estimate: int = Field(description="Most likely year the painting was made.")
    low: int = Field(description="10% quantile of the year.")
    high: int = Field(description="90% quantile of the year.")


class Novelty(_Contract):
    """Whether the picture is unlike the known paintings; the verdicts are "unknown" when it is."""

    novel: bool = Field(description="True: the picture is unlike the paintings Vasari knows.")
    score: float = Field(description="How far the picture is from the known paintings (higher: farther), "
                                     "on the scale of `detector`, rounded to 4 digits. The gallery's score is "
                                     "1 - cosine similarity to the nearest known work (0..2); the heads' score "
                                     "is their own novelty distance.")
    threshold: float | None = Field(description="The detector's fitted threshold: `score` above it is novel "
                                                "(null when the index was never calibrated).")
    reason: str | None = Field(description="Why the picture is novel, in words; null when it is not.")
    detector: Literal["heads", "gallery"] = Field(
        description="Which detector gave this answer: the model's heads (distance to the training "
                    "paintings) or the gallery index (nearest known work, known non-paintings). "
                    "Either saying novel wins.")


class SimilarWork(_Contract):
    """A gallery work similar to the picture."""

    artwork_id: str = Field(description="Catalog id of the work (e.g. `wga:12345`).")
    title: str | None = Field(description="Title, when the catalog has one.")
    artist: str | None = Field(description="Artist, when known.")
    year: int | None = Field(description="Year, when known.")
    score: float = Field(description="Cosine similarity in the index's space (-1..1), rounded to 4 digits.")
    thumbnail: str | None = _optional("A local picture of the work (CLI: a file path; API: a /api/v1/thumbnails URL).")


class Evidence(_Contract):
    """One of the nearest works by an artist, the evidence of an affinity."""

    artwork_id: str = Field(description="Catalog id of the work.")
    title: str | None = Field(description="Title, when the catalog has one.")
    year: int | None = Field(description="Year, when known.")
    score: float = Field(description="Cosine similarity to the picture, rounded to 4 digits.")
    thumbnail: str | None = _optional("A local picture of the work (as in `similar`).")


class ArtistAffinity(_Contract):
    """How much the picture resembles one artist's works in the gallery."""

    artist: str = Field(description="An artist with enough works in the gallery.")
    score: float = Field(description="Calibrated probability (pooled with the artist head when the model has "
                                     "one), rounded down to 4 digits so that the scores sum to <= 1.")
    similarity: float = Field(description="Mean of the picture's top-m similarities to this artist's works.")
    evidence: list[Evidence] = Field(description="The nearest works by this artist, best first.")


class CropInfo(_Contract):
    """Where the painting was found in a museum photo (with cropping on)."""

    found: bool = Field(description="True when a painting was found; otherwise the whole picture was used.")
    box: list[list[float]] = Field(description="Corners [x, y] of the painting (pixels, rounded to 0.1), "
                                               "clockwise from top-left.")
    score: float = Field(description="Confidence of the detection (0..1), rounded to 3 digits.")
    method: str = Field(description="Which detector found it (`none` when nothing was found).")
    frame_trimmed: bool = Field(description="True when a picture frame was cut off.")
    image_size: list[int] | None = _optional("[width, height] of the decoded upload that `box` refers to (API only).")


class Prediction(_Contract):
    """What Vasari says about one picture."""

    image: str = Field(description="The picture's name (file path or upload name).")
    predictions: dict[str, list[LabelScore]] = Field(description="Top-k answers per task, best first.")
    verdict: dict[str, str] = Field(description="Per task, the top answer, or `unknown` when its probability is "
                                                "below the task's abstention threshold or the picture is novel.")
    year: YearEstimate | None = _optional("The year estimate (models with a year head).")
    novelty: Novelty | None = _optional("The novelty verdict (models or indexes with a detector).")
    similar: list[SimilarWork] | None = _optional("The most similar gallery works (models with an index).")
    affinity: list[ArtistAffinity] | None = _optional("Artists the picture resembles (indexes with artists).")
    crop: CropInfo | None = _optional("The painting found in a museum photo (with cropping on).")


class ErrorInfo(_Contract):
    """Why a picture could not be predicted."""

    code: str = Field(description="A stable code, e.g. `unreadable`, `too_small`, `too_large`.")
    message: str = Field(description="What went wrong, naming the picture.")


class FailedPrediction(_Contract):
    """A picture that could not be read; the other pictures of the batch are still predicted."""

    image: str = Field(description="The picture's name.")
    error: ErrorInfo = Field(description="What went wrong.")


PredictionResult = Prediction | FailedPrediction


class BatchPredictions(RootModel[list[PredictionResult]]):
    """One result per picture, in the order sent (`vasari predict --json`, POST /api/v1/predict/batch)."""


class SimilarAnswer(_Contract):
    """`vasari similar --json`: the most similar gallery works to one picture."""

    image: str = Field(description="The picture's file.")
    similar: list[SimilarWork] = Field(description="The most similar gallery works, best first.")
    novelty: Novelty = Field(description="The gallery's novelty verdict.")
    crop: CropInfo | None = _optional("With --photo: where the painting was found.")


class AffinityAnswer(_Contract):
    """`vasari affinity --json`: the artists one picture resembles."""

    image: str = Field(description="The picture's file.")
    affinity: list[ArtistAffinity] = Field(description="The artists the picture resembles most, best first.")
    novelty: Novelty = Field(description="The gallery's novelty verdict.")
    artist_head: bool = Field(description="True when the model's artist head was pooled in.")
    crop: CropInfo | None = _optional("With --photo: where the painting was found.")


#: the models documented in docs/contract.md, in that order
CONTRACT_MODELS: tuple[type[BaseModel], ...] = (
    Prediction, FailedPrediction, LabelScore, YearEstimate, Novelty, SimilarWork, ArtistAffinity,
    Evidence, CropInfo, ErrorInfo, SimilarAnswer, AffinityAnswer,
)
