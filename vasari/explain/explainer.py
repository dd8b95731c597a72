"""``Explainer``: a loaded ``Predictor`` + ``ExplainConfig`` -> one ``Explanation`` per task.

The picture and all its occluded copies are embedded in one engine call, and the heads score
every task on them at once: explaining all tasks costs what explaining one does. The answer
being explained is the predictor's own (its views, thresholds, novelty and consistency
rules); the occlusions are applied to the centre crop, the region every bundle's heads see.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from vasari.errors import InputError
from vasari.explain.cache import ScoreCache, Scores
from vasari.explain.occlusion import ExplainConfig, cell_scores, fill_colour, mass, occluded_copies
from vasari.explain.schema import Explanation

if TYPE_CHECKING:
    from PIL import Image

    from vasari.inference.predictor import Predictor
    from vasari.inference.schema import Prediction


def _note(task: str, label: str, verdict: str, answered: bool) -> str:
    """What the map shows, in one sentence a visitor can read."""
    if answered:
        return f"Brighter regions weighed most in answering {task} \"{label}\": hiding them lowers its probability most."
    if verdict == "unknown":
        return (f"The {task} answer is unknown (not sure enough); the map shows what pointed to the most likely "
                f"class, \"{label}\".")
    return f"The {task} answer is \"{verdict}\"; the map shows what points to \"{label}\", as asked."


class Explainer:
    """Occlusion maps of a predictor's answers (see ``vasari.explain.occlusion``).

    With a ``cache``, ``explain(..., key=...)`` reuses the scores of a picture explained
    before under that key (the service's "Why?" clicks on several cards of one upload)."""

    def __init__(self, predictor: "Predictor", config: ExplainConfig | None = None, cache: ScoreCache | None = None):
        self.predictor = predictor
        self.config = config or ExplainConfig()
        self.cache = cache

    def check_tasks(self, tasks: Sequence[str] | None) -> list[str]:
        """The tasks to explain (None: all of the bundle's); unknown ones raise ``InputError``."""
        known = list(self.predictor.heads.tasks)
        if tasks is None:
            return known
        chosen = list(dict.fromkeys(tasks))
        bad = [t for t in chosen if t not in known]
        if bad or not chosen:
            raise InputError(f"cannot explain task(s) {', '.join(map(repr, bad)) or 'none'}: "
                             f"this model answers {', '.join(known)}")
        return chosen

    def check_label(self, task: str, label: str) -> int:
        """The column of ``label`` in ``task``'s classes; ``InputError`` naming them otherwise."""
        classes = list(self.predictor.heads.classifiers[task].classes)
        if label not in classes:
            shown = ", ".join(classes[:12]) + (", ..." if len(classes) > 12 else "")
            raise InputError(f"{label!r} is not one of this model's {task} labels ({shown})")
        return classes.index(label)

    def explain(self, image: "Image.Image", tasks: Sequence[str] | None = None,
                labels: Mapping[str, str] | None = None, key: str | None = None) -> list[Explanation]:
        """One explanation per task for a decoded RGB picture. ``labels``: task -> the label to
        explain instead of the answer (e.g. a class the visitor expected). ``key``: names the
        picture in ``cache`` (e.g. its bytes' sha256); None scores it afresh."""
        start = time.perf_counter()
        tasks = self.check_tasks(tasks)
        labels = dict(labels or {})
        columns = {task: self.check_label(task, labels[task]) for task in tasks if task in labels}
        scores = self._cached_score(image, key)
        seconds = time.perf_counter() - start
        box = [round(float(v), 2) for v in self.predictor.embedder.preprocess.crop_box(*image.size)]
        context = {"crop_box": box, "image_size": list(image.size), "seconds": round(seconds, 3)}
        return [self._one(task, scores.proba[task], columns.get(task), scores.prediction, context) for task in tasks]

    def cost(self, key: str | None) -> int:
        """Pictures' worth of network work ``explain(..., key=key)`` will take: 1 when the
        cache holds this picture's scores, else the picture and its occluded copies (what a
        server books for it, so a repeated "Why?" is not shed as if it ran the network)."""
        if self.cache is None or key is None or self.cache.get(self._cache_key(key), self.predictor) is None:
            return self.config.copies + 1
        return 1

    def _cache_key(self, key: str) -> tuple:
        """The cache entry of picture ``key`` under this explainer's grid (scores differ per grid)."""
        return key, self.config.grid, self.config.patch

    def _cached_score(self, image: "Image.Image", key: str | None) -> Scores:
        """``_score``, or the scores the cache holds for ``key`` under this predictor and grid."""
        if self.cache is None or key is None:
            return self._score(image)
        cache_key = self._cache_key(key)
        scores = self.cache.get(cache_key, self.predictor)
        if scores is None:
            scores = self._score(image)
            self.cache.put(cache_key, self.predictor, scores)
        return scores

    def _score(self, image: "Image.Image") -> Scores:
        """Every task's probabilities on the centre crop (row 0) and its occluded copies, and
        the predictor's answer for the picture."""
        embedder = self.predictor.embedder
        crop = embedder.prepare(image)
        copies = occluded_copies(crop, self.config, fill_colour(embedder.preprocess.mean))
        features = embedder.forward(np.concatenate([crop[None], copies]))
        answer_features = features[:1] if embedder.spec.views == "center" else embedder.embed_images([image])
        prediction = self.predictor.predictions_from_features(answer_features, top_k=1)[0]
        return Scores(self.predictor.heads.predict_proba(features), prediction)

    def _one(self, task: str, proba: np.ndarray, column: int | None, prediction: "Prediction",
             context: dict[str, Any]) -> Explanation:
        verdict = prediction.verdict[task]
        classes = list(self.predictor.heads.classifiers[task].classes)
        if column is None:
            label = verdict if verdict != "unknown" else prediction.predictions[task][0].label
            column = classes.index(label)
        label = classes[column]
        cells = cell_scores(proba[0, column] - proba[1:, column], self.config)
        answered = label == verdict
        return Explanation(
            task=task, label=label, verdict=verdict, answered=answered,
            probability=round(float(proba[0, column]), 4), note=_note(task, label, verdict, answered),
            method="occlusion", grid_size=self.config.grid, patch=self.config.patch, copies=self.config.copies,
            grid=[[round(float(v), 5) for v in row] for row in mass(cells)],
            max_drop=round(float(max(cells.max(), 0.0)), 4), **context,
        )
