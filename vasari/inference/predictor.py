"""Inference: a bundle + its backbone -> prediction objects (the public contract).

>>> p = Predictor.load()                       # the default bundle shipped in vasari/models/default
>>> p.predict_paths(["portrait.jpg"], top_k=3)  # one dict per image, see docs/contract.md

Each prediction object has ``image``, ``predictions`` (top-k ``{"label", "score"}`` per
task; calibrated probabilities, so scores sum to <= 1), ``verdict`` (top-1 per task, or
"unknown" when its calibrated probability is below the task's abstention threshold from the
bundle, or when the picture is unlike anything the heads were trained on), ``year``
(estimate with a 10-90% interval) and, when the bundle has a gallery index, ``similar``,
``affinity`` and ``novelty`` (added by ``vasari.inference.enrich``). With
``crop=True`` museum photos are first cropped to the painting (``vasari.inference.photo``) and the
object gets ``crop``. A picture that cannot be read gives ``{"image", "error": {"code",
"message"}}`` and the others are still predicted. The fields are the models of
``vasari.inference.schema``: the predictor builds them, then hands out their JSON form.
"""

from __future__ import annotations

import importlib.resources
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, Sequence

import numpy as np

from vasari.bundle import Bundle, BundleError, check_spec, load_bundle
from vasari.core.images import ImageError, load_image
from vasari.errors import InputError
from vasari.inference.consistency import load_artist_spans, make_consistent
from vasari.inference.schema import (
    CropInfo,
    ErrorInfo,
    FailedPrediction,
    LabelScore,
    Novelty,
    Prediction,
    YearEstimate,
)

if TYPE_CHECKING:
    from PIL import Image

    from vasari.features import BackboneSpec
    from vasari.features.embedder import EmbedResult
    from vasari.gallery.index import GalleryIndex

#: the heads' own novelty verdict, in words
HEADS_NOVELTY_REASON = "unlike the paintings the model was trained on"


class FeatureExtractor(Protocol):
    """What the predictor needs of a backbone: ``Embedder`` or a fine-tuned bundle's ONNX embedder."""

    spec: "BackboneSpec"

    def prepare_views(self, img: "Image.Image") -> np.ndarray: ...

    def forward_views(self, batch: np.ndarray) -> np.ndarray: ...

    def embed_paths(self, paths: Sequence[str], progress: bool = False) -> "EmbedResult": ...


@dataclass(frozen=True)
class PreparedImage:
    """A picture ready for the backbone: its ``(k, size, size, 3)`` uint8 views and, for
    museum photos, where the painting was found in it."""

    views: np.ndarray
    crop: CropInfo | None = None


def default_model_dir() -> Path:
    """``vasari/models/default`` inside the installed package (it may not exist yet)."""
    return Path(str(importlib.resources.files("vasari").joinpath("models", "default")))


def _round(v: float, digits: int = 4) -> float:
    return float(round(float(v), digits))


