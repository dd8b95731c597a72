"""What an explanation looks like to its readers (``vasari explain --json``, ``POST
/api/v1/explain``, the page): one pydantic model, so that the CLI and the service build the same
fields and the service declares it as its ``response_model``."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


class Explanation(BaseModel):
    """The regions of the picture that drove one task's answer."""

    model_config = ConfigDict(extra="forbid")

    task: str = Field(description="The task explained (type, school, timeframe, style, artist).")
    label: str = Field(description="The label explained: the task's answer, or its top class when the "
                                   "answer is \"unknown\", or the label asked for.")
    verdict: str = Field(description="The task's answer for this picture (\"unknown\" when it abstains).")
    answered: bool = Field(description="True when `label` is the task's answer, false when the task "
                                       "abstained (or another label was asked for).")
    probability: float = Field(description="Calibrated probability of `label` on the region the model sees, "
                                           "rounded to 4 digits: what the occlusions lower.")
    note: str = Field(description="One sentence for a visitor saying what the map shows.")
    method: str = Field(description="\"occlusion\": each cell is scored by how much hiding it lowers `probability`.")
    grid_size: int = Field(description="Cells per side of `grid`.")
    patch: int = Field(description="Side of the occluding square, in cells (it slides one cell at a time).")
    copies: int = Field(description="Occluded copies of the picture the backbone embedded.")
    grid: list[list[float]] = Field(description="`grid_size` rows of `grid_size` cells, top row first: each "
                                                "cell's share of the evidence (>= 0, summing to 1; all 0 when "
                                                "no region lowered the probability when hidden).")
    max_drop: float = Field(description="The largest drop of `probability` a cell's occlusions caused on "
                                        "average (how strongly the top cell matters).")
    crop_box: list[float] = Field(description="[left, top, right, bottom] in the decoded picture's pixels: "
                                              "the square the model sees, which `grid` divides.")
    image_size: list[int] = Field(description="[width, height] of the decoded picture `crop_box` refers to.")
    seconds: float = Field(description="Time the explanation took (embedding included).")


class ExplanationWithOverlay(Explanation):
    """An explanation and its picture: ``POST /api/v1/explain`` as JSON."""

    image: str = Field(description="The uploaded file's name (its last path part).")
    overlay_png: str = Field(description="Base64 PNG: the heat map blended over the picture, titled with "
                                         "the task and the label (`?format=png` returns it alone).")
