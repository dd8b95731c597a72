"""``ServiceState``: the loaded predictor, its info and readiness, the batcher and the limits.

One object per app (``app.state.vasari``), handed to the routes by ``deps.py``. The model
is loaded by ``ServiceState.load`` (in a worker thread at start-up); ``lifespan`` starts
the batcher, loads and warms the model, and stops the batcher at shutdown.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable

from starlette.concurrency import run_in_threadpool

from vasari.core.images import ImageLimits
from vasari.core.paths import shared_data_dir
from vasari.explain.cache import ScoreCache
from vasari.service.batching import MicroBatcher
from vasari.service.config import ServiceConfig
from vasari.service.errors import ServiceError, prediction_failed
from vasari.service.thumbnails import ThumbnailRegistry

log = logging.getLogger(__name__)


def json_safe(obj: Any) -> Any:
    """Make predictor output JSON-safe (numpy scalars/arrays, tuples, paths, NaN -> None)."""
    if isinstance(obj, dict):
        return {str(k): json_safe(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [json_safe(v) for v in obj]
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, (str, int, bool)) or obj is None:
        return obj
    if isinstance(obj, Path):
        return str(obj)
    tolist = getattr(obj, "tolist", None)  # numpy scalar or array
    if callable(tolist):
        return json_safe(tolist())
    if hasattr(obj, "__dataclass_fields__"):
        return json_safe(asdict(obj))
    return str(obj)


def decode_min_side(info: dict, config: ServiceConfig) -> int | None:
    """The short side uploads are decoded at: as the Embedder decodes the files the heads
    were trained on (``BackboneSpec.draft_min_side``), unless the config sets it."""
    if config.decode_min_side is not None:
        return config.decode_min_side or None
    pre = (info.get("backbone") or {}).get("preprocess") or {}
    try:
        size, crop = float(pre.get("size", 260)), float(pre.get("crop", 1.0)) or 1.0
        upscale = max(1.0, float(pre.get("max_draft_upscale", 1.0)))
    except (TypeError, ValueError):
        return 300
    resize_to = int(math.floor(size / crop))  # Preprocess.resize_to
    # BackboneSpec.draft_min_side: how the Embedder decodes files (training features included)
    side = int(math.ceil(resize_to / upscale))
    if (info.get("backbone") or {}).get("views") == "multicrop":  # crops of the picture at 2 x size
        side = max(side, int(math.ceil(2 * size / upscale)))
    return side


def limit_blas(threads: int | None) -> Callable[[], None] | None:
    """BLAS threads for this thread (OpenMP builds count per thread) and the process; the
    undo function (None: nothing limited)."""
    if not threads:
        return None
    try:
        from threadpoolctl import threadpool_limits

        limiter = threadpool_limits(limits=threads, user_api="blas")
    except Exception:  # noqa: BLE001 - threadpoolctl missing or no BLAS found: fine
        return None
    return limiter.restore_original_limits


def read_model_card(predictor: Any, info: dict) -> str:
    """MODEL_CARD.md of the predictor's bundle (written with it, else generated from it)."""
    bundle = getattr(predictor, "bundle", None)
    path = getattr(bundle, "path", None)
    if path is not None and (Path(path) / "MODEL_CARD.md").is_file():
        return (Path(path) / "MODEL_CARD.md").read_text(encoding="utf-8")
    if bundle is not None:
        try:
            from vasari.bundle import model_card

            return model_card(bundle)
        except Exception:  # noqa: BLE001 - fall back to a minimal card
            pass
    card = info.get("card") or {}
    lines = [f"# Model card: {card.get('name', 'model')}", ""]
    lines += [f"- {k}: {v}" for k, v in card.items() if isinstance(v, (str, int, float))]
    return "\n".join(lines) + "\n"


@dataclass(frozen=True)
class Upload:
    """A decoded upload as the batcher takes it: ``item`` is what the predictor's batch call
    gets (a ``PreparedImage`` when the predictor has ``prepare_image``, else the decoded PIL
    image) and ``size`` the decoded picture's (width, height)."""

    item: Any
    size: tuple[int, int]