class Predictor:
    """Heads from a bundle, the matching backbone, and the optional retrieval index."""

    def __init__(self, bundle: Bundle, embedder: FeatureExtractor | None = None,
                 index: "GalleryIndex | None" = None, crop: bool = False):
        self.bundle = bundle
        self.heads = bundle.heads
        self.index = index
        self.crop = crop
        self._embedder = embedder
        #: how ``embedder`` builds the backbone when it was not given (``Predictor.load``)
        self._engine_options: dict[str, str | None] = {}
        self._spans: dict[str, tuple[int, int]] | None = None  # artists' active years, on first use
        if embedder is not None:
            check_spec(bundle.spec, embedder.spec, bundle.path or "bundle")

    # ----------------------------------------------------------------- loading
    @classmethod
    def load(cls, model_dir: str | Path | None = None, engine: str = "auto", device: str | None = None,
             with_index: bool = True, crop: bool = False, lazy: bool = False,
             embedder: FeatureExtractor | None = None) -> "Predictor":
        """Load a bundle (None: the default bundle shipped in the package) and its backbone
        (``embedder``, when given, is used instead: e.g. a Ray actor's session over the
        driver's ONNX graph; its spec is checked against the bundle's).

        Raises ``BundleError`` when the bundle is missing, corrupt, from a future format, or
        made with a backbone that differs from the one this installation builds.
        ``lazy=True`` defers building the backbone to the first prediction.
        """
        path = Path(model_dir) if model_dir is not None else default_model_dir()
        if model_dir is None and not (path / "bundle.json").is_file():
            raise BundleError(
                f"{path}: the default model is not installed; train one with "
                "`vasari train DATASET_DIR --out BUNDLE` and pass --model BUNDLE"
            )
        bundle = load_bundle(path)
        index = None
        if with_index and bundle.has_index:
            from vasari.gallery import GalleryIndexError, load_bundle_index

            try:
                index = load_bundle_index(path, spec=bundle.spec)
            except GalleryIndexError as exc:  # its message names the index file already
                raise BundleError(str(exc)) from exc
        predictor = cls(bundle, embedder, index, crop)
        predictor._engine_options = {"engine": engine, "device": device}
        if not lazy:
            predictor.embedder  # noqa: B018  (build and check now)
        return predictor

    @property
    def embedder(self) -> FeatureExtractor:
        if self._embedder is None:
            self._embedder = make_embedder(self.bundle, **self._engine_options)
        return self._embedder

    # ----------------------------------------------------------------- predicting
    @property
    def tasks(self) -> list[str]:
        return self.heads.tasks

    def _check_top_k(self, top_k: int) -> int:
        if isinstance(top_k, bool) or not isinstance(top_k, (int, np.integer)):
            raise InputError(f"top_k must be an integer, got {top_k!r}")
        most = max((len(h.classes) for h in self.heads.classifiers.values()), default=1)
        if not 1 <= top_k <= most:
            raise InputError(f"top_k must be between 1 and {most} (the largest number of classes), got {top_k}")
        return int(top_k)

    def predict_features(self, features: np.ndarray, top_k: int = 3, names: Sequence[str] | None = None) -> list[dict]:
        """Prediction objects from backbone features (N, dim); NaN rows are not allowed here."""
        return [p.model_dump(mode="json") for p in self.predictions_from_features(features, top_k, names)]

    def predictions_from_features(self, features: np.ndarray, top_k: int = 3,
                                  names: Sequence[str] | None = None) -> list[Prediction]:
        """``predict_features`` as ``Prediction`` models (enriched by the index when there is one)."""
        top_k = self._check_top_k(top_k)
        X = np.asarray(features, dtype=np.float32)
        if X.ndim == 1:
            X = X[None]
        names = list(names) if names is not None else [f"image_{i}" for i in range(len(X))]
        if len(X) == 0:
            return []
        heads = self.heads
        proba = heads.predict_proba(X)
        year = heads.predict_year(X)
        scores = heads.novelty_score(X)  # once: it is is_novel's score (a (n, D) product)
        novel = scores > heads.novelty.threshold if scores is not None else np.zeros(len(X), bool)
        out = []
        for i in range(len(X)):
            preds: dict[str, list[LabelScore]] = {}
            verdict: dict[str, str] = {}
            for task in heads.tasks:
                head = heads.classifiers[task]
                p = proba[task][i]
                order = np.argsort(-p, kind="stable")[:min(top_k, len(head.classes))]
                preds[task] = [LabelScore(label=head.classes[j], score=_round(p[j])) for j in order]
                confident = p[order[0]] >= head.threshold and not novel[i]
                verdict[task] = head.classes[order[0]] if confident else "unknown"
            pred = Prediction(image=names[i], predictions=preds, verdict=verdict)
            if year is not None:
                est, low, high = (int(round(float(v[i]))) for v in year)
                pred.year = YearEstimate(estimate=est, low=low, high=high)
            if scores is not None:
                pred.novelty = Novelty(novel=bool(novel[i]), score=_round(scores[i]),
                                       threshold=_round(heads.novelty.threshold),
                                       reason=HEADS_NOVELTY_REASON if novel[i] else None, detector="heads")
            out.append(pred)
        if self.index is not None:
            from vasari.inference.enrich import enrich_predictions

            own = [o.novelty for o in out]
            enrich_predictions(out, self.index, X)
            for o, mine in zip(out, own):  # either detector saying "novel" wins
                if mine is not None and mine.novel and not (o.novelty is not None and o.novelty.novel):
                    o.novelty = mine
        return make_consistent(out, proba, heads, self._artist_spans())

    def _artist_spans(self) -> dict[str, tuple[int, int]]:
        """Each artist's active years (loaded once): the artist verdict must fit the year shown."""
        if self._spans is None:
            self._spans = load_artist_spans(self.bundle.path, self.index, self.bundle.card)
        return self._spans

    def _crop(self, img: "Image.Image") -> tuple["Image.Image", CropInfo | None]:
        if not self.crop:
            return img, None
        from vasari.inference.photo import find_painting

        found = find_painting(img)
        return found.image, found.info()

    def predict_images(self, images: Sequence["Image.Image"], top_k: int = 3,
                       names: Sequence[str] | None = None) -> list[dict]:
        """Prediction objects for open PIL images (embedded with the bundle's views)."""
        top_k = self._check_top_k(top_k)
        names = list(names) if names is not None else [getattr(im, "filename", "") or f"image_{i}" for i, im in enumerate(images)]
        return self.predict_prepared([self.prepare_image(im) for im in images], top_k, names)

    def prepare_image(self, image: "Image.Image") -> PreparedImage:
        """The per-picture work before the network (crop to the painting, then the backbone's
        views). Split from ``predict_prepared`` so a server can run it in other threads while
        the network is busy with earlier pictures."""
        from vasari.features.transforms import upright_rgb

        img, crop = self._crop(image)
        return PreparedImage(self.embedder.prepare_views(upright_rgb(img)), crop)

    def predict_prepared(self, items: Sequence[PreparedImage], top_k: int = 3,
                         names: Sequence[str] | None = None) -> list[dict]:
        """Prediction objects for pictures made ready by ``prepare_image``: one forward pass
        per 32 of them, then the heads and the gallery on the whole batch."""
        top_k = self._check_top_k(top_k)
        names = list(names) if names is not None else [f"image_{i}" for i in range(len(items))]
        feats = np.zeros((len(items), self.bundle.spec.dim), dtype=np.float32)
        for start in range(0, len(items), 32):
            chunk = items[start:start + 32]
            feats[start:start + len(chunk)] = self.embedder.forward_views(np.stack([it.views for it in chunk]))
        out = self.predictions_from_features(feats, top_k, names)
        for pred, item in zip(out, items):
            pred.crop = item.crop
        return [p.model_dump(mode="json") for p in out]

    def predict_paths(self, paths: Sequence[str | Path], top_k: int = 3) -> list[dict]:
        """Prediction objects for image files, in order; unreadable files give error objects.

        Without ``crop`` the files go through the embedder's own pipeline (decoding in
        threads, overlapped with the network: the speed of `vasari embed`)."""
        top_k = self._check_top_k(top_k)
        names = [str(p) for p in paths]
        if self.crop:
            return self._predict_cropped_paths(names, top_k)
        result = self.embedder.embed_paths(names, progress=False)
        good = [i for i in range(len(names)) if i not in result.errors]
        out: list[dict] = [_failed(name, _path_error(result, i)) if i in result.errors else {}
                           for i, name in enumerate(names)]
        for start in range(0, len(good), 256):  # bounded (n, gallery) similarity matrices
            chunk = good[start:start + 256]
            preds = self.predict_features(result.features[chunk], top_k, [names[i] for i in chunk])
            for i, obj in zip(chunk, preds):
                out[i] = obj
        return out

    def _predict_cropped_paths(self, names: list[str], top_k: int) -> list[dict]:
        """predict_paths with ``crop``: each picture is decoded, cropped, then embedded."""
        out: list[dict | None] = [None] * len(names)
        good, images = [], []
        for i, name in enumerate(names):
            try:
                images.append(load_image(name, min_side=self.bundle.spec.draft_min_side))
                good.append(i)
            except ImageError as exc:
                out[i] = _failed(name, ErrorInfo(code=exc.code, message=str(exc)))
            except Exception as exc:  # never lose the batch for one file
                out[i] = _failed(name, ErrorInfo(code="unreadable", message=f"{name}: {exc}"))
        for start in range(0, len(good), 32):
            chunk = good[start:start + 32]
            preds = self.predict_images(images[start:start + 32], top_k, [names[i] for i in chunk])
            for i, obj in zip(chunk, preds):
                out[i] = obj
        return [o for o in out if o is not None]

    # ----------------------------------------------------------------- describing
    def info(self) -> dict[str, Any]:
        """Tasks, labels per task, thresholds, backbone spec, model card and metrics."""
        b = self.bundle
        heads = b.heads
        return {
            "model": str(b.path) if b.path else None,
            "created": b.created,
            "vasari_version": b.vasari_version,
            "backbone": b.spec.to_dict(),
            "tasks": heads.tasks,
            "labels": heads.vocabularies,
            "thresholds": heads.thresholds,
            "year": heads.year is not None,
            "year_range": [1401, 1900],
            "index": self.index is not None,
            "card": b.card,
            "metrics": b.metrics,
        }


