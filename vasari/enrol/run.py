"""The enrolment use case: images of a new artist -> a new, versioned bundle whose artist head
names them, whose gallery holds them and whose model card says what was added from what.

``enrol_artist`` takes image files (the CLI); ``enrol_features`` takes features already
computed (the service decodes uploads itself). Neither touches the input bundle: the new one
is written to a temporary folder beside ``out`` and renamed into place (``save_bundle``), so
a failure at any step leaves nothing behind.
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import re
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from vasari.bundle import Bundle, BundleError, check_spec, load_bundle, save_bundle
from vasari.enrol.reference import REFERENCE_FILE, EnrolReference, logsumexp_rows
from vasari.enrol.refit import FitConfig, fit_class
from vasari.errors import InputError


class EnrolError(InputError):
    """An enrolment request that cannot be carried out; ``code`` says which rule it broke."""

    def __init__(self, message: str, code: str = "bad_enrolment"):
        super().__init__(message)
        self.code = code


@dataclass(frozen=True)
class EnrolConfig:
    """Limits of an enrolment and how its class is fitted."""

    min_images: int = 5
    max_images: int = 20
    max_name_length: int = 100
    #: The heads' novelty threshold may rise at most this factor so that the enrolled images
    #: are not called foreign (every answer "unknown"); the card records old and new.
    max_novelty_raise: float = 3.0
    fit: FitConfig = field(default_factory=FitConfig)


@dataclass(frozen=True)
class ImageSource:
    """Where an enrolled image came from, as the model card records it."""

    name: str
    sha256: str


@dataclass
class EnrolResult:
    """The new bundle, its version, the artist's class index and what was measured."""

    path: Path
    version: int
    artist: str
    class_index: int
    info: dict[str, Any]


