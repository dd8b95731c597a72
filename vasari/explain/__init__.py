"""Explanations: which regions of a picture drove each answer ("Why this answer?").

``Explainer(predictor).explain(image, tasks)`` returns one ``Explanation`` per task (an
occlusion map over the region the model sees, see ``occlusion``); ``overlay_png`` draws it over
the picture. Used by ``vasari explain`` and ``POST /api/v1/explain``. Stage: after
``vasari.inference`` (it explains a ``Predictor``'s answers).
"""

from vasari.explain.explainer import Explainer
from vasari.explain.occlusion import ExplainConfig
from vasari.explain.overlay import overlay_png, render_overlay
from vasari.explain.schema import Explanation, ExplanationWithOverlay

__all__ = ["Explainer", "ExplainConfig", "Explanation", "ExplanationWithOverlay", "overlay_png", "render_overlay"]