def _failed(name: str, error: ErrorInfo) -> dict:
    """The JSON of a picture that could not be predicted."""
    return FailedPrediction(image=name, error=error).model_dump(mode="json")


def _path_error(result: "EmbedResult", i: int) -> ErrorInfo:
    """A failed picture's error: the embedder's message ends with ``[code]`` for its own
    report; the prediction carries the code in its own field, as ``load_image`` words it."""
    code = result.codes.get(i, "unreadable")
    return ErrorInfo(code=code, message=result.errors[i].removesuffix(f" [{code}]"))


def make_embedder(bundle: Bundle, engine: str = "auto", device: str | None = None) -> FeatureExtractor:
    """The backbone a bundle needs (its fine-tuned ONNX when it ships one) with the bundle's
    test-time views, spec-checked: it gives the features the heads were trained on."""
    from vasari.features import BackboneError

    where = bundle.path or "bundle"
    onnx_file = bundle.finetuned_backbone
    try:
        if onnx_file is not None:
            from vasari.features.finetuned import finetuned_embedder, onnx_spec

            check_spec(bundle.spec.with_views("center"), onnx_spec(onnx_file).with_views("center"), onnx_file)
            embedder = finetuned_embedder(onnx_file, bundle.spec)
        else:
            from vasari.features.embedder import Embedder

            embedder = Embedder(bundle.spec.name, bundle.spec.feature, engine=engine, device=device,
                                views=bundle.spec.views)
    except BackboneError as exc:
        raise BundleError(f"{where}: cannot build backbone {bundle.spec.name!r} ({exc})") from exc
    check_spec(bundle.spec, embedder.spec, where)
    return embedder