def sha256_file(path: str | Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while chunk := fh.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def parse_years(text: str | None) -> tuple[int, int] | None:
    """``"1606-1669"`` -> (1606, 1669); None for None or ""; ``EnrolError`` otherwise."""
    if not text:
        return None
    m = re.fullmatch(r"\s*(\d{3,4})\s*[-–]\s*(\d{3,4})\s*", text)
    if not m or int(m.group(1)) > int(m.group(2)):
        raise EnrolError(f"years {text!r}: expected FIRST-LAST with FIRST <= LAST, e.g. 1606-1669", "bad_years")
    return int(m.group(1)), int(m.group(2))


def check_request(bundle: Bundle, name: str, count: int, config: EnrolConfig) -> str:
    """The cleaned artist name, or ``EnrolError`` for a bad name, a name the head already
    knows (any case), a count outside the limits, or a bundle without an artist head."""
    clean = " ".join((name or "").split())
    if not clean or len(clean) > config.max_name_length:
        raise EnrolError(f"artist name must be 1-{config.max_name_length} characters, got {name!r}", "bad_name")
    if "artist" not in bundle.heads.classifiers:
        raise EnrolError(f"{bundle.path}: this bundle has no artist head to enrol into", "no_artist_head")
    known = {c.casefold(): c for c in bundle.heads.classifiers["artist"].classes}
    if clean.casefold() in known:
        raise EnrolError(f"artist {known[clean.casefold()]!r} is already in this bundle", "duplicate_artist")
    if count < config.min_images:
        raise EnrolError(f"{count} image(s) given: enrolling an artist needs at least {config.min_images}",
                         "too_few_images")
    if count > config.max_images:
        raise EnrolError(f"{count} images given: at most {config.max_images} per enrolment", "too_many_images")
    return clean


def enrol_artist(model: str | Path, name: str, images: Sequence[str | Path], out: str | Path, *,
                 years: str | None = None, school: str | None = None, config: EnrolConfig = EnrolConfig(),
                 embedder: Any = None, cache: Any = None, progress: bool = False) -> EnrolResult:
    """Enrol ``name`` from image files into the bundle at ``model``, writing a new bundle to
    ``out`` (which must not exist). ``embedder`` defaults to the bundle's own backbone; a
    different one raises ``BundleError``. Unreadable images are all named in one
    ``EnrolError`` and nothing is written."""
    started = time.perf_counter()
    bundle = load_bundle(model)
    check_request(bundle, name, len(images), config)
    if embedder is None:
        from vasari.inference.predictor import make_embedder

        embedder = make_embedder(bundle)
    check_spec(bundle.spec, embedder.spec, model)
    missing = [str(p) for p in images if not Path(p).is_file()]
    if missing:
        raise EnrolError(f"no such image file(s): {', '.join(missing)}", "unreadable_image")
    result = embedder.embed_paths([str(p) for p in images], cache=cache, progress=progress)
    if result.errors:
        raise EnrolError("cannot read image(s): " + "; ".join(result.errors[i] for i in sorted(result.errors)),
                         "unreadable_image")
    sources = [ImageSource(str(Path(p).resolve()), sha256_file(p)) for p in images]
    embed_s = time.perf_counter() - started
    res = enrol_features(bundle, name, result.features, sources, out, years=years, school=school, config=config)
    res.info["seconds"]["embed"] = round(embed_s, 3)
    return res


def enrol_features(bundle: Bundle, name: str, features: np.ndarray, sources: Sequence[ImageSource],
                   out: str | Path, *, years: str | None = None, school: str | None = None,
                   config: EnrolConfig = EnrolConfig()) -> EnrolResult:
    """Enrol ``name`` from backbone features of its images (rows aligned with ``sources``)
    into ``bundle``; the new bundle is written atomically to ``out``."""
    started = time.perf_counter()
    name = check_request(bundle, name, len(features), config)
    span = parse_years(years)
    out = Path(out)
    if bundle.path is None:
        raise BundleError("enrolment needs a bundle loaded from a folder (its enrol.npz and index)")
    if out.exists() or out.resolve() == bundle.path.resolve():
        raise EnrolError(f"{out}: already exists; enrolment writes a new bundle and never replaces one", "out_exists")
    features = np.asarray(features, np.float32)
    if features.ndim != 2 or features.shape[1] != bundle.spec.dim or not np.isfinite(features).all():
        raise EnrolError(f"features of shape {features.shape} do not fit backbone {bundle.spec.key()}", "bad_features")
    heads = bundle.heads
    head = heads.classifiers["artist"]
    ref = EnrolReference.load(bundle.path / REFERENCE_FILE, heads.transform(features[:1]).shape[1])
    Z = heads.transform(features)
    coords = Z @ ref.basis
    fit = fit_class(coords, logsumexp_rows(head.logits(Z).astype(np.float64)), ref, head,
                    int(heads.info.get("train_rows") or head.info.get("train_rows") or len(ref.coords)), config.fit)
    weights = ref.basis @ fit.row
    new_head = replace(head, classes=[*head.classes, name], coef=np.vstack([head.coef, weights[None]]).astype(np.float32),
                       intercept=np.r_[head.intercept, fit.intercept].astype(np.float32),
                       info=dict(head.info, enrolled=[*head.info.get("enrolled", []), name]))
    new_heads, novelty = _admit_novelty(replace(heads, classifiers={**heads.classifiers, "artist": new_head}),
                                        features, config.max_novelty_raise)
    all_lse = logsumexp_rows(new_head.logits(Z).astype(np.float64))
    new_ref = ref.with_class(fit.row, fit.intercept, coords, all_lse)
    checks = _checks(new_heads, features)
    fit_s = time.perf_counter() - started
    record = {"artist": name, "class_index": len(head.classes), "at": _now(), "years": list(span) if span else None,
              "school": school or None, "images": [{"path": s.name, "sha256": s.sha256} for s in sources],
              "fit": fit.info, "novelty": novelty, **checks}
    version = int(bundle.card.get("bundle_version") or 1) + 1
    card = dict(bundle.card, bundle_version=version, enrolled=[*bundle.card.get("enrolled", []), record],
                parent={"folder": bundle.path.name, "created": bundle.created,  # a name: served cards show it
                        "version": int(bundle.card.get("bundle_version") or 1)})
    if span and card.get("artist_spans") is not None:
        card["artist_spans"] = dict(card["artist_spans"], **{name: list(span)})
    new_bundle = Bundle(new_heads, bundle.spec, card, bundle.metrics)
    path = _write(bundle, new_bundle, new_ref, _gallery(bundle, features, sources, name, school), out, name, span)
    seconds = {"fit": round(fit_s, 3), "write": round(time.perf_counter() - started - fit_s, 3)}
    return EnrolResult(path, version, name, len(head.classes), dict(record, seconds=seconds))


def _now() -> str:
    return _dt.datetime.now(_dt.UTC).replace(microsecond=0).isoformat()


def _checks(heads: Any, features: np.ndarray) -> dict[str, Any]:
    """How the enrolled images themselves fare under the new head (training fit, not a test)
    and how many the novelty detector calls foreign (then every task answers "unknown")."""
    proba = heads.predict_proba(features)["artist"]
    head = heads.classifiers["artist"]
    top = proba.argmax(axis=1) == len(head.classes) - 1
    named = top & (proba.max(axis=1) >= head.threshold)
    novel = heads.novelty_score(features)
    return {"images_named": int(named.sum()), "images_top1": int(top.sum()),
            "images_novel": 0 if novel is None else int((novel > heads.novelty.threshold).sum()),
            "threshold": head.threshold, "temperature": head.temperature}


def _admit_novelty(heads: Any, features: np.ndarray, max_raise: float) -> tuple[Any, dict[str, Any] | None]:
    """Heads whose novelty detector accepts the enrolled images. Why: a detector fitted on
    the training features may call a painter it never saw "foreign", and then every task
    answers "unknown" for exactly the paintings just taught. The threshold rises to just above
    the highest enrolled score, at most ``max_raise`` times the old one; the rest stay novel."""
    scores = heads.novelty_score(features)
    if scores is None:
        return heads, None
    old = float(heads.novelty.threshold)
    new = old
    if float(scores.max()) > old:
        new = float(min(float(scores.max()) * 1.01, old * max_raise))
    info = {"threshold_before": old, "threshold": new, "enrolled_scores_max": float(scores.max())}
    return replace(heads, novelty=replace(heads.novelty, threshold=new)), info


def _gallery(bundle: Bundle, features: np.ndarray, sources: Sequence[ImageSource], name: str,
             school: str | None):
    """The bundle's gallery index with the enrolled works appended (None without an index)."""
    if not bundle.has_index:
        return None
    from vasari.gallery.index import GalleryIndex, load_bundle_index

    index = load_bundle_index(bundle.path, bundle.spec)
    vectors, explained = index.projection.transform(features)
    slug = re.sub(r"[^a-z0-9]+", "-", name.casefold()).strip("-") or "artist"
    rows = [{"artwork_id": f"enrolled:{slug}:{s.sha256[:12]}", "title": Path(s.name).stem, "artist": name,
             "school": school or None, "source": "enrolled", "group": f"enrolled:{slug}:{s.sha256[:12]}",
             "image": s.name if Path(s.name).is_file() else None, "year": None} for s in sources]  # uploads: no file
    return GalleryIndex(np.concatenate([index.vectors, vectors.astype(index.vectors.dtype)]), index.metadata + rows,
                        index.projection, index.spec, index.config, index.calibration,
                        explained=np.concatenate([index.explained, explained]), negatives=index.negatives,
                        negative_labels=index.negative_labels)


def _write(bundle: Bundle, new: Bundle, ref: EnrolReference, index: Any, out: Path, name: str,
           span: tuple[int, int] | None) -> Path:
    """``save_bundle`` with the new reference, the parent's other files and, when the parent
    has an ``artist_spans.json``, the new artist's years in it."""
    import json

    from vasari.features.defaults import BUNDLE_ONNX
    from vasari.inference.consistency import SPANS_FILE

    out.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=out.parent, prefix=".enrol-") as tmp:
        extra = {REFERENCE_FILE: ref.save(Path(tmp) / REFERENCE_FILE)}
        if bundle.finetuned_backbone is not None:
            extra[BUNDLE_ONNX] = bundle.finetuned_backbone
        spans_file = bundle.path / SPANS_FILE
        if spans_file.is_file():
            spans = json.loads(spans_file.read_text(encoding="utf-8"))
            if span:
                spans[name] = list(span)
            (Path(tmp) / SPANS_FILE).write_text(json.dumps(spans, indent=1), encoding="utf-8")
            extra[SPANS_FILE] = Path(tmp) / SPANS_FILE
        return save_bundle(new, out, index=index, extra_files=extra, overwrite=False)