@dataclass
class ServiceState:
    """What the routes share: the config, the batcher, and the model once it is loaded."""

    config: ServiceConfig
    #: a loaded predictor, or a zero-argument callable (or a class) that loads one
    source: Any
    predictor: Any = None
    info: dict = field(default_factory=dict)
    ready: bool = False
    #: why loading failed (reported by /readyz), None while it has not
    error: str | None = None
    min_side: int | None = None
    most_classes: int = 0
    card_markdown: str | None = None
    batcher: MicroBatcher = field(init=False)
    image_limits: ImageLimits = field(init=False)
    thumbnails: ThumbnailRegistry = field(init=False)
    #: explanation scores per upload (``vasari.explain.cache``), shared by the explain route
    explain_cache: ScoreCache = field(init=False)
    #: bounds the decodes running at once (``decode_limiter``; made in the event loop)
    _decode_limiter: Any = field(init=False, default=None)

    def __post_init__(self) -> None:
        config = self.config
        self.most_classes = self.most_classes or config.max_top_k
        self.batcher = MicroBatcher(
            self.run_predictor,
            max_batch=config.max_batch_size,
            window_s=config.batch_window_ms / 1000.0,
            workers=config.inference_workers,
            thread_setup=lambda: limit_blas(config.blas_threads),
        )
        self.image_limits = ImageLimits(max_pixels=config.max_pixels, max_bytes=max(config.max_upload_bytes, 1))
        self.thumbnails = ThumbnailRegistry(self.thumbnail_roots)
        self.explain_cache = ScoreCache(config.explain_cache_size)

    def decode_limiter(self) -> Any:
        """The thread limiter uploads are decoded under (``ServiceConfig.decode_threads``;
        created on first use, inside the event loop, as anyio requires)."""
        if self._decode_limiter is None:
            import anyio

            from vasari.features.engines import usable_cpus

            self._decode_limiter = anyio.CapacityLimiter(self.config.decode_threads or usable_cpus())
        return self._decode_limiter

    @property
    def lazy(self) -> bool:
        """True when the model is loaded at start-up (``/healthz`` answers meanwhile)."""
        source = self.source
        return isinstance(source, type) or (callable(source) and not hasattr(source, "predict_images"))

    def thumbnail_roots(self) -> list:
        """Folders thumbnails may come from: the shared data, the bundle, configured ones."""
        bundle_dir = getattr(getattr(self.predictor, "bundle", None), "path", None)
        return [shared_data_dir(), bundle_dir, *self.config.thumbnail_roots]

    @property
    def prepares(self) -> bool:
        """Whether the predictor splits off the per-picture work (``prepare_image`` and
        ``predict_prepared``): then uploads are prepared in the decode threads."""
        predictor = self.predictor
        return hasattr(predictor, "prepare_image") and hasattr(predictor, "predict_prepared")

    def prepare(self, image: Any) -> Upload:
        """A decoded picture made ready for the batcher (in a decode thread). A failure is the
        model's (500 prediction_failed), answered for this picture alone."""
        if not self.prepares:
            return Upload(image, image.size)
        try:
            return Upload(self.predictor.prepare_image(image), image.size)
        except Exception as exc:  # noqa: BLE001 - reported as the model failing on this picture
            log.exception("preparing a picture failed")
            raise prediction_failed(exc) from exc

    def run_predictor(self, uploads: list[Upload], top_k: int) -> list[dict]:
        """The predictor's answers for a batch of uploads (in an inference worker)."""
        # asking for more labels than a task has gives all of them (the predictor refuses)
        top_k = max(1, min(top_k, self.most_classes))
        items = [upload.item for upload in uploads]
        if self.prepares:
            return self.predictor.predict_prepared(items, top_k=top_k)
        return self.predictor.predict_images(items, top_k=top_k)

    def load(self) -> None:
        """Load the model from ``source`` and derive what serving needs from its info."""
        source = self.source
        if isinstance(source, type):  # a class: Predictor -> Predictor.load()
            predictor = source.load() if hasattr(source, "load") else source()
        else:
            predictor = source() if self.lazy else source
        self.adopt(predictor)

    def adopt(self, predictor: Any) -> None:
        """Serve ``predictor`` from now on (start-up, or a new bundle after an enrolment):
        batches already running finish on the predictor they started with."""
        info = json_safe(predictor.info()) if hasattr(predictor, "info") else {}
        info = info if isinstance(info, dict) else {"info": info}
        if isinstance(info.get("model"), str):  # the server's own path is nobody's business
            info["model"] = Path(info["model"]).name
        self.card_markdown = None
        self.predictor, self.info = predictor, info
        labels = info.get("labels")
        if isinstance(labels, dict) and labels:
            self.most_classes = max((len(v) for v in labels.values() if isinstance(v, list)), default=1) or 1
        self.min_side = decode_min_side(info, self.config)
        if getattr(predictor, "crop", False) and self.min_side and self.config.decode_min_side is None:
            # museum photos: the painting is only part of the picture, keep pixels for the crop
            self.min_side *= 2

    async def warm_up(self) -> None:
        """Load the model, run one prediction, then say ready (or record why not)."""
        try:
            await run_in_threadpool(self.load)
            if self.config.warmup:
                from PIL import Image

                probe = Image.new("RGB", (320, 320), (128, 110, 90))
                upload = await run_in_threadpool(self.prepare, probe)  # as uploads are: off the event loop
                await asyncio.wrap_future(self.batcher.submit([upload], 1))
                self.batcher.seconds_per_image = None  # the first batch pays for lazy set-up: not typical
            self.ready = True
            log.info("model ready")
        except Exception as exc:  # noqa: BLE001 - reported by /readyz
            log.exception("model failed to load")
            self.error = f"{type(exc).__name__}: {exc}"

    @contextlib.asynccontextmanager
    async def lifespan(self, app):
        """Start the batcher and the model; an already-loaded predictor is warm before serving."""
        undo_limit = limit_blas(self.config.blas_threads)
        self.batcher.start()
        task = asyncio.create_task(self.warm_up())
        if not self.lazy:
            await task  # an already-loaded predictor: be ready before serving
        try:
            yield
        finally:
            task.cancel()
            await run_in_threadpool(self.batcher.stop)
            if undo_limit is not None:
                undo_limit()

    def require_ready(self) -> None:
        """503 + Retry-After while the model is loading (or after it failed to load)."""
        if not self.ready:
            detail = self.error or "the model is still loading"
            raise ServiceError(503, "not_ready", detail, headers={"Retry-After": "5"})

    def admit(self) -> None:
        """Shed the request now (503) when the queue ahead would outlast ``shed_wait_s``."""
        config = self.config
        if config.shed_wait_s is None:
            return
        wait = self.batcher.expected_wait()
        if wait > config.shed_wait_s:
            retry = max(1, math.ceil(wait))
            raise ServiceError(
                503,
                "overloaded",
                f"the server is busy: about {wait:.1f} s of pictures are waiting (limit {config.shed_wait_s:g} s); "
                f"retry in {retry} s",
                headers={"Retry-After": str(retry)},
            )
